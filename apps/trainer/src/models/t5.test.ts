// The t5 family through the trainer: the WordPiece + extra-ids tokenizer, and span corruption training
// the real T5ForConditionalGeneration through train() (loss falls, evaluation, export that loads back).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ExtraIdsTokenizer, MegatronT5Model, T5ForConditionalGeneration, T5Tokenizer } from '@lm/t5';
import { cpu, noGrad, tensor } from '@lm/tensor-gpu';
import { Rng } from '../core/rng.js';
import { readMetrics } from '../metrics.js';
import { makeTinyCorpus, tinyConfig } from '../test-helpers.js';
import { train } from '../trainer.js';
import type { SpanCorruptionObjective } from '../objectives/span-corruption.js';
import { maskedTokenLoss } from '../objectives/token-loss.js';
import { loadExtraIdsTokenizer, loadT5Tokenizer, megatronT5, t5 } from './t5.js';

/** The committed SentencePiece tokenizer (data/t5/make-tokenizer.mjs). */
const SPIECE_DIR = fileURLToPath(new URL('../../data/t5/tokenizer', import.meta.url));

describe('the t5 family tokenizer (WordPiece + extra ids)', () => {
  it('appends the sentinels counting down from the top, frames text with eos and reads its own export back', async () => {
    const c = makeTinyCorpus(2);
    const tok = await loadExtraIdsTokenizer(c.vocab, { lowercase: true });
    const base = c.words.length;
    expect(tok.extraIds).toBe(100);
    expect(tok.vocabSize).toBe(base + 100);
    expect(tok.sentinelId(0)).toBe(base + 99);
    const ids = tok.encode('the capital of <extra_id_0> is <extra_id_1> .').inputIds;
    const word = (w: string) => c.words.indexOf(w);
    expect(ids).toEqual([word('the'), word('capital'), word('of'), base + 99, word('is'), base + 98, word('.'), word('[SEP]')]);
    expect(tok.decode(ids.slice(0, -1))).toBe('the capital of <extra_id_0> is <extra_id_1> .');
    expect(tok.specialTokenIds.eos).toBe(word('[SEP]'));
    expect(tok.specialTokenIds.pad).toBe(word('[PAD]'));
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const dir = mkdtempSync(join(c.dir, 'tok-'));
    for (const [name, text] of Object.entries(tok.save())) writeFileSync(join(dir, name), text);
    const back = await loadExtraIdsTokenizer(dir, { lowercase: true });
    expect(back.vocabSize).toBe(tok.vocabSize);
    expect(back.encode('the capital of <extra_id_0> is').inputIds).toEqual(tok.encode('the capital of <extra_id_0> is').inputIds);
  });
});

describe("the megatron-t5 family tokenizer (Megatron's --vocab-extra-ids)", () => {
  it('appends <extra_id_0>, <extra_id_1>, ... in order after the WordPiece vocabulary and keeps that order through save and load', async () => {
    const c = makeTinyCorpus(1);
    const tok = (await megatronT5.loadTokenizer(c.vocab, { lowercase: true })) as ExtraIdsTokenizer;
    const base = c.words.length;
    expect(tok.order).toBe('ascending');
    expect([tok.sentinelId(0), tok.sentinelId(1), tok.sentinelId(99)]).toEqual([base, base + 1, base + 99]);
    const word = (w: string) => c.words.indexOf(w);
    const ids = tok.encode('the <extra_id_0> of <extra_id_1>').inputIds;
    expect(ids).toEqual([word('the'), base, word('of'), base + 1, word('[SEP]')]);
    expect(tok.decode([base + 2, word('the')])).toBe('<extra_id_2> the');
    const vocab = tok.save()['vocab.txt'].trimEnd().split('\n');
    expect(vocab.slice(base, base + 3)).toEqual(['<extra_id_0>', '<extra_id_1>', '<extra_id_2>']);
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const dir = mkdtempSync(join(c.dir, 'tok-'));
    writeFileSync(join(dir, 'vocab.txt'), `${vocab.join('\n')}\n`);
    // The listed order wins over the caller's default, both ways.
    const back = await loadExtraIdsTokenizer(dir, { lowercase: true });
    expect([back.order, back.sentinelId(0), back.extraIds]).toEqual(['ascending', base, 100]);
    const hf = await t5.loadTokenizer(c.vocab, { lowercase: true });
    writeFileSync(join(dir, 'vocab.txt'), (hf as ExtraIdsTokenizer).save()['vocab.txt']);
    const down = await loadExtraIdsTokenizer(dir, { lowercase: true, order: 'ascending' });
    expect([down.order, down.sentinelId(0)]).toEqual(['descending', base + 99]);
    writeFileSync(join(dir, 'vocab.txt'), `${vocab.slice(0, base).join('\n')}\n<extra_id_1>\n<extra_id_0>\n<extra_id_2>\n`);
    await expect(loadExtraIdsTokenizer(dir, { lowercase: true })).rejects.toThrow(/vocab\.txt: the trailing sentinels must run <extra_id_0>\.\.<extra_id_2> or <extra_id_2>\.\.<extra_id_0>, got <extra_id_1>, <extra_id_0>, <extra_id_2>/);
  });
});

describe("Megatron's masked lm_loss (pretrain_t5 loss_func)", () => {
  it('is sum(lm_loss * loss_mask) / sum(loss_mask), with accuracy over the masked-in tokens', () => {
    // Per-token losses 1, 2, 4, 8 with the last masked out: (1 + 2 + 4) / 3.
    const logits = tensor([[0, 1], [1, 0], [0, 1], [1, 0]]); // argmax 1, 0, 1, 0
    const out = maskedTokenLoss(logits, tensor([[1, 2], [4, 8]]), tensor([1, 1, 0, 0], { dtype: 'int32' }), tensor([1, 1, 1, 0]));
    expect(out.loss.dataSync()[0]).toBeCloseTo(7 / 3, 6);
    expect([out.sums.lossSum, out.sums.correct, out.sums.count].map((t) => t.dataSync()[0])).toEqual([7, 1, 3]);
  });
});

/** Trains `config` (40 steps) and checks that the mean of the last 5 training losses is < 0.6 x the first 5. */
async function trainAndCheckLoss(config: ReturnType<typeof tinyConfig>) {
  const result = await train({ config, print: () => {}, tty: false });
  expect(result.step).toBe(40);
  const rows = readMetrics(config.output.metrics).filter((r) => r.type === 'train');
  const mean = (xs: typeof rows) => xs.reduce((a, r) => a + (r.loss as number), 0) / xs.length;
  expect(mean(rows.slice(-5))).toBeLessThan(mean(rows.slice(0, 5)) * 0.6);
  return result;
}

describe('span corruption with the real T5 (family t5)', () => {
  it('trains through train(): loss falls, evaluation reports target accuracy, the export loads with fromPretrained', async () => {
    const c = makeTinyCorpus(8);
    const config = tinyConfig(c, {
      model: { family: 't5', config: { dModel: 32, dKv: 8, numHeads: 4, dFf: 64, numLayers: 2, relativeAttentionNumBuckets: 16, relativeAttentionMaxDistance: 32, dropoutRate: 0 } },
      objective: 'span-corruption',
      data: { seqLength: 24, validationFraction: 0.2 },
      training: { steps: 40, batchSize: 8, lr: 1e-2, warmupSteps: 0 },
      eval: { everySteps: 20, batches: 2 },
      output: { export: join(c.dir, 'export') },
    });
    const result = await trainAndCheckLoss(config);
    expect(result.evalSummary).toMatch(/^perplexity [\d.]+, target-token accuracy [\d.]+%$/);
    const dir = join(c.dir, 'export');
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(true);
    const model = await T5ForConditionalGeneration.fromPretrained(dir, { backend: cpu() });
    expect(model.config.vocabSize).toBe(c.words.length + 100);
    const out = noGrad(() => model.forward({ inputIds: tensor([[5, 6, 7]], { dtype: 'int32' }), decoderInputIds: tensor([[0, 5]], { dtype: 'int32' }) }));
    expect(out.logits.shape).toEqual([1, 2, c.words.length + 100]);
    model.dispose();
  });
});

describe('span corruption on Megatron-core T5Model (family megatron-t5, the config switch)', () => {
  it('trains through train() with Megatron names and exports a folder MegatronT5Model.fromPretrained reads', async () => {
    const c = makeTinyCorpus(8);
    const config = tinyConfig(c, {
      model: { family: 'megatron-t5', config: { hiddenSize: 32, numAttentionHeads: 4, numLayers: 2, encoderNumLayers: 2, ffnHiddenSize: 64, maxSequenceLength: 32, hiddenDropout: 0, attentionDropout: 0, initMethodStd: 0.05 } },
      objective: 'span-corruption',
      data: { seqLength: 24, validationFraction: 0.2 },
      training: { steps: 40, batchSize: 8, lr: 1e-2, warmupSteps: 0 },
      eval: { everySteps: 20, batches: 2 },
      output: { export: join(c.dir, 'export') },
    });
    await trainAndCheckLoss(config);
    const model = await MegatronT5Model.fromPretrained(join(c.dir, 'export'), { backend: cpu() });
    expect([...model.stateDict().keys()]).toContain('decoder.layers.1.cross_attention.linear_kv.weight');
    expect(model.config.vocabSize).toBe(c.words.length + 100);
    model.dispose();
  });

  it('names unknown config fields', async () => {
    const c = makeTinyCorpus(1);
    await expect(
      train({ config: tinyConfig(c, { model: { family: 'megatron-t5', config: { hiddenSize: 32, numAttentionHeads: 4, numLayers: 1, maxSequenceLength: 32, dModel: 8 } }, objective: 'span-corruption' }), print: () => {}, tty: false }),
    ).rejects.toThrow(/model\.config\.dModel: unknown MegatronT5Config field/);
  });
});

describe("span corruption on T5's SentencePiece tokenizer (family t5, data.tokenizer a folder with spiece.model)", () => {
  it('loads T5Tokenizer with T5 layout: pad 0, </s> 1, <unk> 2, 200 pieces, <extra_id_k> = 299 - k', async () => {
    const tok = await loadT5Tokenizer(SPIECE_DIR, { lowercase: true });
    expect(tok).toBeInstanceOf(T5Tokenizer);
    const sp = tok as T5Tokenizer;
    expect(sp.specialTokenIds).toMatchObject({ pad: 0, eos: 1, unk: 2, bos: null });
    expect(sp.vocabSize).toBe(200);
    expect(sp.sentinelIds.slice(0, 3)).toEqual([299, 298, 297]);
    // spm_encode --output_format=id of "the capital of france is paris ." gives 4 11 9 53 5 140 3; </s> appended.
    expect(sp.encode('the capital of france is paris .').inputIds).toEqual([4, 11, 9, 53, 5, 140, 3, 1]);
    expect(sp.encode('the capital of <extra_id_0> is paris .').inputIds).toEqual([4, 11, 9, 299, 5, 140, 3, 1]);
    // The .model file itself: the same tokenizer with T5's default 100 extra_ids.
    const file = await loadT5Tokenizer(join(SPIECE_DIR, 'spiece.model'), { lowercase: true });
    expect((file as T5Tokenizer).sentinelIds.slice(0, 2)).toEqual([299, 298]);
    expect(file.encode('the capital of <extra_id_0> is paris .').inputIds).toEqual([4, 11, 9, 299, 5, 140, 3, 1]);
    const c0 = makeTinyCorpus(1);
    const bad = join(c0.dir, 'vocab.model');
    writeFileSync(bad, readFileSync(c0.vocab));
    await expect(loadT5Tokenizer(bad, { lowercase: true })).rejects.toThrow(/data\.tokenizer: .*vocab\.model: .*not a SentencePiece model/);
    // A vocab.txt (or a folder without spiece.model) still gives the WordPiece + extra ids tokenizer.
    const c = makeTinyCorpus(1);
    expect(await loadT5Tokenizer(c.vocab, { lowercase: true })).toBeInstanceOf(ExtraIdsTokenizer);
  });

  it('corrupts with the tokenizer\'s sentinels, descending from the top, and the decoder starts at pad 0', async () => {
    const tok = await loadT5Tokenizer(SPIECE_DIR, { lowercase: true });
    const objective = t5.objectives['span-corruption'].objective({ tokenizer: tok, backend: cpu(), seqLength: 16, maskProbability: 0, shortSeqProbability: 0, settings: {} });
    const { tokensLength } = objective as unknown as { tokensLength: number };
    expect(tokensLength).toBe(17);
    const block = Int32Array.from({ length: tokensLength }, (_, i) => 3 + i);
    const batch = objective.collate([block], (r) => new Rng(11 + r)) as { inputIds: Int32Array; labels: Int32Array; decoderInputIds: Int32Array };
    // One span of 3 noise tokens in 17, after the 14 kept ones (the reference's mask starts with a kept run):
    // input = 14 kept + <extra_id_0> (299) + </s>; target = <extra_id_0> + the span + </s>.
    expect([...batch.inputIds]).toEqual([...block.slice(0, 14), 299, 1]);
    expect([...batch.labels]).toEqual([299, ...block.slice(14), 1]);
    expect([...batch.decoderInputIds]).toEqual([0, 299, ...block.slice(14)]);
  });

  it('trains through train() and exports spiece.model, which T5Tokenizer and T5ForConditionalGeneration.fromPretrained read back', async () => {
    const c = makeTinyCorpus(8);
    const config = tinyConfig(c, {
      model: { family: 't5', config: { dModel: 32, dKv: 8, numHeads: 4, dFf: 64, numLayers: 2, relativeAttentionNumBuckets: 16, relativeAttentionMaxDistance: 32, dropoutRate: 0 } },
      objective: 'span-corruption',
      data: { tokenizer: SPIECE_DIR, seqLength: 24, validationFraction: 0.2 },
      training: { steps: 40, batchSize: 8, lr: 1e-2, warmupSteps: 0 },
      eval: { everySteps: 20, batches: 2 },
      output: { export: join(c.dir, 'export'), prompts: ['the capital of <extra_id_0> is paris .'] },
    });
    const result = await trainAndCheckLoss(config);
    expect(result.evalSummary).toMatch(/^perplexity [\d.]+, target-token accuracy [\d.]+%$/);
    const dir = join(c.dir, 'export');
    expect(readFileSync(join(dir, 'spiece.model'))).toEqual(readFileSync(join(SPIECE_DIR, 'spiece.model')));
    expect(JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'))).toMatchObject({ tokenizer_class: 'T5Tokenizer', extra_ids: 100 });
    const tok = await T5Tokenizer.fromPretrained(dir);
    expect(tok.sentinelIds[0]).toBe(299);
    const model = await T5ForConditionalGeneration.fromPretrained(dir, { backend: cpu() });
    // The embedding holds the 200 pieces and the 100 sentinels above them.
    expect(model.config.vocabSize).toBe(300);
    const input = tensor([tok.encode('the capital of <extra_id_0> is paris .').inputIds], { dtype: 'int32' });
    const out = await model.generate(input, { maxNewTokens: 4, eosTokenId: 1 });
    expect(out.sequences[0][0]).toBe(0);
    expect(out.sequences[0].every((id) => id >= 0 && id < 300)).toBe(true);
    model.dispose();
  });
});

describe('objectives.span-corruption settings', () => {
  it('passes shiftBlocks to the objective and names a wrong value or an unknown field', async () => {
    const c = makeTinyCorpus(2);
    const tokenizer = await loadExtraIdsTokenizer(c.vocab, { lowercase: true });
    const make = (settings: Record<string, unknown>) =>
      t5.objectives['span-corruption'].objective({ tokenizer, backend: cpu(), seqLength: 16, maskProbability: 0.15, shortSeqProbability: 0.1, settings });
    expect((make({ shiftBlocks: true }) as unknown as SpanCorruptionObjective).options.shiftBlocks).toBe(true);
    expect((make({}) as unknown as SpanCorruptionObjective).options.shiftBlocks).toBe(false);
    expect(() => make({ shiftBlocks: 'yes' })).toThrow(/^objectives\.span-corruption\.shiftBlocks: expected true or false, got "yes"$/);
    expect(() => make({ shiftBlock: true })).toThrow(/objectives\.span-corruption\.shiftBlock: unknown field \(known: noiseDensity, meanNoiseSpanLength, shiftBlocks, minBlockLength\)/);
    // minBlockLength: passed on with the tokenizer's pad; a wrong type named; megatron-t5 (no encoder mask) does not know it.
    const varied = make({ minBlockLength: 6 }) as unknown as SpanCorruptionObjective;
    expect([varied.options.minBlockLength, varied.options.padTokenId]).toEqual([6, tokenizer.specialTokenIds.pad]);
    expect(() => make({ minBlockLength: 'short' })).toThrow(/^objectives\.span-corruption\.minBlockLength: expected a whole number, got "short"$/);
    const megatron = (settings: Record<string, unknown>) =>
      megatronT5.objectives['span-corruption'].objective({ tokenizer, backend: cpu(), seqLength: 16, maskProbability: 0.15, shortSeqProbability: 0.1, settings });
    expect(() => megatron({ minBlockLength: 6 })).toThrow(/objectives\.span-corruption\.minBlockLength: unknown field \(known: noiseDensity, meanNoiseSpanLength, shiftBlocks\)/);
  });
});
