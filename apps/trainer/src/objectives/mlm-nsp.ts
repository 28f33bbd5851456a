// BERT pretraining (Devlin et al. 2019): masked-LM cross-entropy over the chosen tokens, plus
// (optionally) next-sentence-prediction cross-entropy over the [CLS] pooled output. The total is
// MLM + NSP, as Hugging Face `MegatronBertForPreTraining` computes it; the losses are computed here
// from the model's logits so the two parts and the accuracies are reported separately.
//
// Examples: [CLS] A [SEP] B [SEP] with a next-sentence label. Pairing follows google-research/bert
// create_pretraining_data.py `create_instances_from_document`: sentences are gathered until a target
// length (seqLength - 3, or with probability shortSeqProbability a random shorter one), split at a
// random point into A and B; half the time (seeded) B is replaced by sentences from another document
// and the unused sentences are put back; the pair is truncated from the longer side, front or back at
// random. The reference draws the random document from the whole corpus in memory; here it comes
// from a reservoir of recent documents, so the corpus is streamed. Label 0: B follows A; 1: B is
// random (Hugging Face's next_sentence_label). The collator masks each row (masking.ts) and pads.

import type { Tokenizer } from '@lm/layers';
import { crossEntropy, fromHost, full, type Backend, type Tensor } from '@lm/tensor-gpu';
import { ConfigError } from '../core/errors.js';
import { IGNORE_INDEX, type Objective, type ObjectiveMetrics, type ObjectiveOutput, type TokenizedDocument } from '../core/objective.js';
import type { Rng } from '../core/rng.js';
import { maskTokens, replacementIds, type MaskingOptions } from './masking.js';
import { tokenCrossEntropy } from './token-loss.js';

/** The forward contract: int32 [batch, seq] inputs -> [batch, seq, vocab] MLM logits and [batch, 2] NSP logits. */
export interface PretrainingModel {
  forward(inputs: { inputIds: Tensor; tokenTypeIds: Tensor; attentionMask: Tensor }): {
    predictionLogits?: Tensor;
    logits?: Tensor;
    seqRelationshipLogits?: Tensor;
  };
}

/** One sentence pair before masking and padding. */
export interface PairExample {
  inputIds: Int32Array;
  tokenTypeIds: Int32Array;
  /** 0: B follows A; 1: B is from another document. */
  nextSentenceLabel: number;
}

/** A padded, masked batch on the host: [batchSize, seqLength] row-major int32 arrays. */
export interface MaskedLMBatch {
  batchSize: number;
  seqLength: number;
  inputIds: Int32Array;
  tokenTypeIds: Int32Array;
  attentionMask: Int32Array;
  /** Original ids at predicted positions, -100 elsewhere. */
  labels: Int32Array;
  /** [batchSize] */
  nextSentenceLabel: Int32Array;
  /** Non-padding tokens. */
  tokens: number;
  /** Positions with a label. */
  maskedTokens: number;
}

export interface MaskedLMOptions {
  /** Also train next-sentence prediction (false: B always follows A, label 0). */
  nextSentencePrediction: boolean;
  /** Tokens per example, [CLS] and [SEP]s included. */
  seqLength: number;
  maskProbability: number;
  shortSeqProbability: number;
  backend?: Backend;
}

const RESERVOIR_DOCS = 64;

type Segment = number[];

/** Removes tokens from the longer of a and b (front or back at random) until they fit. */
function truncatePair(a: Segment, b: Segment, maxTokens: number, rng: Rng): void {
  while (a.length + b.length > maxTokens) {
    const longer = a.length > b.length ? a : b;
    if (rng.next() < 0.5) longer.shift();
    else longer.pop();
  }
}

function requireId(id: number | null, what: string, objective: string): number {
  if (id === null) throw new ConfigError(`objective: ${objective} needs a ${what} token, and data.tokenizer has none`);
  return id;
}

export class MaskedLMObjective implements Objective<PairExample, MaskedLMBatch, PretrainingModel> {
  readonly name: string;
  private readonly cls: number;
  private readonly sep: number;
  private readonly pad: number;
  private readonly masking: MaskingOptions;

  constructor(
    tokenizer: Tokenizer,
    readonly options: MaskedLMOptions,
  ) {
    this.name = options.nextSentencePrediction ? 'mlm-nsp' : 'mlm';
    const ids = tokenizer.specialTokenIds;
    this.cls = requireId(ids.cls, '[CLS]', this.name);
    this.sep = requireId(ids.sep, '[SEP]', this.name);
    this.pad = requireId(ids.pad, '[PAD]', this.name);
    const specialIds = new Set(tokenizer.allSpecialIds);
    this.masking = {
      probability: options.maskProbability,
      maskTokenId: requireId(ids.mask, '[MASK]', this.name),
      specialIds,
      replacementIds: replacementIds(tokenizer.vocabSize, specialIds),
    };
  }

  async *examples(documents: AsyncIterable<TokenizedDocument>, rng: Rng): AsyncGenerator<PairExample> {
    const { seqLength, shortSeqProbability, nextSentencePrediction } = this.options;
    const maxTokens = seqLength - 3;
    const reservoir: TokenizedDocument[] = [];
    for await (const doc of documents) {
      const target = rng.next() < shortSeqProbability ? rng.int(2, maxTokens) : maxTokens;
      const others = reservoir.filter((d) => d.id !== doc.id);
      let chunk: Segment[] = [];
      let length = 0;
      for (let i = 0; i < doc.sentences.length; i++) {
        chunk.push(doc.sentences[i]);
        length += doc.sentences[i].length;
        if (i !== doc.sentences.length - 1 && length < target) continue;
        const aEnd = chunk.length >= 2 ? rng.int(1, chunk.length - 1) : 1;
        const a: Segment = chunk.slice(0, aEnd).flat();
        let b: Segment = [];
        let isRandom = false;
        const wantRandom = nextSentencePrediction && (chunk.length === 1 || rng.next() < 0.5);
        if (wantRandom && others.length > 0) {
          isRandom = true;
          const targetB = Math.max(1, target - a.length);
          const other = others[rng.int(0, others.length - 1)];
          for (let k = rng.int(0, other.sentences.length - 1); k < other.sentences.length && b.length < targetB; k++) b.push(...other.sentences[k]);
          // The sentences of this document not used for A go back into the stream.
          i -= chunk.length - aEnd;
        } else {
          b = chunk.slice(aEnd).flat();
        }
        chunk = [];
        length = 0;
        truncatePair(a, b, maxTokens, rng);
        if (a.length === 0 || b.length === 0) continue;
        const inputIds = Int32Array.from([this.cls, ...a, this.sep, ...b, this.sep]);
        const tokenTypeIds = new Int32Array(inputIds.length);
        tokenTypeIds.fill(1, a.length + 2);
        yield { inputIds, tokenTypeIds, nextSentenceLabel: isRandom ? 1 : 0 };
      }
      reservoir.push(doc);
      if (reservoir.length > RESERVOIR_DOCS) reservoir.shift();
    }
  }

  collate(examples: readonly PairExample[], rowRng: (row: number) => Rng): MaskedLMBatch {
    const L = this.options.seqLength;
    const B = examples.length;
    const inputIds = new Int32Array(B * L).fill(this.pad);
    const tokenTypeIds = new Int32Array(B * L);
    const attentionMask = new Int32Array(B * L);
    const labels = new Int32Array(B * L).fill(IGNORE_INDEX);
    const nextSentenceLabel = new Int32Array(B);
    let tokens = 0;
    let maskedTokens = 0;
    examples.forEach((ex, r) => {
      const masked = maskTokens(ex.inputIds, rowRng(r), this.masking);
      inputIds.set(masked.inputIds, r * L);
      labels.set(masked.labels, r * L);
      tokenTypeIds.set(ex.tokenTypeIds, r * L);
      attentionMask.fill(1, r * L, r * L + ex.inputIds.length);
      nextSentenceLabel[r] = ex.nextSentenceLabel;
      tokens += ex.inputIds.length;
      for (const l of masked.labels) if (l !== IGNORE_INDEX) maskedTokens++;
    });
    return { batchSize: B, seqLength: L, inputIds, tokenTypeIds, attentionMask, labels, nextSentenceLabel, tokens, maskedTokens };
  }

  compute(model: PretrainingModel, batch: MaskedLMBatch): ObjectiveOutput {
    const shape = [batch.batchSize, batch.seqLength];
    const backend = this.options.backend;
    const inputIds = fromHost(batch.inputIds, shape, 'int32', backend);
    const tokenTypeIds = fromHost(batch.tokenTypeIds, shape, 'int32', backend);
    const attentionMask = fromHost(batch.attentionMask, shape, 'int32', backend);
    const out = model.forward({ inputIds, tokenTypeIds, attentionMask });
    const modelLogits = out.predictionLogits ?? out.logits;
    if (!modelLogits) throw new TypeError(`${this.name}: the model returned neither predictionLogits nor logits`);
    // Cross-entropy over the masked positions, in float32 (as Megatron unless fp16_lm_cross_entropy).
    const mlm = tokenCrossEntropy(modelLogits, fromHost(batch.labels, [batch.batchSize * batch.seqLength], 'int32', backend), batch.maskedTokens);
    let loss = mlm.loss;
    const sums: Record<string, Tensor> = { mlmLossSum: mlm.sums.lossSum, mlmCorrect: mlm.sums.correct, mlmCount: mlm.sums.count };
    if (this.options.nextSentencePrediction) {
      const nspLogits = out.seqRelationshipLogits;
      if (!nspLogits) throw new TypeError(`${this.name}: the model returned no seqRelationshipLogits (use a pretraining head, or objective: mlm)`);
      const nsp = nspLogits.dtype === 'float32' ? nspLogits : nspLogits.cast('float32');
      const nextSentenceLabel = fromHost(batch.nextSentenceLabel, [batch.batchSize], 'int32', backend);
      const nspSum = crossEntropy(nsp, nextSentenceLabel, { reduction: 'sum' });
      loss = loss.add(nspSum.divScalar(batch.batchSize));
      sums.nspLossSum = nspSum;
      sums.nspCorrect = nsp.argmax(-1).eq(nextSentenceLabel).toFloat().sum();
      sums.nspCount = full([], batch.batchSize, { backend: nsp.backend });
    }
    return { loss, sums };
  }

  summarize(s: Record<string, number>): ObjectiveMetrics {
    const mlmLoss = s.mlmLossSum / Math.max(1, s.mlmCount);
    const out: Record<string, number> = { mlmLoss, perplexity: Math.exp(mlmLoss), mlmAccuracy: s.mlmCorrect / Math.max(1, s.mlmCount) };
    let loss = mlmLoss;
    if (this.options.nextSentencePrediction && s.nspCount) {
      out.nspLoss = s.nspLossSum / s.nspCount;
      out.nspAccuracy = s.nspCorrect / s.nspCount;
      loss += out.nspLoss;
    }
    return { ...out, perplexity: out.perplexity, loss };
  }

  describe(m: ObjectiveMetrics): string {
    return (
      `perplexity ${m.perplexity.toFixed(2)}, masked-token accuracy ${(100 * m.mlmAccuracy).toFixed(1)}%` +
      (m.nspAccuracy !== undefined ? `, next-sentence accuracy ${(100 * m.nspAccuracy).toFixed(1)}%` : '')
    );
  }

  tokens(batch: MaskedLMBatch): number {
    return batch.tokens;
  }
}
