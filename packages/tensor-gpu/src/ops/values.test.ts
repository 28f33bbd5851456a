// Hand-checked values for the ops whose cpu results are the reference for everything else, run on
// both backends.
import { afterAll, describe, expect, it } from 'vitest';
import {
  tensor,
  crossEntropy,
  layerNorm,
  rmsNorm,
  scaledDotProductAttention,
  softmax,
  sort,
  cumsum,
  concat,
  oneHot,
  arange,
  eye,
  zeros,
  full,
  dropout,
  manualSeed,
} from '../index.js';
import { testCpuBackend, testWebGPUBackend } from '../testing/index.js';
import type { Backend } from '../backend.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

const close = (actual: ArrayLike<number>, expected: number[], tol = 1e-5) => {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(Math.abs(actual[i] - e), `index ${i}: ${actual[i]} vs ${e}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(e))));
};

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('hand-checked values on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const t = (data: Parameters<typeof tensor>[0], dtype?: 'int32' | 'bool') => tensor(data, { backend, dtype });

    it('activations', async () => {
      const x = t([-1, 0, 0.5, 1, 3]);
      close(await x.gelu().data(), [-0.15865525, 0, 0.34573123, 0.84134475, 2.99595031]);
      close(await x.geluTanh().data(), [-0.15880801, 0, 0.34571401, 0.84119199, 2.99636261]);
      close(await x.erf().data(), [-0.84270079, 0, 0.52049988, 0.84270079, 0.99997791]);
      close(await x.silu().data(), [-0.26894142, 0, 0.31122967, 0.73105858, 2.85772238]);
      close(await x.tanh().data(), [-0.76159416, 0, 0.46211716, 0.76159416, 0.99505475]);
      close(await t([-100, 100]).tanh().data(), [-1, 1]);
      close(await t([-100, 100]).sigmoid().data(), [0, 1]);
    });

    it('matmul', async () => {
      const a = t([[1, 2, 3], [4, 5, 6]]);
      const b = t([[7, 8], [9, 10], [11, 12]]);
      close(await a.matmul(b).data(), [58, 64, 139, 154]);
      close(await a.transpose().matmul(a).data(), [17, 22, 27, 22, 29, 36, 27, 36, 45]);
    });

    it('softmax and log-softmax', async () => {
      const x = t([[1, 2, 3], [1000, 1000, 1000]]);
      close(await softmax(x, -1).data(), [0.09003057, 0.24472847, 0.66524096, 1 / 3, 1 / 3, 1 / 3]);
      close(await x.logSoftmax(-1).data(), [-2.40760596, -1.40760596, -0.40760596, -1.09861229, -1.09861229, -1.09861229]);
    });

    it('logsumexp drops the reduced axes unless keepDim, and copes with -inf', async () => {
      const x = t([[1, 2, 3], [0, -Infinity, -Infinity]]);
      const reduced = x.logsumexp(-1);
      expect(reduced.shape).toEqual([2]);
      close(await reduced.data(), [3.40760596, 0]);
      expect(x.logsumexp(-1, true).shape).toEqual([2, 1]);
      expect(t([1, 2, 3]).logsumexp(0).shape).toEqual([]);
    });

    it('layer norm and rms norm', async () => {
      const x = t([[1, 2, 3, 4]]);
      const w = t([1, 2, 1, 1]);
      const b = t([0, 0, 1, 0]);
      close(await layerNorm(x, 4, w, b, 1e-5).data(), [-1.3416355, -0.8944237, 1.4472118, 1.3416355], 1e-4);
      close(await rmsNorm(x, w, 0).data(), [0.36514837, 1.46059349, 1.09544512, 1.46059349], 1e-5);
    });

    it('cross-entropy ignores ignore_index and averages over the rest', async () => {
      const logits = t([[2, 0, 0], [0, 0, 0], [0, 5, 0]]);
      const targets = t([0, -100, 1], 'int32');
      const l0 = Math.log(Math.exp(2) + 2) - 2;
      const l2 = Math.log(Math.exp(5) + 2) - 5;
      close(await crossEntropy(logits, targets).data(), [(l0 + l2) / 2]);
    });

    it('attention matches softmax(q k^T / sqrt(d)) v', async () => {
      const q = t([[[1, 0], [0, 1]]]);
      const k = t([[[1, 0], [0, 1], [1, 1]]]);
      const v = t([[[1, 2], [3, 4], [5, 6]]]);
      const s = 1 / Math.sqrt(2);
      const row = (scores: number[]) => {
        const e = scores.map(Math.exp);
        const z = e.reduce((a, b) => a + b, 0);
        return [0, 1].map((d) => e.reduce((acc, p, j) => acc + (p / z) * [[1, 2], [3, 4], [5, 6]][j][d], 0));
      };
      close(await scaledDotProductAttention(q, k, v).data(), [...row([s, 0, s]), ...row([0, s, s])]);
      // causal with Lq < Lk: query 0 sees keys 0..1, query 1 sees all three
      const causal = await scaledDotProductAttention(q, k, v, { causal: true }).data();
      const r0 = (() => {
        const e = [Math.exp(s), Math.exp(0)];
        const z = e[0] + e[1];
        return [(e[0] * 1 + e[1] * 3) / z, (e[0] * 2 + e[1] * 4) / z];
      })();
      close(causal, [...r0, ...row([0, s, s])]);
    });

    it('sort, cumsum, concat, oneHot, arange, eye', async () => {
      const s = sort(t([3, 1, 2, 1]));
      close(await s.values.data(), [1, 1, 2, 3]);
      expect(Array.from(await s.indices.data())).toEqual([1, 3, 2, 0]);
      close(await cumsum(t([[1, 2, 3], [4, 5, 6]]), 1).data(), [1, 3, 6, 4, 9, 15]);
      close(await concat([t([[1, 2]]), t([[3, 4], [5, 6]])], 0).data(), [1, 2, 3, 4, 5, 6]);
      expect(await oneHot(t([2, 0], 'int32'), 3).toArray()).toEqual([[0, 0, 1], [1, 0, 0]]);
      expect(await arange(2, 8, 2, { backend }).toArray()).toEqual([2, 4, 6]);
      expect(await eye(2, 3, { backend }).toArray()).toEqual([[1, 0, 0], [0, 1, 0]]);
      expect(await zeros([2], { backend, dtype: 'int32' }).toArray()).toEqual([0, 0]);
      expect(await full([2], 1, { backend, dtype: 'bool' }).toArray()).toEqual([true, true]);
    });

    it('dropout keeps the expected fraction and rescales', async () => {
      manualSeed(123);
      const x = full([10000], 1, { backend });
      const y = (await dropout(x, 0.25).data()) as Float32Array;
      const kept = y.filter((v) => v !== 0);
      expect(kept.every((v) => Math.abs(v - 4 / 3) < 1e-6)).toBe(true);
      expect(kept.length / y.length).toBeGreaterThan(0.73);
      expect(kept.length / y.length).toBeLessThan(0.77);
    });
  });
});
