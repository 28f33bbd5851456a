// RealmBlockIndex's tiled, sharded top-k against a brute-force search on the host, on cpu and webgpu,
// float32 and float16 storage; and its bad-input errors.

import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, type Backend } from '@lm/tensor-gpu';
import { seededRandom, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { RealmBlockIndex } from './block-index.js';
import { RealmError } from './errors.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

/** Deterministic uniform(-0.5, 0.5) test values. */
function rng(seed: number): () => number {
  const next = seededRandom(seed);
  return () => next() - 0.5;
}

/** Brute force on the host: scores of every row, ids sorted by score (desc), first k. */
function bruteForce(rows: Float32Array, n: number, dim: number, q: Float32Array, k: number): { ids: number[]; scores: number[] } {
  const scores = Array.from({ length: n }, (_, r) => {
    let s = 0;
    for (let d = 0; d < dim; d++) s += Math.fround(rows[r * dim + d]) * q[d];
    return s;
  });
  const ids = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b).slice(0, k);
  return { ids, scores: ids.map((i) => scores[i]) };
}

/** Rounds to the nearest float16 value (round half to even), as float16 storage does. */
function toHalf(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const e = Math.floor(Math.log2(Math.abs(x)));
  const step = 2 ** (Math.max(e, -14) - 10);
  const q = x / step;
  const r = Math.round(q);
  const even = Math.abs(q - Math.trunc(q)) === 0.5 ? 2 * Math.round(q / 2) : r;
  return even * step;
}

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('RealmBlockIndex on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const n = 1000;
    const dim = 16;
    const next = rng(7);
    const rows = Float32Array.from({ length: n * dim }, next);
    const queries = Float32Array.from({ length: 3 * dim }, next);

    it.each([
      { dtype: 'float32' as const, maxShardBytes: 300 * dim * 4, tileRows: 128, k: 5 },
      { dtype: 'float32' as const, maxShardBytes: undefined, tileRows: 64, k: 100 },
      { dtype: 'float32' as const, maxShardBytes: 700 * dim * 4, tileRows: 600, k: 3 },
      { dtype: 'float16' as const, maxShardBytes: 333 * dim * 2, tileRows: 100, k: 7 },
    ])('top-k over shards and tiles matches brute force: $dtype, k=$k, tile $tileRows', async ({ dtype, maxShardBytes, tileRows, k }) => {
      if (dtype === 'float16' && !backend.supportsFloat16) {
        // An adapter without shader-f16 (SwiftShader) cannot hold float16 storage: a clear error, before any work.
        expect(() => RealmBlockIndex.fromHost(rows, n, dim, backend, { dtype })).toThrow(/float16 storage needs .*shader-f16/);
        return;
      }
      const index = RealmBlockIndex.fromHost(rows, n, dim, backend, { dtype, maxShardBytes, tileRows });
      expect(index.numBlocks).toBe(n);
      if (maxShardBytes) expect(index.shards.length).toBe(Math.ceil(n / Math.floor(maxShardBytes / (dim * (dtype === 'float16' ? 2 : 4)))));
      const stored = dtype === 'float16' ? rows.map(toHalf) : rows;
      const q = fromHost(queries, [3, dim], 'float32', backend);
      const { scores, indices } = index.search(q, k);
      expect(indices.shape).toEqual([3, k]);
      const gotIds = Array.from(await indices.data());
      const gotScores = Array.from(await scores.data());
      for (let i = 0; i < 3; i++) {
        const want = bruteForce(stored, n, dim, queries.subarray(i * dim, (i + 1) * dim), k);
        expect(gotIds.slice(i * k, (i + 1) * k)).toEqual(want.ids);
        gotScores.slice(i * k, (i + 1) * k).forEach((s, j) => expect(Math.abs(s - want.scores[j])).toBeLessThan(1e-4));
      }
      // rows() gathers across shards in the order asked.
      const picked = index.rows([n - 1, 0, 301]);
      const back = await picked.data();
      [n - 1, 0, 301].forEach((r, j) => {
        for (let d = 0; d < dim; d++) expect(Math.abs(back[j * dim + d] - stored[r * dim + d])).toBeLessThan(1e-6);
      });
      [q, scores, indices, picked].forEach((t) => t.dispose());
      index.dispose();
    });

    it('add() appends incrementally and toHost() returns every row', async () => {
      const index = new RealmBlockIndex(dim, backend, { maxShardBytes: 400 * dim * 4 });
      index.addHost(rows.subarray(0, 250 * dim));
      index.addHost(rows.subarray(250 * dim));
      expect(index.numBlocks).toBe(n);
      expect(index.shards.map((s) => s.shape[0])).toEqual([400, 400, 200]);
      expect(Array.from(await index.toHost())).toEqual(Array.from(rows));
      index.dispose();
    });

    it('refuses bad input before any work', () => {
      const index = RealmBlockIndex.fromHost(rows.subarray(0, 10 * dim), 10, dim, backend);
      const q = fromHost(queries.subarray(0, dim), [1, dim], 'float32', backend);
      expect(() => index.search(q, 11)).toThrow(/k = 11 must be an integer in 1..10/);
      expect(() => index.search(fromHost(new Float32Array(8), [1, 8], 'float32', backend), 1)).toThrow(/queries must be \[q, 16\]/);
      expect(() => index.add(fromHost(new Float32Array(8), [1, 8], 'float32', backend))).toThrow(/rows must be \[n, 16\]/);
      expect(() => new RealmBlockIndex(dim, backend).search(q, 1)).toThrow(RealmError);
      expect(() => index.rows([10])).toThrow(/block id 10 is outside 0..9/);
      index.dispose();
    });
  });
});

describe('RealmBlockIndex.over', () => {
  it('searches block_emb itself when it fits one shard (no copy; it stays the caller\'s), and copies when it does not', async () => {
    const next = rng(41);
    const n = 300;
    const dim = 16;
    const rows = Float32Array.from({ length: n * dim }, next);
    const q = Float32Array.from({ length: dim }, next);
    const blockEmb = fromHost(rows, [n, dim], 'float32');
    const index = RealmBlockIndex.over(blockEmb);
    expect(index.shards).toEqual([blockEmb]);
    const expected = bruteForce(rows, n, dim, q, 5);
    const query = fromHost(q, [1, dim], 'float32');
    const got = index.search(query, 5);
    expect(Array.from(await got.indices.data())).toEqual(expected.ids);
    // write() writes into block_emb; add() grows into a new shard and leaves block_emb alone; dispose() too.
    index.write(0, fromHost(new Float32Array(dim).fill(7), [1, dim], 'float32'));
    expect((await blockEmb.data())[0]).toBe(7);
    index.add(fromHost(rows.subarray(0, 2 * dim), [2, dim], 'float32'));
    expect(index.numBlocks).toBe(n + 2);
    expect(index.shards[0]).not.toBe(blockEmb);
    index.dispose();
    expect(Array.from(await blockEmb.data()).slice(dim, 2 * dim)).toEqual(Array.from(rows.subarray(dim, 2 * dim)));
    // Over the shard limit (or another dtype): a copy, sharded.
    const copied = RealmBlockIndex.over(blockEmb, { maxShardBytes: 100 * dim * 4 });
    expect(copied.shards).toHaveLength(3);
    expect(copied.shards).not.toContain(blockEmb);
    expect(Array.from(await copied.search(query, 5).indices.data())).toEqual(Array.from(await RealmBlockIndex.fromTensor(blockEmb).search(query, 5).indices.data()));
    copied.dispose();
    blockEmb.dispose();
  });
});
