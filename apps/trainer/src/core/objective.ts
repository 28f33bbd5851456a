// What the training loop knows about a training objective, and nothing more. An objective brings its
// data side (documents -> examples -> a padded host batch: its collator) and its model side (a batch
// -> a scalar loss to differentiate and metric sums -> the metrics it reports). Masked LM + NSP
// (MegatronBERT/BERT), causal LM (Reformer, ChatGLM, a decoder MegatronBERT), T5 span corruption and
// prefix LM (P-tuning v2) each implement it; the loop, evaluation, checkpoints and logging are the
// same for all of them.

import type { Tensor } from '@lm/tensor-gpu';
import type { Rng } from './rng.js';

/** A document of the corpus as token ids: its sentences (lines), each without special tokens. */
export interface TokenizedDocument {
  /** Stable across epochs and reads (file index and ordinal in the file). */
  id: number;
  sentences: number[][];
}

/**
 * One forward pass's results. `loss` is the mean loss of the batch (what backward() runs on);
 * `sums` are scalar tensors that add up across batches (e.g. summed token losses, correct
 * predictions, counted targets), read back only when they are logged.
 */
export interface ObjectiveOutput {
  loss: Tensor;
  sums: Record<string, Tensor>;
}

/** The evaluation metrics an objective reports; `loss` and `perplexity` always, the rest its own. */
export interface ObjectiveMetrics {
  loss: number;
  perplexity: number;
  [name: string]: number;
}

export interface Objective<Example = unknown, Batch = unknown, Model = unknown> {
  readonly name: string;
  /**
   * The examples of one split and epoch, from its documents in corpus order (the caller shuffles
   * them). `rng` is seeded by (seed, epoch): the same documents give the same examples.
   */
  examples(documents: AsyncIterable<TokenizedDocument>, rng: Rng): AsyncGenerator<Example>;
  /** The collator: examples -> a padded host batch; `rowRng(r)` is row r's generator, seeded by the example's position in its epoch. */
  collate(examples: readonly Example[], rowRng: (row: number) => Rng): Batch;
  /**
   * Forward pass and loss of one batch, synchronous so that it fits in a memory scope. Gradients are
   * recorded when the caller has them enabled (training) and not under noGrad (evaluation).
   */
  compute(model: Model, batch: Batch): ObjectiveOutput;
  /** Summed metrics over any number of batches -> the metrics that are reported. */
  summarize(sums: Record<string, number>): ObjectiveMetrics;
  /** One line for a person: `loss 2.31, perplexity 10.1, masked-token accuracy 41.0%`. */
  describe(metrics: ObjectiveMetrics): string;
  /** Tokens in a batch that count for throughput (non-padding). */
  tokens(batch: Batch): number;
}

/** Adds b's sums into a (both host numbers). */
export function addSums(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** Where padding positions and unpredicted tokens point in a label array (ignored by the loss). */
export const IGNORE_INDEX = -100;
