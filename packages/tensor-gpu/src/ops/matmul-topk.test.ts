// matmulTopk on every backend (cpu with its fused kernel, cpu running the composite, webgpu) against a
// brute-force host reference: every score in float64, sorted by (score descending, id ascending).
// Integer-valued inputs make every score exact in float32 and float16 and give many ties, so the ids
// must match exactly; one case with random reals checks the values to 1e-4 instead.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend.js';
import { fromHost } from './creation.js';
import { matmulTopk } from './matmul-topk.js';
import { seededRandom, testCpuBackend, testWebGPUBackend, withoutFusedKernels } from '../testing/index.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());
const backends: [string, Backend][] = [
  ['cpu', testCpuBackend()],
  ['cpu composite', withoutFusedKernels(testCpuBackend())],
  ...(webgpu ? [['webgpu', webgpu] as [string, Backend]] : []),
];

/** Integers in [-r, r] (r = 0 gives all-equal scores). */
function ints(n: number, r: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  return Float32Array.from({ length: n }, () => Math.floor(rnd() * (2 * r + 1)) - r);
}

function reference(q: Float32Array, blocks: Float32Array, Q: number, N: number, D: number, k: number): { values: number[]; ids: number[] } {
  const values: number[] = [];
  const ids: number[] = [];
  for (let i = 0; i < Q; i++) {
    const scores = Array.from({ length: N }, (_, n) => {
      let s = 0;
      for (let d = 0; d < D; d++) s += q[i * D + d] * blocks[n * D + d];
      return { s, n };
    });
    scores.sort((a, b) => b.s - a.s || a.n - b.n);
    for (const { s, n } of scores.slice(0, k)) {
      values.push(s);
      ids.push(n);
    }
  }
  return { values, ids };
}

interface Case {
  name: string;
  Q: number;
  D: number;
  shards: number[];
  k: number;
  range: number;
  dtype?: 'float32' | 'float16';
  tileRows?: number;
}

const cases: Case[] = [
  { name: 'ties, k = 1, Q = 1', Q: 1, D: 8, shards: [200], k: 1, range: 1 },
  { name: 'all scores equal: the k smallest ids', Q: 3, D: 4, shards: [90], k: 7, range: 0 },
  { name: 'k = N over several shards', Q: 2, D: 8, shards: [30, 5, 41], k: 76, range: 2 },
  { name: 'Q = 64, k = 5, small tiles', Q: 64, D: 16, shards: [300, 170], k: 5, range: 3, tileRows: 64 },
  { name: 'Q = 64, k = 100, three shards', Q: 64, D: 8, shards: [257, 1, 400], k: 100, range: 2, tileRows: 100 },
  { name: 'float16 rows, ties, several shards', Q: 5, D: 12, shards: [128, 99, 300], k: 17, range: 3, dtype: 'float16', tileRows: 50 },
  { name: 'k above the webgpu kernel limit (composite there)', Q: 2, D: 4, shards: [150, 200], k: 300, range: 2 },
];

describe.each(backends)('matmulTopk on %s', (_name, backend) => {
  for (const c of cases) {
    it(c.name, async () => {
      if (c.dtype === 'float16' && !backend.supportsFloat16) {
        // An adapter without shader-f16 (SwiftShader) refuses float16 blocks up front, by name.
        const t = fromHost(new Float32Array(c.D), [1, c.D], 'float32', backend);
        expect(() => t.cast('float16')).toThrow(/shader-f16/);
        t.dispose();
        return;
      }
      const N = c.shards.reduce((a, b) => a + b, 0);
      const q = ints(c.Q * c.D, c.range, 1);
      const rows = ints(N * c.D, c.range, 2);
      let at = 0;
      const blocks = c.shards.map((n) => {
        const t = fromHost(rows.subarray(at * c.D, (at + n) * c.D), [n, c.D], 'float32', backend);
        at += n;
        if (c.dtype !== 'float16') return t;
        const h = t.cast('float16');
        t.dispose();
        return h;
      });
      const queries = fromHost(q, [c.Q, c.D], 'float32', backend);
      const got = matmulTopk(queries, blocks, c.k, { tileRows: c.tileRows });
      expect(got.values.shape).toEqual([c.Q, c.k]);
      expect(got.indices.dtype).toBe('int32');
      const want = reference(q, rows, c.Q, N, c.D, c.k);
      expect(Array.from(await got.indices.data())).toEqual(want.ids);
      expect(Array.from(await got.values.data())).toEqual(want.values);
      [got.values, got.indices, queries, ...blocks].forEach((t) => t.dispose());
    });
  }

  it('random real scores: values to 1e-4, each id scoring its value', async () => {
    const [Q, D, N, k] = [64, 128, 3000, 10];
    const rnd = seededRandom(3);
    const q = Float32Array.from({ length: Q * D }, () => rnd() - 0.5);
    const rows = Float32Array.from({ length: N * D }, () => rnd() - 0.5);
    const blocks = [fromHost(rows.subarray(0, 1000 * D), [1000, D], 'float32', backend), fromHost(rows.subarray(1000 * D), [N - 1000, D], 'float32', backend)];
    const queries = fromHost(q, [Q, D], 'float32', backend);
    const got = matmulTopk(queries, blocks, k);
    const want = reference(q, rows, Q, N, D, k);
    const values = await got.values.data();
    const ids = await got.indices.data();
    for (let i = 0; i < Q * k; i++) {
      expect(Math.abs(values[i] - want.values[i])).toBeLessThan(1e-4);
      const row = ids[i];
      let s = 0;
      for (let d = 0; d < D; d++) s += q[Math.floor(i / k) * D + d] * rows[row * D + d];
      expect(Math.abs(s - values[i])).toBeLessThan(1e-4);
    }
    [got.values, got.indices, queries, ...blocks].forEach((t) => t.dispose());
  });

  it('bad input: a clear error before any work', () => {
    const queries = fromHost(new Float32Array(8), [2, 4], 'float32', backend);
    const blocks = fromHost(new Float32Array(15), [5, 3], 'float32', backend);
    const ok = fromHost(new Float32Array(20), [5, 4], 'float32', backend);
    expect(() => matmulTopk(queries, blocks, 1)).toThrow(/blocks\[0\] must be float32 or float16 \[rows, 4\]/);
    expect(() => matmulTopk(queries, [ok, ok], 11)).toThrow(/k = 11 must be an integer in 1\.\.10/);
    expect(() => matmulTopk(queries, [], 1)).toThrow(/no blocks/);
    [queries, blocks, ok].forEach((t) => t.dispose());
  });
});
