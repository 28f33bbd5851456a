// The loss and metrics of objectives that predict tokens (causal LM, prefix LM, span corruption's
// targets, masked LM's masked positions): mean cross-entropy over the labelled positions, always in
// float32 (a float16 log-sum-exp over the vocabulary loses too much), with its perplexity and token
// accuracy.

import { crossEntropy, full, type Tensor } from '@lm/tensor-gpu';
import { IGNORE_INDEX, type ObjectiveMetrics, type ObjectiveOutput } from '../core/objective.js';

/** logits [..., vocab] against int32 labels (flat, -100 = ignored), `targets` of them labelled. */
export function tokenCrossEntropy(logits: Tensor, labels: Tensor, targets: number): ObjectiveOutput {
  const f32 = logits.dtype === 'float32' ? logits : logits.cast('float32');
  const flat = f32.reshape(-1, f32.shape[f32.shape.length - 1]); // [positions, vocab]
  const lossSum = crossEntropy(flat, labels, { reduction: 'sum' });
  const correct = flat.argmax(-1).eq(labels).logicalAnd(labels.ne(IGNORE_INDEX)).toFloat().sum();
  const count = full([], targets, { backend: lossSum.backend });
  return { loss: lossSum.divScalar(Math.max(1, targets)), sums: { lossSum, correct, count } };
}

/**
 * A model's own per-token loss under a loss mask, as Megatron's pretrain_t5 loss_func reduces `lm_loss`:
 * sum(lmLoss * lossMask) / sum(lossMask); accuracy over the masked-in positions of `logits` [..., vocab].
 */
export function maskedTokenLoss(logits: Tensor, lmLoss: Tensor, labels: Tensor, lossMask: Tensor): ObjectiveOutput {
  const mask = lossMask.reshape(-1); // [positions]
  const lossSum = lmLoss.toFloat().reshape(-1).mul(mask).sum();
  const count = mask.sum();
  const flat = logits.reshape(-1, logits.shape[logits.shape.length - 1]); // [positions, vocab]
  const correct = flat.argmax(-1).eq(labels).toFloat().mul(mask).sum();
  return { loss: lossSum.div(count), sums: { lossSum, correct, count } };
}

/** Summed `tokenCrossEntropy` sums -> loss, perplexity and `<accuracyName>`. */
export function tokenMetrics(s: Record<string, number>, accuracyName: string): ObjectiveMetrics {
  const loss = s.lossSum / Math.max(1, s.count);
  return { loss, perplexity: Math.exp(loss), [accuracyName]: s.correct / Math.max(1, s.count) };
}
