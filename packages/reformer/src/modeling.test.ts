// Behaviour the parity fixtures do not pin down: bad-input errors, the reversible backward against
// ordinary autograd (with dropout replayed), activation memory flat in depth, LSH details (sorting,
// auto num_buckets, seeded hashing), chunked feed-forward, save/load round trips, and generation with
// the cached decoding path against full forwards. Parity with the reference itself is the conformance
// runner over ../shared/fixtures/reformer (tooling/conformance, registered in families.json).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { manualSeed, memory, noGrad, scope, tensor, type Backend, type Tensor } from '@lm/tensor-gpu';
import { stepWithoutCache, generate } from '@lm/layers';
import { testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { weightPathProblems } from '@lm/layers/testing';
import { ReformerConfig, type ReformerConfigFields } from './config.js';
import {
  lookAdjacent,
  LSHSelfAttention,
  ReformerForMaskedLM,
  ReformerInputError,
  ReformerModel,
  ReformerModelWithLMHead,
} from './modeling.js';

const cpuBackend = testCpuBackend();
const webgpu = await testWebGPUBackend();
const work = mkdtempSync(join(tmpdir(), 'reformer-model-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const tiny = (fields: Partial<ReformerConfigFields> = {}) =>
  new ReformerConfig({
    vocabSize: 40,
    hiddenSize: 16,
    numAttentionHeads: 2,
    attentionHeadSize: 8,
    feedForwardSize: 24,
    attnLayers: ['local', 'lsh'],
    axialPosShape: [4, 8],
    axialPosEmbdsDim: [8, 8],
    maxPositionEmbeddings: 32,
    localAttnChunkLength: 8,
    lshAttnChunkLength: 8,
    numBuckets: 4,
    numHashes: 2,
    hiddenDropoutProb: 0,
    localAttentionProbsDropoutProb: 0,
    lshAttentionProbsDropoutProb: 0,
    initializerRange: 0.2,
    hashSeed: 7,
    ...fields,
  });

const ids = (rows: number[][], backend: Backend) => tensor(rows, { dtype: 'int32', backend });
const range = <T = number>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

async function maxDiff(a: Tensor, b: Tensor): Promise<number> {
  const [x, y] = [await a.data(), await b.data()];
  expect(x.length).toBe(y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

describe('bad input: clear errors naming the field, before any work', () => {
  it('refuses an odd num_buckets, an unknown attention type, an axial shape that does not make max_position_embeddings', () => {
    expect(() => new ReformerModel(tiny({ numBuckets: 5 }), { backend: cpuBackend })).toThrow(/num_buckets 5 must be even/);
    expect(() => new ReformerModel(tiny({ numBuckets: [2, 3] }), { backend: cpuBackend })).toThrow(/num_buckets \[2,3\] must be even .*got 3/);
    expect(() => new ReformerModel(tiny({ attnLayers: ['local', 'global' as 'lsh'] }), { backend: cpuBackend })).toThrow(/attn_layers\[1\] is "global"; only "lsh" and "local"/);
    expect(() => new ReformerModel(tiny({ axialPosShape: [4, 4] }), { backend: cpuBackend })).toThrow(/axial_pos_shape \[4, 4\] multiplies to 16, but max_position_embeddings is 32/);
    expect(() => new ReformerModel(tiny({ axialPosEmbdsDim: [8, 4] }), { backend: cpuBackend })).toThrow(/axial_pos_embds_dim \[8, 4\] sums to 12, but hidden_size is 16/);
    expect(() => new ReformerModelWithLMHead(tiny({ isDecoder: false }), { backend: cpuBackend })).toThrow(ReformerInputError);
    expect(() => new ReformerForMaskedLM(tiny({ isDecoder: true }), { backend: cpuBackend })).toThrow(/isDecoder/);
  });

  it('refuses, in training, a sequence length the chunk lengths do not divide (and pads it in eval)', () => {
    const model = new ReformerModel(tiny(), { backend: cpuBackend });
    const x = ids([range(20, (i) => (i % 30) + 3)], cpuBackend);
    model.train();
    expect(() => model.forward({ inputIds: x })).toThrow(/sequence length 20 has to be a multiple of the least common multiple chunk length 8.*pad the input to 24/);
    model.eval();
    const out = noGrad(() => model.forward({ inputIds: x }));
    expect(out.lastHiddenState.shape).toEqual([1, 20, 32]); // padded to 24 inside, cut back
    model.dispose();
  });
});

describe('LSH attention pieces', () => {
  it('lookAdjacent appends the previous and next chunks, wrapping around', async () => {
    const x = tensor([[[[0, 1], [2, 3], [4, 5]]]], { dtype: 'int32', backend: cpuBackend }); // [1, 1, 3 chunks, 2]
    const y = lookAdjacent(x, 1, 1);
    expect(y.shape).toEqual([1, 1, 3, 6]);
    expect(Array.from(await y.data())).toEqual([4, 5, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 2, 3, 4, 5, 0, 1]);
  });

  it('hashes into round-offset buckets, the pad bucket only when the mask has a 0', async () => {
    const config = tiny();
    const attn = new LSHSelfAttention(config, { backend: cpuBackend });
    const v = tensor(range(2 * 2 * 4 * 8, (i) => Math.sin(i * 1.7)), { backend: cpuBackend }).reshape(2, 2, 4, 8);
    const plain = await attn.hashVectors(v, 2, null).data();
    for (let i = 0; i < plain.length; i++) {
      const round = Math.floor(i / 4) % 2; // [2, 2, hashes 2, seq 4]
      expect(plain[i]).toBeGreaterThanOrEqual(round * 4);
      expect(plain[i]).toBeLessThan(round * 4 + 4);
    }
    const mask = tensor([[1, 1, 1, 0], [1, 1, 1, 1]], { dtype: 'int32', backend: cpuBackend }).ne(0);
    const padded = await attn.hashVectors(v, 2, mask).data();
    // Round 1 of batch 0, head 0, position 3: the pad bucket 4 plus the offset 1 * (4 + 1).
    expect(padded[4 + 3]).toBe(9);
    expect(padded[3]).toBe(4);
    const allOnes = await attn.hashVectors(v, 2, tensor([[1, 1, 1, 1], [1, 1, 1, 1]], { dtype: 'bool', backend: cpuBackend })).data();
    expect(Array.from(allOnes)).toEqual(Array.from(plain));
    attn.dispose();
  });

  it('sets num_buckets on the fly when the config leaves it null (and factorises past the limit)', () => {
    const attn = new LSHSelfAttention(tiny({ numBuckets: null }), { backend: cpuBackend });
    attn.setNumBuckets(32); // 2 * 32 / 8 = 8 buckets
    expect(attn.numBuckets).toBe(8);
    const big = new LSHSelfAttention(tiny({ numBuckets: null, maxPositionEmbeddings: 64, axialPosShape: [8, 8], lshAttnChunkLength: 2 }), { backend: cpuBackend });
    big.setNumBuckets(64); // 64 buckets > limit 2 * max(sqrt(32), 2) = 10 -> [8, 8]
    expect(big.numBuckets).toEqual([8, 8]);
    attn.dispose();
    big.dispose();
  });
});

describe('weights', () => {
  it('registers every weight under the reference state-dict names', () => {
    const model = new ReformerModelWithLMHead(tiny({ isDecoder: true }), { backend: cpuBackend });
    const names = [...model.stateDict().keys()];
    expect(names).toContain('reformer.embeddings.position_embeddings.weights.0');
    expect(names).toContain('reformer.encoder.layers.1.attention.self_attention.query_key.weight');
    expect(names).toContain('reformer.encoder.layers.0.attention.self_attention.query.weight');
    expect(names).toContain('reformer.encoder.layers.0.feed_forward.dense.dense.weight');
    expect(names).toContain('lm_head.decoder.bias');
    expect(names).toContain('lm_head.bias');
    expect(weightPathProblems(model)).toEqual([]);
    model.dispose();
  });

  it('saves and loads back to the same outputs', async () => {
    const model = new ReformerModelWithLMHead(tiny({ isDecoder: true }), { backend: cpuBackend });
    model.eval();
    const dir = join(work, 'roundtrip');
    await model.savePretrained(dir);
    const loaded = await ReformerModelWithLMHead.fromPretrained(dir, { backend: cpuBackend });
    const x = ids([range(16, (i) => (i * 7) % 40)], cpuBackend);
    const [a, b] = noGrad(() => [model.forward({ inputIds: x }).logits, loaded.forward({ inputIds: x }).logits]);
    expect(await maxDiff(a, b)).toBe(0);
    expect(loaded.config.numBuckets).toBe(4);
    model.dispose();
    loaded.dispose();
  });
});

/** A training loss and every parameter gradient, with the reversible backward or ordinary autograd. */
async function lossAndGrads(model: ReformerForMaskedLM, x: Tensor, labels: Tensor, reversible: boolean): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  model.reformer.encoder.reversible = reversible;
  for (const [, p] of model.namedParameters()) p.grad = null;
  manualSeed(1234); // the same dropout draws for both runs
  const loss = scope(() => {
    const out = model.forward({ inputIds: x, labels });
    out.loss!.backward();
    return out.loss!;
  });
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of model.namedParameters()) if (p.grad) grads.set(name, (await p.grad.data()) as Float32Array);
  return { loss: (await loss.data())[0], grads };
}

for (const [label, backend] of [['cpu', cpuBackend], ['webgpu', webgpu]] as const) {
  describe.skipIf(!backend)(`reversible layers (${label})`, () => {
    it('the reversible backward (with dropout replayed and the forward buckets) gives ordinary autograd gradients', async () => {
      const config = tiny({ attnLayers: ['local', 'lsh', 'lsh', 'local'], hiddenDropoutProb: 0.1, lshAttentionProbsDropoutProb: 0.1, localAttentionProbsDropoutProb: 0.1 });
      const model = new ReformerForMaskedLM(config, { backend: backend! });
      model.train();
      const x = ids([range(32, (i) => (i * 5 + 1) % 40), range(32, (i) => (i * 3 + 2) % 40)], backend!);
      const labels = ids([range(32, (i) => (i % 3 === 0 ? (i * 5 + 1) % 40 : -100)), range(32, (i) => (i % 4 === 0 ? 7 : -100))], backend!);
      const rev = await lossAndGrads(model, x, labels, true);
      const plain = await lossAndGrads(model, x, labels, false);
      expect(rev.loss).toBeCloseTo(plain.loss, 5);
      expect(rev.grads.size).toBe(plain.grads.size);
      expect(rev.grads.size).toBeGreaterThan(20);
      for (const [name, g] of plain.grads) {
        const r = rev.grads.get(name)!;
        let worst = 0;
        let scale = 0;
        for (let i = 0; i < g.length; i++) {
          worst = Math.max(worst, Math.abs(g[i] - r[i]));
          scale = Math.max(scale, Math.abs(g[i]));
        }
        expect(worst, name).toBeLessThan(1e-4 + 1e-3 * scale);
      }
      // Dropout really ran: a second seed changes the loss.
      manualSeed(99);
      const other = noGrad(() => scope(() => model.forward({ inputIds: x, labels }).loss!));
      expect(Math.abs((await other.data())[0] - rev.loss)).toBeGreaterThan(1e-6);
      model.dispose();
    });

    it('keeps activation memory flat in depth: the forward stores only the last layer outputs (and buckets)', async () => {
      const retained = (layers: number, reversible: boolean) => {
        const config = tiny({ attnLayers: range(layers, (i): 'lsh' | 'local' => (i % 2 ? 'lsh' : 'local')), numHashes: 1 });
        const model = new ReformerForMaskedLM(config, { backend: backend! });
        model.train();
        model.reformer.encoder.reversible = reversible;
        const x = ids([range(32, (i) => (i * 5 + 1) % 40)], backend!);
        const labels = ids([range(32, (i) => (i % 2 ? 3 : -100))], backend!);
        const before = memory().backends[backend!.name].bytes;
        const loss = model.forward({ inputIds: x, labels }).loss!;
        const held = memory().backends[backend!.name].bytes - before; // everything the graph keeps for backward
        loss.backward();
        loss.dispose();
        x.dispose();
        labels.dispose();
        model.dispose();
        return held;
      };
      const rev2 = retained(2, true);
      const rev8 = retained(8, true);
      const plain2 = retained(2, false);
      const plain8 = retained(8, false);
      // Reversible: 6 more layers add only their small int32 buckets; ordinary autograd grows per layer.
      expect(rev8).toBeLessThan(rev2 * 1.25);
      expect(plain8).toBeGreaterThan(plain2 * 2);
      expect(rev8).toBeLessThan(plain8 / 3);
    });
  });
}

describe('chunked feed-forward and LM head', () => {
  it('give the same outputs as the unchunked model', async () => {
    const base = new ReformerModelWithLMHead(tiny({ isDecoder: true }), { backend: cpuBackend });
    const dir = join(work, 'chunking');
    await base.savePretrained(dir);
    const json = { ...tiny({ isDecoder: true, chunkSizeFeedForward: 4, chunkSizeLmHead: 8 }).toJSON() };
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
    const chunked = await ReformerModelWithLMHead.fromPretrained(dir, { backend: cpuBackend });
    base.eval();
    const x = ids([range(32, (i) => (i * 11) % 40)], cpuBackend);
    const [a, b] = noGrad(() => [base.forward({ inputIds: x }).logits, chunked.forward({ inputIds: x }).logits]);
    expect(await maxDiff(a, b)).toBeLessThan(1e-5);
    base.dispose();
    chunked.dispose();
  });
});

describe('generation through @lm/layers with past_buckets_states', () => {
  // 3 prompt tokens + 5 new stay within one chunk (8): LSH runs standard attention both ways, so the
  // cached path must reproduce the full forward exactly.
  const config = () => tiny({ isDecoder: true, attnLayers: ['local', 'lsh', 'local', 'lsh'] });

  it('greedy with the cache equals greedy rerunning the full forward', async () => {
    const model = new ReformerModelWithLMHead(config(), { backend: cpuBackend });
    model.eval();
    const prompt = ids([[5, 9, 13], [7, 2, 30]], cpuBackend);
    const cached = await model.generate(prompt, { maxNewTokens: 5, eosTokenId: [], padTokenId: 0 });
    const full = await generate(stepWithoutCache((x) => model.forward({ inputIds: x, useCache: false }).logits), prompt, { maxNewTokens: 5, eosTokenId: [], padTokenId: 0 });
    expect(cached.sequences).toEqual(full.sequences);
    expect(cached.sequences[0]).toHaveLength(8);
    model.dispose();
  });

  it('sampling (seeded) and beam search with the cache equal their full-forward runs', async () => {
    const model = new ReformerModelWithLMHead(config(), { backend: cpuBackend });
    model.eval();
    const prompt = ids([[5, 9, 13]], cpuBackend);
    const full = stepWithoutCache((x) => model.forward({ inputIds: x, useCache: false }).logits);
    const sampleOptions = { maxNewTokens: 5, doSample: true, topK: 10, seed: 3, eosTokenId: [] as number[] };
    expect((await model.generate(prompt, sampleOptions)).sequences).toEqual((await generate(full, prompt, sampleOptions)).sequences);
    const beamOptions = { maxNewTokens: 4, numBeams: 3, eosTokenId: [] as number[], padTokenId: 0 };
    const beams = await model.generate(prompt, beamOptions);
    expect(beams.sequences).toEqual((await generate(full, prompt, beamOptions)).sequences);
    expect(beams.sequences[0].slice(0, 3)).toEqual([5, 9, 13]);
    model.dispose();
  });

  it('past a chunk, cached decoding hashes the cache once and then only the new token', async () => {
    const model = new ReformerModelWithLMHead(config(), { backend: cpuBackend });
    model.eval();
    const prompt = ids([range(6, (i) => i + 3)], cpuBackend);
    let cache = noGrad(() => model.forward({ inputIds: prompt, useCache: true })).pastBucketsStates!;
    expect(cache[1][0]).toBeNull(); // prompt shorter than a chunk: no buckets yet
    for (let step = 0; step < 4; step++) {
      cache = noGrad(() => model.forward({ inputIds: ids([[11 + step]], cpuBackend), pastBucketsStates: cache, useCache: true })).pastBucketsStates!;
    }
    expect(cache[1][1]!.shape).toEqual([1, 10, 16]);
    expect(cache[1][0]!.shape).toEqual([1, 2, 2, 10]); // [batch, heads, hashes, cached length]
    expect(cache[0][0]).toBeNull(); // local layers cache states only
    model.dispose();
  });
});
