// Behaviour the fixtures do not pin down: cached decoding (with cross-attention and relative positions)
// against full forwards, gradient checkpointing, head pruning, save/load round trips, MLM training and
// memory hygiene. Parity with the reference itself is conformance.test.ts.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { concat, manualSeed, memory, noGrad, randn, scope, tensor, type Tensor } from '@lm/tensor-gpu';
import { AdamW } from '@lm/layers';
import { testCpuBackend } from '@lm/tensor-gpu/testing';
import { weightPathProblems } from '@lm/layers/testing';
import { MegatronBertConfig } from './config.js';
import {
  MegatronBertForCausalLM,
  MegatronBertForMaskedLM,
  MegatronBertForPreTraining,
  MegatronBertForSequenceClassification,
  MegatronBertModel,
} from './modeling.js';

const backend = testCpuBackend();
const work = mkdtempSync(join(tmpdir(), 'megatron-model-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const tiny = (fields: Partial<ConstructorParameters<typeof MegatronBertConfig>[0]> = {}) =>
  new MegatronBertConfig({
    vocabSize: 50,
    hiddenSize: 16,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    intermediateSize: 24,
    maxPositionEmbeddings: 32,
    initializerRange: 0.2,
    hiddenDropoutProb: 0,
    attentionProbsDropoutProb: 0,
    ...fields,
  });

async function maxDiff(a: Tensor, b: Tensor): Promise<number> {
  const [x, y] = await Promise.all([a.data(), b.data()]);
  expect(a.shape).toEqual(b.shape);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

const ids = (rows: number[][]) => tensor(rows, { dtype: 'int32', backend });

describe('cached decoding matches full forwards', () => {
  // With relative positions the reference places a cached step's query at key_length - 1, which for
  // cross-attention is the encoder length, not the token's position: only self-attention decoders match.
  for (const [positionEmbeddingType, addCrossAttention] of [['absolute', true], ['relative_key', false], ['relative_key_query', false]] as const) {
    it(`decoder, ${positionEmbeddingType}${addCrossAttention ? ', with cross-attention' : ''}`, async () => {
      manualSeed(1);
      const model = new MegatronBertForCausalLM(tiny({ isDecoder: true, addCrossAttention, positionEmbeddingType }), { backend }).eval();
      const encoder = randn([2, 5, 16], { backend });
      const encoderMask = ids([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]);
      const full = ids([[3, 7, 9, 11, 4, 8], [5, 6, 2, 9, 1, 12]]);
      const cross = addCrossAttention ? { encoderHiddenStates: encoder, encoderAttentionMask: encoderMask } : {};
      const { reference, cached, crossAttentions } = noGrad(() => {
        const r = model.forward({ inputIds: full, ...cross, outputAttentions: true });
        let s = model.forward({ inputIds: full.slice(1, 0, 4), ...cross, useCache: true });
        expect(s.pastKeyValues![0]).toHaveLength(addCrossAttention ? 4 : 2); // self key/value (+ cross key/value)
        const parts = [s.logits];
        for (let t = 4; t < 6; t++) {
          s = model.forward({ inputIds: full.slice(1, t, t + 1), ...cross, pastKeyValues: s.pastKeyValues, useCache: true });
          parts.push(s.logits);
        }
        return { reference: r.logits, cached: concat(parts, 1), crossAttentions: r.crossAttentions };
      });
      if (addCrossAttention) expect(crossAttentions?.map((t) => t.shape)).toEqual([[2, 4, 6, 5], [2, 4, 6, 5]]);
      expect(await maxDiff(reference, cached)).toBeLessThan(1e-4);
      model.dispose();
    });
  }
});

describe('training', () => {
  it('gradient checkpointing gives the same gradients', async () => {
    manualSeed(2);
    const config = tiny();
    const a = new MegatronBertForPreTraining(config, { backend });
    const dir = join(work, 'ckpt-model');
    await a.savePretrained(dir);
    const b = await MegatronBertForPreTraining.fromPretrained(dir, { backend });
    a.train();
    b.train();
    b.gradientCheckpointingEnable();
    const inputs = { inputIds: ids([[2, 7, 9, 4, 3]]), labels: ids([[-100, 7, -100, 4, -100]]), nextSentenceLabel: ids([[1]]).reshape(1) };
    for (const m of [a, b]) scope(() => m.forward(inputs).loss!.backward());
    const gb = new Map(b.namedParameters());
    for (const [name, p] of a.namedParameters()) expect(await maxDiff(p.grad!, gb.get(name)!.grad!), name).toBeLessThan(1e-5);
    a.dispose();
    b.dispose();
  });

  it('with dropout, checkpointing replays the same masks: the same loss and gradients as without', async () => {
    const config = tiny({ hiddenDropoutProb: 0.2, attentionProbsDropoutProb: 0.2 });
    manualSeed(11);
    const plain = new MegatronBertForPreTraining(config, { backend }).train();
    const checkpointed = new MegatronBertForPreTraining(config, { backend }).train();
    checkpointed.loadStateDict(plain.stateDict());
    checkpointed.gradientCheckpointingEnable();
    const inputs = { inputIds: ids([[2, 7, 9, 4, 3, 5]]), labels: ids([[-100, 7, -100, 4, -100, 5]]), nextSentenceLabel: ids([[1]]).reshape(1) };
    const run = async (m: MegatronBertForPreTraining, seed: number) => {
      m.zeroGrad();
      manualSeed(seed);
      const loss = scope(() => {
        const l = m.forward(inputs).loss!;
        l.backward();
        return l;
      });
      const value = await loss.item();
      loss.dispose();
      return value;
    };
    const lossPlain = await run(plain, 21);
    const gradsPlain = new Map<string, Float32Array>();
    for (const [name, p] of plain.namedParameters()) gradsPlain.set(name, Float32Array.from(await p.grad!.data()));
    // Dropout is on: another seed draws other masks and gives another loss.
    expect(Math.abs((await run(plain, 22)) - lossPlain)).toBeGreaterThan(1e-4);
    expect(await run(checkpointed, 21)).toBeCloseTo(lossPlain, 5);
    for (const [name, p] of checkpointed.namedParameters()) {
      const got = await p.grad!.data();
      const want = gradsPlain.get(name)!;
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      expect(worst, name).toBeLessThan(1e-5);
    }
    plain.dispose();
    checkpointed.dispose();
  });

  it('an MLM + NSP step with AdamW lowers the loss, inside one scope per step', async () => {
    manualSeed(3);
    const model = new MegatronBertForPreTraining(tiny(), { backend }).train();
    const optimizer = new AdamW(model.parameters(), { lr: 1e-3 });
    const inputs = { inputIds: ids([[2, 7, 9, 4, 3], [2, 5, 6, 8, 3]]), labels: ids([[-100, 7, -100, 4, -100], [-100, -100, 6, -100, -100]]), nextSentenceLabel: ids([[0, 1]]).reshape(2) };
    const losses: number[] = [];
    const before = memory().tensors;
    for (let step = 0; step < 8; step++) {
      const loss = scope(() => {
        const l = model.forward(inputs).loss!;
        l.backward();
        optimizer.step();
        optimizer.zeroGrad();
        return l;
      });
      losses.push(await loss.item());
      loss.dispose();
      if (step === 1) expect(memory().tensors).toBeLessThanOrEqual(before + 200); // optimizer state, grads
    }
    expect(losses[7]).toBeLessThan(losses[0]);
    model.dispose();
  });
});

describe('the model surface', () => {
  it('pruning heads equals masking them', async () => {
    manualSeed(4);
    const model = new MegatronBertModel(tiny(), { backend }).eval();
    const input = { inputIds: ids([[2, 7, 9, 4, 3, 11]]) };
    const headMask = tensor([[1, 0, 1, 1], [0, 1, 1, 0]], { backend });
    const masked = noGrad(() => model.forward({ ...input, headMask }).lastHiddenState);
    model.pruneHeads({ 0: [1], 1: [0, 3] });
    expect(model.encoder.layer.at(1).attention.self.query.weight.shape).toEqual([8, 16]);
    const pruned = noGrad(() => model.forward(input).lastHiddenState);
    expect(await maxDiff(masked, pruned)).toBeLessThan(1e-5);
    model.dispose();
  });

  it('ties the decoder to the word embeddings and survives a save/load round trip', async () => {
    manualSeed(5);
    const model = new MegatronBertForMaskedLM(tiny(), { backend }).eval();
    expect(model.cls.predictions.decoder.weight).toBe(model.bert.embeddings.word_embeddings.weight);
    expect(model.cls.predictions.decoder.bias).toBe(model.cls.predictions.bias);
    expect([...model.namedParameters()].map(([n]) => n)).not.toContain('cls.predictions.decoder.weight');
    const dir = join(work, 'mlm');
    await model.savePretrained(dir);
    const loaded = await MegatronBertForMaskedLM.fromPretrained(dir, { backend });
    expect(loaded.cls.predictions.decoder.weight).toBe(loaded.bert.embeddings.word_embeddings.weight);
    const input = { inputIds: ids([[2, 7, 9, 4, 3]]) };
    expect(await maxDiff(noGrad(() => model.forward(input).logits), noGrad(() => loaded.forward(input).logits))).toBe(0);
    // A base checkpoint loads into a head (bert. prefix added), and the base model from a head checkpoint.
    const base = await MegatronBertModel.fromPretrained(dir, { backend, modelOptions: { addPoolingLayer: false } });
    expect(await maxDiff(noGrad(() => base.forward(input).lastHiddenState), noGrad(() => model.bert.forward(input).lastHiddenState))).toBe(0);
    for (const m of [model, loaded, base]) m.dispose();
  });

  for (const Head of [MegatronBertForPreTraining, MegatronBertForMaskedLM]) {
    it(`${Head.name}: every path sees the same tensor after loading, casting, resizing and tying`, async () => {
      manualSeed(8);
      const source = new Head(tiny(), { backend });
      const dir = join(work, `paths-${Head.name}`);
      await source.savePretrained(dir);
      source.dispose();
      const tied = [
        ['cls.predictions.decoder.weight', 'bert.embeddings.word_embeddings.weight'],
        ['cls.predictions.decoder.bias', 'cls.predictions.bias'],
      ];
      const model = Head === MegatronBertForPreTraining ? await MegatronBertForPreTraining.fromPretrained(dir, { backend }) : await MegatronBertForMaskedLM.fromPretrained(dir, { backend });
      expect(weightPathProblems(model, { tied })).toEqual([]);
      model.cast('float16');
      expect(model.cls.predictions.bias.dtype).toBe('float16');
      expect(weightPathProblems(model, { tied })).toEqual([]);
      model.cast('float32');
      const before = Array.from(await model.cls.predictions.bias.data());
      const emb = model.resizeTokenEmbeddings(53, { padToMultipleOf: 8 });
      expect(emb.numEmbeddings).toBe(56);
      expect(model.bert.embeddings.word_embeddings).toBe(emb);
      expect(weightPathProblems(model, { tied })).toEqual([]);
      // The output bias was resized with the decoder: old entries kept, new ones 0.
      expect(Array.from(await model.cls.predictions.bias.data())).toEqual([...before, 0, 0, 0, 0, 0, 0]);
      const input = { inputIds: ids([[2, 55, 9, 4, 3]]) };
      const head = model as unknown as { forward(i: typeof input): { logits?: Tensor; predictionLogits?: Tensor } };
      const out = noGrad(() => head.forward(input));
      expect((out.logits ?? out.predictionLogits)!.shape).toEqual([1, 5, 56]);
      // Untied by hand, tied again by tieWeights.
      model.cls.predictions.decoder.weight = randn([56, 16], { backend });
      expect(weightPathProblems(model, { tied })).toEqual(['tied cls.predictions.decoder.weight = bert.embeddings.word_embeddings.weight: not one tensor']);
      model.tieWeights();
      expect(weightPathProblems(model, { tied })).toEqual([]);
      model.dispose();
    });
  }

  it('infers the classification problem type from numLabels and the labels dtype', async () => {
    manualSeed(6);
    const input = { inputIds: ids([[2, 7, 9], [2, 5, 3]]) };
    const multi = new MegatronBertForSequenceClassification(tiny({ numLabels: 3 }), { backend }).eval();
    const l1 = noGrad(() => multi.forward({ ...input, labels: tensor([[1, 0, 1], [0, 0, 1]], { backend }) }).loss!);
    expect(multi.config.problemType).toBe('multi_label_classification');
    expect(Number.isFinite(await l1.item())).toBe(true);
    const single = new MegatronBertForSequenceClassification(tiny({ numLabels: 3 }), { backend }).eval();
    noGrad(() => single.forward({ ...input, labels: ids([[2, 0]]).reshape(2) }));
    expect(single.config.problemType).toBe('single_label_classification');
    multi.dispose();
    single.dispose();
  });

  it('frees every temporary of a forward', () => {
    manualSeed(7);
    const model = new MegatronBertForMaskedLM(tiny(), { backend }).eval();
    const input = ids([[2, 7, 9, 4, 3]]);
    const before = memory().tensors;
    const out = noGrad(() => model.forward({ inputIds: input, outputHiddenStates: true, outputAttentions: true }));
    // logits, 3 hidden states, 2 attention maps
    expect(memory().tensors - before).toBe(6);
    for (const t of [out.logits, ...out.hiddenStates!, ...out.attentions!]) t.dispose();
    expect(memory().tensors).toBe(before);
    model.dispose();
  });
});
