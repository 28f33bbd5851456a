// What the training loop knows about a training objective, and nothing more: a batch goes in, a
// scalar loss (to differentiate) and metric sums come out. Masked LM + NSP (MegatronBERT/BERT), span
// corruption (T5), causal LM (Reformer, ChatGLM) and prefix LM each implement this; the loop, the
// evaluation, checkpoints and logging stay the same for all of them.

import type { Tensor } from '@lm/tensor-gpu';

/**
 * One forward pass's results. `loss` is the mean loss of the batch (what backward() runs on);
 * `sums` are scalar tensors that add up across batches (e.g. summed token losses, correct
 * predictions, counted targets), read back only when they are logged.
 */
export interface ObjectiveOutput {
  loss: Tensor;
  sums: Record<string, Tensor>;
}

export interface Objective<Batch, Model> {
  readonly name: string;
  /**
   * Forward pass and loss of one batch, synchronous so that it fits in a memory scope. Gradients are
   * recorded when the caller has them enabled (training) and not under noGrad (evaluation).
   */
  compute(model: Model, batch: Batch): ObjectiveOutput;
  /** Summed metrics over any number of batches -> the metrics that are reported (mean loss, accuracy, perplexity, ...). */
  summarize(sums: Record<string, number>): Record<string, number>;
  /** Tokens in a batch that count for throughput (non-padding). */
  tokens(batch: Batch): number;
}

/** Adds b's sums into a (both host numbers). */
export function addSums(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** Reads scalar tensors back (one await each; they are tiny). */
export async function readSums(sums: Record<string, Tensor>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [k, t] of Object.entries(sums)) out[k] = await t.item();
  return out;
}
