import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, tensor, type Tensor } from '@lm/tensor-gpu';
import { gradcheck, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import {
  absolutePositionIds,
  relativeKeyScores,
  relativePositionBucket,
  relativePositionBucketTensor,
  relativePositionBuckets,
  sinusoidalPositionEmbedding,
  t5PositionBias,
} from './position.js';
import { expectClose, randomTensor, testBackends } from './testing.js';

const backends = await testBackends();
afterAll(async () => (await testWebGPUBackend())?.destroy());

describe('relativePositionBucket (T5 _relative_position_bucket)', () => {
  // Hand-derived from the formula: bucket = offset + (n < maxExact ? n : maxExact + trunc(log(n/maxExact) /
  // log(maxDistance/maxExact) * (nb - maxExact))), clipped to nb - 1.
  it('bidirectional, 32 buckets, max distance 128 (T5 defaults)', () => {
    const cases: [number, number][] = [
      [0, 0],
      [-3, 3],
      [3, 19], // 16 + 3
      [-7, 7],
      [-8, 8], // log(1) = 0
      [-15, 9], // log(15/8)/log(16)*8 = 1.81
      [-16, 10], // exactly 2 in float32 (log 16 = 4 log 2 after rounding)
      [-32, 12], // exactly 4
      [20, 26], // 16 + 8 + trunc(2.64)
      [-128, 15], // 8 + 8 = 16, clipped to 15
      [-1000, 15],
      [1000, 31],
    ];
    for (const [rel, bucket] of cases) expect(relativePositionBucket(rel, { bidirectional: true, numBuckets: 32, maxDistance: 128 }), `rel ${rel}`).toBe(bucket);
  });

  it('causal (decoder), 32 buckets, max distance 128', () => {
    const cases: [number, number][] = [
      [5, 0], // future keys all share bucket 0
      [0, 0],
      [-5, 5],
      [-15, 15],
      [-16, 16],
      [-32, 21], // log(2)/log(8)*16 = 5.33
      [-64, 26], // 10.67
      [-128, 31], // 32 clipped
      [-5000, 31],
    ];
    for (const [rel, bucket] of cases) expect(relativePositionBucket(rel, { bidirectional: false, numBuckets: 32, maxDistance: 128 }), `rel ${rel}`).toBe(bucket);
  });

  it('the hf-t5 fixture config (16 buckets, max distance 20)', () => {
    const bi = { bidirectional: true, numBuckets: 16, maxDistance: 20 };
    // half 8, maxExact 4: log(n/4)/log(5)*4
    expect([-3, -4, -5, -6, -10, -19, -20, 6].map((r) => relativePositionBucket(r, bi))).toEqual([3, 4, 4, 5, 6, 7, 7, 13]);
    const causal = { bidirectional: false, numBuckets: 16, maxDistance: 20 };
    // maxExact 8: log(n/8)/log(2.5)*8
    expect([-7, -8, -9, -12, -19, -20, 3].map((r) => relativePositionBucket(r, causal))).toEqual([7, 8, 9, 11, 15, 15, 0]);
  });

  it('relativePositionBuckets: the [q, k] table of memory - query, with a past', () => {
    const opts = { bidirectional: false, numBuckets: 8, maxDistance: 16 };
    const t = relativePositionBuckets(2, 4, { ...opts, pastLength: 2 });
    const expected = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) expected.push(relativePositionBucket(j - (i + 2), opts));
    expect(Array.from(t)).toEqual(expected);
  });
});

describe.each(backends)('position on %s', (_name, backend) => {
  it('relativePositionBucketTensor equals the host formula for every offset in [-300, 300]', async () => {
    const rel = Int32Array.from({ length: 601 }, (_, i) => i - 300);
    const relT = fromHost(rel, [601], 'int32', backend);
    for (const opts of [
      { bidirectional: true, numBuckets: 32, maxDistance: 128 },
      { bidirectional: false, numBuckets: 32, maxDistance: 128 },
      { bidirectional: true, numBuckets: 16, maxDistance: 20 },
      { bidirectional: false, numBuckets: 16, maxDistance: 20 },
    ]) {
      const got = relativePositionBucketTensor(relT, opts);
      expect(got.dtype).toBe('int32');
      expect(Array.from(await got.data())).toEqual(Array.from(rel, (r) => relativePositionBucket(r, opts)));
      got.dispose();
    }
    const shaped = fromHost(Int32Array.from([-1, 2, -40, 7]), [2, 2], 'int32', backend);
    const b = relativePositionBucketTensor(shaped);
    expect([...b.shape]).toEqual([2, 2]);
    [relT, shaped, b].forEach((t) => t.dispose());
  });

  it('t5PositionBias: [1, heads, q, k] rows of relative_attention_bias, queries after a past', async () => {
    const numBuckets = 8;
    const heads = 3;
    const table = Float32Array.from({ length: numBuckets * heads }, (_, i) => Math.floor(i / heads) * 10 + (i % heads));
    const w = fromHost(table, [numBuckets, heads], 'float32', backend);
    const opts = { bidirectional: false, numBuckets, maxDistance: 16 };
    const bias = t5PositionBias(w, 2, 5, { ...opts, pastLength: 3 });
    const expected: number[] = [];
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < 2; i++) for (let j = 0; j < 5; j++) expected.push(relativePositionBucket(j - (i + 3), opts) * 10 + h);
    }
    await expectClose(bias, expected, 0, 0, [1, heads, 2, 5]);
    [w, bias].forEach((t) => t.dispose());
  });

  it('relativeKeyScores matches the einsums computed on the host (relative_key, relative_key_query, with a past)', async () => {
    const [b, h, d, maxPos] = [2, 2, 3, 6];
    for (const hasPast of [false, true]) {
      const lq = hasPast ? 1 : 4;
      const lk = 4;
      const q = randomTensor([b, h, lq, d], 1, backend);
      const k = randomTensor([b, h, lk, d], 2, backend);
      const table = randomTensor([2 * maxPos - 1, d], 3, backend);
      const [qh, kh, th] = await Promise.all([q.data(), k.data(), table.data()]);
      for (const type of ['relative_key', 'relative_key_query'] as const) {
        const got = relativeKeyScores(q, k, table, { type, maxPositionEmbeddings: maxPos, hasPast });
        const expected: number[] = [];
        for (let bi = 0; bi < b; bi++) {
          for (let hi = 0; hi < h; hi++) {
            for (let l = 0; l < lq; l++) {
              const pos = hasPast ? lk - 1 : l;
              for (let r = 0; r < lk; r++) {
                const row = pos - r + maxPos - 1;
                let s = 0;
                for (let e = 0; e < d; e++) {
                  const pe = th[row * d + e];
                  s += qh[((bi * h + hi) * lq + l) * d + e] * pe;
                  if (type === 'relative_key_query') s += kh[((bi * h + hi) * lk + r) * d + e] * pe;
                }
                expected.push(s);
              }
            }
          }
        }
        await expectClose(got, expected, 1e-5, 1e-5, [b, h, lq, lk]);
        got.dispose();
      }
      [q, k, table].forEach((t) => t.dispose());
    }
  });

  it('absolutePositionIds and the sinusoidal table', async () => {
    const ids = absolutePositionIds(3, { pastLength: 2, batch: 2, backend });
    expect(await ids.toArray()).toEqual([
      [2, 3, 4],
      [2, 3, 4],
    ]);
    const sin = sinusoidalPositionEmbedding(3, 4, { backend });
    const expected: number[] = [];
    for (let p = 0; p < 3; p++) expected.push(Math.sin(p), Math.cos(p), Math.sin(p / 100), Math.cos(p / 100));
    await expectClose(sin, expected, 1e-6, 1e-6, [3, 4]);
    [ids, sin].forEach((t) => t.dispose());
  });
});

describe('position gradients (finite differences, cpu)', () => {
  const backend = testCpuBackend();
  it('relativeKeyScores: grads of q, k and the distance table', () => {
    for (const type of ['relative_key', 'relative_key_query'] as const) {
      const run = (q: Tensor, k: Tensor, t: Tensor) => relativeKeyScores(q, k, t, { type, maxPositionEmbeddings: 4 });
      const r = gradcheck(run, [{ shape: [1, 2, 3, 2] }, { shape: [1, 2, 3, 2] }, { shape: [7, 2] }], backend);
      expect(r.worst, r.detail).toBeLessThanOrEqual(1);
    }
  });
  it('t5PositionBias: grad of relative_attention_bias', () => {
    const run = (w: Tensor) => t5PositionBias(w, 3, 4, { bidirectional: true, numBuckets: 8, maxDistance: 8 });
    const r = gradcheck(run, [{ shape: [8, 2] }], backend);
    expect(r.worst, r.detail).toBeLessThanOrEqual(1);
  });
  it('rejects a table of the wrong shape', () => {
    const w = tensor([[1, 2]], { backend });
    expect(() => t5PositionBias(w, 1, 1, { numBuckets: 32 })).toThrow(/relative_attention_bias must be \[numBuckets=32, heads\]/);
  });
});
