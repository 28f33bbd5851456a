// Multi-head attention: the core softmax(q k^T * scale + bias + mask) v with head masks, dropout and
// optional returned probabilities, and a `MultiHeadAttention` Module with separate query/key/value
// projections usable as self- or cross-attention with a KV cache.
// Mirrors transformers' `MegatronBertSelfAttention.forward` (= `BertSelfAttention`, 4.37: caches,
// cross-attention, relative_key(_query), head_mask), `T5Attention.forward` (no scaling, position_bias
// with the mask folded in, pruned-head bias selection, relative_attention_bias), and
// `prune_linear_layer` / `find_pruneable_heads_and_indices` (pytorch_utils.py) for head pruning.
//
// Two paths: the fused `scaledDotProductAttention` kernel when nothing needs the probabilities (no
// `outputAttentions`, no head mask, no attention dropout), otherwise the explicit composite whose
// probabilities are the reference's (after dropout and head mask).

import {
  causalKeep,
  concat,
  dropout,
  fromHost,
  matmul,
  noGrad,
  scaledDotProductAttention,
  scope,
  ShapeError,
  softmax,
  Tensor,
  where,
  type Backend,
} from '@lm/tensor-gpu';
import { Module } from '../module.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { FLOAT32_MIN } from './masks.js';
import { relativeKeyScores, t5PositionBias, type RelativeKeyType, type RelativePositionBucketOptions } from './position.js';

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

// ---- the module ----------------------------------------------------------------------------------------

export interface KeyValue {
  /** [batch, heads, length, headDim] */
  key: Tensor;
  /** [batch, heads, length, headDim] */
  value: Tensor;
}

export interface MultiHeadAttentionOptions {
  hiddenSize: number;
  numHeads: number;
  /** Per-head width (T5 `d_kv`); default hiddenSize / numHeads. */
  headDim?: number;
  /** Input width of the key/value projections (cross-attention from a wider encoder); default hiddenSize. */
  kvInputSize?: number;
  /** Biases on the projections (T5: false); default true. */
  bias?: boolean;
  /** Submodule names, to mirror the reference's state-dict keys (T5: q, k, v, o). */
  names?: { query?: string; key?: string; value?: string; output?: string };
  /** Own an output projection inner -> hiddenSize (T5's `o`); default false (BERT keeps it in `output.dense`). */
  outputProjection?: boolean;
  /** Score scale; default 1/sqrt(headDim). T5: 1. */
  scale?: number;
  /** Attention-probability dropout while training. */
  dropout?: number;
  /** MegatronBERT position_embedding_type; relative types register `distance_embedding`. */
  positionEmbeddingType?: 'absolute' | RelativeKeyType;
  maxPositionEmbeddings?: number;
  /** T5 `has_relative_attention_bias`: registers `relative_attention_bias` [numBuckets, heads]. */
  relativeAttentionBias?: Required<RelativePositionBucketOptions> | null;
  backend?: Backend;
}

export interface ScoreHookContext {
  /** A past key/value was given. */
  hasPast: boolean;
  pastLength: number;
}

export interface AttentionForwardOptions {
  /** Additive float mask (or bool keep mask) broadcastable to [batch, 1|heads, q, k]. */
  attentionMask?: Tensor | null;
  /** Multiplies the probabilities: [1, heads, 1, 1] (getHeadMask) or [heads]. */
  headMask?: Tensor | null;
  /** Cross-attention: keys and values come from these [batch, kLen, kvInputSize]. */
  encoderHiddenStates?: Tensor | null;
  /** The mask cross-attention uses instead of attentionMask. */
  encoderAttentionMask?: Tensor | null;
  pastKeyValue?: KeyValue | null;
  /** Return presentKeyValue (self: past + new keys/values; cross: the projected encoder keys/values). */
  useCache?: boolean;
  outputAttentions?: boolean;
  /** Added to the scores with the mask (T5 position_bias, [1|batch, heads, q, k]); the original head count is fine after pruning. */
  positionBias?: Tensor | null;
  /** Overrides the module's scale. */
  scale?: number;
  /** Mask future keys too (aligned to the end with a cache). */
  causal?: boolean;
  /** Extra score term added to q k^T before scaling, [batch, heads, q, k]. */
  relativeScores?: ((query: Tensor, key: Tensor, ctx: ScoreHookContext) => Tensor) | null;
  /** Rotates the new query/key [batch, heads, seq, headDim] (self-attention), before they join the cache. */
  rotary?: ((query: Tensor, key: Tensor, ctx: ScoreHookContext) => { query: Tensor; key: Tensor }) | null;
  implementation?: AttentionImplementation;
}

export interface AttentionOutput {
  /** [batch, q, heads * headDim], or [batch, q, hiddenSize] through the owned output projection. */
  output: Tensor;
  /** [batch, heads, q, k] when outputAttentions. */
  attentions?: Tensor;
  presentKeyValue?: KeyValue;
  /** The T5 position bias [1, heads, q, k] this module computed (mask not included), for later layers. */
  positionBias?: Tensor;
}

export class MultiHeadAttention extends Module {
  readonly hiddenSize: number;
  readonly headDim: number;
  numHeads: number;
  readonly scale: number;
  readonly dropoutP: number;
  readonly positionEmbeddingType: 'absolute' | RelativeKeyType;
  readonly maxPositionEmbeddings: number;
  readonly relativeAttentionBiasOptions: Required<RelativePositionBucketOptions> | null;
  /** Heads removed by pruneHeads, in the original numbering. */
  readonly prunedHeads = new Set<number>();
  query: Linear;
  key: Linear;
  value: Linear;
  output: Linear | null;
  distanceEmbedding: Embedding | null;
  relativeAttentionBias: Embedding | null;
  readonly #names: { query: string; key: string; value: string; output: string };
  readonly #originalHeads: number;

  constructor(options: MultiHeadAttentionOptions) {
    super();
    const { hiddenSize, numHeads, backend } = options;
    if (options.headDim === undefined && hiddenSize % numHeads !== 0) {
      throw new ShapeError(`MultiHeadAttention: hidden size ${hiddenSize} is not a multiple of the number of attention heads ${numHeads}`);
    }
    this.hiddenSize = hiddenSize;
    this.numHeads = numHeads;
    this.#originalHeads = numHeads;
    this.headDim = options.headDim ?? hiddenSize / numHeads;
    this.scale = options.scale ?? 1 / Math.sqrt(this.headDim);
    this.dropoutP = options.dropout ?? 0;
    this.#names = { query: 'query', key: 'key', value: 'value', output: 'output', ...options.names };
    const inner = numHeads * this.headDim;
    const kvIn = options.kvInputSize ?? hiddenSize;
    const bias = options.bias ?? true;
    this.query = this.registerModule(this.#names.query, new Linear(hiddenSize, inner, { bias, backend }));
    this.key = this.registerModule(this.#names.key, new Linear(kvIn, inner, { bias, backend }));
    this.value = this.registerModule(this.#names.value, new Linear(kvIn, inner, { bias, backend }));
    this.output = options.outputProjection ? this.registerModule(this.#names.output, new Linear(inner, hiddenSize, { bias, backend })) : null;
    this.positionEmbeddingType = options.positionEmbeddingType ?? 'absolute';
    this.maxPositionEmbeddings = options.maxPositionEmbeddings ?? 512;
    this.distanceEmbedding =
      this.positionEmbeddingType === 'absolute'
        ? null
        : this.registerModule('distance_embedding', new Embedding(2 * this.maxPositionEmbeddings - 1, this.headDim, { backend }));
    this.relativeAttentionBiasOptions = options.relativeAttentionBias ?? null;
    this.relativeAttentionBias = this.relativeAttentionBiasOptions
      ? this.registerModule('relative_attention_bias', new Embedding(this.relativeAttentionBiasOptions.numBuckets, numHeads, { backend }))
      : null;
  }

  /** T5 `compute_bias`: [1, originalHeads, q, k] with queries at pastLength .. pastLength + q - 1. */
  computeBias(queryLength: number, keyLength: number, pastLength = 0): Tensor {
    if (!this.relativeAttentionBias || !this.relativeAttentionBiasOptions) {
      throw new TypeError('MultiHeadAttention.computeBias: this module has no relative_attention_bias');
    }
    return t5PositionBias(this.relativeAttentionBias.weight, queryLength, keyLength, { ...this.relativeAttentionBiasOptions, pastLength });
  }

  /** [batch, seq, heads * headDim] -> [batch, heads, seq, headDim] */
  #splitHeads(x: Tensor): Tensor {
    const [batch, seq] = x.shape;
    const shaped = x.reshape(batch, seq, this.numHeads, this.headDim); // [batch, seq, heads, headDim]
    return shaped.permute(0, 2, 1, 3); // [batch, heads, seq, headDim]
  }

  forward(hidden: Tensor, options: AttentionForwardOptions = {}): AttentionOutput {
    return scope(() => {
      const [batch, queryLength] = hidden.shape;
      const past = options.pastKeyValue ?? null;
      const cross = !!options.encoderHiddenStates;
      const query = this.#splitHeads(this.query.forward(hidden)); // [batch, heads, q, headDim]
      const pastLength = past && !cross ? past.key.shape[2] : 0;
      const ctx: ScoreHookContext = { hasPast: !!past, pastLength };
      let q = query;
      let key: Tensor;
      let value: Tensor;
      if (cross && past) {
        key = past.key;
        value = past.value;
      } else {
        const source = cross ? options.encoderHiddenStates! : hidden;
        key = this.#splitHeads(this.key.forward(source)); // [batch, heads, kNew, headDim]
        value = this.#splitHeads(this.value.forward(source)); // [batch, heads, kNew, headDim]
        if (options.rotary && !cross) {
          const r = options.rotary(q, key, ctx);
          q = r.query;
          key = r.key;
        }
        if (past) {
          key = concat([past.key, key], 2); // [batch, heads, past + kNew, headDim]
          value = concat([past.value, value], 2); // [batch, heads, past + kNew, headDim]
        }
      }
      const keyLength = key.shape[2];
      const mask = cross ? (options.encoderAttentionMask ?? null) : (options.attentionMask ?? null);

      let computedBias: Tensor | undefined;
      let positionBias = options.positionBias ?? null;
      if (!positionBias && this.relativeAttentionBias && !cross) {
        computedBias = this.computeBias(queryLength, keyLength, keyLength - queryLength);
        positionBias = computedBias;
      }
      if (positionBias && this.prunedHeads.size > 0 && positionBias.shape[1] === this.#originalHeads) {
        // T5: keep the bias rows of the heads that remain.
        const kept = [...Array(this.#originalHeads).keys()].filter((h) => !this.prunedHeads.has(h));
        const idx = fromHost(Int32Array.from(kept), [kept.length], 'int32', positionBias.backend);
        positionBias = positionBias.indexSelect(1, idx); // [1|batch, heads, q, k]
      }

      let extraScores: Tensor | null = null;
      if (this.distanceEmbedding) {
        extraScores = relativeKeyScores(q, key, this.distanceEmbedding.weight, {
          type: this.positionEmbeddingType as RelativeKeyType,
          maxPositionEmbeddings: this.maxPositionEmbeddings,
          hasPast: !!past,
        });
      }
      if (options.relativeScores) {
        const extra = options.relativeScores(q, key, ctx);
        extraScores = extraScores ? extraScores.add(extra) : extra;
      }
      let headMask = options.headMask ?? null;
      if (headMask && headMask.rank === 1) headMask = headMask.reshape(1, headMask.shape[0], 1, 1); // [1, heads, 1, 1]

      const { context, attentions } = attentionCore(q, key, value, {
        mask,
        positionBias,
        extraScores,
        headMask,
        scale: options.scale ?? this.scale,
        causal: options.causal,
        dropout: this.dropoutP,
        training: this.training,
        outputAttentions: options.outputAttentions,
        implementation: options.implementation,
      });
      const merged = context.permute(0, 2, 1, 3).reshape(batch, queryLength, this.numHeads * this.headDim); // [batch, q, heads * headDim]
      const output = this.output ? this.output.forward(merged) : merged;
      const result: AttentionOutput = { output };
      if (attentions) result.attentions = attentions;
      if (options.useCache) result.presentKeyValue = { key, value };
      if (computedBias) result.positionBias = computedBias;
      return result;
    });
  }

  /**
   * Removes heads (original numbering) from query/key/value (output rows) and the owned output
   * projection (input columns), like transformers' `prune_heads` with `prune_linear_layer`. Returns
   * the kept flat indices (for an output projection the model owns: `pruneLinearLayer(dense, index, 1)`),
   * or null when there was nothing to prune.
   */
  pruneHeads(heads: Iterable<number>): number[] | null {
    const list = [...heads];
    if (list.length === 0) return null;
    const found = findPruneableHeadsAndIndices(list, this.numHeads, this.headDim, this.prunedHeads);
    if (found.heads.size === 0) return null;
    const replace = (name: string, old: Linear, dim: 0 | 1): Linear => {
      const pruned = pruneLinearLayer(old, found.index, dim);
      this.setModule(name, pruned);
      old.dispose();
      return pruned;
    };
    this.query = replace(this.#names.query, this.query, 0);
    this.key = replace(this.#names.key, this.key, 0);
    this.value = replace(this.#names.value, this.value, 0);
    if (this.output) this.output = replace(this.#names.output, this.output, 1);
    this.numHeads -= found.heads.size;
    for (const h of found.heads) this.prunedHeads.add(h);
    return found.index;
  }
}
