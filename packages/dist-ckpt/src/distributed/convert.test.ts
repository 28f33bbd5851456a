import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { afterAll, describe, expect, it } from 'vitest';

import { loadStateDict } from '../format/checkpoint.js';
import { writeSafetensors } from '../format/safetensors.js';
import { findIoFixtures } from '../format/test-utils.js';
import { consolidateToHuggingFace, inspectCheckpoint, splitFromHuggingFace } from './convert.js';
import { shardedTensorFromLocal } from './mapping.js';
import { DistCheckpoint, save } from './serialization.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const tsx = createRequire(import.meta.url).resolve('tsx');
const cliPath = join(here, '..', 'cli.ts');
const root = mkdtempSync(join(tmpdir(), 'dist-ckpt-convert-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', tsx, cliPath, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const H = 4;
const V = 8;
const hf = {
  'bert.embeddings.word_embeddings.weight': { dtype: 'F32' as const, shape: [V, H], data: new Float32Array(V * H).map((_, i) => i) },
  'bert.encoder.layer.0.attention.self.query.weight': { dtype: 'F32' as const, shape: [H, H], data: new Float32Array(H * H).map((_, i) => -i) },
  'bert.encoder.layer.0.attention.output.dense.weight': { dtype: 'BF16' as const, shape: [H, H], data: new Float32Array(H * H).map((_, i) => i / 2) },
  'bert.encoder.layer.0.ln.weight': { dtype: 'F32' as const, shape: [H], data: new Float32Array([1, 2, 3, 4]) },
  position_ids: { dtype: 'I64' as const, shape: [1, 4], data: [0, 1, 2, 3] },
};

describe('Hugging Face conversion', () => {
  it('splits a HF file into TP=2 shards and consolidates it back, tensor for tensor', async () => {
    const src = join(root, 'hf', 'model.safetensors');
    mkdirSync(dirname(src), { recursive: true });
    await writeSafetensors(src, hf, { metadata: { format: 'pt' } });
    const dist = join(root, 'dist');
    await splitFromHuggingFace(dirname(src), dist, { tpSize: 2 });
    const ckpt = await DistCheckpoint.open(dist);
    expect(ckpt.tensor('bert.embeddings.word_embeddings.weight').shards.map((s) => s.shape)).toEqual([[V / 2, H], [V / 2, H]]);
    expect(ckpt.tensor('bert.encoder.layer.0.attention.output.dense.weight').shards.map((s) => s.offset)).toEqual([[0, 0], [0, H / 2]]);
    expect(ckpt.tensor('bert.encoder.layer.0.ln.weight').shards).toHaveLength(1);
    await ckpt.close();
    const out = join(root, 'hf-out');
    const result = await consolidateToHuggingFace(dist, out, { maxShardSize: 100 });
    expect(result.indexFile).toBe('model.safetensors.index.json');
    const back = await loadStateDict(out, { as: 'native' });
    const orig = await loadStateDict(src, { as: 'native' });
    expect([...back.keys()].sort()).toEqual([...orig.keys()].sort());
    for (const [k, v] of orig) {
      expect(back.get(k)!.dtype, k).toBe(v.dtype);
      expect(Array.from(back.get(k)!.data as ArrayLike<unknown>), k).toEqual(Array.from(v.data as ArrayLike<unknown>));
    }
  });
});

describe('consolidating part of a checkpoint', () => {
  it("prefix 'model.' writes only the weights of a training checkpoint, under their own names", async () => {
    const dir = join(root, 'train-ckpt');
    const w = new Float32Array([1, 2, 3, 4]);
    await save(
      {
        model: { 'model.ln.weight': shardedTensorFromLocal('model.ln.weight', w, null, [0, 0, 0]) },
        optimizer: { 'optimizer.exp_avg.ln.weight': shardedTensorFromLocal('optimizer.exp_avg.ln.weight', new Float32Array(4), null, [0, 0, 0]) },
        trainer: { step: 3 },
      },
      dir,
    );
    const out = join(root, 'train-hf');
    await consolidateToHuggingFace(dir, out, { prefix: 'model.' });
    const back = await loadStateDict(out, { as: 'native' });
    expect([...back.keys()]).toEqual(['ln.weight']);
    expect(Array.from(back.get('ln.weight')!.data as Float32Array)).toEqual([1, 2, 3, 4]);
    await expect(consolidateToHuggingFace(dir, join(root, 'none'), { prefix: 'encoder.' })).rejects.toThrow(/no tensor key starts with 'encoder\.' \(keys: model\.ln\.weight, optimizer\.exp_avg\.ln\.weight\)/);
  });
});

describe('lm-ckpt CLI', () => {
  it('inspects a distributed checkpoint and converts both ways', async () => {
    const src = join(root, 'cli-hf');
    mkdirSync(src, { recursive: true });
    await writeSafetensors(join(src, 'model.safetensors'), hf);
    const dist = join(root, 'cli-dist');
    const split = await cli('convert', src, dist, '--tp', '2');
    expect(split.stderr).toBe('');
    expect(split.code).toBe(0);
    const inspect = await cli('inspect', dist);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toContain('distributed checkpoint (lm-dist-ckpt v1)');
    expect(inspect.stdout).toContain('bert.embeddings.word_embeddings.weight  F32  [8, 4]  2 shard(s)');
    expect(inspect.stdout).toMatch(/offset \[4, 0\] shape \[4, 4\] -> tp1\.safetensors \(rank 1\)/);
    const out = join(root, 'cli-out');
    const merged = await cli('convert', dist, out, '--max-shard-size', '5GB');
    expect(merged.code).toBe(0);
    expect(readdirSync(out)).toEqual(['model.safetensors']);
  });

  it('inspects every valid fixture and refuses every bad one with a one-line error and exit code 1', async () => {
    const fixtures = findIoFixtures();
    if (!fixtures) return;
    const valid = [
      'model.safetensors', 'model.f16.safetensors', 'model.bf16.safetensors', 'expected.safetensors', 'pytorch_model.bin',
      'pytorch_model.legacy.bin', 'pytorch_model.ordereddict.bin', 'sharded-bin', 'sharded-safetensors',
    ];
    for (const f of valid) {
      const lines = await inspectCheckpoint(join(fixtures, f));
      expect(lines.join('\n'), f).toContain('embeddings.word_embeddings.weight');
    }
    const bad = readdirSync(join(fixtures, 'bad'));
    expect(bad.length).toBeGreaterThan(5);
    const results = await Promise.all([...bad.map((f) => cli('inspect', join(fixtures, 'bad', f))), cli('inspect', join(fixtures, 'model.safetensors'))]);
    bad.forEach((f, i) => {
      const r = results[i];
      expect(r.code, f).toBe(1);
      expect(r.stdout, f).toBe('');
      expect(r.stderr.trim().split('\n'), f).toHaveLength(1);
      expect(r.stderr, f).toContain(f);
      expect(r.stderr, f).not.toMatch(/\n\s+at /);
    });
    expect(results[bad.length].code).toBe(0);
    expect(existsSync('/tmp/lm-pwned')).toBe(false);
    const missing = await cli('inspect', join(root, 'does-not-exist'));
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr.trim()).toBe(`lm-ckpt: ${join(root, 'does-not-exist')}: does not exist`);
  });
});
