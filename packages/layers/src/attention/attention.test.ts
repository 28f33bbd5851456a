import { afterAll, describe, expect, it } from 'vitest';
import { concat, fromHost, matmul, memory, noGrad, scope, tensor, type Backend, type Tensor } from '@lm/tensor-gpu';
import { gradcheck, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { attentionCore, findPruneableHeadsAndIndices, MultiHeadAttention, pruneLinearLayer, type AttentionCoreOptions, type KeyValue } from './attention.js';
import { FLOAT32_MIN, causalMask } from './masks.js';
import { Linear } from '../nn/linear.js';
import { expectClose, expectTensorsClose, randomTensor, testBackends } from './testing.js';

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

/** Self-attention computed from the module's weights with plain ops (no cache): the test's composite. */
function compositeSelfAttention(m: MultiHeadAttention, x: Tensor, opts: { mask?: Tensor | null; headMask?: number[]; causal?: boolean; bias?: Tensor | null }): Tensor {
  return scope(() => {
    const [B, L] = x.shape;
    const H = m.numHeads;
    const D = m.headDim;
    const proj = (l: Linear) => {
      const y = matmul(x, l.weight.transpose(0, 1));
      return (l.bias ? y.add(l.bias) : y).reshape(B, L, H, D).permute(0, 2, 1, 3);
    };
    const q = proj(m.query);
    const k = proj(m.key);
    const v = proj(m.value);
    let s = matmul(q, k.transpose(-1, -2)).mulScalar(m.scale);
    if (opts.bias) s = s.add(opts.bias);
    if (opts.mask) s = s.add(opts.mask);
    if (opts.causal) s = s.add(causalMask(L, L, { backend: x.backend, format: 'additive' }));
    let p = s.softmax(-1);
    if (opts.headMask) p = p.mul(tensor(opts.headMask, { backend: x.backend }).reshape(1, H, 1, 1));
    const ctx = matmul(p, v).permute(0, 2, 1, 3).reshape(B, L, H * D);
    if (!m.output) return ctx;
    const o = matmul(ctx, m.output.weight.transpose(0, 1));
    return m.output.bias ? o.add(m.output.bias) : o;
  });
}

describe.each(backends)('MultiHeadAttention on %s', (_name, backend) => {
  const [B, L, hidden, heads] = [2, 5, 12, 3];

  it('matches the composite; attentions and head masks; state-dict names', async () => {
    const m = new MultiHeadAttention({ hiddenSize: hidden, numHeads: heads, backend });
    expect([...m.stateDict().keys()]).toEqual(['query.weight', 'query.bias', 'key.weight', 'key.bias', 'value.weight', 'value.bias']);
    const x = randomTensor([B, L, hidden], 21, backend);
    const mask = paddingMask(B, L, [0, 2], backend);
    const expected = compositeSelfAttention(m, x, { mask });
    const fused = m.forward(x, { attentionMask: mask });
    await expectTensorsClose(fused.output, expected, 2e-5, 2e-5);
    expect(fused.attentions).toBeUndefined();
    const withHeadMask = m.forward(x, { attentionMask: mask, headMask: tensor([1, 0, 0.5], { backend }), outputAttentions: true });
    await expectTensorsClose(withHeadMask.output, compositeSelfAttention(m, x, { mask, headMask: [1, 0, 0.5] }), 2e-5, 2e-5);
    expect([...withHeadMask.attentions!.shape]).toEqual([B, heads, L, L]);
    const probs = Array.from(await withHeadMask.attentions!.data());
    // Head 1 is zeroed; head 0 rows sum to 1; padded keys of row 1 get 0.
    expect(probs.slice(L * L, 2 * L * L).every((p) => p === 0)).toBe(true);
    expect(probs.slice(0, L).reduce((a, c) => a + c, 0)).toBeCloseTo(1, 5);
    expect(probs[heads * L * L + L - 1]).toBe(0);
    m.dispose();
  });

  it('KV cache: incremental decoding equals full causal attention (absolute, relative_key_query, T5 bias)', async () => {
    const variants = [
      { name: 'absolute', opts: {} },
      { name: 'relative_key_query', opts: { positionEmbeddingType: 'relative_key_query' as const, maxPositionEmbeddings: 8 } },
      {
        name: 't5',
        opts: {
          bias: false,
          scale: 1,
          outputProjection: true,
          names: { query: 'q', key: 'k', value: 'v', output: 'o' },
          relativeAttentionBias: { bidirectional: false, numBuckets: 8, maxDistance: 8 },
        },
      },
    ];
    for (const { name, opts } of variants) {
      const m = new MultiHeadAttention({ hiddenSize: hidden, numHeads: heads, backend, ...opts });
      const x = randomTensor([B, L, hidden], 31, backend);
      const full = m.forward(x, { causal: true });
      // Prefix of 2 tokens, then one token per step, feeding the previous present.
      const prefix = x.narrow(1, 0, 2);
      let step = m.forward(prefix, { causal: true, useCache: true });
      const outputs = [step.output];
      let past: KeyValue = step.presentKeyValue!;
      for (let t = 2; t < L; t++) {
        const xt = x.narrow(1, t, 1);
        step = m.forward(xt, { pastKeyValue: past, useCache: true, causal: true });
        expect([...step.presentKeyValue!.key.shape], name).toEqual([B, heads, t + 1, hidden / heads]);
        outputs.push(step.output);
        past = step.presentKeyValue!;
      }
      await expectTensorsClose(concat(outputs, 1), full.output, 3e-5, 3e-5);
      if (name === 't5') {
        expect([...m.stateDict().keys()]).toEqual(['q.weight', 'k.weight', 'v.weight', 'o.weight', 'relative_attention_bias.weight']);
        expect([...full.positionBias!.shape]).toEqual([1, heads, L, L]);
      }
      m.dispose();
    }
  });

  it('cross-attention caches the projected encoder keys/values once', async () => {
    const m = new MultiHeadAttention({ hiddenSize: hidden, numHeads: heads, kvInputSize: 8, backend });
    const x = randomTensor([B, 2, hidden], 41, backend);
    const enc = randomTensor([B, 7, 8], 42, backend);
    const encMask = paddingMask(B, 7, [3, 0], backend);
    const first = m.forward(x, { encoderHiddenStates: enc, encoderAttentionMask: encMask, attentionMask: paddingMask(B, 2, [1, 1], backend), useCache: true });
    const kv = first.presentKeyValue!;
    expect([...kv.key.shape]).toEqual([B, heads, 7, 4]);
    const projected = noGrad(() => m.key.forward(enc).reshape(B, 7, heads, 4).permute(0, 2, 1, 3));
    await expectTensorsClose(kv.key, projected, 1e-6, 1e-6);
    // A later step reuses the cache (the encoder states are not projected again) and gets the same values.
    const again = m.forward(x, { encoderHiddenStates: enc, encoderAttentionMask: encMask, pastKeyValue: kv, useCache: true });
    expect(again.presentKeyValue!.key).toBe(kv.key);
    await expectTensorsClose(again.output, first.output, 1e-6, 1e-6);
    m.dispose();
  });

  it('pruneHeads equals zeroing those heads through the output projection', async () => {
    const m = new MultiHeadAttention({ hiddenSize: hidden, numHeads: 4, outputProjection: true, names: { output: 'dense' }, backend });
    const x = randomTensor([B, L, hidden], 51, backend);
    const mask = paddingMask(B, L, [1, 0], backend);
    const masked = m.forward(x, { attentionMask: mask, headMask: tensor([1, 0, 1, 0], { backend }) }).output;
    const index = m.pruneHeads([1, 3]);
    expect(index).toEqual([0, 1, 2, 6, 7, 8]);
    expect(m.numHeads).toBe(2);
    expect([...m.prunedHeads].sort()).toEqual([1, 3]);
    expect([...m.query.weight.shape]).toEqual([6, hidden]);
    expect([...m.output!.weight.shape]).toEqual([hidden, 6]);
    expect([...m.stateDict().keys()]).toContain('dense.weight');
    const pruned = m.forward(x, { attentionMask: mask }).output;
    await expectTensorsClose(pruned, masked, 2e-5, 2e-5);
    // Pruning again uses the original numbering and skips heads already gone.
    expect(m.pruneHeads([3])).toBeNull();
    // Heads 0 and 2 remain (positions 0, 1); pruning 0 and the gone 1 keeps position 1.
    expect(m.pruneHeads([0, 1])).toEqual([3, 4, 5]);
    expect(m.numHeads).toBe(1);
    expect([...m.prunedHeads].sort()).toEqual([0, 1, 3]);
    m.dispose();
  });

  it('pruned T5 attention selects the remaining heads of a full position bias', async () => {
    const opts = { hiddenSize: hidden, numHeads: heads, bias: false, scale: 1, outputProjection: true, relativeAttentionBias: { bidirectional: true, numBuckets: 8, maxDistance: 8 }, backend };
    const m = new MultiHeadAttention(opts);
    const x = randomTensor([B, L, hidden], 61, backend);
    const reference = m.forward(x, { headMask: tensor([1, 0, 1], { backend }) }).output;
    m.pruneHeads([1]);
    const out = m.forward(x);
    expect([...out.positionBias!.shape]).toEqual([1, heads, L, L]);
    await expectTensorsClose(out.output, reference, 2e-5, 2e-5);
    m.dispose();
  });

  it('fused and explicit paths give the same parameter gradients', async () => {
    const grads = async (implementation: 'auto' | 'explicit') => {
      const m = new MultiHeadAttention({ hiddenSize: hidden, numHeads: heads, positionEmbeddingType: 'relative_key', maxPositionEmbeddings: 6, backend });
      // Same weights for both runs.
      noGrad(() => {
        let seed = 70;
        for (const [, p] of m.namedParameters()) p.copy_(randomTensor([...p.shape], seed++, backend, 0.3));
      });
      const x = randomTensor([B, L, hidden], 71, backend);
      const w = randomTensor([B, L, hidden], 72, backend);
      scope(() => m.forward(x, { attentionMask: paddingMask(B, L, [0, 1], backend), causal: true, implementation }).output.mul(w).sum().backward());
      const out = new Map<string, number[]>();
      for (const [n, p] of m.namedParameters()) out.set(n, Array.from(await p.grad!.data()));
      m.dispose();
      return out;
    };
    const a = await grads('auto');
    const b = await grads('explicit');
    expect([...a.keys()]).toContain('distance_embedding.weight');
    for (const [n, g] of a) {
      const t = fromHost(Float32Array.from(g), [g.length], 'float32', backend);
      await expectClose(t, b.get(n)!, 2e-5, 1e-4);
      t.dispose();
    }
  });

  it('frees its intermediates', () => {
    const m = new MultiHeadAttention({ hiddenSize: hidden, numHeads: heads, backend, positionEmbeddingType: 'relative_key', maxPositionEmbeddings: 8 });
    const x = randomTensor([B, L, hidden], 81, backend);
    const before = memory().tensors;
    const out = noGrad(() => m.forward(x, { outputAttentions: true, useCache: true }));
    // output, attentions, present key and value.
    expect(memory().tensors - before).toBe(4);
    [out.output, out.attentions!, out.presentKeyValue!.key, out.presentKeyValue!.value].forEach((t) => t.dispose());
    m.dispose();
    x.dispose();
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
