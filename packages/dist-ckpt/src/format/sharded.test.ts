import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadStateDict, openCheckpoint } from './checkpoint.js';
import { ShardIndexError } from './errors.js';
import { serializeSafetensors, type TensorToWrite } from './safetensors.js';
import { parseShardIndex, parseShardSize, planShards, shardFileName, writeShardedSafetensors } from './sharded.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dist-ckpt-shard-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('parseShardSize (Hugging Face semantics)', () => {
  it.each([
    [1234, 1234],
    ['5GB', 5e9],
    ['500MB', 500e6],
    ['10KB', 10e3],
    ['2GiB', 2 * 2 ** 30],
    ['512MiB', 512 * 2 ** 20],
    ['4KiB', 4096],
    ['1TB', 1e12],
    ['100B', 100],
    ['100', 100],
    ['5gb', 625e6], // transformers' quirk: a lowercase final b means bits
    ['5Gb', 625e6],
    ['1.5GB', 1.5e9],
  ] as const)('%s -> %i bytes', (input, bytes) => {
    expect(parseShardSize(input)).toBe(bytes);
  });

  it.each(['', 'GB', '5XB', '-5GB', 'five GB', '0MB'])('refuses %j', (input) => {
    expect(() => parseShardSize(input)).toThrow(/cannot parse shard size/);
  });

  it('refuses non-positive numbers', () => {
    expect(() => parseShardSize(0)).toThrow(RangeError);
    expect(() => parseShardSize(1.5)).toThrow(RangeError);
  });
});

describe('planShards', () => {
  it('matches huggingface_hub split_state_dict_into_shards_factory', () => {
    // Oversized tensors go to their own shard immediately (appended before the current one closes).
    expect(planShards([['a', 40], ['b', 40], ['c', 40], ['huge', 500], ['d', 100], ['e', 1]], 100)).toEqual([
      ['a', 'b'],
      ['huge'],
      ['c'],
      ['d'],
      ['e'],
    ]);
    expect(planShards([['a', 100], ['b', 100]], 100)).toEqual([['a'], ['b']]);
    expect(planShards([['a', 30], ['b', 70]], 100)).toEqual([['a', 'b']]);
    expect(planShards([], 100)).toEqual([[]]);
  });

  it('names shards model-00001-of-00003.safetensors', () => {
    expect(shardFileName('model', '.safetensors', 0, 3)).toBe('model-00001-of-00003.safetensors');
    expect(shardFileName('pytorch_model', '.bin', 11, 12)).toBe('pytorch_model-00012-of-00012.bin');
  });
});

function stateDict(): Map<string, TensorToWrite> {
  const sd = new Map<string, TensorToWrite>();
  for (let i = 0; i < 5; i++) {
    sd.set(`layer.${i}.weight`, { dtype: 'F32', shape: [4, 4], data: new Float32Array(16).map((_, j) => i * 100 + j) });
  }
  sd.set('big', { dtype: 'F32', shape: [64], data: new Float32Array(64).fill(7) });
  sd.set('ids', { dtype: 'I64', shape: [3], data: [1, 2, 3] });
  return sd;
}

describe('sharded safetensors', () => {
  it('writes shards of at most maxShardSize plus an index, and reads them back', async () => {
    const out = join(dir, 'sharded');
    const result = await writeShardedSafetensors(out, stateDict(), { maxShardSize: '150B', metadata: { format: 'pt' } });
    expect(result.files.length).toBeGreaterThan(2);
    expect(result.files[0]).toBe(`model-00001-of-${String(result.files.length).padStart(5, '0')}.safetensors`);
    expect(result.indexFile).toBe('model.safetensors.index.json');
    const index = JSON.parse(await readFile(join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(5 * 64 + 256 + 24);
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(index.weight_map).sort());
    expect(index.weight_map.big).toBe(result.files[2]);
    for (const f of result.files) {
      const size = (await readFile(join(out, f))).length;
      const cp = await openCheckpoint(join(out, f));
      const bytes = cp.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'I64' ? 8 : 4), 0);
      expect(bytes <= 150 || cp.tensors.length === 1, f).toBe(true);
      expect(size).toBeGreaterThan(bytes);
      expect(cp.metadata).toEqual({ format: 'pt' });
      await cp.close();
    }
    for (const input of [out, join(out, 'model.safetensors.index.json')]) {
      const sd = await loadStateDict(input, { as: 'native' });
      expect(sd.size).toBe(7);
      expect(Array.from(sd.get('layer.3.weight')!.data as Float32Array)).toEqual(Array.from({ length: 16 }, (_, j) => 300 + j));
      expect(Array.from(sd.get('ids')!.data as BigInt64Array)).toEqual([1n, 2n, 3n]);
    }
  });

  it('writes a single model.safetensors when everything fits, and removes stale shards', async () => {
    const out = join(dir, 'single');
    await writeShardedSafetensors(out, stateDict(), { maxShardSize: 150 });
    await writeFile(join(out, 'unrelated.txt'), 'keep me');
    const result = await writeShardedSafetensors(out, stateDict(), { maxShardSize: '5GB' });
    expect(result).toEqual({ files: ['model.safetensors'] });
    expect((await readdir(out)).sort()).toEqual(['model.safetensors', 'unrelated.txt']);
    const cp = await openCheckpoint(out);
    expect(cp.format).toBe('safetensors');
    await cp.close();
  });

  it('validates the index', () => {
    expect(() => parseShardIndex('i.json', '{')).toThrow(/i\.json: index is not valid JSON/);
    expect(() => parseShardIndex('i.json', '[]')).toThrow(/not a JSON object/);
    expect(() => parseShardIndex('i.json', '{"metadata": {}}')).toThrow(/no "weight_map" object/);
    expect(() => parseShardIndex('i.json', '{"weight_map": {"w": 3}}')).toThrow(/i\.json: tensor 'w': weight_map value is not a file name/);
    expect(() => parseShardIndex('i.json', '{"weight_map": {"w": "../../etc/passwd"}}')).toThrow(ShardIndexError);
    expect(() => parseShardIndex('i.json', '{"weight_map": {"w": "/etc/passwd"}}')).toThrow(/not a relative path/);
    expect(parseShardIndex('i.json', '{"weight_map": {"w": "sub/a.safetensors"}}').weight_map.w).toBe('sub/a.safetensors');
  });

  it('refuses a missing shard, or a shard without the tensor the index puts there', async () => {
    const out = join(dir, 'broken');
    const { files } = await writeShardedSafetensors(out, stateDict(), { maxShardSize: 150 });
    expect(files[1]).toBe('model-00002-of-00004.safetensors');
    await rm(join(out, files[1]));
    await expect(openCheckpoint(out)).rejects.toThrow(
      /broken\/model\.safetensors\.index\.json: shard file 'model-00002-of-00004\.safetensors' named by the index is missing/,
    );
    await writeFile(join(out, files[1]), await serializeSafetensors({ other: { dtype: 'F32', shape: [], data: [1] } }));
    await expect(openCheckpoint(out)).rejects.toThrow(
      /model\.safetensors\.index\.json: tensor 'layer\.2\.weight': the index puts this tensor in shard 'model-00002-of-00004\.safetensors', which does not hold it/,
    );
  });
});
