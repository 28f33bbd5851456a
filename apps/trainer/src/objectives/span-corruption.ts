// T5's span-corruption objective (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with
// a Unified Text-to-Text Transformer", section 3.1.4; the reference is google-research/t5
// preprocessors.py `span_corruption` / `random_spans_noise_mask`, as ported to numpy in Hugging Face's
// examples/flax/language-modeling/run_t5_mlm_flax.py). Of a block of tokens, noiseDensity (0.15) are
// corrupted in spans of mean length meanNoiseSpanLength (3); each span is replaced in the encoder
// input by one sentinel (<extra_id_0>, <extra_id_1>, ... in order of appearance), and the decoder
// target is each sentinel followed by the span it hides; both end with eos. Inputs and targets have
// fixed lengths (`spanCorruptionLengths`), so batches need no padding.
//
// Examples: the corpus's documents, each followed by eos, concatenated and cut into blocks of the
// expanded length (run_t5_mlm_flax.py's `group_texts`; the tail that does not fill a block is
// dropped; `shiftBlocks` moves the cuts per epoch; `minBlockLength` cuts blocks of seeded lengths, padded).
// The collator draws each row's noise mask from the row's seeded generator.

import type { Tokenizer } from '@lm/layers';
import { fromHost, type Backend, type Tensor } from '@lm/tensor-gpu';
import { ConfigError } from '../core/errors.js';
import { IGNORE_INDEX, type Objective, type ObjectiveMetrics, type ObjectiveOutput, type TokenizedDocument } from '../core/objective.js';
import type { Rng } from '../core/rng.js';
import { maskedTokenLoss, tokenCrossEntropy, tokenMetrics } from './token-loss.js';

/**
 * The forward contract of an encoder-decoder: encoder ids and mask, decoder ids -> [batch, targetLength, vocab]
 * logits. A model with a loss of its own (Megatron's per-token `lm_loss`) also returns it [batch, targetLength]
 * for `labels`; the objective then optimises that under the loss mask instead of its cross-entropy.
 */
export interface Seq2SeqModel {
  forward(inputs: { inputIds: Tensor; attentionMask: Tensor; decoderInputIds: Tensor; labels: Tensor }): { logits: Tensor; lmLoss?: Tensor };
}

export interface SpanCorruptionOptions {
  /** Encoder input length (data.seqLength): non-noise tokens + one sentinel per span + eos. */
  inputLength: number;
  /** Fraction of a block's tokens that are corrupted (T5: 0.15). */
  noiseDensity: number;
  /** Mean length of a corrupted span (T5: 3). */
  meanNoiseSpanLength: number;
  /** Id of sentinel k (<extra_id_k>): T5's vocabulary counts them down from its top, Megatron's appends them in order. */
  sentinelId: (k: number) => number;
  /** How many sentinels the vocabulary has (T5: 100). */
  numSentinels: number;
  /**
   * Start each epoch's blocks at a seeded offset in [0, block length) of the token stream (its first tokens
   * dropped), so that epochs cut the corpus at different places. The reference cuts at multiples of the
   * block length only; a small corpus read for hundreds of epochs then shows the same blocks every epoch,
   * and a small model learns those blocks (training loss keeps falling) instead of the facts in them
   * (held-out loss flat). Default false: the reference's blocks.
   */
  shiftBlocks?: boolean;
  /**
   * Cut each block at a seeded length in [minBlockLength, block length] instead of the full block length,
   * its input and target padded to the fixed lengths (pad id, encoder attention mask 0, label -100). The
   * reference's blocks are all full, so a model trained on them sees inputs of one length only, with the
   * end of input always at the same distance; T5's own pipeline (`split_tokens`) leaves a shorter last
   * piece of each document. A short block keeps the noise tokens and spans of a full one (at most all
   * but one of its tokens), so its spans keep their mean length: with the density's count instead, a
   * sentence-long block hides one token, and the model learns that short inputs hide short spans.
   * Default: every block full (the reference's `group_texts`).
   */
  minBlockLength?: number;
  /** Pads short blocks' inputs and decoder inputs (T5: 0); needed with minBlockLength. */
  padTokenId?: number;
  /** The decoder's first input (T5: the pad id). */
  decoderStartTokenId: number;
  backend?: Backend;
}

/** A corrupted block: encoder input, decoder target and decoder input (the target shifted right). */
export interface SpanCorruptionBatch {
  batchSize: number;
  inputLength: number;
  targetLength: number;
  inputIds: Int32Array;
  labels: Int32Array;
  decoderInputIds: Int32Array;
  /** Encoder attention mask: 1 per input token, 0 per padding (none unless minBlockLength). */
  attentionMask: Int32Array;
  /** Megatron's `loss_mask` over the targets: 1 per target token, 0 per padding. */
  lossMask: Float32Array;
  /** Target tokens (labels other than -100). */
  targets: number;
}

/** numpy's and Python's round: halves go to the even neighbour (round(2.5) = 2). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Noise tokens and spans of a block of `length` tokens, kept off the degenerate ends (>= 1 noise and non-noise token, >= 1 span). */
function noiseCounts(length: number, noiseDensity: number, meanNoiseSpanLength: number): { noiseTokens: number; noiseSpans: number } {
  const noiseTokens = Math.min(Math.max(roundHalfEven(length * noiseDensity), 1), length - 1);
  const noiseSpans = Math.max(roundHalfEven(noiseTokens / meanNoiseSpanLength), 1);
  return { noiseTokens, noiseSpans };
}

/**
 * `compute_input_and_target_lengths`: the longest block (`tokensLength`) whose corrupted input (the
 * non-noise tokens, a sentinel per span, eos) fits `inputLength`, and the target length that block
 * gives (the noise tokens, a sentinel per span, eos). T5's 512 -> 568 tokens, targets of 114.
 */
export function spanCorruptionLengths(inputLength: number, noiseDensity: number, meanNoiseSpanLength: number): { tokensLength: number; targetLength: number } {
  const lengths = (tokens: number) => {
    const { noiseTokens, noiseSpans } = noiseCounts(tokens, noiseDensity, meanNoiseSpanLength);
    return { input: tokens - noiseTokens + noiseSpans + 1, target: noiseTokens + noiseSpans + 1 };
  };
  let tokensLength = inputLength;
  while (lengths(tokensLength + 1).input <= inputLength) tokensLength++;
  let targetLength = lengths(tokensLength).target;
  // The reference's "minor hack": at density 0.5, keep the targets no longer than the inputs.
  if (noiseDensity === 0.5 && targetLength > inputLength) {
    tokensLength--;
    targetLength--;
  }
  return { tokensLength, targetLength };
}

/** `num` items split into `segments` non-empty runs, every split equally likely (`_random_segmentation`). */
function randomSegmentation(num: number, segments: number, rng: Rng): number[] {
  // A segment starts after each of (segments - 1) distinct cut points among the num - 1 gaps.
  const cuts = rng.shuffle(Array.from({ length: num - 1 }, (_, i) => i < segments - 1));
  const lengths: number[] = [];
  let run = 1;
  for (const cut of cuts) {
    if (cut) {
      lengths.push(run);
      run = 1;
    } else run++;
  }
  lengths.push(run);
  return lengths;
}

/**
 * `random_spans_noise_mask`: true where a token is noise. Spans alternate non-noise, noise, ...,
 * starting with non-noise; their counts are fixed by the length, their lengths are random.
 */
export function randomSpansNoiseMask(length: number, noiseDensity: number, meanNoiseSpanLength: number, rng: Rng): boolean[] {
  const { noiseTokens, noiseSpans } = noiseCounts(length, noiseDensity, meanNoiseSpanLength);
  return spansNoiseMask(length, noiseTokens, noiseSpans, rng);
}

/** A noise mask of `noiseTokens` in `noiseSpans` spans of random lengths, starting with non-noise. */
function spansNoiseMask(length: number, noiseTokens: number, noiseSpans: number, rng: Rng): boolean[] {
  const noiseLengths = randomSegmentation(noiseTokens, noiseSpans, rng);
  const keepLengths = randomSegmentation(length - noiseTokens, noiseSpans, rng);
  const mask: boolean[] = [];
  for (let s = 0; s < noiseSpans; s++) {
    for (let i = 0; i < keepLengths[s]; i++) mask.push(false);
    for (let i = 0; i < noiseLengths[s]; i++) mask.push(true);
  }
  return mask;
}

/**
 * `create_sentinel_ids` + `filter_input_ids`: the tokens where `drop` is false, each run of dropped
 * tokens replaced by the next sentinel (counted from 0), then eos.
 */
export function replaceSpans(ids: ArrayLike<number>, drop: readonly boolean[], sentinel: (k: number) => number, eos: number): number[] {
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < ids.length; i++) {
    if (!drop[i]) out.push(ids[i]);
    else if (i === 0 || !drop[i - 1]) out.push(sentinel(k++));
  }
  out.push(eos);
  return out;
}

export class SpanCorruptionObjective implements Objective<Int32Array, SpanCorruptionBatch, Seq2SeqModel> {
  readonly name = 'span-corruption';
  readonly tokensLength: number;
  /** A full block's noise tokens and spans, which a short block keeps too (minBlockLength). */
  private readonly fullNoise: { noiseTokens: number; noiseSpans: number };
  readonly targetLength: number;
  private readonly eos: number;

  constructor(
    tokenizer: Tokenizer,
    readonly options: SpanCorruptionOptions,
  ) {
    const eos = tokenizer.specialTokenIds.eos;
    if (eos === null) throw new ConfigError('objective: span-corruption ends inputs and targets with eos, and data.tokenizer has none');
    this.eos = eos;
    const { noiseDensity, meanNoiseSpanLength, inputLength } = options;
    if (!(noiseDensity > 0 && noiseDensity < 1)) throw new ConfigError(`objectives.span-corruption.noiseDensity: expected a number in (0, 1), got ${noiseDensity}`);
    if (!(meanNoiseSpanLength >= 1)) throw new ConfigError(`objectives.span-corruption.meanNoiseSpanLength: expected a number >= 1, got ${meanNoiseSpanLength}`);
    const { tokensLength, targetLength } = spanCorruptionLengths(inputLength, noiseDensity, meanNoiseSpanLength);
    this.fullNoise = noiseCounts(tokensLength, noiseDensity, meanNoiseSpanLength);
    const spans = this.fullNoise.noiseSpans;
    if (spans > options.numSentinels) {
      throw new ConfigError(`data.seqLength: ${inputLength} gives blocks of ${tokensLength} tokens with ${spans} corrupted spans, more than the ${options.numSentinels} sentinels of the vocabulary`);
    }
    const { minBlockLength } = options;
    if (minBlockLength !== undefined) {
      if (!Number.isInteger(minBlockLength) || minBlockLength < 2 || minBlockLength > tokensLength) {
        throw new ConfigError(`objectives.span-corruption.minBlockLength: expected a whole number in [2, ${tokensLength}] (data.seqLength ${inputLength} gives blocks of ${tokensLength}), got ${minBlockLength}`);
      }
      if (options.padTokenId === undefined) throw new ConfigError('objectives.span-corruption.minBlockLength pads short blocks, and data.tokenizer has no pad token');
    }
    this.tokensLength = tokensLength;
    this.targetLength = targetLength;
  }

  /** A short block's noise mask: a full block's noise tokens and spans (see minBlockLength), within its length. */
  private shortBlockMask(length: number, rng: Rng): boolean[] {
    const full = this.fullNoise;
    const noiseTokens = Math.min(full.noiseTokens, length - 1);
    const noiseSpans = Math.min(full.noiseSpans, noiseTokens, length - noiseTokens);
    return spansNoiseMask(length, noiseTokens, noiseSpans, rng);
  }

  /** The next block's length: full, or seeded in [minBlockLength, tokensLength]. */
  private blockLength(rng?: Rng): number {
    const min = this.options.minBlockLength;
    if (min === undefined || !rng) return this.tokensLength;
    return min + Math.floor(rng.next() * (this.tokensLength - min + 1));
  }

  sentinel(k: number): number {
    return this.options.sentinelId(k);
  }

  async *examples(documents: AsyncIterable<TokenizedDocument>, rng?: Rng): AsyncGenerator<Int32Array> {
    let pending: number[] = [];
    let skip = this.options.shiftBlocks && rng ? Math.floor(rng.next() * this.tokensLength) : 0;
    // The length of the block being filled, drawn once per block (kept while the stream is short of it).
    let length: number | undefined;
    const next = () => (length ??= this.blockLength(rng));
    for await (const doc of documents) {
      pending.push(...doc.sentences.flat(), this.eos);
      if (skip > 0) {
        const dropped = Math.min(skip, pending.length);
        pending = pending.slice(dropped);
        skip -= dropped;
      }
      while (pending.length >= next()) {
        yield Int32Array.from(pending.slice(0, length));
        pending = pending.slice(length);
        length = undefined;
      }
    }
  }

  collate(examples: readonly Int32Array[], rowRng: (row: number) => Rng): SpanCorruptionBatch {
    const { inputLength, noiseDensity, meanNoiseSpanLength, decoderStartTokenId, padTokenId = 0 } = this.options;
    const B = examples.length;
    const T = this.targetLength;
    // Padding where a block is short (minBlockLength): pad ids, attention mask 0, labels ignored.
    const inputIds = new Int32Array(B * inputLength).fill(padTokenId);
    const attentionMask = new Int32Array(B * inputLength);
    const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
    const decoderInputIds = new Int32Array(B * T).fill(padTokenId);
    const lossMask = new Float32Array(B * T);
    let targets = 0;
    const sentinel = (k: number) => this.sentinel(k);
    examples.forEach((block, r) => {
      const full = block.length === this.tokensLength;
      const noise = full ? randomSpansNoiseMask(block.length, noiseDensity, meanNoiseSpanLength, rowRng(r)) : this.shortBlockMask(block.length, rowRng(r));
      const input = replaceSpans(block, noise, sentinel, this.eos);
      const target = replaceSpans(
        block,
        noise.map((n) => !n),
        sentinel,
        this.eos,
      );
      if (full ? input.length !== inputLength || target.length !== T : input.length > inputLength || target.length > T) {
        throw new Error(`span-corruption: a block of ${block.length} tokens gave ${input.length} inputs / ${target.length} targets, expected ${full ? '' : 'at most '}${inputLength} / ${T}`);
      }
      inputIds.set(input, r * inputLength);
      attentionMask.fill(1, r * inputLength, r * inputLength + input.length);
      labels.set(target, r * T);
      lossMask.fill(1, r * T, r * T + target.length);
      targets += target.length;
      // The decoder reads the target shifted right, starting from decoderStartTokenId (`shift_tokens_right`).
      decoderInputIds.set([decoderStartTokenId, ...target.slice(0, -1)], r * T);
    });
    return { batchSize: B, inputLength, targetLength: T, inputIds, labels, decoderInputIds, attentionMask, lossMask, targets };
  }

  compute(model: Seq2SeqModel, batch: SpanCorruptionBatch): ObjectiveOutput {
    const backend = this.options.backend;
    const { batchSize: B, inputLength, targetLength: T } = batch;
    const labels = fromHost(batch.labels, [B, T], 'int32', backend);
    const out = model.forward({
      inputIds: fromHost(batch.inputIds, [B, inputLength], 'int32', backend),
      attentionMask: fromHost(batch.attentionMask, [B, inputLength], 'int32', backend),
      decoderInputIds: fromHost(batch.decoderInputIds, [B, T], 'int32', backend),
      labels,
    });
    const flatLabels = labels.reshape(B * T);
    if (out.lmLoss) return maskedTokenLoss(out.logits, out.lmLoss, flatLabels, fromHost(batch.lossMask, [B * T], 'float32', backend));
    return tokenCrossEntropy(out.logits, flatLabels, batch.targets);
  }

  summarize(s: Record<string, number>): ObjectiveMetrics {
    return tokenMetrics(s, 'targetAccuracy');
  }

  describe(m: ObjectiveMetrics): string {
    return `perplexity ${m.perplexity.toFixed(2)}, target-token accuracy ${(100 * m.targetAccuracy).toFixed(1)}%`;
  }

  /** Input and target tokens, padding left out. */
  tokens(batch: SpanCorruptionBatch): number {
    return batch.attentionMask.reduce((a, m) => a + m, 0) + batch.targets;
  }
}
