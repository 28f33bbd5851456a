import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { bytesSource } from './byte-source.js';
import { detectFormat, loadStateDict, openCheckpoint } from './checkpoint.js';
import {
  CheckpointFormatError,
  SafetensorsError,
  ShardIndexError,
  TensorNotFoundError,
  UnsafePickleError,
} from './errors.js';
import { serializeSafetensors } from './safetensors.js';
import type { TensorData } from './types.js';
import { findIoFixtures, torchPickle, torchZip, f32bytes } from './test-utils.js';

const FIXTURES = findIoFixtures();
const PWNED = '/tmp/lm-pwned';

async function expected(name = 'expected.safetensors'): Promise<Map<string, TensorData>> {
  return loadStateDict(join(FIXTURES!, name), { as: 'native' });
}

/** f16 rounding: |a - e| <= 2^-11 |e| (round to nearest) + half the smallest subnormal. */
function withinF16(a: number, e: number): boolean {
  return Math.abs(a - e) <= Math.abs(e) * 2 ** -11 + 2 ** -25;
}

async function expectMatches(
  file: string,
  how: 'exact' | 'f16' | 'bf16',
): Promise<void> {
  const want = await expected(how === 'bf16' ? 'expected.bf16.safetensors' : 'expected.safetensors');
  const got = await loadStateDict(join(FIXTURES!, file), { as: 'native' });
  const gotHost = await loadStateDict(join(FIXTURES!, file));
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [name, w] of want) {
    const g = got.get(name)!;
    expect(g.shape, name).toEqual(w.shape);
    if (w.dtype === 'I64') {
      expect(g.dtype, name).toBe('I64');
      expect(Array.from(g.data as BigInt64Array), name).toEqual(Array.from(w.data as BigInt64Array));
      expect(Array.from(gotHost.get(name)!.data), name).toEqual(Array.from(w.data as BigInt64Array, Number));
      continue;
    }
    const h = gotHost.get(name)!.data as Float32Array;
    expect(h).toBeInstanceOf(Float32Array);
    const e = w.data as Float32Array;
    expect(h.length, name).toBe(e.length);
    for (let i = 0; i < e.length; i++) {
      if (how === 'f16') {
        if (!withinF16(h[i], e[i])) expect.fail(`${name}[${i}]: ${h[i]} vs ${e[i]} beyond float16 rounding`);
      } else if (h[i] !== e[i]) {
        expect.fail(`${name}[${i}]: ${h[i]} !== ${e[i]}`);
      }
    }
  }
}

describe.skipIf(!FIXTURES)('shared io fixtures', () => {
  it.each([
    ['model.safetensors', 'exact'],
    ['model.f16.safetensors', 'f16'],
    ['model.bf16.safetensors', 'bf16'],
    ['pytorch_model.bin', 'exact'],
    ['pytorch_model.legacy.bin', 'exact'],
    ['pytorch_model.ordereddict.bin', 'exact'],
    ['sharded-bin', 'exact'],
    ['sharded-safetensors', 'exact'],
    ['sharded-bin/pytorch_model.bin.index.json', 'exact'],
    ['sharded-safetensors/model.safetensors.index.json', 'exact'],
  ] as const)('%s loads to the expected state dict (%s)', async (file, how) => {
    await expectMatches(file, how);
  });

  it('detects each format', async () => {
    const cases: Array<[string, string]> = [
      ['model.safetensors', 'safetensors'],
      ['pytorch_model.bin', 'torch-zip'],
      ['pytorch_model.legacy.bin', 'torch-legacy'],
      ['pytorch_model.ordereddict.bin', 'torch-zip'],
      ['sharded-bin', 'sharded'],
      ['sharded-safetensors', 'sharded'],
    ];
    for (const [file, format] of cases) {
      const cp = await openCheckpoint(join(FIXTURES!, file));
      expect(cp.format, file).toBe(format);
      expect(cp.tensors.length).toBe(9);
      await cp.close();
    }
    const bytes = await readFile(join(FIXTURES!, 'pytorch_model.legacy.bin'));
    expect(await detectFormat(bytesSource(bytes, 'anything'))).toBe('torch-legacy');
  });

  it('reads metadata without data, then one tensor at a time', async () => {
    const cp = await openCheckpoint(join(FIXTURES!, 'pytorch_model.bin'));
    expect(cp.info('transposed.weight')).toEqual({ name: 'transposed.weight', dtype: 'F32', shape: [6, 4] });
    expect(cp.info('scalar').shape).toEqual([]);
    expect(cp.info('position_ids').dtype).toBe('I64');
    const pos = await cp.readTensor('position_ids');
    expect(pos.data).toBeInstanceOf(Int32Array);
    expect(Array.from(pos.data)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    await expect(cp.readTensor('nope')).rejects.toThrow(TensorNotFoundError);
    await cp.close();
  });

  it('opens Blobs / Files and in-memory bytes, including shards given as a file list', async () => {
    const dir = join(FIXTURES!, 'sharded-safetensors');
    const files = await Promise.all(
      (await readdir(dir)).map(async (f) => new File([await readFile(join(dir, f))], f)),
    );
    const want = await expected();
    const fromFiles = await loadStateDict(files, { as: 'native' });
    expect([...fromFiles.keys()].sort()).toEqual([...want.keys()].sort());
    const bin = await readFile(join(FIXTURES!, 'pytorch_model.bin'));
    const fromBlob = await loadStateDict(new Blob([bin]), { as: 'native' });
    const fromBytes = await loadStateDict(new Uint8Array(bin), { as: 'native' });
    for (const [name, w] of want) {
      expect(Array.from(fromFiles.get(name)!.data as Float32Array)).toEqual(Array.from(w.data as Float32Array));
      expect(Array.from(fromBlob.get(name)!.data as Float32Array)).toEqual(Array.from(w.data as Float32Array));
      expect(Array.from(fromBytes.get(name)!.data as Float32Array)).toEqual(Array.from(w.data as Float32Array));
    }
    // A shard list without its shards is refused, naming the index and the shard.
    const index = files.find((f) => f.name.endsWith('.json'))!;
    await expect(loadStateDict([index, files.find((f) => f.name.includes('00001'))!])).rejects.toThrow(
      /model\.safetensors\.index\.json: shard file 'model-00002-of-00002\.safetensors'/,
    );
  });

  describe('bad files are refused, naming the file (and tensor)', () => {
    const cases: Array<[string, new (...args: never[]) => Error, RegExp]> = [
      ['evil-eval.bin', UnsafePickleError, /evil-eval\.bin: refused pickle global '__builtin__\.eval'/],
      ['evil-system.bin', UnsafePickleError, /evil-system\.bin: refused pickle global 'posix\.system'/],
      ['header-not-json.safetensors', SafetensorsError, /header-not-json\.safetensors: header is not valid JSON/],
      ['huge-header-length.safetensors', SafetensorsError, /huge-header-length\.safetensors: header length 1152921504606846976/],
      [
        'missing-shard',
        ShardIndexError,
        /missing-shard\/model\.safetensors\.index\.json: shard file 'model-00001-of-00002\.safetensors' .* is missing/,
      ],
      [
        'offsets-out-of-range.safetensors',
        SafetensorsError,
        /offsets-out-of-range\.safetensors: tensor 'embeddings\.word_embeddings\.weight': data_offsets \[0,1000000000\] run past/,
      ],
      [
        'overlapping-offsets.safetensors',
        SafetensorsError,
        /overlapping-offsets\.safetensors: tensor 'encoder\.layer\.0\.attention\.self\.query\.bias': .* overlap tensor 'embeddings\.word_embeddings\.weight'/,
      ],
      [
        'shape-does-not-match-bytes.safetensors',
        SafetensorsError,
        /shape-does-not-match-bytes\.safetensors: tensor 'embeddings\.word_embeddings\.weight': shape \[999,999\] of F32 needs 3992004 bytes/,
      ],
      ['truncated.safetensors', SafetensorsError, /truncated\.safetensors: tensor 'transposed\.weight': .*truncated/],
      ['unknown-dtype.safetensors', SafetensorsError, /unknown-dtype\.safetensors: tensor 'embeddings\.word_embeddings\.weight': unknown dtype "F99"/],
    ];

    it('covers every file in bad/', async () => {
      expect((await readdir(join(FIXTURES!, 'bad'))).sort()).toEqual(cases.map(([f]) => f).sort());
    });

    it.each(cases)('%s', async (file, cls, message) => {
      const path = join(FIXTURES!, 'bad', file);
      const err = await openCheckpoint(path).then(
        async (cp) => {
          await cp.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(cls);
      expect(err).toBeInstanceOf(CheckpointFormatError);
      expect((err as Error).message).toMatch(message);
      expect((err as CheckpointFormatError).file).toContain(file);
      // The same through loadStateDict and from memory.
      await expect(loadStateDict(path)).rejects.toThrow(cls);
      if (!file.includes('shard')) {
        await expect(loadStateDict(await readFile(path), { name: file })).rejects.toThrow(message);
      }
      expect(existsSync(PWNED)).toBe(false);
    });
  });
});

describe('openCheckpoint input handling', () => {
  it('refuses unknown formats and lone indexes clearly', async () => {
    await expect(openCheckpoint(new Uint8Array([1, 2, 3, 4, 5]), { name: 'x.dat' })).rejects.toThrow(
      /x\.dat: unrecognised checkpoint format/,
    );
    const index = new TextEncoder().encode('{"metadata": {}, "weight_map": {}}');
    await expect(openCheckpoint(new File([index], 'model.safetensors.index.json'))).rejects.toThrow(ShardIndexError);
    await expect(openCheckpoint([new File([index], 'a.bin'), new File([index], 'b.bin')])).rejects.toThrow(
      /several files and no \*\.index\.json/,
    );
    await expect(openCheckpoint('/nonexistent/folder/model.safetensors')).rejects.toThrow(/ENOENT/);
  });

  it('opens in-memory safetensors and torch files alike', async () => {
    const st = await serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    const cp = await openCheckpoint(st);
    expect(cp.format).toBe('safetensors');
    expect(Array.from((await cp.readTensor('w')).data)).toEqual([1, 2]);
    const pkl = torchPickle([{ name: 'w', key: '0', storageNumel: 2, size: [2], stride: [1] }]);
    const bin = torchZip(pkl, { '0': f32bytes([3, 4]) });
    const sd = await loadStateDict(bin);
    expect(Array.from(sd.get('w')!.data)).toEqual([3, 4]);
    const filtered = await loadStateDict(bin, { filter: (n) => n !== 'w' });
    expect(filtered.size).toBe(0);
  });
});
