// The attention core every family's attention module is written on: softmax(q k^T * scale + bias +
// mask) v with head masks, dropout and optional returned probabilities (the score path of
// transformers' `BertSelfAttention` / `MegatronBertSelfAttention` and `T5Attention`, 4.37), and
// `prune_linear_layer` / `find_pruneable_heads_and_indices` (pytorch_utils.py) for head pruning.
// The projections, caches and position terms stay in each family's attention module, readable beside
// its reference (see docs/decisions/0003-family-code-in-families.md).
//
// Two paths: the fused `scaledDotProductAttention` kernel when nothing needs the probabilities (no
// `outputAttentions`, no head mask, no attention dropout), otherwise the explicit composite whose
// probabilities are the reference's (after dropout and head mask).

import {
  causalKeep,
  dropout,
  fromHost,
  matmul,
  noGrad,
  scaledDotProductAttention,
  scope,
  softmax,
  Tensor,
  where,
} from '@lm/tensor-gpu';
import { Linear } from '../nn/linear.js';
import { FLOAT32_MIN } from './masks.js';

export type AttentionImplementation = 'auto' | 'fused' | 'explicit';

export interface AttentionCoreOptions {
  /** Additive float mask, or bool keep mask (true = attend), broadcastable to [batch, heads, q, k]. */
  mask?: Tensor | null;
  /** Additive bias [1|batch, heads, q, k] (T5 position_bias); added together with the mask. */
  positionBias?: Tensor | null;
  /** Added to q k^T before scaling (MegatronBERT relative_key scores). */
  extraScores?: Tensor | null;
  /** Multiplies the probabilities, broadcastable to [batch, heads, q, k] (e.g. [1, heads, 1, 1]). */
  headMask?: Tensor | null;
  /** Score scale; default 1/sqrt(headDim). T5 uses 1. */
  scale?: number;
  /** Also mask keys after each query (aligned to the end when k > q, as with a cache). */
  causal?: boolean;
  /** Attention-probability dropout, applied when `training`. */
  dropout?: number;
  training?: boolean;
  outputAttentions?: boolean;
  /** 'auto' picks the fused kernel when it can; 'explicit' always materialises the probabilities. */
  implementation?: AttentionImplementation;
}

export interface AttentionCoreResult {
  /** [batch, heads, q, valueDim] */
  context: Tensor;
  /** [batch, heads, q, k] probabilities (after dropout and head mask), when asked for. */
  attentions?: Tensor;
}

/** A bool keep mask as an additive one (0 where kept, finfo(float32).min elsewhere). */
function additive(mask: Tensor): Tensor {
  return mask.dtype === 'bool' ? where(mask, 0, FLOAT32_MIN) : mask;
}

/**
 * softmax(q k^T * scale + positionBias + mask) v for q [batch, heads, q, d], k [batch, heads, k, d],
 * v [batch, heads, k, dv]. The bias is summed first (positionBias + mask), then added to the scores,
 * as T5 does; extraScores join q k^T before the scale, as MegatronBERT's relative terms do.
 */
export function attentionCore(q: Tensor, k: Tensor, v: Tensor, options: AttentionCoreOptions = {}): AttentionCoreResult {
  const headDim = q.shape[q.rank - 1];
  const scale = options.scale ?? 1 / Math.sqrt(headDim);
  const p = options.training ? (options.dropout ?? 0) : 0;
  const needsProbs = !!options.outputAttentions || !!options.headMask || p > 0;
  const impl = options.implementation ?? 'auto';
  if (impl === 'fused' && needsProbs) {
    throw new TypeError('attentionCore: the fused kernel cannot return probabilities, apply a head mask or dropout; use implementation "auto" or "explicit"');
  }
  return scope(() => {
    const mask = options.mask ?? null;
    const bias = options.positionBias ?? null;
    if (impl !== 'explicit' && !needsProbs) {
      // The fused kernel takes one additive (or bool) mask: relative scores are pre-scaled into it.
      let combined: Tensor | null = options.extraScores ? options.extraScores.mulScalar(scale) : null;
      const biasPlusMask = bias && mask ? bias.add(additive(mask)) : bias;
      if (biasPlusMask) combined = combined ? combined.add(biasPlusMask) : biasPlusMask;
      else if (mask) combined = combined ? combined.add(additive(mask)) : mask;
      const context = scaledDotProductAttention(q, k, v, { mask: combined, scale, causal: options.causal }); // [batch, heads, q, dv]
      return { context };
    }
    let scores = matmul(q, k.transpose(-1, -2)); // [batch, heads, q, k]
    if (options.extraScores) scores = scores.add(options.extraScores);
    if (scale !== 1) scores = scores.mulScalar(scale);
    const biasPlusMask = bias && mask ? bias.add(additive(mask)) : (bias ?? (mask && additive(mask)));
    if (biasPlusMask) scores = scores.add(biasPlusMask);
    if (options.causal) scores = where(causalKeep(scores.backend, q.shape[q.rank - 2], k.shape[k.rank - 2]), scores, FLOAT32_MIN);
    let probs = softmax(scores, -1); // [batch, heads, q, k]
    if (p > 0) probs = dropout(probs, p, true);
    if (options.headMask) probs = probs.mul(options.headMask);
    const context = matmul(probs, v); // [batch, heads, q, dv]
    return options.outputAttentions ? { context, attentions: probs } : { context };
  });
}

// ---- head pruning --------------------------------------------------------------------------------------

/**
 * transformers `find_pruneable_heads_and_indices`: the heads still to prune (given heads minus the
 * already pruned ones) and the flat [heads * headDim] indices of the rows to keep in the current
 * (already pruned) layout.
 */
export function findPruneableHeadsAndIndices(heads: Iterable<number>, numHeads: number, headDim: number, alreadyPruned: ReadonlySet<number>): { heads: Set<number>; index: number[] } {
  const toPrune = new Set([...heads].filter((h) => !alreadyPruned.has(h)));
  const keep = new Array<boolean>(numHeads).fill(true);
  for (const head of toPrune) {
    // Shift by the number of already-pruned heads before it: positions in the current layout.
    const shifted = head - [...alreadyPruned].filter((h) => h < head).length;
    if (shifted < 0 || shifted >= numHeads) throw new RangeError(`findPruneableHeadsAndIndices: head ${head} is out of range for ${numHeads} remaining heads`);
    keep[shifted] = false;
  }
  const index: number[] = [];
  keep.forEach((k, h) => {
    if (k) for (let d = 0; d < headDim; d++) index.push(h * headDim + d);
  });
  return { heads: toPrune, index };
}

/**
 * transformers `prune_linear_layer`: a new Linear keeping only `index` along `dim` of the weight
 * (0: output rows, with the bias entries; 1: input columns, bias kept whole). The copies are new
 * leaf parameters; the old layer is left to the caller.
 */
export function pruneLinearLayer(linear: Linear, index: readonly number[] | Tensor, dim: 0 | 1 = 0): Linear {
  const backend = linear.weight.backend;
  const idx = index instanceof Tensor ? index : fromHost(Int32Array.from(index), [index.length], 'int32', backend);
  const { weight, bias } = noGrad(() => ({
    weight: linear.weight.indexSelect(dim, idx).contiguous(),
    bias: linear.bias ? (dim === 1 ? linear.bias.mulScalar(1) : linear.bias.indexSelect(0, idx)) : null,
  }));
  if (idx !== index) idx.dispose();
  const [outFeatures, inFeatures] = weight.shape;
  const pruned = new Linear(inFeatures, outFeatures, { bias: bias !== null, backend });
  pruned.setParameter('weight', weight);
  if (bias) pruned.setParameter('bias', bias);
  return pruned;
}
