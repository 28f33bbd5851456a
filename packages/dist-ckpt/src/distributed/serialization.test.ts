import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { DTYPE_SIZE, type DType } from '../format/dtypes.js';
import { CorruptCheckpointError, DistCheckpointError, ShardingIntegrityError, StrictLoadError } from './errors.js';
import { localProcessGroups } from './group.js';
import { shardedObject, shardedTensor, shardedTensorFromLocal, type ShardedStateDict } from './mapping.js';
import { DistCheckpoint, load, save, saveAsync, type LoadedTensor } from './serialization.js';
import { bytesOf, layoutPieces, nativeOf, pieceTensor, randomBytes, rng, slicePiece, type Layout } from './test-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'dist-ckpt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const freshDir = () => join(root, `c${++counter}`);

/** Saves one global tensor per key under `layout` with simulated ranks. */
async function saveUnder(dir: string, tensors: Array<{ key: string; dtype: DType; shape: number[]; bytes: Uint8Array }>, layouts: Layout[]): Promise<void> {
  const perRank: Array<Record<string, unknown>> = [];
  tensors.forEach((t, i) => {
    const pieces = layoutPieces(t.shape, layouts[i]);
    pieces.forEach((p, r) => {
      perRank[r] ??= {};
      perRank[r][t.key] = pieceTensor(t.key, t.dtype, t.shape, p, nativeOf(t.dtype, slicePiece(t.bytes, t.shape, p.piece, DTYPE_SIZE[t.dtype])));
    });
  });
  const groups = localProcessGroups(perRank.length);
  await Promise.all(perRank.map((sd, r) => save(sd, dir, { group: groups[r] })));
}

/** Loads every tensor under `layouts` and checks each rank's piece bit for bit. */
async function loadAndCheck(dir: string, tensors: Array<{ key: string; dtype: DType; shape: number[]; bytes: Uint8Array }>, layouts: Layout[]): Promise<void> {
  for (const [i, t] of tensors.entries()) {
    const es = DTYPE_SIZE[t.dtype];
    for (const p of layoutPieces(t.shape, layouts[i])) {
      const { stateDict } = await load({ x: pieceTensor(t.key, t.dtype, t.shape, p, null) }, dir);
      const got = stateDict.x as LoadedTensor;
      expect(Buffer.from(bytesOf(got.data)).equals(Buffer.from(slicePiece(t.bytes, t.shape, p.piece, es)))).toBe(true);
    }
  }
}

function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
}

describe('save / load', () => {
  it('property: random shapes and layouts, saved under one and loaded under another, are bit-identical', async () => {
    const random = rng(1234);
    const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];
    const dtypes: DType[] = ['F32', 'BF16', 'I64', 'U8', 'F64'];
    for (let trial = 0; trial < 25; trial++) {
      const tensors = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, i) => {
        const rank = Math.floor(random() * 4); // 0-d .. 3-d
        const shape = Array.from({ length: rank }, () => pick([1, 2, 3, 4, 6, 8, 12]));
        const dtype = pick(dtypes);
        const count = shape.reduce((a, b) => a * b, 1);
        return { key: `t${trial}.${i}`, dtype, shape, bytes: randomBytes(count * DTYPE_SIZE[dtype], random) };
      });
      const randomLayout = (shape: number[]): Layout => {
        const frags = shape.map((s) => (random() < 0.6 ? pick(divisors(s)) : 1));
        const chunks = frags.reduce((a, b) => a * b, 1);
        const dp = pick([1, 1, 2, 3].filter((d) => d * chunks <= 24));
        return { frags, dp, flat: dp > 1 && random() < 0.5 };
      };
      // Every tensor needs the same number of ranks in one save: use one tensor per save when they differ.
      for (const t of tensors) {
        const a = randomLayout(t.shape);
        const b = randomLayout(t.shape);
        const dir = freshDir();
        await saveUnder(dir, [t], [a]);
        await loadAndCheck(dir, [t], [b]);
      }
    }
  });

  it('TP=2 save of column / row parallel weights loads under TP=1 and TP=4 with DP replicas', async () => {
    const random = rng(7);
    const col = { key: 'col.weight', dtype: 'F32' as DType, shape: [8, 6], bytes: randomBytes(8 * 6 * 4, random) };
    const row = { key: 'row.weight', dtype: 'F32' as DType, shape: [6, 8], bytes: randomBytes(6 * 8 * 4, random) };
    const dir = freshDir();
    // tp=2, dp=2: 4 ranks; column weights split on axis 0, row weights on axis 1.
    await saveUnder(dir, [col, row], [{ frags: [2, 1], dp: 2, flat: false }, { frags: [1, 2], dp: 2, flat: false }]);
    for (const tp of [1, 4]) {
      await loadAndCheck(dir, [col, row], [{ frags: [tp, 1], dp: 1, flat: false }, { frags: [1, tp], dp: 3, flat: false }]);
    }
    const ckpt = await DistCheckpoint.open(dir);
    expect(ckpt.metadata.tensors['col.weight'].shards.map((s) => s.offset)).toEqual([[0, 0], [4, 0]]);
    expect(ckpt.metadata.worldSize).toBe(4);
    await ckpt.close();
  });

  it('reads a slice in bounded windows (long runs split, short runs batched)', async () => {
    const random = rng(3);
    const t = { key: 'w', dtype: 'F32' as DType, shape: [8, 6], bytes: randomBytes(8 * 6 * 4, random) };
    const dir = freshDir();
    await saveUnder(dir, [t], [{ frags: [2, 1], dp: 1, flat: false }]);
    const ckpt = await DistCheckpoint.open(dir);
    const piece = { offset: [2, 1], shape: [4, 3] };
    for (const windowBytes of [1, 8, 20, 1 << 20]) {
      const got = await ckpt.readPiece('w', piece, { windowBytes });
      expect(Buffer.from(got).equals(Buffer.from(slicePiece(t.bytes, t.shape, piece, 4))), String(windowBytes)).toBe(true);
    }
    await ckpt.close();
  });

  it('fills typed arrays in place, converts floats, and round-trips objects and common state', async () => {
    const dir = freshDir();
    const w = new Float32Array([1, 2, 3, 4, 5, 6]);
    await save(
      {
        model: { w: shardedTensorFromLocal('w', w, null), half: shardedTensor({ key: 'h', dtype: 'F16', data: new Uint16Array([0x3c00, 0x4000]), localShape: [2], globalShape: [2], globalOffset: [0] }) },
        rng: shardedObject('rng_state', { seed: 42n, counters: new Uint32Array([1, 2]), name: 'philox' }),
        iteration: 100,
        args: { lr: 1e-4, nan: NaN },
      },
      dir,
    );
    const into = new Float32Array(6);
    const halfInto = new Float32Array(2);
    const result = await load(
      {
        model: {
          w: shardedTensorFromLocal('w', into, null),
          half: shardedTensorFromLocal('h', halfInto, null, 0, { dtype: 'F32' }),
        },
        rng: shardedObject('rng_state', null),
      },
      dir,
    );
    expect(result.stateDict.iteration).toBe(100);
    expect((result.stateDict.args as { nan: number }).nan).toBeNaN();
    expect((result.stateDict.model as { w: unknown }).w).toBe(into);
    expect(Array.from(into)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(halfInto)).toEqual([1, 2]);
    expect(result.stateDict.rng).toEqual({ seed: 42n, counters: new Uint32Array([1, 2]), name: 'philox' });
  });

  it('async save returns after the snapshot; later changes to the data are not saved', async () => {
    const dir = freshDir();
    const w = new Float32Array([1, 2, 3]);
    const request = await saveAsync({ w: shardedTensorFromLocal('w', w, null) }, dir);
    w.fill(-1);
    await request.wait();
    const { stateDict } = await load({ w: shardedTensorFromLocal('w', new Float32Array(3), null) }, dir);
    expect(Array.from(stateDict.w as Float32Array)).toEqual([1, 2, 3]);
  });

  it('re-saving publishes atomically and removes the previous version and stale staging folders', async () => {
    const dir = freshDir();
    await save({ w: shardedTensorFromLocal('w', new Float32Array([1]), null) }, dir);
    mkdirSync(join(dir, '.ckpt-crashed-1.tmp'));
    writeFileSync(join(dir, '.ckpt-crashed-1.tmp', 'metadata.json'), 'garbage');
    await save({ w: shardedTensorFromLocal('w', new Float32Array([2]), null) }, dir);
    const entries = readdirSync(dir).sort();
    expect(entries).toHaveLength(2);
    expect(entries[1]).toBe('latest.json');
    const { stateDict } = await load({ w: shardedTensorFromLocal('w', new Float32Array(1), null) }, dir);
    expect(Array.from(stateDict.w as Float32Array)).toEqual([2]);
  });

  it('a failing rank aborts the save on every rank and keeps the previous checkpoint', async () => {
    const dir = freshDir();
    await save({ w: shardedTensorFromLocal('w', new Float32Array([1, 2]), null) }, dir);
    const groups = localProcessGroups(2);
    const bad = () => Promise.reject(new Error('device lost'));
    const results = await Promise.allSettled([
      save({ w: shardedTensorFromLocal('w', new Float32Array([5]), { axis: 0, rank: 0, worldSize: 2 }) }, dir, { group: groups[0] }),
      save({ w: shardedTensorFromLocal('w', bad, { axis: 0, rank: 1, worldSize: 2 }, 0, { dtype: 'F32', shape: [1] }) }, dir, { group: groups[1] }),
    ]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(String((r as PromiseRejectedResult).reason)).toMatch(/previous checkpoint is kept.*rank 1.*device lost/);
    }
    const { stateDict } = await load({ w: shardedTensorFromLocal('w', new Float32Array(2), null) }, dir);
    expect(Array.from(stateDict.w as Float32Array)).toEqual([1, 2]);
    expect(readdirSync(dir).filter((e) => e.endsWith('.tmp'))).toEqual([]);
  });
});

describe('validation before save', () => {
  const t = (offset: number, replica: number[], key = 'w') =>
    shardedTensor({ key, dtype: 'F32', data: new Float32Array(2), localShape: [2], globalShape: [4], globalOffset: [offset], replicaId: replica });

  async function saveRanks(sds: ShardedStateDict[]): Promise<PromiseSettledResult<unknown>[]> {
    const groups = localProcessGroups(sds.length);
    const dir = freshDir();
    const r = await Promise.allSettled(sds.map((sd, i) => save(sd, dir, { group: groups[i] })));
    expect(existsSync(join(dir, 'latest.json'))).toBe(false);
    return r;
  }

  it('refuses a gap, naming the key and the main replicas present', async () => {
    const r = await saveRanks([{ a: t(0, [0]) }, { a: t(2, [1]) }]);
    const err = (r[0] as PromiseRejectedResult).reason as ShardingIntegrityError;
    expect(err).toBeInstanceOf(ShardingIntegrityError);
    expect(err.message).toMatch(/tensor 'w': main replicas cover 2 of 4 elements.*rank 0 offset \[0\] shape \[2\] replica \[0\]/);
    expect(r[1].status).toBe('rejected');
  });

  it('refuses overlapping main replicas, naming both shards', async () => {
    const r = await saveRanks([{ a: t(0, [0, 0]) }, { a: t(0, [0, 0]) }, { a: t(2, [0]) }]);
    expect(String((r[2] as PromiseRejectedResult).reason)).toMatch(
      /tensor 'w': main replicas overlap: rank 0 offset \[0\] shape \[2\] replica \[0,0\] and rank 1 offset \[0\]/,
    );
  });

  it('refuses ranks that disagree on global shape or dtype', async () => {
    const other = shardedTensor({ key: 'w', dtype: 'F32', data: new Float32Array(2), localShape: [2], globalShape: [6], globalOffset: [2] });
    const r = await saveRanks([{ a: t(0, [0]) }, { a: other }]);
    expect(String((r[0] as PromiseRejectedResult).reason)).toMatch(/ranks disagree on the global shape: \[6\]/);
    const half = shardedTensor({ key: 'w', dtype: 'F16', data: new Uint16Array(2), localShape: [2], globalShape: [4], globalOffset: [2] });
    const r2 = await saveRanks([{ a: t(0, [0]) }, { a: half }]);
    expect(String((r2[1] as PromiseRejectedResult).reason)).toMatch(/ranks disagree on the dtype: F16/);
  });

  it('refuses flattened ranges that leave a hole, and missing ShardedObject pieces', async () => {
    const flat = (a: number, b: number) =>
      shardedTensor({ key: 'f', dtype: 'F32', data: new Float32Array(b - a), localShape: [4], globalShape: [4], globalOffset: [0], flattenedRange: [a, b] });
    const r = await saveRanks([{ a: flat(0, 1) }, { a: flat(2, 4) }]);
    expect(String((r[0] as PromiseRejectedResult).reason)).toMatch(/tensor 'f': main replicas cover 3 of 4/);
    const r2 = await saveRanks([{ o: shardedObject('rng', 1, [2], [0]) }, { o: shardedObject('rng', 2, [2], [0]) }]);
    expect(String((r2[0] as PromiseRejectedResult).reason)).toMatch(/object 'rng': duplicate main replica 'rng\/shard_0_2'/);
  });

  it('checks ShardedTensor metadata when it is built', () => {
    expect(() => shardedTensor({ key: 'w', dtype: 'F32', data: new Float32Array(3), localShape: [2], globalShape: [4], globalOffset: [0] })).toThrow(
      /data has 3 elements, expected 2/,
    );
    expect(() =>
      shardedTensor({ key: 'w', dtype: 'F32', localShape: [2], globalShape: [4], globalOffset: [1], axisFragmentations: [2] }),
    ).toThrow(/not divisible/);
    expect(() => shardedTensor({ key: 'w', dtype: 'F32', localShape: [2], globalShape: [4], globalOffset: [3] })).toThrow(/runs past/);
  });
});

describe('strict handling on load', () => {
  const sd = () => ({
    a: shardedTensorFromLocal('a', new Float32Array(2), null),
    extra: shardedTensorFromLocal('not.saved', new Float32Array(2), null),
  });
  let dir: string;
  const ready = (async () => {
    dir = freshDir();
    await save({ a: shardedTensorFromLocal('a', new Float32Array([1, 2]), null), b: shardedTensorFromLocal('b', new Float32Array([3]), null) }, dir);
  })();

  it('assume_ok_unexpected (default) fails on the unexpected key, naming it, before touching anything', async () => {
    await ready;
    const s = sd();
    await expect(load(s, dir)).rejects.toThrow("tensor 'not.saved' is not in the checkpoint");
    expect(Array.from(s.a.data as Float32Array)).toEqual([0, 0]);
  });

  it('raise_* modes raise naming the keys; return_* return them; log_* log them; ignore_all ignores', async () => {
    await ready;
    await expect(load(sd(), dir, { strict: 'raise_unexpected' })).rejects.toThrow(StrictLoadError);
    await expect(load(sd(), dir, { strict: 'raise_all' })).rejects.toThrow(
      "load: keys in the checkpoint that no rank requested (missing): 'b'; requested keys not in the checkpoint (unexpected): 'not.saved'",
    );
    const r = await load(sd(), dir, { strict: 'return_all' });
    expect(r.missingKeys).toEqual(['b']);
    expect(r.unexpectedKeys).toEqual(['not.saved']);
    expect(Object.keys(r.stateDict)).toEqual(['a']);
    const r2 = await load(sd(), dir, { strict: 'return_unexpected' });
    expect(r2.missingKeys).toEqual([]);
    const logs: string[] = [];
    await load(sd(), dir, { strict: 'log_all', log: (m) => logs.push(m) });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain("'b'");
    const r3 = await load(sd(), dir, { strict: 'ignore_all' });
    expect(r3.unexpectedKeys).toEqual([]);
    expect(Array.from(r3.stateDict.a as Float32Array)).toEqual([1, 2]);
  });
});

describe('corrupted or incomplete checkpoints', () => {
  async function fresh(): Promise<{ dir: string; version: string }> {
    const dir = freshDir();
    const groups = localProcessGroups(2);
    const w = new Float32Array(64).map((_, i) => i);
    await Promise.all(
      [0, 1].map((r) =>
        save(
          { w: shardedTensorFromLocal('enc.weight', w.slice(r * 32, r * 32 + 32), { axis: 0, rank: r, worldSize: 2 }, 0, { shape: [4, 8] }) },
          dir,
          { group: groups[r], coords: { tp: r } },
        ),
      ),
    );
    const version = join(dir, JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')).checkpoint as string);
    return { dir, version };
  }
  const want = () => ({ w: shardedTensorFromLocal('enc.weight', new Float32Array(64), null, 0, { shape: [8, 8] }) });

  it('a missing shard file names the tensor and the file; nothing is filled', async () => {
    const { dir, version } = await fresh();
    unlinkSync(join(version, 'tp1.safetensors'));
    const s = want();
    const err = await load(s, dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect((err as Error).message).toMatch(/tensor 'enc.weight': shard file '.*tp1.safetensors' is missing/);
    expect((s.w.data as Float32Array).every((v) => v === 0)).toBe(true);
  });

  it('truncated data names the tensor and the file', async () => {
    const { dir, version } = await fresh();
    const file = join(version, 'tp0.safetensors');
    truncateSync(file, readFileSync(file).length - 10);
    await expect(load(want(), dir)).rejects.toThrow(/tensor 'enc.weight': .*tp0.safetensors/);
  });

  it('metadata that disagrees with the files names the tensor and the file', async () => {
    const { dir, version } = await fresh();
    const metaPath = join(version, 'metadata.json');
    const meta = JSON.parse(readFileSync(metaPath, 'utf8'));
    meta.tensors['enc.weight'].dtype = 'F16';
    writeFileSync(metaPath, JSON.stringify(meta));
    await expect(load(want(), dir)).rejects.toThrow(
      /tensor 'enc.weight': shard file '.*tp0.safetensors' holds 'enc.weight\/shard_0.0_8.8' as F32 \[4,8\] but metadata.json says F16 \[4,8\]/,
    );
    meta.tensors['enc.weight'].dtype = 'F32';
    meta.tensors['enc.weight'].shards[1].name = 'enc.weight/shard_0.0_8.8';
    writeFileSync(metaPath, JSON.stringify(meta));
    await expect(load(want(), dir)).rejects.toThrow(/tensor 'enc.weight': shard file '.*tp1.safetensors' has no tensor 'enc.weight\/shard_0.0_8.8'/);
    meta.tensors['enc.weight'].shards.pop();
    writeFileSync(metaPath, JSON.stringify(meta));
    await expect(load(want(), dir)).rejects.toThrow(/metadata.json: .*tensor 'enc.weight': main replicas cover 32 of 64/);
  });

  it('a replaced shard file of another size, a truncated metadata.json and a bad pointer are refused', async () => {
    const { dir, version } = await fresh();
    const metaPath = join(version, 'metadata.json');
    const text = readFileSync(metaPath, 'utf8');
    writeFileSync(metaPath, text.slice(0, 50));
    await expect(load(want(), dir)).rejects.toThrow(/metadata.json: not valid JSON/);
    writeFileSync(metaPath, text);
    writeFileSync(join(dir, 'latest.json'), '{"format":"lm-dist-ckpt","checkpoint":"../../etc"}');
    await expect(load(want(), dir)).rejects.toThrow(/latest.json: not an lm-dist-ckpt pointer/);
    await expect(load(want(), join(root, 'nope'))).rejects.toThrow(DistCheckpointError);
  });
});
