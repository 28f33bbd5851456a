import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng } from '../core/rng.js';
import { readMetrics } from '../metrics.js';
import { registerFamily } from '../models/index.js';
import { makeTinyCorpus, tinyConfig } from '../test-helpers.js';
import { WordTokenizer, tinyT5Family } from '../test-stand-ins.js';
import { train } from '../trainer.js';
import { SpanCorruptionObjective, randomSpansNoiseMask, replaceSpans, roundHalfEven, spanCorruptionLengths } from './span-corruption.js';

describe('span corruption: lengths and noise masks (run_t5_mlm_flax.py)', () => {
  it('rounds halves to even, as numpy', () => {
    expect([0.5, 1.5, 2.5, 3.5, -2.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, 4, -2, 2, 3]);
  });

  it('compute_input_and_target_lengths: T5 at 512 inputs reads 568 tokens and predicts 114; 0.5 density keeps targets <= inputs', () => {
    expect(spanCorruptionLengths(512, 0.15, 3)).toEqual({ tokensLength: 568, targetLength: 114 });
    expect(spanCorruptionLengths(128, 0.15, 3)).toEqual({ tokensLength: 141, targetLength: 29 }); // 141 - 21 + 7 + 1 = 128
    expect(spanCorruptionLengths(24, 0.15, 3)).toEqual({ tokensLength: 26, targetLength: 6 });
    const half = spanCorruptionLengths(64, 0.5, 3);
    expect(half.targetLength).toBeLessThanOrEqual(64);
  });

  it('random_spans_noise_mask: round(15%) noise tokens in round(noise / 3) spans, starting with non-noise; every split occurs', () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 400; seed++) {
      const mask = randomSpansNoiseMask(40, 0.15, 3, new Rng(seed));
      expect(mask).toHaveLength(40);
      expect(mask.filter(Boolean)).toHaveLength(6); // round(40 * 0.15)
      expect(mask[0]).toBe(false);
      const starts = mask.filter((m, i) => m && (i === 0 || !mask[i - 1])).length;
      expect(starts).toBe(2); // round(6 / 3)
      seen.add(mask.map(Number).join(''));
    }
    // 5 ways to split 6 noise tokens in 2 spans x 33 ways to split 34 kept ones: 165 masks, all drawn.
    expect(seen.size).toBeGreaterThan(140);
    // Short blocks stay non-degenerate: at least one noise and one kept token.
    expect(randomSpansNoiseMask(2, 0.15, 3, new Rng(1)).map(Number)).toEqual([0, 1]);
  });

  it('replaces each run by the next sentinel, then eos', () => {
    const mask = [false, true, true, false, true, false];
    expect(replaceSpans([10, 11, 12, 13, 14, 15], mask, (k) => 99 - k, 1)).toEqual([10, 99, 13, 98, 15, 1]);
    expect(replaceSpans([10, 11, 12, 13, 14, 15], mask.map((m) => !m), (k) => 99 - k, 1)).toEqual([99, 11, 12, 98, 14, 97, 1]);
  });
});

describe('span corruption: the collator', () => {
  const corpus = makeTinyCorpus();
  const tokenizer = new WordTokenizer(corpus.words.slice(5));
  const objective = new SpanCorruptionObjective(tokenizer, { inputLength: 24, noiseDensity: 0.15, meanNoiseSpanLength: 3, sentinelId: (k) => tokenizer.vocabSize - 1 - k, numSentinels: 8, decoderStartTokenId: 0 });

  async function blocks(n: number): Promise<Int32Array[]> {
    const docs = (async function* () {
      for (let i = 0; i < 40; i++) yield { id: i, sentences: [tokenizer.encode(`the capital of france is paris . the cow says moo . doc ${i}`, null, { addSpecialTokens: false }).inputIds] };
    })();
    const out: Int32Array[] = [];
    for await (const b of objective.examples(docs)) if (out.push(b) === n) break;
    return out;
  }

  it('packs documents + eos into blocks of the expanded length', async () => {
    const bs = await blocks(5);
    expect(bs.every((b) => b.length === objective.tokensLength)).toBe(true);
    expect(objective.tokensLength).toBe(26);
    expect(objective.targetLength).toBe(6);
    expect(Array.from(bs[0]).filter((id) => id === 1).length).toBeGreaterThan(0); // documents end with eos
  });

  it('inputs and targets have the fixed lengths, sentinels in order, and together rebuild the block exactly', async () => {
    const bs = await blocks(6);
    const batch = objective.collate(bs, (r) => new Rng(100 + r));
    expect(batch.inputIds).toHaveLength(6 * 24);
    expect(batch.labels).toHaveLength(6 * 6);
    const isSentinel = (id: number) => id > tokenizer.vocabSize - 1 - 8;
    for (let r = 0; r < 6; r++) {
      const input = Array.from(batch.inputIds.subarray(r * 24, (r + 1) * 24));
      const target = Array.from(batch.labels.subarray(r * 6, (r + 1) * 6));
      expect(input.at(-1)).toBe(1);
      expect(target.at(-1)).toBe(1);
      // Sentinels <extra_id_0>, <extra_id_1>, ... in order of appearance, the same ones in both.
      const sentinelsIn = input.filter(isSentinel);
      expect(sentinelsIn).toEqual(sentinelsIn.map((_, k) => tokenizer.vocabSize - 1 - k));
      expect(target.filter(isSentinel)).toEqual(sentinelsIn);
      expect(target[0]).toBe(tokenizer.vocabSize - 1);
      // Reconstruction: each sentinel in the input replaced by what follows it in the target.
      const spans = new Map<number, number[]>();
      let current = -1;
      for (const id of target.slice(0, -1)) {
        if (isSentinel(id)) spans.set((current = id), []);
        else spans.get(current)!.push(id);
      }
      const rebuilt = input.slice(0, -1).flatMap((id) => (isSentinel(id) ? spans.get(id)! : [id]));
      expect(rebuilt).toEqual(Array.from(bs[r]));
      // The decoder reads the target shifted right behind the start token.
      expect(Array.from(batch.decoderInputIds.subarray(r * 6, (r + 1) * 6))).toEqual([0, ...target.slice(0, -1)]);
    }
    // Seeded per row: the same generators give the same batch.
    expect(objective.collate(bs, (r) => new Rng(100 + r))).toEqual(batch);
  });

  it('shiftBlocks starts an epoch\'s blocks at a seeded offset of the same stream; without it the generator is unused', async () => {
    const stream = (n: number) =>
      (async function* () {
        // Documents of 10 distinct tokens (ids 10 + 10 d ...), each followed by eos by the objective.
        for (let d = 0; d < n; d++) yield { id: d, sentences: [Array.from({ length: 10 }, (_, i) => 10 + 10 * d + i)] };
      })();
    const collect = async (o: SpanCorruptionObjective, rng?: Rng) => {
      const out: number[][] = [];
      for await (const b of o.examples(stream(20), rng)) out.push(Array.from(b));
      return out;
    };
    // The token stream: 20 documents of 10 tokens, each followed by eos (1): 220 tokens.
    const tokens = Array.from({ length: 20 }, (_, d) => [...Array.from({ length: 10 }, (_, i) => 10 + 10 * d + i), 1]).flat();
    const plain = await collect(objective, new Rng(3));
    expect(plain).toHaveLength(8); // 220 / 26
    expect(plain.flat()).toEqual(tokens.slice(0, 8 * 26));
    const shifted = new SpanCorruptionObjective(tokenizer, { ...objective.options, shiftBlocks: true });
    expect(Math.floor(new Rng(3).next() * 26)).toBe(18);
    const got = await collect(shifted, new Rng(3));
    // The same stream from token 18: (220 - 18) / 26 -> 7 whole blocks, the first from doc 1's 8th token.
    expect(got).toHaveLength(7);
    expect(got[0].slice(0, 5)).toEqual([27, 28, 29, 1, 30]);
    expect(got.flat()).toEqual(tokens.slice(18, 18 + 7 * 26));
    expect(await collect(shifted, new Rng(4))).not.toEqual(got);
  });

  it('minBlockLength cuts the stream into blocks of seeded lengths in [min, full], padded (attention mask 0, labels -100), spans as long as a full block\'s', async () => {
    const varied = new SpanCorruptionObjective(tokenizer, { ...objective.options, minBlockLength: 4, padTokenId: 0 });
    const docs = (async function* () {
      for (let d = 0; d < 30; d++) yield { id: d, sentences: [Array.from({ length: 10 }, (_, i) => 10 + i)] };
    })();
    const bs: Int32Array[] = [];
    for await (const b of varied.examples(docs, new Rng(5))) bs.push(b);
    const lengths = bs.map((b) => b.length);
    expect(Math.min(...lengths)).toBeGreaterThanOrEqual(4);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(26);
    expect(new Set(lengths).size).toBeGreaterThan(5);
    // The blocks are the stream in order (30 documents of 10 tokens + eos), nothing skipped.
    const stream = Array.from({ length: 30 }, () => [...Array.from({ length: 10 }, (_, i) => 10 + i), 1]).flat();
    expect(bs.flatMap((b) => Array.from(b))).toEqual(stream.slice(0, lengths.reduce((a, n) => a + n, 0)));
    // Short blocks keep a full block's noise: 26 tokens -> round(3.9) = 4 noise tokens in 1 span. A block of 6:
    // 4 noise tokens, input 6 - 4 + 1 + 1 = 4 of 24, target 4 + 1 + 1 = 6 of 6. A block of 4: at most 3 noise
    // tokens (one kept), input 3, target 5 (one label padded).
    const rows = [Int32Array.from([10, 11, 12, 13, 14, 15]), Int32Array.from([10, 11, 12, 13]), Int32Array.from(stream.slice(0, 26))];
    const batch = varied.collate(rows, (r) => new Rng(7 + r));
    const real = (mask: ArrayLike<number>, from: number, n: number) => Array.from(mask).slice(from, from + n).reduce((a, m) => a + m, 0);
    expect([0, 1, 2].map((r) => real(batch.attentionMask, r * 24, 24))).toEqual([4, 3, 24]);
    expect([0, 1, 2].map((r) => real(batch.lossMask, r * 6, 6))).toEqual([6, 5, 6]);
    const input = Array.from(batch.inputIds.subarray(24, 48));
    const target = Array.from(batch.labels.subarray(6, 12));
    // The 4-token block: one kept token, then a 3-token span (a noise mask starts with non-noise).
    expect(input).toEqual([10, tokenizer.vocabSize - 1, 1, ...new Array(21).fill(0)]);
    expect(target).toEqual([tokenizer.vocabSize - 1, 11, 12, 13, 1, -100]);
    expect(Array.from(batch.attentionMask.subarray(24, 48))).toEqual([1, 1, 1, ...new Array(21).fill(0)]);
    expect(Array.from(batch.decoderInputIds.subarray(6, 12))).toEqual([0, ...target.slice(0, 4), 0]);
    expect(Array.from(batch.labels.subarray(0, 6)).filter((id) => id >= 10 && id < 20)).toHaveLength(4);
    expect(batch.targets).toBe(6 + 5 + 6);
    expect(varied.tokens(batch)).toBe(4 + 3 + 24 + 6 + 5 + 6);
    expect(() => new SpanCorruptionObjective(tokenizer, { ...objective.options, minBlockLength: 27, padTokenId: 0 })).toThrow(
      /objectives\.span-corruption\.minBlockLength: expected a whole number in \[2, 26\] \(data\.seqLength 24 gives blocks of 26\), got 27/,
    );
  });

  it('refuses a tokenizer without eos and a block with more spans than sentinels', () => {
    class NoEos extends WordTokenizer {
      override get specialTokenIds() {
        return { ...super.specialTokenIds, eos: null };
      }
    }
    expect(() => new SpanCorruptionObjective(new NoEos(['a']), { ...objective.options })).toThrow(/span-corruption ends inputs and targets with eos, and data\.tokenizer has none/);
    expect(() => new SpanCorruptionObjective(tokenizer, { ...objective.options, inputLength: 512 })).toThrow(/data\.seqLength: 512 gives blocks of 568 tokens with 28 corrupted spans, more than the 8 sentinels/);
  });
});

describe('span corruption drops into the trainer (a stand-in T5 family, registered like a package)', () => {
  it('trains through train(): loss falls, evaluation reports perplexity and target accuracy, checkpoint and export written', async () => {
    const c = makeTinyCorpus(8);
    registerFamily(tinyT5Family(c.words.slice(5)));
    const config = tinyConfig(c, {
      model: { family: 'tiny-t5', config: {} },
      objective: 'span-corruption',
      data: { seqLength: 24, validationFraction: 0.2 },
      training: { steps: 30, batchSize: 4, lr: 3e-2, warmupSteps: 0 },
      eval: { everySteps: 15, batches: 2 },
      output: { export: join(c.dir, 'export') },
    });
    const result = await train({ config, print: () => {}, tty: false });
    expect(result.step).toBe(30);
    const train_ = readMetrics(config.output.metrics).filter((r) => r.type === 'train');
    const first = train_.slice(0, 5).reduce((a, r) => a + (r.loss as number), 0) / 5;
    const last = train_.slice(-5).reduce((a, r) => a + (r.loss as number), 0) / 5;
    expect(last).toBeLessThan(first * 0.8);
    expect(result.eval!.perplexity).toBeCloseTo(Math.exp(result.eval!.loss), 4);
    expect(result.evalSummary).toMatch(/^perplexity [\d.]+, target-token accuracy [\d.]+%$/);
    expect(existsSync(join(c.dir, 'export', 'model.safetensors'))).toBe(true);
    expect(existsSync(join(result.checkpoint!.path, 'latest.json'))).toBe(true);
  });
});
