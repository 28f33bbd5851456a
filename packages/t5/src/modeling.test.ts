// The Hugging Face T5 classes beyond the parity fixtures: loading and saving, bad input, encoder-decoder
// generation (greedy, beam, sampling, streaming; the encoder and the cross keys/values computed once),
// and the classification / QA heads against the base model's outputs.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { manualSeed, matmul, noGrad, tensor, type Tensor } from '@lm/tensor-gpu';
import { testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { ConfigError, GenerationError, PretrainedLoadError } from '@lm/layers';
import { weightPathProblems } from '@lm/layers/testing';
import { T5Config } from './config.js';
import { clampFloat16, T5EncoderModel, T5ForConditionalGeneration, T5ForQuestionAnswering, T5ForSequenceClassification, T5ForTokenClassification, T5Model } from './modeling.js';

const backend = testCpuBackend();
const tmp = mkdtempSync(join(tmpdir(), 't5-modeling-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function config(overrides: Partial<ConstructorParameters<typeof T5Config>[0]> = {}): T5Config {
  return new T5Config({ vocabSize: 40, dModel: 16, dKv: 8, dFf: 32, numLayers: 2, numDecoderLayers: 2, numHeads: 2, relativeAttentionNumBuckets: 8, relativeAttentionMaxDistance: 16, dropoutRate: 0, decoderStartTokenId: 0, ...overrides });
}

const ids = (rows: number[][] | number[], b = backend) => tensor(rows, { dtype: 'int32', backend: b });

async function values(t: Tensor): Promise<number[]> {
  return Array.from(await t.data(), Number);
}

function maxAbsDiff(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

const input = [
  [5, 9, 13, 2, 1],
  [7, 3, 1, 0, 0],
];
const mask = [
  [1, 1, 1, 1, 1],
  [1, 1, 1, 0, 0],
];

describe('T5ForConditionalGeneration: weights', () => {
  it('ties shared, both embed_tokens and (v1.0) lm_head, saves them once and reloads the same logits', async () => {
    manualSeed(1);
    const model = new T5ForConditionalGeneration(config(), { backend });
    const tied = [['shared.weight', 'encoder.embed_tokens.weight', 'decoder.embed_tokens.weight', 'lm_head.weight']];
    expect(weightPathProblems(model, { tied })).toEqual([]);
    const dir = join(tmp, 'v10');
    await model.savePretrained(dir);
    const loaded = await T5ForConditionalGeneration.fromPretrained(dir, { backend });
    expect(weightPathProblems(loaded, { tied })).toEqual([]);
    const inputs = { inputIds: ids(input), attentionMask: ids(mask), decoderInputIds: ids([[0, 4, 6], [0, 8, 1]]) };
    const a = noGrad(() => model.forward(inputs).logits);
    const b = noGrad(() => loaded.forward(inputs).logits);
    expect(await values(b)).toEqual(await values(a));
    // Parameters: shared once (tied lm_head not counted twice).
    const c = model.config;
    const perAttention = 4 * c.dModel * c.numHeads * c.dKv;
    const expected = c.vocabSize * c.dModel + 2 * c.relativeAttentionNumBuckets * c.numHeads + 2 * (perAttention + 2 * c.dModel * c.dFf + 2 * c.dModel) + 2 * (2 * perAttention + 2 * c.dModel * c.dFf + 3 * c.dModel) + 2 * c.dModel;
    expect(model.numParameters()).toBe(expected);
    [model, loaded].forEach((m) => m.dispose());
  });

  it('v1.1 keeps lm_head apart (no rescale) and loads into T5Model / T5EncoderModel (extra keys ignored)', async () => {
    manualSeed(2);
    const model = new T5ForConditionalGeneration(config({ feedForwardProj: 'gated-gelu', tieWordEmbeddings: false }), { backend });
    expect(model.lm_head.weight).not.toBe(model.shared.weight);
    const dir = join(tmp, 'v11');
    await model.savePretrained(dir);
    const base = await T5Model.fromPretrained(dir, { backend });
    const encoder = await T5EncoderModel.fromPretrained(dir, { backend });
    const inputs = { inputIds: ids(input), attentionMask: ids(mask), decoderInputIds: ids([[0, 4, 6], [0, 8, 1]]) };
    const full = noGrad(() => model.forward(inputs));
    const hidden = noGrad(() => base.forward(inputs));
    const enc = noGrad(() => encoder.forward(inputs));
    expect(await values(hidden.encoderLastHiddenState)).toEqual(await values(enc.lastHiddenState));
    // logits = lm_head(decoder output), with no d_model^-0.5 rescale when untied.
    const logits = noGrad(() => matmul(hidden.lastHiddenState, model.lm_head.weight.transpose(0, 1)));
    expect(maxAbsDiff(await values(full.logits), await values(logits))).toBeLessThan(1e-5);
    [model, base, encoder].forEach((m) => m.dispose());
  });

  it('names the missing keys and the mismatched shapes of a checkpoint', async () => {
    manualSeed(3);
    const encoderOnly = new T5EncoderModel(config(), { backend });
    const dir = join(tmp, 'encoder-only');
    await encoderOnly.savePretrained(dir);
    await expect(T5ForConditionalGeneration.fromPretrained(dir, { backend })).rejects.toThrow(PretrainedLoadError);
    await expect(T5ForConditionalGeneration.fromPretrained(dir, { backend })).rejects.toThrow(/missing weights: .*decoder\.block\.0\.layer\.0\.SelfAttention\.q\.weight/);
    const wide = new T5EncoderModel(config({ dFf: 24 }), { backend });
    const wideDir = join(tmp, 'wide');
    await wide.savePretrained(wideDir);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(wideDir, 'config.json'), JSON.stringify(config().toJSON()));
    await expect(T5EncoderModel.fromPretrained(wideDir, { backend })).rejects.toThrow(/shape mismatches: encoder\.block\.0\.layer\.1\.DenseReluDense\.wi\.weight: checkpoint \[24,16\], model \[32,16\]/);
    [encoderOnly, wide].forEach((m) => m.dispose());
  });
});

describe('T5ForConditionalGeneration: gradient checkpointing', () => {
  it('recomputes the blocks in backward with the same loss and gradients', async () => {
    manualSeed(8);
    const model = new T5ForConditionalGeneration(config({ feedForwardProj: 'gated-gelu' }), { backend });
    model.train();
    const inputs = { inputIds: ids(input), attentionMask: ids(mask), labels: ids([[4, 6, 8, 1], [9, 1, -100, -100]]) };
    const names = ['shared.weight', 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', 'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', 'decoder.block.1.layer.1.EncDecAttention.k.weight', 'encoder.block.1.layer.1.DenseReluDense.wi_0.weight'];
    const run = async () => {
      model.zeroGrad();
      const out = model.forward(inputs);
      out.loss!.backward();
      const params = new Map(model.namedParameters());
      return { loss: await out.loss!.item(), grads: await Promise.all(names.map(async (n) => values(params.get(n)!.grad!))) };
    };
    const plain = await run();
    model.gradientCheckpointingEnable();
    expect(model.isGradientCheckpointing).toBe(true);
    const recomputed = await run();
    expect(Math.abs(recomputed.loss - plain.loss)).toBeLessThan(1e-6);
    names.forEach((n, i) => expect(maxAbsDiff(recomputed.grads[i], plain.grads[i]), n).toBeLessThan(1e-5));
    // The cache is off while checkpointing, as in the reference.
    expect(model.forward({ inputIds: ids(input), decoderInputIds: ids([[0, 3], [0, 5]]), useCache: true }).pastKeyValues).toBeUndefined();
    model.dispose();
  });
});

describe('T5: pruning and resizing', () => {
  it('pruneHeads removes encoder heads: the same output as masking those heads', async () => {
    manualSeed(9);
    const model = new T5EncoderModel(config({ numHeads: 4, dKv: 4 }), { backend });
    model.eval();
    const headMask = tensor([[0, 1, 1, 0], [1, 1, 1, 1]], { backend });
    const masked = noGrad(() => model.forward({ inputIds: ids(input), attentionMask: ids(mask), headMask }).lastHiddenState);
    model.pruneHeads({ 0: [0, 3] });
    const attention = model.encoder.block.at(0).selfAttention.SelfAttention;
    expect(attention.nHeads).toBe(2);
    expect(attention.q.weight.shape).toEqual([8, 16]);
    const pruned = noGrad(() => model.forward({ inputIds: ids(input), attentionMask: ids(mask) }).lastHiddenState);
    expect(maxAbsDiff(await values(pruned), await values(masked))).toBeLessThan(1e-5);
    model.dispose();
  });

  it('headMask also masks the decoder when decoderHeadMask is absent (the reference\'s deprecated fallback)', async () => {
    manualSeed(11);
    const model = new T5Model(config(), { backend });
    model.eval();
    const headMask = tensor([[1, 0], [0, 1]], { backend });
    const inputs = { inputIds: ids(input), attentionMask: ids(mask), decoderInputIds: ids([[0, 4, 6], [0, 8, 1]]) };
    const fallback = noGrad(() => model.forward({ ...inputs, headMask }).lastHiddenState);
    const explicit = noGrad(() => model.forward({ ...inputs, headMask, decoderHeadMask: headMask }).lastHiddenState);
    const encoderOnly = noGrad(() => model.forward({ ...inputs, headMask, decoderHeadMask: tensor([1, 1], { backend }) }).lastHiddenState);
    expect(await values(fallback)).toEqual(await values(explicit));
    expect(maxAbsDiff(await values(fallback), await values(encoderOnly))).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('resizeTokenEmbeddings keeps shared, both embed_tokens and the tied lm_head one tensor', async () => {
    manualSeed(10);
    const model = new T5ForConditionalGeneration(config(), { backend });
    const before = await values(model.shared.weight);
    model.resizeTokenEmbeddings(45, { padToMultipleOf: 8 });
    expect(model.shared.weight.shape).toEqual([48, 16]);
    expect(weightPathProblems(model, { tied: [['shared.weight', 'encoder.embed_tokens.weight', 'decoder.embed_tokens.weight', 'lm_head.weight']] })).toEqual([]);
    expect((await values(model.shared.weight)).slice(0, before.length)).toEqual(before);
    const out = noGrad(() => model.forward({ inputIds: ids([[44, 1]]), decoderInputIds: ids([[0, 47]]) }));
    expect(out.logits.shape).toEqual([1, 2, 48]);
    model.dispose();
  });
});

describe('T5 in float16', () => {
  it('clamps a block output to +-(65504 - 1000) only when it overflowed, as the reference does', async () => {
    const finite = tensor([[1, -70000 / 2, 3]], { backend }).cast('float16');
    expect(await values(clampFloat16(finite))).toEqual(await values(finite));
    const overflow = tensor([[1, Infinity, -65504]], { backend }).cast('float16');
    // 64504 rounds to the float16 64512 (spacing 32 there), as torch's clamp of a float16 tensor gives.
    expect(await values(clampFloat16(overflow))).toEqual([1, 64512, -64512]);
    const f32 = tensor([[Infinity]], { backend });
    expect(clampFloat16(f32)).toBe(f32);
  });

  it('a float16 model stays finite where its feed-forward overflows, and matches float32 otherwise', async () => {
    manualSeed(12);
    const model = new T5ForConditionalGeneration(config(), { backend });
    model.eval();
    const inputs = { inputIds: ids(input), attentionMask: ids(mask), decoderInputIds: ids([[0, 4, 6], [0, 8, 1]]) };
    const f32 = await values(noGrad(() => model.forward(inputs).logits));
    model.castParameters('float16');
    const f16 = await values(noGrad(() => model.forward(inputs).logits));
    expect(maxAbsDiff(f16, f32)).toBeLessThan(0.05 * Math.max(...f32.map(Math.abs)));
    // Blow up the encoder's first feed-forward: without the clamp the next norms would see inf.
    noGrad(() => model.encoder.block.at(0).layer.at(1).getSubmodule('DenseReluDense.wo').getParameter('weight')!.copy_(tensor(Array.from({ length: 16 }, () => Array.from({ length: 32 }, () => 60000)), { backend }).cast('float16')));
    const blown = await values(noGrad(() => model.forward(inputs).logits));
    expect(blown.every(Number.isFinite)).toBe(true);
    model.dispose();
  });
});

describe('T5: bad input', () => {
  const model = new T5ForConditionalGeneration(config(), { backend });

  it('names a config field the model cannot honour', () => {
    expect(() => new T5ForConditionalGeneration(config({ feedForwardProj: 'gated-gelu-x' }), { backend })).toThrow(/feed_forward_proj "gated-gelu-x"/);
    expect(() => new T5Model(config({ numHeads: 0 }), { backend })).toThrow(ConfigError);
  });

  it('rejects ids and labels outside the vocabulary before running', () => {
    expect(() => model.forward({ inputIds: ids([[1, 40]]), decoderInputIds: ids([[0]]) })).toThrow(/encoder\): input ids: id 40 at flat index 1 is outside the vocabulary \[0, 40\)/);
    expect(() => model.forward({ inputIds: ids([[1, 2]]), decoderInputIds: ids([[0, -3]]) })).toThrow(/decoder\): input ids: id -3 at flat index 1/);
    expect(() => model.forward({ inputIds: ids([[1, 2]]), labels: ids([[3, 99]]) })).toThrow(/label 99 at flat index 1 is neither -100 nor in the vocabulary/);
  });

  it('checks generation options before any work', async () => {
    const x = ids([[5, 6, 1]]);
    await expect(model.generate(x, { maxNewTokens: 0 })).rejects.toThrow(/maxNewTokens must be a positive integer, got 0/);
    await expect(model.generate(x, { maxNewTokens: -2 })).rejects.toThrow(GenerationError);
    await expect(model.generate(ids([[5, 45]]), { maxNewTokens: 2 })).rejects.toThrow(/input id 45 at flat index 1 is outside the vocabulary/);
    await expect(model.generate(x, { maxNewTokens: 2, decoderStartTokenId: 40 })).rejects.toThrow(/decoderStartTokenId must be a token id in \[0, 40\), got 40/);
    await expect(model.generate(x, { maxNewTokens: 2, decoderInputIds: ids([[0, 77]]) })).rejects.toThrow(/decoder id 77/);
  });
});

/** log_softmax of the uncached logits at each generated position: the reference the cached loops must match. */
async function sequenceLogprobs(model: T5ForConditionalGeneration, inputRows: number[][], maskRows: number[][], sequence: number[], row: number): Promise<number[]> {
  const out = noGrad(() => model.forward({ inputIds: ids([inputRows[row]]), attentionMask: ids([maskRows[row]]), decoderInputIds: ids([sequence.slice(0, -1)]), useCache: false }));
  const logits = await values(out.logits);
  const vocab = model.config.vocabSize;
  const lp: number[] = [];
  for (let t = 0; t < sequence.length - 1; t++) {
    const row = logits.slice(t * vocab, (t + 1) * vocab);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    lp.push(row[sequence[t + 1]] - lse);
  }
  return lp;
}

describe('T5ForConditionalGeneration.generate', () => {
  manualSeed(4);
  const model = new T5ForConditionalGeneration(config({ feedForwardProj: 'gated-gelu', tieWordEmbeddings: false }), { backend });
  model.eval();

  it('greedy: each token is the argmax of the uncached forward; the encoder and the cross keys/values run once', async () => {
    let encoderCalls = 0;
    let crossKeyCalls = 0;
    const encoderForward = model.encoder.forward.bind(model.encoder);
    model.encoder.forward = (o) => (encoderCalls++, encoderForward(o));
    const crossK = model.decoder.block.items.map((b) => b.crossAttention!.EncDecAttention.k);
    const originals = crossK.map((k) => k.forward.bind(k));
    crossK.forEach((k, i) => (k.forward = (x, a) => (crossKeyCalls++, originals[i](x, a))));
    const out = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 6, eosTokenId: [] });
    model.encoder.forward = encoderForward;
    crossK.forEach((k, i) => (k.forward = originals[i]));
    expect(encoderCalls).toBe(1);
    expect(crossKeyCalls).toBe(model.config.numDecoderLayers);
    for (const [row, seq] of out.sequences.entries()) {
      expect(seq.length).toBe(7);
      expect(seq[0]).toBe(0); // decoder_start_token_id = pad
      const full = noGrad(() => model.forward({ inputIds: ids([input[row]]), attentionMask: ids([mask[row]]), decoderInputIds: ids([seq.slice(0, -1)]), useCache: false }));
      const logits = await values(full.logits);
      for (let t = 0; t < 6; t++) {
        const r = logits.slice(t * 40, (t + 1) * 40);
        expect(seq[t + 1]).toBe(r.indexOf(Math.max(...r)));
      }
    }
  });

  it('stream yields the tokens generate returns, one per step', async () => {
    const out = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 5, eosTokenId: [] });
    const streamed: number[][] = [[], []];
    for await (const ev of model.stream(ids(input), { attentionMask: ids(mask), maxNewTokens: 5, eosTokenId: [] })) streamed[ev.batchIndex].push(ev.token);
    expect(streamed).toEqual(out.sequences.map((s) => s.slice(1)));
  });

  it('beam search: the best hypothesis scores sum(logprobs) / length ** lengthPenalty of the uncached model', async () => {
    const out = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 4, numBeams: 3, numReturnSequences: 2, lengthPenalty: 1.5, eosTokenId: [] });
    expect(out.sequences.length).toBe(4);
    for (let b = 0; b < 2; b++) {
      const [best, second] = [out.sequences[2 * b], out.sequences[2 * b + 1]];
      expect(best).not.toEqual(second);
      const lp = await sequenceLogprobs(model, input, mask, best, b);
      const expected = lp.reduce((s, x) => s + x, 0) / 4 ** 1.5;
      expect(Math.abs(out.sequenceScores![2 * b] - expected)).toBeLessThan(1e-4);
      expect(out.sequenceScores![2 * b]).toBeGreaterThanOrEqual(out.sequenceScores![2 * b + 1]);
    }
    // One beam is greedy search.
    const greedy = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 4, eosTokenId: [] });
    const oneBeam = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 4, numBeams: 1, eosTokenId: [] });
    expect(oneBeam.sequences).toEqual(greedy.sequences);
  });

  it('sampling: reproducible under a seed, and topK 1 is greedy', async () => {
    const opts = { attentionMask: ids(mask), maxNewTokens: 6, doSample: true, temperature: 1.3, topP: 0.9, eosTokenId: [] as number[] };
    const a = await model.generate(ids(input), { ...opts, seed: 11 });
    const b = await model.generate(ids(input), { ...opts, seed: 11 });
    expect(a.sequences).toEqual(b.sequences);
    const top1 = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 6, doSample: true, topK: 1, seed: 3, eosTokenId: [] });
    const greedy = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 6, eosTokenId: [] });
    expect(top1.sequences).toEqual(greedy.sequences);
  });

  it('stops a row at eos and pads it', async () => {
    const greedy = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 6, eosTokenId: [] });
    const eos = greedy.sequences[0][2]; // the second generated token of row 0
    const out = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 6, eosTokenId: eos, padTokenId: 0 });
    expect(out.sequences[0].slice(0, 3)).toEqual(greedy.sequences[0].slice(0, 3));
    expect(out.finishReasons![0]).toBe('eos');
  });
});

describe('T5 heads', () => {
  it('T5ForSequenceClassification classifies the decoder state at the last <eos>', async () => {
    manualSeed(5);
    const cfg = config({ numLabels: 3 });
    const model = new T5ForSequenceClassification(cfg, { backend });
    model.eval();
    const x = ids([
      [5, 9, 1, 13, 1],
      [7, 1, 3, 1, 0],
    ]);
    const out = noGrad(() => model.forward({ inputIds: x, labels: ids([2, 0]) }));
    expect(out.logits.shape).toEqual([2, 3]);
    const base = noGrad(() => model.transformer.forward({ inputIds: x, decoderInputIds: model.shiftRight(x) }));
    const hidden = await values(base.lastHiddenState);
    const rep = [...hidden.slice(4 * 16, 5 * 16), ...hidden.slice((5 + 3) * 16, (5 + 4) * 16)];
    const expected = noGrad(() => model.classification_head.forward(tensor([rep.slice(0, 16), rep.slice(16)], { backend })));
    expect(maxAbsDiff(await values(out.logits), await values(expected))).toBeLessThan(1e-5);
    expect(Number.isFinite(await out.loss!.item())).toBe(true);
    expect(() => model.forward({ inputIds: ids([[5, 1, 1], [7, 1, 2]]) })).toThrow(/same number of <eos> tokens/);
    model.dispose();
  });

  it('T5ForTokenClassification and T5ForQuestionAnswering heads on the stacks', async () => {
    manualSeed(6);
    const tok = new T5ForTokenClassification(config({ numLabels: 4 }), { backend });
    tok.eval();
    const out = noGrad(() => tok.forward({ inputIds: ids(input), attentionMask: ids(mask), labels: ids([[1, 2, 3, 0, 1], [0, 1, -100, -100, -100]]) }));
    const enc = noGrad(() => tok.transformer.forward({ inputIds: ids(input), attentionMask: ids(mask) }));
    const logits = noGrad(() => tok.classifier.forward(enc.lastHiddenState));
    expect(maxAbsDiff(await values(out.logits), await values(logits))).toBeLessThan(1e-6);
    expect(out.logits.shape).toEqual([2, 5, 4]);
    tok.dispose();

    const qa = new T5ForQuestionAnswering(config({ numLabels: 2 }), { backend });
    qa.eval();
    const res = noGrad(() => qa.forward({ inputIds: ids(input), attentionMask: ids(mask), startPositions: ids([1, 9]), endPositions: ids([3, 2]) }));
    expect(res.startLogits.shape).toEqual([2, 5]);
    expect(res.endLogits.shape).toEqual([2, 5]);
    // Position 9 is clamped to 5 (= ignored): the start loss averages row 0 only.
    const start = await values(res.startLogits);
    const end = await values(res.endLogits);
    const ce = (row: number[], y: number) => {
      const m = Math.max(...row);
      return m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[y];
    };
    const expected = (ce(start.slice(0, 5), 1) + (ce(end.slice(0, 5), 3) + ce(end.slice(5), 2)) / 2) / 2;
    expect(Math.abs((await res.loss!.item()) - expected)).toBeLessThan(1e-5);
    qa.dispose();
  });
});

describe('T5ForConditionalGeneration on webgpu', async () => {
  const webgpu = await testWebGPUBackend();
  it.skipIf(!webgpu)('generates what the cpu backend generates, with the same scores', async () => {
    manualSeed(7);
    const model = new T5ForConditionalGeneration(config(), { backend });
    const dir = join(tmp, 'gpu');
    await model.savePretrained(dir);
    const gpuModel = await T5ForConditionalGeneration.fromPretrained(dir, { backend: webgpu! });
    const cpuOut = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 5, outputScores: true, eosTokenId: [] });
    const gpuOut = await gpuModel.generate(ids(input, webgpu!), { attentionMask: ids(mask, webgpu!), maxNewTokens: 5, outputScores: true, eosTokenId: [] });
    expect(gpuOut.sequences).toEqual(cpuOut.sequences);
    cpuOut.scores!.forEach((s, t) => expect(maxAbsDiff(Array.from(gpuOut.scores![t]), Array.from(s))).toBeLessThan(1e-4));
    const beamCpu = await model.generate(ids(input), { attentionMask: ids(mask), maxNewTokens: 4, numBeams: 2, eosTokenId: [] });
    const beamGpu = await gpuModel.generate(ids(input, webgpu!), { attentionMask: ids(mask, webgpu!), maxNewTokens: 4, numBeams: 2, eosTokenId: [] });
    expect(beamGpu.sequences).toEqual(beamCpu.sequences);
    [model, gpuModel].forEach((m) => m.dispose());
  });
});
