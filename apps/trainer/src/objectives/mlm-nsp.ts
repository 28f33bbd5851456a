// BERT pretraining objective (Devlin et al. 2019): masked-LM cross-entropy over the chosen tokens,
// plus (optionally) next-sentence-prediction cross-entropy over the [CLS] pooled output. The total
// is MLM + NSP, as Hugging Face `MegatronBertForPreTraining` computes it; the losses are computed
// here from the model's logits so the two parts and the accuracies are reported separately.

import { crossEntropy, fromHost, full, type Backend, type Tensor } from '@lm/tensor-gpu';
import type { Batch } from '../data/pretraining.js';
import type { Objective, ObjectiveOutput } from './objective.js';

/** The forward contract: int32 [batch, seq] inputs -> [batch, seq, vocab] MLM logits and [batch, 2] NSP logits. */
export interface PretrainingModel {
  forward(inputs: { inputIds: Tensor; tokenTypeIds: Tensor; attentionMask: Tensor }): {
    predictionLogits?: Tensor;
    logits?: Tensor;
    seqRelationshipLogits?: Tensor;
  };
}

/** A host batch as int32 tensors on `backend`. */
export function batchTensors(batch: Batch, backend?: Backend): Record<'inputIds' | 'tokenTypeIds' | 'attentionMask' | 'labels' | 'nextSentenceLabel', Tensor> {
  const shape = [batch.batchSize, batch.seqLength];
  return {
    inputIds: fromHost(batch.inputIds, shape, 'int32', backend),
    tokenTypeIds: fromHost(batch.tokenTypeIds, shape, 'int32', backend),
    attentionMask: fromHost(batch.attentionMask, shape, 'int32', backend),
    labels: fromHost(batch.labels, shape, 'int32', backend),
    nextSentenceLabel: fromHost(batch.nextSentenceLabel, [batch.batchSize], 'int32', backend),
  };
}

function asFloat32(t: Tensor): Tensor {
  return t.dtype === 'float32' ? t : t.cast('float32');
}

export class MaskedLMObjective implements Objective<Batch, PretrainingModel> {
  readonly name: string;
  constructor(
    /** Also train next-sentence prediction. */
    readonly nextSentencePrediction: boolean,
    private readonly backend?: Backend,
  ) {
    this.name = nextSentencePrediction ? 'mlm-nsp' : 'mlm';
  }

  compute(model: PretrainingModel, batch: Batch): ObjectiveOutput {
    const t = batchTensors(batch, this.backend);
    const out = model.forward({ inputIds: t.inputIds, tokenTypeIds: t.tokenTypeIds, attentionMask: t.attentionMask });
    const modelLogits = out.predictionLogits ?? out.logits;
    if (!modelLogits) throw new TypeError(`${this.name}: the model returned neither predictionLogits nor logits`);
    // The loss is always computed in float32 (a float16 model's logits are cast, as Megatron does
    // unless fp16_lm_cross_entropy): a float16 log-sum-exp over the vocabulary loses too much.
    const logits = asFloat32(modelLogits);
    const vocab = logits.shape[logits.shape.length - 1];
    const flat = logits.reshape(-1, vocab); // [batch * seq, vocab]
    const labels = t.labels.reshape(-1); // [batch * seq]
    const valid = labels.ne(-100);
    const mlmSum = crossEntropy(flat, labels, { reduction: 'sum' });
    const masked = Math.max(1, batch.maskedTokens);
    let loss = mlmSum.divScalar(masked);
    const correct = flat.argmax(-1).eq(labels).logicalAnd(valid).toFloat().sum();
    const sums: Record<string, Tensor> = { mlmLossSum: mlmSum, mlmCorrect: correct, mlmCount: valid.toFloat().sum() };
    if (this.nextSentencePrediction) {
      const nspLogits = out.seqRelationshipLogits;
      if (!nspLogits) throw new TypeError(`${this.name}: the model returned no seqRelationshipLogits (use a pretraining head, or objective: mlm)`);
      const nsp = asFloat32(nspLogits);
      const nspSum = crossEntropy(nsp, t.nextSentenceLabel, { reduction: 'sum' });
      loss = loss.add(nspSum.divScalar(batch.batchSize));
      sums.nspLossSum = nspSum;
      sums.nspCorrect = nsp.argmax(-1).eq(t.nextSentenceLabel).toFloat().sum();
      sums.nspCount = full([], batch.batchSize, { backend: nsp.backend });
    }
    return { loss, sums };
  }

  summarize(s: Record<string, number>): Record<string, number> {
    const mlmLoss = s.mlmLossSum / Math.max(1, s.mlmCount);
    const out: Record<string, number> = {
      mlmLoss,
      perplexity: Math.exp(mlmLoss),
      mlmAccuracy: s.mlmCorrect / Math.max(1, s.mlmCount),
    };
    if (this.nextSentencePrediction && s.nspCount) {
      out.nspLoss = s.nspLossSum / s.nspCount;
      out.nspAccuracy = s.nspCorrect / s.nspCount;
      out.loss = mlmLoss + out.nspLoss;
    } else {
      out.loss = mlmLoss;
    }
    return out;
  }

  tokens(batch: Batch): number {
    return batch.tokens;
  }
}
