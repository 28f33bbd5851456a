import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, noGrad, scope, tensor, type Backend, type Tensor } from '@lm/tensor-gpu';
import { gradcheck, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { attentionCore, findPruneableHeadsAndIndices, pruneLinearLayer, type AttentionCoreOptions } from './attention.js';
import { FLOAT32_MIN, causalMask } from './masks.js';
import { Linear } from '../nn/linear.js';
import { expectClose, randomTensor, testBackends } from './testing.js';

const backends = await testBackends();
afterAll(async () => (await testWebGPUBackend())?.destroy());

type Acc = (b: number, h: number, i: number, j: number) => number;

/** Host float64 attention: softmax((q.k + extra) * scale + bias) * headMask, then @ v. */
function hostAttention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  [B, H, Lq, Lk, D, Dv]: number[],
  o: { scale: number; bias?: Acc; extra?: Acc; headMask?: (h: number) => number; causal?: boolean },
): { context: number[]; probs: number[] } {
  const context: number[] = [];
  const probs: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Lq; i++) {
        const s: number[] = [];
        for (let j = 0; j < Lk; j++) {
          let dot = 0;
          for (let e = 0; e < D; e++) dot += q[((b * H + h) * Lq + i) * D + e] * k[((b * H + h) * Lk + j) * D + e];
          if (o.extra) dot += o.extra(b, h, i, j);
          let x = dot * o.scale + (o.bias ? o.bias(b, h, i, j) : 0);
          if (o.causal && j > i + Lk - Lq) x = FLOAT32_MIN;
          s.push(x);
        }
        const m = Math.max(...s);
        const ex = s.map((x) => Math.exp(x - m));
        const z = ex.reduce((a, c) => a + c, 0);
        const p = ex.map((x) => (x / z) * (o.headMask ? o.headMask(h) : 1));
        probs.push(...p);
        for (let e = 0; e < Dv; e++) {
          let acc = 0;
          for (let j = 0; j < Lk; j++) acc += p[j] * v[((b * H + h) * Lk + j) * Dv + e];
          context.push(acc);
        }
      }
    }
  }
  return { context, probs };
}

/** The key-padding additive mask [B, 1, 1, Lk] with the last `pad[b]` keys of row b masked. */
function paddingMask(B: number, Lk: number, pad: number[], backend: Backend): Tensor {
  const host = new Float32Array(B * Lk);
  for (let b = 0; b < B; b++) for (let j = Lk - pad[b]; j < Lk; j++) host[b * Lk + j] = FLOAT32_MIN;
  return fromHost(host, [B, 1, 1, Lk], 'float32', backend);
}

describe.each(backends)('attentionCore on %s', (_name, backend) => {
  const [B, H, Lq, Lk, D, Dv] = [2, 3, 4, 6, 5, 4];

  it('fused and explicit paths match a float64 host reference (mask, position bias, extra scores, causal)', async () => {
    const q = randomTensor([B, H, Lq, D], 1, backend);
    const k = randomTensor([B, H, Lk, D], 2, backend);
    const v = randomTensor([B, H, Lk, Dv], 3, backend);
    const mask = paddingMask(B, Lk, [0, 2], backend);
    const bias = randomTensor([1, H, Lq, Lk], 4, backend);
    const extra = randomTensor([B, H, Lq, Lk], 5, backend);
    const [qh, kh, vh, mh, bh, eh] = await Promise.all([q, k, v, mask, bias, extra].map((t) => t.data()));
    const scale = 0.37;
    const ref = hostAttention(qh, kh, vh, [B, H, Lq, Lk, D, Dv], {
      scale,
      bias: (b, h, i, j) => bh[(h * Lq + i) * Lk + j] + mh[b * Lk + j],
      extra: (b, h, i, j) => eh[((b * H + h) * Lq + i) * Lk + j],
      causal: true,
    });
    const opts: AttentionCoreOptions = { mask, positionBias: bias, extraScores: extra, scale, causal: true };
    for (const implementation of ['fused', 'explicit'] as const) {
      const { context } = attentionCore(q, k, v, { ...opts, implementation });
      await expectClose(context, ref.context, 2e-5, 2e-5, [B, H, Lq, Dv]);
      context.dispose();
    }
    const { context, attentions } = attentionCore(q, k, v, { ...opts, outputAttentions: true });
    await expectClose(context, ref.context, 2e-5, 2e-5);
    await expectClose(attentions!, ref.probs, 1e-6, 1e-5, [B, H, Lq, Lk]);
    [q, k, v, mask, bias, extra, context, attentions!].forEach((t) => t.dispose());
  });

  it('bool keep masks and head masks (returned probabilities are the head-masked ones)', async () => {
    const q = randomTensor([B, H, Lq, D], 6, backend);
    const k = randomTensor([B, H, Lk, D], 7, backend);
    const v = randomTensor([B, H, Lk, Dv], 8, backend);
    const keep = causalMask(Lq, Lk, { backend }); // [Lq, Lk] bool
    const headMask = tensor([1, 0, 0.5], { backend }).reshape(1, H, 1, 1);
    const [qh, kh, vh] = await Promise.all([q.data(), k.data(), v.data()]);
    const hm = [1, 0, 0.5];
    const ref = hostAttention(qh, kh, vh, [B, H, Lq, Lk, D, Dv], { scale: 1 / Math.sqrt(D), causal: true, headMask: (h) => hm[h] });
    const out = attentionCore(q, k, v, { mask: keep, headMask, outputAttentions: true });
    await expectClose(out.context, ref.context, 2e-5, 2e-5);
    await expectClose(out.attentions!, ref.probs, 1e-6, 1e-5);
    const fused = attentionCore(q, k, v, { mask: keep });
    const unmasked = hostAttention(qh, kh, vh, [B, H, Lq, Lk, D, Dv], { scale: 1 / Math.sqrt(D), causal: true });
    await expectClose(fused.context, unmasked.context, 2e-5, 2e-5);
    expect(() => attentionCore(q, k, v, { headMask, implementation: 'fused' })).toThrow(/cannot return probabilities/);
    [q, k, v, keep, headMask, out.context, out.attentions!, fused.context].forEach((t) => t.dispose());
  });

  it('fused and explicit paths give the same gradients (q, k, v, position bias, extra scores)', async () => {
    const grads = async (implementation: 'fused' | 'explicit'): Promise<Float32Array[]> => {
      const inputs = [
        randomTensor([B, H, Lq, D], 11, backend),
        randomTensor([B, H, Lk, D], 12, backend),
        randomTensor([B, H, Lk, Dv], 13, backend),
        randomTensor([1, H, Lq, Lk], 14, backend),
        randomTensor([B, H, Lq, Lk], 15, backend),
      ];
      inputs.forEach((t) => t.requiresGrad_());
      const [q, k, v, bias, extra] = inputs;
      const mask = paddingMask(B, Lk, [1, 0], backend);
      const w = randomTensor([B, H, Lq, Dv], 16, backend);
      scope(() => {
        const { context } = attentionCore(q, k, v, { mask, positionBias: bias, extraScores: extra, causal: true, implementation });
        context.mul(w).sum().backward();
      });
      const out = await Promise.all(inputs.map(async (t) => (await t.grad!.data()) as Float32Array));
      [...inputs, mask, w].forEach((t) => {
        t.zeroGrad();
        t.dispose();
      });
      return out;
    };
    const fused = await grads('fused');
    const explicit = await grads('explicit');
    for (let i = 0; i < fused.length; i++) {
      const t = fromHost(fused[i], [fused[i].length], 'float32', backend);
      await expectClose(t, explicit[i], 2e-5, 1e-4);
      t.dispose();
    }
  });
});

describe('attentionCore gradients (finite differences, cpu)', () => {
  it('explicit path with head mask, bias and extra scores', () => {
    const backend = testCpuBackend();
    const run = (q: Tensor, k: Tensor, v: Tensor, bias: Tensor, extra: Tensor, hm: Tensor) =>
      attentionCore(q, k, v, { positionBias: bias, extraScores: extra, headMask: hm, outputAttentions: true, causal: true }).context;
    const r = gradcheck(
      run,
      [{ shape: [1, 2, 3, 2] }, { shape: [1, 2, 4, 2] }, { shape: [1, 2, 4, 3] }, { shape: [1, 2, 3, 4] }, { shape: [1, 2, 3, 4] }, { shape: [1, 2, 1, 1], kind: 'positive' }],
      backend,
    );
    expect(r.worst, r.detail).toBeLessThanOrEqual(1);
  });
});

describe('pruning utilities', () => {
  const backend = testCpuBackend();
  it('findPruneableHeadsAndIndices mirrors transformers (already-pruned heads shift the index)', () => {
    expect(findPruneableHeadsAndIndices([1], 3, 2, new Set())).toEqual({ heads: new Set([1]), index: [0, 1, 4, 5] });
    // 4 original heads, head 0 already pruned (3 remain: 1, 2, 3); pruning 2 removes position 1.
    expect(findPruneableHeadsAndIndices([2, 0], 3, 1, new Set([0]))).toEqual({ heads: new Set([2]), index: [0, 2] });
  });

  it('pruneLinearLayer keeps rows (dim 0, with bias) or columns (dim 1, bias whole)', async () => {
    const lin = new Linear(3, 4, { backend });
    noGrad(() => {
      lin.weight.copy_(tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]], { backend }));
      lin.bias!.copy_(tensor([0.1, 0.2, 0.3, 0.4], { backend }));
    });
    const rows = pruneLinearLayer(lin, [0, 2], 0);
    expect(await rows.weight.toArray()).toEqual([
      [1, 2, 3],
      [7, 8, 9],
    ]);
    await expectClose(rows.bias!, [0.1, 0.3]);
    expect(rows.weight.requiresGrad && rows.weight.isLeaf).toBe(true);
    const cols = pruneLinearLayer(lin, [2], 1);
    expect(await cols.weight.toArray()).toEqual([[3], [6], [9], [12]]);
    await expectClose(cols.bias!, [0.1, 0.2, 0.3, 0.4]);
    expect([cols.inFeatures, cols.outFeatures]).toEqual([1, 4]);
  });
});
