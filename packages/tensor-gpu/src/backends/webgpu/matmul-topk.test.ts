// The WebGPU matmulTopk kernel's lane and merge layout (kernels/matmul-topk.ts) where the op's cases
// (src/ops/matmul-topk.test.ts) do not reach: one query over enough rows for three merge passes
// (625 lanes -> 40 -> 3 -> 1 lists), many tiles, k above the rows of a lane (short lists), and a
// last group of queries smaller than the kernel's queries per thread, all
// with integer scores and many ties, ids checked exactly against a host sort (score desc, id asc).
import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, matmulTopk } from '../../index.js';
import { seededRandom, testWebGPUBackend } from '../../testing/index.js';

const backend = await testWebGPUBackend();
afterAll(() => backend?.destroy());

function ints(n: number, r: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  return Float32Array.from({ length: n }, () => Math.floor(rnd() * (2 * r + 1)) - r);
}

function hostTopk(q: Float32Array, rows: Float32Array, Q: number, N: number, D: number, k: number): { values: number[]; ids: number[] } {
  const values: number[] = [];
  const ids: number[] = [];
  for (let i = 0; i < Q; i++) {
    const s = Array.from({ length: N }, (_, n) => {
      let v = 0;
      for (let d = 0; d < D; d++) v += q[i * D + d] * rows[n * D + d];
      return { v, n };
    });
    s.sort((a, b) => b.v - a.v || a.n - b.n);
    for (const e of s.slice(0, k)) {
      values.push(e.v);
      ids.push(e.n);
    }
  }
  return { values, ids };
}

describe.skipIf(!backend)('webgpu matmulTopk kernel', () => {
  const cases = [
    { name: 'Q = 1 over 20000 rows: three merge passes', Q: 1, D: 6, shards: [12000, 8000], k: 5, tileRows: undefined },
    { name: 'Q = 2, k = 200 over short lane lists and 7 tiles', Q: 2, D: 5, shards: [3000, 500], k: 200, tileRows: 512 },
    { name: 'Q = 3, k = 1, one row per shard tail', Q: 3, D: 7, shards: [4001, 1, 33], k: 1, tileRows: 1000 },
    { name: 'Q = 6, k = 9: four queries per thread, then a group of two', Q: 6, D: 9, shards: [700, 300], k: 9, tileRows: 400 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const N = c.shards.reduce((a, b) => a + b, 0);
      const q = ints(c.Q * c.D, 2, 5);
      const rows = ints(N * c.D, 2, 6);
      let at = 0;
      const blocks = c.shards.map((n) => {
        const t = fromHost(rows.subarray(at * c.D, (at + n) * c.D), [n, c.D], 'float32', backend!);
        at += n;
        return t;
      });
      const queries = fromHost(q, [c.Q, c.D], 'float32', backend!);
      const got = matmulTopk(queries, blocks, c.k, c.tileRows === undefined ? {} : { tileRows: c.tileRows });
      const want = hostTopk(q, rows, c.Q, N, c.D, c.k);
      expect(Array.from(await got.indices.data())).toEqual(want.ids);
      expect(Array.from(await got.values.data())).toEqual(want.values);
      [got.values, got.indices, queries, ...blocks].forEach((t) => t.dispose());
    });
  }
});
