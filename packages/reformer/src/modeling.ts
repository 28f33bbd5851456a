// The Reformer (Kitaev, Kaiser, Levskaya 2020, "Reformer: The Efficient Transformer", arXiv:2001.04451):
// LSH self-attention (queries and keys shared, hashed by random rotations into buckets, sorted, attended
// chunk by chunk), local self-attention, axial position embeddings, reversible residual layers whose
// backward recomputes activations from the outputs, and chunked feed-forward / LM head.
//
// Mirrors Hugging Face transformers `src/transformers/models/reformer/modeling_reformer.py` (4.37) class
// for class and in the same order, with the same state-dict names: helpers, position embeddings,
// embeddings, LSH self-attention, local self-attention, the attention block, the feed-forward, the
// reversible layer and its custom autograd function, the encoder, the LM head, the pretrained-model base,
// then ReformerModel and its four task heads.
//
// Conventions: forward methods take one options object with camelCase names and return plain objects of
// tensors; ids, labels, positions and buckets are int32; shape comments name the dims
// ([batch, heads, seq, headDim]). The hidden size of the encoder's output is 2 * hiddenSize (the two
// reversible streams concatenated).

import {
  applyFunction,
  arange,
  argsort,
  bernoulli,
  binaryCrossEntropyWithLogits,
  concat,
  crossEntropy,
  defaultGenerator,
  dropout,
  enableGrad,
  full,
  Generator,
  isGradEnabled,
  mseLoss,
  philoxFill,
  randn,
  scope,
  ShapeError,
  softmax,
  where,
  type Backend,
  type CustomFunction,
  type Tensor,
} from '@lm/tensor-gpu';
import {
  applyChunkingToForward,
  Dropout,
  generate,
  Embedding,
  getActivation,
  initInPlace,
  isInitSkipped,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  PreTrainedModel,
  withoutInit,
  type Activation,
  type DecoderStep,
  type GenerateOptions,
  type GenerateOutput,
  type JsonObject,
  type ModuleOptions,
} from '@lm/layers';
import { ReformerConfig } from './config.js';

/** A bad input or config, named by its field, caught before any work. */
export class ReformerInputError extends Error {
  override name = 'ReformerInputError';
}

/** Masked dots are replaced by this (float32 values of the reference). */
const MASK_VALUE = -1e9;
/** A query's dot with itself is replaced by this (LSH only): it attends to itself only when nothing else is allowed. */
const SELF_MASK_VALUE = -1e5;

// ---- helpers (the reference's EfficientAttentionMixin and module-level functions) ----------------------

/**
 * Each chunk with `before` previous and `after` following chunks appended along the chunk axis (wrapping
 * around): [..., numChunks, chunkLen, (d)] -> [..., numChunks, chunkLen * (before + 1 + after), (d)].
 * `chunkAxis` is the numChunks axis (2 for [batch, heads, chunks, len, d]).
 */
export function lookAdjacent(vectors: Tensor, before: number, after: number, chunkAxis = 2): Tensor {
  if (before === 0 && after === 0) return vectors;
  const n = vectors.shape[chunkAxis];
  const slices: Tensor[] = [];
  for (let i = -before; i <= after; i++) {
    if (i === 0) slices.push(vectors);
    else {
      // chunk c takes chunk (c + i) mod n: roll the chunk axis by -i
      const s = ((i % n) + n) % n;
      slices.push(s === 0 ? vectors : concat([vectors.slice(chunkAxis, s), vectors.slice(chunkAxis, 0, s)], chunkAxis));
    }
  }
  return concat(slices, chunkAxis + 1);
}

/** [batch, seq, heads * headDim] -> [batch, heads, seq, headDim] */
function splitHiddenSizeDim(x: Tensor, heads: number, headSize: number): Tensor {
  const [batch, seq] = x.shape;
  return x.reshape(batch, seq, heads, headSize).permute(0, 2, 1, 3);
}

/** [batch, heads, seq, headDim] -> [batch, seq, heads * headDim] */
function mergeHiddenSizeDims(x: Tensor, heads: number, headSize: number): Tensor {
  const [batch, , seq] = x.shape;
  return x.permute(0, 2, 1, 3).reshape(batch, seq, heads * headSize);
}

/** The attention-type chunk lengths in use: lcm for padding, min for the "needs padding" test. */
function chunkLengths(config: ReformerConfig): number[] {
  const types = new Set(config.attnLayers);
  const out: number[] = [];
  if (types.has('lsh')) out.push(config.lshAttnChunkLength);
  if (types.has('local')) out.push(config.localAttnChunkLength);
  return out;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** The reference's _get_least_common_mult_chunk_len. */
export function leastCommonMultChunkLength(config: ReformerConfig): number {
  return chunkLengths(config).reduce((a, b) => (a * b) / gcd(a, b));
}

/** The reference's _get_min_chunk_len. */
export function minChunkLength(config: ReformerConfig): number {
  return Math.min(...chunkLengths(config));
}

/** The product of a factorised bucket count ([2, 4] -> 8), or the count itself. */
function totalBuckets(numBuckets: number | number[]): number {
  return Array.isArray(numBuckets) ? numBuckets.reduce((a, b) => a * b, 1) : numBuckets;
}

/**
 * Every config field the model reads, checked once before anything is allocated: attention types,
 * even bucket counts, axial shapes and dims, chunk lengths. Throws a ReformerInputError naming the field.
 */
export function validateReformerConfig(config: ReformerConfig): void {
  const bad = (msg: string) => {
    throw new ReformerInputError(`ReformerConfig: ${msg}`);
  };
  if (config.attnLayers.length === 0) bad('attn_layers is empty; give one entry per layer, each "lsh" or "local"');
  config.attnLayers.forEach((t, i) => {
    if (t !== 'lsh' && t !== 'local') bad(`attn_layers[${i}] is ${JSON.stringify(t)}; only "lsh" and "local" attention layers exist`);
  });
  const nb = config.numBuckets;
  if (nb !== null) {
    const factors = Array.isArray(nb) ? nb : [nb];
    if (factors.length === 0) bad('num_buckets is an empty list');
    factors.forEach((f) => {
      if (!Number.isInteger(f) || f <= 0 || f % 2 !== 0) bad(`num_buckets ${JSON.stringify(nb)} must be even (each factor of a list too), got ${f}`);
    });
  }
  for (const [field, v] of [
    ['lsh_attn_chunk_length', config.lshAttnChunkLength],
    ['local_attn_chunk_length', config.localAttnChunkLength],
    ['num_hashes', config.numHashes],
    ['num_attention_heads', config.numAttentionHeads],
    ['attention_head_size', config.attentionHeadSize],
  ] as const) {
    if (!Number.isInteger(v) || v <= 0) bad(`${field} must be a positive integer, got ${v}`);
  }
  if (config.axialPosEmbds) {
    const prod = config.axialPosShape.reduce((a, b) => a * b, 1);
    if (prod !== config.maxPositionEmbeddings) {
      bad(`axial_pos_shape [${config.axialPosShape.join(', ')}] multiplies to ${prod}, but max_position_embeddings is ${config.maxPositionEmbeddings}`);
    }
    if (config.axialPosEmbdsDim.length !== config.axialPosShape.length) {
      bad(`axial_pos_embds_dim [${config.axialPosEmbdsDim.join(', ')}] needs one entry per axial_pos_shape factor [${config.axialPosShape.join(', ')}]`);
    }
    const sum = config.axialPosEmbdsDim.reduce((a, b) => a + b, 0);
    if (sum !== config.hiddenSize) bad(`axial_pos_embds_dim [${config.axialPosEmbdsDim.join(', ')}] sums to ${sum}, but hidden_size is ${config.hiddenSize}`);
  }
}

// ---- position embeddings ----------------------------------------------------------------------------

/** The reference's nn.ParameterList: parameters named 0, 1, ... */
export class ParameterList extends Module {
  readonly length: number;
  constructor(tensors: Tensor[]) {
    super();
    tensors.forEach((t, i) => (this as unknown as { registerParameter(n: string, t: Tensor): void }).registerParameter(String(i), t));
    this.length = tensors.length;
  }
  at(i: number): Tensor {
    return this.getParameter(String(i))!;
  }
}

/**
 * Axial position embeddings: the position table [prod(axialPosShape), hidden] is factorised as one
 * weight per axis, weights.i [1, .., axialPosShape[i], .., 1, axialPosEmbdsDim[i]], broadcast over the
 * other axes and concatenated along the feature axis.
 */
export class AxialPositionEmbeddings extends Module {
  readonly axialPosShape: number[];
  readonly axialPosEmbdsDim: number[];
  readonly dropout: number;
  readonly leastCommonMultChunkLength: number;
  declare weights: ParameterList;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.axialPosShape = config.axialPosShape;
    this.axialPosEmbdsDim = config.axialPosEmbdsDim;
    this.dropout = config.hiddenDropoutProb;
    this.leastCommonMultChunkLength = leastCommonMultChunkLength(config);
    const weights = this.axialPosEmbdsDim.map((dim, axis) => {
      const shape = this.axialPosShape.map((s, i) => (i === axis ? s : 1)); // [1, .., s_axis, .., 1]
      return full([...shape, dim], 0, { backend: options.backend });
    });
    this.registerModule('weights', new ParameterList(weights));
  }

  /** [prod(axialPosShape), hidden]: every position's encoding, row-major over the axial shape. */
  private table(): Tensor {
    const broadcasted = this.axialPosEmbdsDim.map((dim, i) => this.weights.at(i).expand(...this.axialPosShape, dim)); // [a0, a1, .., dim_i]
    const total = this.axialPosShape.reduce((a, b) => a * b, 1);
    return concat(broadcasted, -1).reshape(total, -1); // [prod, hidden]
  }

  forward(positionIds: Tensor): Tensor {
    const [batch, seq] = positionIds.shape;
    const total = this.axialPosShape.reduce((a, b) => a * b, 1);
    if (this.training) {
      // As the reference: in training the whole table is used (positions 0..seq-1), so seq must fill it.
      if (total !== seq) {
        throw new ReformerInputError(
          `AxialPositionEmbeddings: in training, axial_pos_shape [${this.axialPosShape.join(', ')}] must multiply to the sequence length ${seq}, got ${total}; pad the input or change axial_pos_shape`,
        );
      }
      const broadcasted = this.axialPosEmbdsDim.map((dim, i) => this.weights.at(i).expand(batch, ...this.axialPosShape, dim)); // [batch, a0, a1, dim_i]
      let weights = concat(broadcasted, -1); // [batch, a0, a1, hidden]
      if (this.dropout > 0 && this.axialPosShape.length === 2) {
        // dropout2d over the transposed [batch, a1, a0, hidden]: whole (a0, hidden) planes per a1 index.
        const keepMask = bernoulli([batch, 1, this.axialPosShape[1], 1], 1 - this.dropout, { backend: weights.backend });
        weights = weights.mul(keepMask).mulScalar(1 / (1 - this.dropout));
      }
      return weights.reshape(batch, seq, -1); // [batch, seq, hidden]
    }
    if (seq > total) {
      throw new ReformerInputError(
        `AxialPositionEmbeddings: the sequence length ${seq} exceeds prod(axial_pos_shape [${this.axialPosShape.join(', ')}]) = ${total}; use a shorter input or a larger axial_pos_shape`,
      );
    }
    // Eval: the encodings of the given positions (the reference cuts the table to the needed columns first).
    const table = this.table(); // [prod, hidden]
    return table.indexSelect(0, positionIds.reshape(-1)).reshape(batch, seq, -1); // [batch, seq, hidden]
  }
}

/** Ordinary learned position embeddings (axial_pos_embds false): `embedding` [maxPositions, hidden], then dropout. */
export class PositionEmbeddings extends Module {
  declare embedding: Embedding;
  declare dropoutLayer: Dropout;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('embedding', new Embedding(config.maxPositionEmbeddings, config.hiddenSize, { backend: options.backend }));
    this.registerModule('dropoutLayer', new Dropout(config.hiddenDropoutProb));
  }

  forward(positionIds: Tensor): Tensor {
    return this.dropoutLayer.forward(this.embedding.forward(positionIds)); // [batch, seq, hidden]
  }
}

// ---- embeddings --------------------------------------------------------------------------------------

/** Word embeddings (dropped out) + position embeddings (axial or learned). */
export class ReformerEmbeddings extends Module {
  readonly maxPositionEmbeddings: number;
  declare word_embeddings: Embedding;
  declare position_embeddings: AxialPositionEmbeddings | PositionEmbeddings;
  declare dropout: Dropout;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.maxPositionEmbeddings = config.maxPositionEmbeddings;
    this.registerModule('word_embeddings', new Embedding(config.vocabSize, config.hiddenSize, { backend: options.backend }));
    this.registerModule('position_embeddings', config.axialPosEmbds ? new AxialPositionEmbeddings(config, options) : new PositionEmbeddings(config, options));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
  }

  forward(options: { inputIds?: Tensor | null; positionIds?: Tensor | null; inputsEmbeds?: Tensor | null; startIdxPosEncodings?: number }): Tensor {
    const { inputIds } = options;
    const inputShape = inputIds ? inputIds.shape : options.inputsEmbeds!.shape.slice(0, -1); // [batch, seq]
    const [batch, seqLength] = inputShape;
    const backend = (inputIds ?? options.inputsEmbeds)!.backend;
    const start = options.startIdxPosEncodings ?? 0;
    const positionIds = options.positionIds ?? arange(start, start + seqLength, 1, { backend }).reshape(1, seqLength).expand(batch, seqLength); // [batch, seq]
    const inputsEmbeds = options.inputsEmbeds ?? this.word_embeddings.forward(inputIds!); // [batch, seq, hidden]
    if (positionIds.shape[positionIds.rank - 1] > this.maxPositionEmbeddings) {
      throw new ReformerInputError(
        `ReformerEmbeddings: sequence length ${positionIds.shape[positionIds.rank - 1]} exceeds max_position_embeddings ${this.maxPositionEmbeddings}`,
      );
    }
    const embeddings = this.dropout.forward(inputsEmbeds);
    return embeddings.add(this.position_embeddings.forward(positionIds)); // [batch, seq, hidden]
  }
}

// ---- attention: shared pieces ------------------------------------------------------------------------

/** One attention layer's cache entry: LSH buckets [batch, heads, numHashes, len] (null for local) and the cached hidden states [batch, len, hidden]. */
export type LayerPastBucketsStates = readonly [Tensor | null, Tensor | null];
/** One entry per layer. */
export type PastBucketsStates = readonly LayerPastBucketsStates[];

export interface SelfAttentionOptions {
  /** 1 = attend, 0 = padding: [batch, seq] (int32 or bool). */
  attentionMask?: Tensor | null;
  /** [1, heads, 1, 1] multiplying the probabilities. */
  headMask?: Tensor | null;
  /** Overrides config.numHashes (LSH). */
  numHashes?: number | null;
  /** LSH: the buckets of the forward pass, reused when the reversible backward recomputes the layer. */
  buckets?: Tensor | null;
  pastBucketsStates?: LayerPastBucketsStates | null;
  useCache?: boolean;
  outputAttentions?: boolean;
}

export interface SelfAttentionOutput {
  /** [batch, seq, heads * headDim] */
  hiddenStates: Tensor;
  /** The probabilities (chunked layout, see the attentions outputs), when asked for. */
  attentionProbs?: Tensor;
  /** LSH: [batch, heads, numHashes, seq] with hash-round offsets, when hashed. */
  buckets?: Tensor | null;
}

/**
 * Replaces masked dots (padding keys, future keys for decoders) by MASK_VALUE: masking by replacement,
 * as the reference does. qIdx [..., q] / kIdx [..., k] are the sequence positions of queries and keys
 * (int32, broadcastable to dots [..., q, k] without their last axes); keyMask [..., k] is the padding mask
 * already laid out like kIdx (bool), or null.
 */
function maskDots(dots: Tensor, qIdx: Tensor, kIdx: Tensor, keyMask: Tensor | null, isDecoder: boolean): Tensor {
  let mask: Tensor | null = keyMask ? keyMask.unsqueeze(-2) : null; // [..., 1, k]
  if (isDecoder) {
    const causal = qIdx.unsqueeze(-1).ge(kIdx.unsqueeze(-2)); // [..., q, k]
    mask = mask ? causal.logicalAnd(mask) : causal;
  }
  return mask ? where(mask, dots, MASK_VALUE) : dots;
}

/**
 * The reference's exp(x - logsumexp(x)) and logsumexp(x) over the last axis, as one function built on the
 * fused softmax s instead of the composite logsumexp and a second pass of exps. The row max m has
 * probability exp(m - lse), so log(sum) = -log(max s). The reference rounds lse = m + log(sum) to
 * float32 before subtracting it (visible where m is large, as in rows masked to the self value -1e5):
 * its probabilities are s * c with c = exp(the rounding error), a per-row factor.
 * Backward: with y = s * c, d/dx = y * (gY - (sum(gY * y) - gL) / c).
 */
const softmaxAndLogsumexp: CustomFunction<[Tensor]> = {
  name: 'softmaxAndLogsumexp',
  forward: (ctx, dots) => {
    const { probs, logits, c } = scope(() => {
      const s = softmax(dots, -1);
      const m = dots.max(-1, true); // [..., q, 1]
      const logSum = s.max(-1, true).log().neg(); // [..., q, 1]
      const logits = m.add(logSum); // [..., q, 1], rounded like the reference's
      const c = logSum.sub(logits.sub(m)).exp(); // exp(exact - rounded): m + logSum - logits, exactly (Fast2Sum)
      return { probs: s.mul(c), logits, c };
    });
    ctx.saveForBackward(probs, c);
    return [probs, logits];
  },
  backward: (ctx, gradProbs, gradLogits) =>
    scope(() => {
      const [probs, c] = ctx.saved;
      // The row term is [..., q, 1]: one full-size product, one subtraction, one product.
      let row = gradProbs ? gradProbs.mul(probs).sum(-1, true) : null;
      if (gradLogits) row = row ? row.sub(gradLogits) : gradLogits.neg();
      row = row!.div(c);
      return [probs.mul(gradProbs ? gradProbs.sub(row) : row.neg())];
    }),
};

/** softmax by exp(x - logsumexp(x)) as the reference computes it; returns the probabilities and the logsumexp. */
function expNormalize(dots: Tensor): { probs: Tensor; logits: Tensor } {
  const [probs, logits] = applyFunction(softmaxAndLogsumexp, dots) as Tensor[];
  return { probs, logits };
}

/**
 * Rows of the heads' vectors picked by position, as one row gather (whole d-vectors, and a row scatter in
 * backward) rather than an element-wise gather: x [batch, seq, heads * d] (a projection's output, read in
 * place as [batch * seq * heads, d]) and positions [batch, heads, m] -> [batch, heads, m, d].
 */
function gatherHeadRows(x: Tensor, positions: Tensor, heads: number): Tensor {
  const [batch, seq] = x.shape;
  const d = x.shape[2] / heads;
  const m = positions.shape[2];
  const backend = x.backend;
  // row of (b, h, pos) = (b * seq + pos) * heads + h
  const base = arange(0, batch, 1, { backend }).mulScalar(seq * heads).reshape(batch, 1, 1).add(arange(0, heads, 1, { backend }).reshape(1, heads, 1)); // [batch, heads, 1]
  const rows = positions.mulScalar(heads).add(base).reshape(batch * heads * m);
  return x.reshape(batch * seq * heads, d).indexSelect(0, rows).reshape(batch, heads, m, d); // [batch, heads, m, d]
}

/** The padding mask as bool [batch, seq], or null. */
function boolMask(attentionMask: Tensor | null | undefined): Tensor | null {
  if (!attentionMask) return null;
  return attentionMask.dtype === 'bool' ? attentionMask : attentionMask.ne(0);
}

/** Multiplies probabilities [batch, heads, ...] by a head mask [1, heads, 1, 1] (any rank of probs). */
function applyHeadMask(probs: Tensor, headMask: Tensor | null | undefined): Tensor {
  if (!headMask) return probs;
  return probs.mul(headMask.reshape(1, headMask.size, ...Array<number>(probs.rank - 2).fill(1))); // [1, heads, 1, ..]
}

// ---- LSH self-attention --------------------------------------------------------------------------------

/** Where the random rotations come from: (layer, shape) -> [heads, headDim, numHashes, rotationSize / 2]. */
export type RotationSource = (shape: number[]) => Tensor;

/** A fresh seed from a generator's stream, so a module's own generator follows manualSeed. */
function seedFrom(gen: Generator): number {
  const u = new Float32Array(2);
  philoxFill(u, 'uniform', gen.seed, gen.take(2), 0, 1);
  return Math.floor(u[0] * 2 ** 24) * 2 ** 24 + Math.floor(u[1] * 2 ** 24);
}

/**
 * Locality-sensitive-hashing self-attention. Queries and keys are one projection (`query_key`); each
 * vector is hashed into a bucket by random rotations (argmax over [xR, -xR]), numHashes times; positions
 * are sorted by (bucket, position), cut into chunks of lshAttnChunkLength, and each chunk attends to
 * itself and its neighbours. A token never attends to itself unless nothing else is allowed. The rounds
 * are combined with weights softmax(logsumexp of each round). Sequences no longer than a chunk (and
 * cached decoding) take ordinary attention over all keys.
 */
export class LSHSelfAttention extends Module {
  readonly chunkLength: number;
  readonly numHashes: number;
  numBuckets: number | number[] | null;
  readonly numChunksBefore: number;
  readonly numChunksAfter: number;
  readonly hashSeed: number | null;
  readonly isDecoder: boolean;
  readonly maxPositionEmbeddings: number;
  readonly dropout: number;
  readonly numAttentionHeads: number;
  readonly attentionHeadSize: number;
  readonly allHeadSize: number;
  readonly hiddenSize: number;
  readonly config: ReformerConfig;
  declare query_key: Linear;
  declare value: Linear;
  /** Replaces the seeded draw of random rotations (tests inject the reference's draws). */
  rotationSource: RotationSource | null = null;
  /**
   * Cached decoding with cached buckets: false (the reference) makes every batch row gather the first
   * row's cached states; true gathers each row's own. Batch size 1 is the same either way.
   */
  batchOffsetInCachedAttention = false;
  /** The generator of the rotations when hashSeed is null (its own, so dropout replay is unaffected). */
  readonly rotationGenerator: Generator;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.config = config;
    this.chunkLength = config.lshAttnChunkLength;
    this.numHashes = config.numHashes;
    this.numBuckets = config.numBuckets;
    this.numChunksBefore = config.lshNumChunksBefore;
    this.numChunksAfter = config.lshNumChunksAfter;
    this.hashSeed = config.hashSeed;
    this.isDecoder = config.isDecoder;
    this.maxPositionEmbeddings = config.maxPositionEmbeddings;
    this.dropout = config.lshAttentionProbsDropoutProb;
    this.numAttentionHeads = config.numAttentionHeads;
    this.attentionHeadSize = config.attentionHeadSize;
    this.allHeadSize = this.numAttentionHeads * this.attentionHeadSize;
    this.hiddenSize = config.hiddenSize;
    this.registerModule('query_key', new Linear(this.hiddenSize, this.allHeadSize, { bias: false, backend: options.backend }));
    this.registerModule('value', new Linear(this.hiddenSize, this.allHeadSize, { bias: false, backend: options.backend }));
    this.rotationGenerator = new Generator(seedFrom(defaultGenerator));
  }

  forward(hiddenStates: Tensor, options: SelfAttentionOptions = {}): SelfAttentionOutput {
    const [batch, sequenceLength] = hiddenStates.shape;
    const H = this.numAttentionHeads;
    const d = this.attentionHeadSize;
    // The reversible backward hands back the forward's buckets: their round count wins.
    const numHashes = options.buckets ? options.buckets.shape[2] : (options.numHashes ?? this.numHashes);
    const past = options.pastBucketsStates ?? null;
    const doCachedAttention = !!options.useCache && !!past && past[1] !== null;
    const attentionMask = boolMask(options.attentionMask);

    if (doCachedAttention) {
      if (sequenceLength !== 1) {
        throw new ReformerInputError(`LSHSelfAttention: cached decoding (pastBucketsStates) takes one new token at a time, got ${sequenceLength}`);
      }
      return this.cachedForward(hiddenStates, past, numHashes);
    }

    const queryKeyProjection = this.query_key.forward(hiddenStates); // [batch, seq, heads * d]
    const valueProjection = this.value.forward(hiddenStates); // [batch, seq, heads * d]
    const queryKeyVectors = splitHiddenSizeDim(queryKeyProjection, H, d); // [batch, heads, seq, d]
    const doStandardSelfAttention = sequenceLength <= this.chunkLength;

    let buckets: Tensor | null = options.buckets ?? null;
    if (doStandardSelfAttention) {
      // Ordinary attention over the whole (short) sequence: positions are their own bucket indices.
      const positions = arange(0, sequenceLength, 1, { backend: hiddenStates.backend }).reshape(1, 1, sequenceLength); // [1, 1, seq]
      const keyVectors = this.lenAndDimNorm(queryKeyVectors);
      const { out, probs } = this.attend(queryKeyVectors, keyVectors, splitHiddenSizeDim(valueProjection, H, d), positions, positions, attentionMask?.reshape(batch, 1, sequenceLength) ?? null, options.headMask);
      const result: SelfAttentionOutput = { hiddenStates: mergeHiddenSizeDims(out, H, d), buckets };
      if (options.outputAttentions) result.attentionProbs = probs;
      return result;
    }

    if (this.numBuckets === null) this.setNumBuckets(sequenceLength);
    // Hash (or reuse the forward pass's buckets in the reversible backward): [batch, heads, hashes, seq].
    if (!buckets) buckets = this.hashVectors(queryKeyVectors, numHashes, attentionMask);
    const flatBuckets = buckets.reshape(batch, H, numHashes * sequenceLength); // [batch, heads, hashes * seq], hash-major
    // Stable sort by bucket (ties by hash-major index), and the inverse permutation.
    const sortedBucketIdx = argsort(flatBuckets, -1); // [batch, heads, hashes * seq]
    const undoSortedBucketIdx = argsort(sortedBucketIdx, -1); // [batch, heads, hashes * seq]
    // Sequence position of every sorted slot (sorted_idx % seq).
    const tiledPositions = arange(0, sequenceLength, 1, { backend: hiddenStates.backend })
      .reshape(1, 1, 1, sequenceLength)
      .expand(batch, H, numHashes, sequenceLength)
      .reshape(batch, H, numHashes * sequenceLength); // [batch, heads, hashes * seq]
    const sortedPositions = tiledPositions.gather(-1, sortedBucketIdx); // [batch, heads, hashes * seq]

    // Cluster the vectors by bucket, then cut into chunks.
    const total = numHashes * sequenceLength;
    const numChunks = total / this.chunkLength;
    if (!Number.isInteger(numChunks)) {
      throw new ReformerInputError(`LSHSelfAttention: the sequence length ${sequenceLength} is not a multiple of lsh_attn_chunk_length ${this.chunkLength}`);
    }
    const sortedQueryKeys = gatherHeadRows(queryKeyProjection, sortedPositions, H).reshape(batch, H, numChunks, this.chunkLength, d); // [batch, heads, chunks, chunk, d]
    const sortedValues = gatherHeadRows(valueProjection, sortedPositions, H).reshape(batch, H, numChunks, this.chunkLength, d); // [batch, heads, chunks, chunk, d]
    const keyVectors = lookAdjacent(this.lenAndDimNorm(sortedQueryKeys), this.numChunksBefore, this.numChunksAfter); // [batch, heads, chunks, K, d]
    const values = lookAdjacent(sortedValues, this.numChunksBefore, this.numChunksAfter); // [batch, heads, chunks, K, d]
    const queryBucketIdx = sortedPositions.reshape(batch, H, numChunks, this.chunkLength); // [batch, heads, chunks, chunk]
    const keyValueBucketIdx = lookAdjacent(queryBucketIdx, this.numChunksBefore, this.numChunksAfter); // [batch, heads, chunks, K]
    let keyMask: Tensor | null = null;
    if (attentionMask) {
      const K = keyValueBucketIdx.shape[3];
      keyMask = attentionMask
        .reshape(batch, 1, sequenceLength)
        .expand(batch, H, sequenceLength)
        .gather(-1, keyValueBucketIdx.reshape(batch, H, numChunks * K))
        .reshape(batch, H, numChunks, K); // [batch, heads, chunks, K]
    }
    const { out, logits, probs } = this.attend(sortedQueryKeys, keyVectors, values, queryBucketIdx, keyValueBucketIdx, keyMask, options.headMask);

    // Unsort, one row gather straight into [batch, hashes, seq, heads] order (no merge of heads after):
    // the row of (b, h, slot) in the flat sorted output is (b * heads + h) * total + slot.
    const blockBase = arange(0, batch * H, 1, { backend: hiddenStates.backend }).mulScalar(total).reshape(batch, H, 1); // [batch, heads, 1]
    const unsortRows = undoSortedBucketIdx
      .add(blockBase)
      .reshape(batch, H, numHashes, sequenceLength)
      .permute(0, 2, 3, 1)
      .reshape(batch * numHashes * sequenceLength * H); // rows in [batch, hashes, seq, heads] order
    let outVectors = out.reshape(batch * H * total, d).indexSelect(0, unsortRows).reshape(batch, numHashes, sequenceLength, H, d); // [batch, hashes, seq, heads, d]
    if (numHashes > 1) {
      // Combine the rounds: weights softmax over rounds of each round's logsumexp.
      const l = logits.reshape(batch * H * total, 1).indexSelect(0, unsortRows).reshape(batch, numHashes, sequenceLength, H, 1); // [batch, hashes, seq, heads, 1]
      // exp(l - logsumexp(l)) as the reference (not softmax: its rounding of large logsumexps shows in padded rows)
      outVectors = outVectors.mul(l.sub(l.logsumexp(1, true)).exp()).sum(1); // [batch, seq, heads, d]
    }
    const result: SelfAttentionOutput = { hiddenStates: outVectors.reshape(batch, sequenceLength, H * d), buckets };
    if (options.outputAttentions) result.attentionProbs = probs;
    return result;
  }

  /**
   * One new token attending through the cache (the reference's cached path). Before any buckets are
   * cached the query attends to every cached state (and, once cached + new reaches a chunk, all of them
   * are hashed and cached as buckets); afterwards only the query is hashed, and it attends per round to
   * the (before + 1 + after) chunks around its slot in the stable-sorted [past buckets, query bucket].
   */
  private cachedForward(hiddenStates: Tensor, past: LayerPastBucketsStates, numHashes: number): SelfAttentionOutput {
    const [batch] = hiddenStates.shape;
    const H = this.numAttentionHeads;
    const d = this.attentionHeadSize;
    const backend = hiddenStates.backend;
    const [pastBuckets, pastStates] = past;
    const queryVectors = splitHiddenSizeDim(this.query_key.forward(hiddenStates), H, d); // [batch, heads, 1, d]
    const kvStates = concat([pastStates!, hiddenStates], 1); // [batch, L, hidden]
    const L = kvStates.shape[1];

    if (!pastBuckets) {
      if (this.numBuckets === null && L >= this.chunkLength) this.setNumBuckets(L);
      const queryKeyVectors = splitHiddenSizeDim(this.query_key.forward(kvStates), H, d); // [batch, heads, L, d]
      const valueVectors = splitHiddenSizeDim(this.value.forward(kvStates), H, d); // [batch, heads, L, d]
      // Cache buckets as soon as the states fill a chunk.
      const buckets = L >= this.chunkLength ? this.hashVectors(queryKeyVectors, numHashes, null) : null;
      const keyVectors = this.lenAndDimNorm(queryKeyVectors);
      const qIdx = full([1, 1, 1], L - 1, { dtype: 'int32', backend }); // the query sits last
      const kIdx = arange(0, L, 1, { backend }).reshape(1, 1, L);
      const dots = this.selfMask(queryVectors.matmul(keyVectors.transpose(-1, -2)), qIdx, kIdx); // [batch, heads, 1, L]
      const { probs } = expNormalize(dots);
      const out = probs.matmul(valueVectors); // [batch, heads, 1, d]
      return { hiddenStates: mergeHiddenSizeDims(out, H, d), buckets };
    }

    // The query's own buckets; a cached pad bucket (from a padded prompt) shifts the round offsets.
    const maxBucket = totalBuckets(this.numBuckets!);
    const increase = pastBuckets.max().gtScalar(numHashes * maxBucket - 1);
    const queryBuckets = this.hashVectors(queryVectors, numHashes, null, increase); // [batch, heads, hashes, 1]
    const concatBuckets = concat([pastBuckets, queryBuckets], -1); // [batch, heads, hashes, L]
    const bucketIdx = argsort(concatBuckets, -1); // [batch, heads, hashes, L]: positions in sorted order
    // The query's slot in each round's sorted order, and the chunks around it (wrapping).
    const slot = argsort(bucketIdx, -1).slice(-1, L - 1, L).toFloat(); // [batch, heads, hashes, 1]
    const totalChunk = this.chunkLength * (1 + this.numChunksBefore + this.numChunksAfter);
    const start = slot.divScalar(this.chunkLength).floor().subScalar(this.numChunksBefore).mulScalar(this.chunkLength);
    const raw = start.add(arange(0, totalChunk, 1, { backend, dtype: 'float32' })); // [batch, heads, hashes, total]
    const wrapped = raw.sub(raw.divScalar(L).floor().mulScalar(L)).toInt(); // python % L
    const relevantIdx = bucketIdx.gather(-1, wrapped); // [batch, heads, hashes, total]: sequence positions
    // Rows of the flattened [batch * L, hidden] states. The reference's batch offset comes out as 0 here
    // (its parity fixtures confirm it): every batch row reads the first row's cached states in this path.
    // `batchOffsetInCachedAttention` gives each row its own states instead (see decision 0010).
    const rowOffset = this.batchOffsetInCachedAttention ? L : 0;
    const flatIdx = relevantIdx.add(arange(0, batch, 1, { backend }).mulScalar(rowOffset).reshape(batch, 1, 1, 1)).reshape(-1); // into [batch * L]
    const relevantStates = kvStates.reshape(batch * L, this.hiddenSize).indexSelect(0, flatIdx).reshape(batch, H, numHashes * totalChunk, this.hiddenSize); // [batch, heads, hashes * total, hidden]
    // Per-head projections of the gathered states (no biases): [batch, heads, hashes * total, d].
    const perHead = (w: Tensor) => w.reshape(H, d, this.hiddenSize).transpose(-2, -1).unsqueeze(0); // [1, heads, hidden, d]
    const queryKeyVectors = relevantStates.matmul(perHead(this.query_key.weight)).reshape(batch, H, numHashes, totalChunk, d);
    const valueVectors = relevantStates.matmul(perHead(this.value.weight)).reshape(batch, H, numHashes, totalChunk, d);
    const keyVectors = this.lenAndDimNorm(queryKeyVectors);
    const q = queryVectors.unsqueeze(2).expand(batch, H, numHashes, 1, d); // [batch, heads, hashes, 1, d]
    const qIdx = full([1, 1, 1, 1], L - 1, { dtype: 'int32', backend });
    const dots = this.selfMask(q.matmul(keyVectors.transpose(-1, -2)), qIdx, relevantIdx); // [batch, heads, hashes, 1, total]
    const { probs, logits } = expNormalize(dots);
    let out = probs.matmul(valueVectors); // [batch, heads, hashes, 1, d]
    if (numHashes > 1) {
      const w = logits.sub(logits.logsumexp(2, true)).exp(); // [batch, heads, hashes, 1, 1]
      out = out.mul(w).sum(2); // [batch, heads, 1, d]
    } else {
      out = out.reshape(batch, H, 1, d);
    }
    return { hiddenStates: mergeHiddenSizeDims(out, H, d), buckets: queryBuckets };
  }

  /**
   * The bucket of every position per head and hash round, round offsets removed: int32 [batch, heads,
   * numHashes, seq] for normalised hidden states [batch, seq, hidden] (no padding). Hashes even sequences
   * no longer than a chunk (which attend without buckets), for inspection (the playground's view).
   */
  bucketsFor(hiddenStates: Tensor, numHashes: number = this.numHashes): Tensor {
    const [, seq] = hiddenStates.shape;
    if (this.numBuckets === null) this.setNumBuckets(Math.max(seq, 2 * this.chunkLength));
    const vectors = splitHiddenSizeDim(this.query_key.forward(hiddenStates), this.numAttentionHeads, this.attentionHeadSize); // [batch, heads, seq, d]
    const rounds = arange(0, numHashes, 1, { backend: hiddenStates.backend }).reshape(1, 1, numHashes, 1);
    return this.hashVectors(vectors, numHashes, null).sub(rounds.mulScalar(totalBuckets(this.numBuckets!))); // [batch, heads, hashes, seq]
  }

  /** The reference's _set_num_buckets: about 2 * seq / chunk buckets, factorised when that exceeds the limit. */
  setNumBuckets(sequenceLength: number): void {
    const pow2 = Math.floor(Math.log2(2 * Math.floor(sequenceLength / this.chunkLength)));
    let numBuckets: number | number[] = 2 ** pow2;
    const limit = 2 * Math.max(Math.floor(Math.sqrt(Math.floor(this.maxPositionEmbeddings / this.chunkLength))), this.chunkLength);
    if (numBuckets > limit) numBuckets = [2 ** Math.floor(pow2 / 2), 2 ** (pow2 - Math.floor(pow2 / 2))];
    this.config.numBuckets = numBuckets;
    this.numBuckets = numBuckets;
  }

  /** [heads, headDim, numHashes, rotationSize / 2] standard-normal rotations (injected, seeded, or fresh). */
  private randomRotations(shape: number[], backend: Backend): Tensor {
    if (this.rotationSource) {
      const r = this.rotationSource(shape);
      if (r.shape.length !== shape.length || r.shape.some((s, i) => s !== shape[i])) {
        throw new ShapeError(`LSHSelfAttention: injected rotations have shape [${r.shape.join(',')}], expected [${shape.join(',')}]`);
      }
      return r;
    }
    const generator = this.hashSeed !== null ? new Generator(this.hashSeed) : this.rotationGenerator;
    return randn(shape, { generator, backend });
  }

  /**
   * Buckets of vectors [batch, heads, seq, d] for numHashes rounds: argmax over [xR, -xR] (per factor of
   * a factorised num_buckets), padding positions to the extra bucket numBuckets, plus round offsets
   * round * (numBuckets (+1 with the pad bucket)). Returns int32 [batch, heads, numHashes, seq].
   */
  hashVectors(vectors: Tensor, numHashes: number, attentionMask: Tensor | null, increaseNumBuckets: Tensor | null = null): Tensor {
    const [batch, H, seq, d] = vectors.shape;
    const factors = Array.isArray(this.numBuckets) ? this.numBuckets : [this.numBuckets!];
    const rotationSize = factors.reduce((a, b) => a + b, 0);
    const numBuckets = totalBuckets(this.numBuckets!);
    const rotations = this.randomRotations([H, d, numHashes, rotationSize / 2], vectors.backend); // [heads, d, hashes, r/2]
    // einsum('bmtd,mdhr->bmhtr'): [batch, heads, seq, d] @ [1, heads, d, hashes * r/2]
    const rotated = vectors
      .detach()
      .matmul(rotations.reshape(1, H, d, numHashes * (rotationSize / 2)))
      .reshape(batch, H, seq, numHashes, rotationSize / 2)
      .permute(0, 1, 3, 2, 4); // [batch, heads, hashes, seq, r/2]
    let buckets: Tensor | null = null;
    let curSum = 0;
    let curProduct = 1;
    for (const factor of factors) {
      const r = rotated.slice(-1, curSum, curSum + factor / 2);
      curSum += factor / 2;
      const b = concat([r, r.neg()], -1).argmax(-1); // [batch, heads, hashes, seq]
      buckets = buckets ? buckets.add(b.mulScalar(curProduct)) : b;
      curProduct *= factor;
    }
    let result = buckets!;
    // The pad bucket exists only when the mask has a 0 (the reference tests mask.sum() < batch * seq).
    let bucketsPerRound: Tensor | number = numBuckets;
    if (attentionMask) {
      const hasPad = attentionMask.logicalNot().toInt().max(); // [] 0 or 1
      bucketsPerRound = hasPad.addScalar(numBuckets); // []
      result = where(attentionMask.reshape(batch, 1, 1, seq), result, bucketsPerRound.subScalar(1));
    } else if (increaseNumBuckets) {
      bucketsPerRound = increaseNumBuckets.toInt().addScalar(numBuckets);
    }
    const rounds = arange(0, numHashes, 1, { backend: vectors.backend }).reshape(1, 1, numHashes, 1);
    const offsets = typeof bucketsPerRound === 'number' ? rounds.mulScalar(bucketsPerRound) : rounds.mul(bucketsPerRound);
    return result.add(offsets); // [batch, heads, hashes, seq]
  }

  /** Keys are length-normalised (x * rsqrt(mean(x^2) + 1e-6)) and divided by sqrt(headDim); queries are not. */
  private lenAndDimNorm(x: Tensor): Tensor {
    const variance = x.square().mean(-1, true);
    return x.mul(variance.addScalar(1e-6).rsqrt()).divScalar(Math.sqrt(this.attentionHeadSize));
  }

  /** A query never attends to its own position (dots := SELF_MASK_VALUE there), applied after the other masks. */
  private selfMask(dots: Tensor, qIdx: Tensor, kIdx: Tensor): Tensor {
    return where(qIdx.unsqueeze(-1).ne(kIdx.unsqueeze(-2)), dots, SELF_MASK_VALUE);
  }

  /** q.k^T, masks (padding, causal, self), exp-normalise, dropout, head mask, . v. */
  private attend(q: Tensor, k: Tensor, v: Tensor, qIdx: Tensor, kIdx: Tensor, keyMask: Tensor | null, headMask: Tensor | null | undefined): { out: Tensor; logits: Tensor; probs: Tensor } {
    let dots = q.matmul(k.transpose(-1, -2)); // [..., q, K]
    dots = maskDots(dots, qIdx, kIdx, keyMask, this.isDecoder);
    dots = this.selfMask(dots, qIdx, kIdx);
    const { probs: p, logits } = expNormalize(dots);
    let probs = dropout(p, this.dropout, this.training); // the reference's nn.functional.dropout
    probs = applyHeadMask(probs, headMask);
    return { out: probs.matmul(v), logits, probs };
  }
}

// ---- local self-attention ----------------------------------------------------------------------------

/**
 * Chunked local attention: the sequence is cut into chunks of localAttnChunkLength; each chunk attends to
 * itself and numChunksBefore previous / numChunksAfter following chunks (wrapping). Keys are divided by
 * sqrt(headDim); there is no self mask.
 */
export class LocalSelfAttention extends Module {
  readonly numAttentionHeads: number;
  readonly chunkLength: number;
  readonly numChunksBefore: number;
  readonly numChunksAfter: number;
  readonly isDecoder: boolean;
  readonly attentionHeadSize: number;
  readonly allHeadSize: number;
  readonly hiddenSize: number;
  readonly dropout: number;
  declare query: Linear;
  declare key: Linear;
  declare value: Linear;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.numAttentionHeads = config.numAttentionHeads;
    this.chunkLength = config.localAttnChunkLength;
    this.numChunksBefore = config.localNumChunksBefore;
    this.numChunksAfter = config.localNumChunksAfter;
    this.isDecoder = config.isDecoder;
    this.attentionHeadSize = config.attentionHeadSize;
    this.allHeadSize = this.numAttentionHeads * this.attentionHeadSize;
    this.hiddenSize = config.hiddenSize;
    const linear = () => new Linear(this.hiddenSize, this.allHeadSize, { bias: false, backend: options.backend });
    this.registerModule('query', linear());
    this.registerModule('key', linear());
    this.registerModule('value', linear());
    this.dropout = config.localAttentionProbsDropoutProb;
  }

  forward(hiddenStates: Tensor, options: SelfAttentionOptions = {}): SelfAttentionOutput {
    const [batch, sequenceLength] = hiddenStates.shape;
    const H = this.numAttentionHeads;
    const d = this.attentionHeadSize;
    const backend = hiddenStates.backend;
    const past = options.pastBucketsStates ?? null;
    const cached = !!options.useCache && !!past && past[1] !== null;
    let attentionMask = boolMask(options.attentionMask);

    let keyValueStates = hiddenStates;
    if (cached) {
      if (past[0] !== null) throw new ReformerInputError('LocalSelfAttention: the cache of a local layer holds no buckets');
      // The cached states from the chunk(s) the new token looks back to (python slice, negative start included).
      const prev = past[1]!;
      const len = prev.shape[1];
      const s = (Math.floor(len / this.chunkLength) - this.numChunksBefore) * this.chunkLength;
      const startPosition = s >= 0 ? Math.min(s, len) : Math.max(0, len + s);
      keyValueStates = concat([prev.slice(1, startPosition), hiddenStates], 1); // [batch, keys, hidden]
      attentionMask = null;
    }
    let queryVectors = splitHiddenSizeDim(this.query.forward(hiddenStates), H, d); // [batch, heads, seq, d]
    let keyVectors = splitHiddenSizeDim(this.key.forward(keyValueStates), H, d).divScalar(Math.sqrt(d)); // [batch, heads, keys, d]
    let valueVectors = splitHiddenSizeDim(this.value.forward(keyValueStates), H, d); // [batch, heads, keys, d]

    const indices = arange(0, sequenceLength, 1, { backend }).reshape(1, 1, sequenceLength); // [1, 1, seq]
    const doStandardSelfAttention = sequenceLength <= this.chunkLength;
    let queryIndices = indices;
    let keyIndices = indices;
    let keyMask: Tensor | null = attentionMask ? attentionMask.reshape(batch, 1, sequenceLength) : null; // [batch, 1, seq]
    if (!doStandardSelfAttention) {
      const numChunks = sequenceLength / this.chunkLength;
      if (!Number.isInteger(numChunks)) {
        throw new ReformerInputError(`LocalSelfAttention: the sequence length ${sequenceLength} is not a multiple of local_attn_chunk_length ${this.chunkLength}`);
      }
      const chunk = (x: Tensor) => x.reshape(batch, H, numChunks, this.chunkLength, d); // [batch, heads, chunks, chunk, d]
      queryVectors = chunk(queryVectors);
      keyVectors = lookAdjacent(chunk(keyVectors), this.numChunksBefore, this.numChunksAfter); // [batch, heads, chunks, K, d]
      valueVectors = lookAdjacent(chunk(valueVectors), this.numChunksBefore, this.numChunksAfter);
      queryIndices = indices.reshape(1, 1, numChunks, this.chunkLength); // [1, 1, chunks, chunk]
      keyIndices = lookAdjacent(queryIndices, this.numChunksBefore, this.numChunksAfter); // [1, 1, chunks, K]
      if (keyMask) keyMask = lookAdjacent(keyMask.reshape(batch, 1, numChunks, this.chunkLength), this.numChunksBefore, this.numChunksAfter); // [batch, 1, chunks, K]
    }

    let dots = queryVectors.matmul(keyVectors.transpose(-1, -2)); // [batch, heads, (chunks,) q, K]
    // In cached decoding the single query's causal mask keeps every key (as in the reference).
    if (!cached) dots = maskDots(dots, queryIndices, keyIndices, keyMask, this.isDecoder);
    let probs = softmax(dots, -1);
    probs = dropout(probs, this.dropout, this.training);
    probs = applyHeadMask(probs, options.headMask);
    let out = probs.matmul(valueVectors); // [batch, heads, (chunks,) chunk, d]
    if (!doStandardSelfAttention) out = out.reshape(batch, H, sequenceLength, d);
    const result: SelfAttentionOutput = { hiddenStates: mergeHiddenSizeDims(out, H, d) };
    if (options.outputAttentions) result.attentionProbs = probs;
    return result;
  }
}

// ---- the attention block -------------------------------------------------------------------------------

/** dense (no bias) + dropout. */
export class ReformerSelfOutput extends Module {
  declare dense: Linear;
  declare dropout: Dropout;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    const allHeadSize = config.numAttentionHeads * config.attentionHeadSize;
    this.registerModule('dense', new Linear(allHeadSize, config.hiddenSize, { bias: false, backend: options.backend }));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
  }

  forward(hiddenStates: Tensor): Tensor {
    return this.dropout.forward(this.dense.forward(hiddenStates));
  }
}

export interface AttentionBlockOutput {
  hiddenStates: Tensor;
  attentionProbs?: Tensor;
  buckets?: Tensor | null;
  /** The layer's new cache entry (useCache). */
  presentBucketsStates?: LayerPastBucketsStates;
}

/** LayerNorm, then LSH or local self-attention (by attn_layers[layerId]), then the output projection. */
export class ReformerAttention extends Module {
  readonly layerId: number;
  declare layer_norm: LayerNorm;
  declare self_attention: LSHSelfAttention | LocalSelfAttention;
  declare output: ReformerSelfOutput;

  constructor(config: ReformerConfig, layerId = 0, options: ModuleOptions = {}) {
    super();
    this.layerId = layerId;
    this.registerModule('layer_norm', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps, backend: options.backend }));
    const type = config.attnLayers[layerId];
    if (type !== 'lsh' && type !== 'local') {
      throw new ReformerInputError(`ReformerAttention: attn_layers[${layerId}] is ${JSON.stringify(type)}; only "lsh" and "local" attention layers exist`);
    }
    this.registerModule('self_attention', type === 'lsh' ? new LSHSelfAttention(config, options) : new LocalSelfAttention(config, options));
    this.registerModule('output', new ReformerSelfOutput(config, options));
  }

  forward(hiddenStates: Tensor, options: SelfAttentionOptions & { origSequenceLength?: number } = {}): AttentionBlockOutput {
    const normed = this.layer_norm.forward(hiddenStates);
    const past = options.pastBucketsStates ?? null;
    const selfAttentionOutputs = this.self_attention.forward(normed, options);
    const buckets = selfAttentionOutputs.buckets ?? null;
    const out: AttentionBlockOutput = { hiddenStates: this.output.forward(selfAttentionOutputs.hiddenStates), buckets };
    if (selfAttentionOutputs.attentionProbs) out.attentionProbs = selfAttentionOutputs.attentionProbs;
    if (options.useCache) {
      // Cache the buckets and the normalised states (without the auto-padding).
      const orig = options.origSequenceLength ?? normed.shape[1];
      let pastBuckets: Tensor | null;
      if (!past || past[0] === null) pastBuckets = buckets && orig > 1 ? buckets.slice(-1, 0, orig) : buckets;
      else pastBuckets = concat([past[0], buckets!], -1);
      const pastStates = !past || past[1] === null ? normed.slice(1, 0, orig) : concat([past[1], normed], 1);
      out.presentBucketsStates = [pastBuckets, pastStates];
    }
    return out;
  }
}

// ---- feed-forward --------------------------------------------------------------------------------------

/** dense (hidden -> feedForwardSize), dropout, activation (dropout before the activation, as the reference). */
export class ReformerFeedForwardDense extends Module {
  declare dense: Linear;
  declare dropout: Dropout;
  readonly actFn: Activation;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.hiddenSize, config.feedForwardSize, options));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
    this.actFn = getActivation(config.hiddenAct);
  }

  forward(hiddenStates: Tensor): Tensor {
    return this.actFn(this.dropout.forward(this.dense.forward(hiddenStates)));
  }
}

/** dense (feedForwardSize -> hidden) + dropout. */
export class ReformerFeedForwardOutput extends Module {
  declare dense: Linear;
  declare dropout: Dropout;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.feedForwardSize, config.hiddenSize, options));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
  }

  forward(hiddenStates: Tensor): Tensor {
    return this.dropout.forward(this.dense.forward(hiddenStates));
  }
}

/** LayerNorm + dense + output, applied chunkSizeFeedForward positions at a time (identical math, less memory). */
export class ChunkReformerFeedForward extends Module {
  readonly chunkSizeFeedForward: number;
  readonly seqLenDim = 1;
  declare layer_norm: LayerNorm;
  declare dense: ReformerFeedForwardDense;
  declare output: ReformerFeedForwardOutput;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.chunkSizeFeedForward = config.chunkSizeFeedForward;
    this.registerModule('layer_norm', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps, backend: options.backend }));
    this.registerModule('dense', new ReformerFeedForwardDense(config, options));
    this.registerModule('output', new ReformerFeedForwardOutput(config, options));
  }

  forward(attentionOutput: Tensor): Tensor {
    return applyChunkingToForward((x: Tensor) => this.forwardChunk(x), this.chunkSizeFeedForward, this.seqLenDim, attentionOutput);
  }

  forwardChunk(hiddenStates: Tensor): Tensor {
    return this.output.forward(this.dense.forward(this.layer_norm.forward(hiddenStates)));
  }
}

// ---- the reversible layer ------------------------------------------------------------------------------

export interface ReformerLayerOptions extends SelfAttentionOptions {
  origSequenceLength?: number;
}

export interface ReformerLayerOutput {
  /** Y1 = X1 + Attention(X2) */
  attnOutput: Tensor;
  /** Y2 = X2 + FeedForward(Y1) */
  hiddenStates: Tensor;
  attentionProbs?: Tensor;
  buckets?: Tensor | null;
  presentBucketsStates?: LayerPastBucketsStates;
}

/**
 * One reversible block (RevNet): Y1 = X1 + Attention(X2), Y2 = X2 + FeedForward(Y1). Its inputs can be
 * recomputed from its outputs (X2 = Y2 - FeedForward(Y1), X1 = Y1 - Attention(X2)), which `backwardPass`
 * does while it backpropagates, so no layer's activations are stored.
 */
export class ReformerLayer extends Module {
  declare attention: ReformerAttention;
  declare feed_forward: ChunkReformerFeedForward;
  /** The generator state before the attention / the feed-forward ran in the last training forward (dropout replay). */
  attentionSeed: { seed: number; offset: number } | null = null;
  feedForwardSeed: { seed: number; offset: number } | null = null;

  constructor(config: ReformerConfig, layerId = 0, options: ModuleOptions = {}) {
    super();
    this.registerModule('attention', new ReformerAttention(config, layerId, options));
    this.registerModule('feed_forward', new ChunkReformerFeedForward(config, options));
  }

  forward(prevAttnOutput: Tensor, hiddenStates: Tensor, options: ReformerLayerOptions = {}): ReformerLayerOutput {
    if (this.training) this.attentionSeed = defaultGenerator.getState();
    const attnOutputs = this.attention.forward(hiddenStates, options);
    // Y1 = X1 + f(X2)
    const attnOutput = prevAttnOutput.add(attnOutputs.hiddenStates);
    if (this.training) this.feedForwardSeed = defaultGenerator.getState();
    // Y2 = X2 + g(Y1)
    const out: ReformerLayerOutput = { attnOutput, hiddenStates: hiddenStates.add(this.feed_forward.forward(attnOutput)), buckets: attnOutputs.buckets ?? null };
    if (attnOutputs.attentionProbs) out.attentionProbs = attnOutputs.attentionProbs;
    if (attnOutputs.presentBucketsStates) out.presentBucketsStates = attnOutputs.presentBucketsStates;
    return out;
  }

  /**
   * Backpropagates through this layer from its outputs (Y1, Y2) and their gradients, recomputing
   * g(Y1) and f(X2) with the forward's dropout draws (and LSH buckets); parameter gradients accumulate
   * as they go. Returns the inputs (X1, X2) and their gradients.
   */
  backwardPass(
    nextAttnOutput: Tensor,
    hiddenStates: Tensor,
    gradAttnOutput: Tensor,
    gradHiddenStates: Tensor,
    options: { attentionMask?: Tensor | null; headMask?: Tensor | null; buckets?: Tensor | null } = {},
  ): { attnOutput: Tensor; hiddenStates: Tensor; gradAttnOutput: Tensor; gradHiddenStates: Tensor } {
    const replay = <T>(state: { seed: number; offset: number } | null, fn: () => T): T => {
      const now = defaultGenerator.getState();
      if (state) defaultGenerator.setState(state);
      try {
        return enableGrad(fn);
      } finally {
        defaultGenerator.setState(now);
      }
    };
    // g(Y1), backpropagated with dL/dY2
    const y1 = nextAttnOutput.detach().requiresGrad_();
    const resHiddenStates = replay(this.feedForwardSeed, () => this.feed_forward.forward(y1));
    resHiddenStates.backward(gradHiddenStates);
    // X2 = Y2 - g(Y1); dL/dY1 gains g's input gradient
    const x2Value = hiddenStates.sub(resHiddenStates.detach());
    const gradAttn = y1.grad ? gradAttnOutput.add(y1.grad) : gradAttnOutput;
    // Leaf gradients outlive scopes: free them here, or every layer would leak two [batch, seq, hidden].
    y1.grad?.dispose();
    y1.grad = null;
    // f(X2), backpropagated with dL/dY1 (the forward's buckets: hashing is not repeated)
    const x2 = x2Value.detach().requiresGrad_();
    const output = replay(this.attentionSeed, () => this.attention.forward(x2, { attentionMask: options.attentionMask, headMask: options.headMask, buckets: options.buckets }).hiddenStates);
    output.backward(gradAttn);
    // X1 = Y1 - f(X2); dL/dX2 gains f's input gradient
    const attnOutput = nextAttnOutput.sub(output.detach());
    const gradHidden = x2.grad ? gradHiddenStates.add(x2.grad) : gradHiddenStates;
    x2.grad?.dispose();
    x2.grad = null;
    return { attnOutput, hiddenStates: x2Value, gradAttnOutput: gradAttn, gradHiddenStates: gradHidden };
  }
}

// ---- the encoder ---------------------------------------------------------------------------------------

export interface EncoderOptions {
  attentionMask?: Tensor | null;
  headMask?: readonly (Tensor | null)[] | null;
  numHashes?: number | null;
  pastBucketsStates?: PastBucketsStates | null;
  useCache?: boolean;
  origSequenceLength?: number;
  outputHiddenStates?: boolean;
  outputAttentions?: boolean;
}

export interface EncoderOutput {
  /** LayerNorm(cat([Y1, Y2])) after dropout: [batch, seq, 2 * hidden]. */
  hiddenStates: Tensor;
  /** The Y2 stream before each layer and after the last: [batch, seq, hidden]. */
  allHiddenStates?: Tensor[];
  allAttentions?: Tensor[];
  pastBucketsStates?: LayerPastBucketsStates[];
}

/** What the reversible stack's forward produces besides its output. */
interface StackOutputs {
  attnOutput: Tensor;
  hiddenStates: Tensor;
  buckets: (Tensor | null)[];
  allHiddenStates: Tensor[];
  allAttentions: Tensor[];
  present: LayerPastBucketsStates[];
}

/** The reversible layers, a final LayerNorm over both streams, and dropout. */
export class ReformerEncoder extends Module {
  readonly dropout: number;
  /**
   * Backpropagate through the reversible function (activations recomputed from the outputs, memory flat
   * in depth). false keeps every layer's activations for ordinary autograd (the same gradients; for
   * comparisons and benchmarks).
   */
  reversible = true;
  declare layers: ModuleList<ReformerLayer>;
  declare layer_norm: LayerNorm;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.dropout = config.hiddenDropoutProb;
    this.registerModule('layers', new ModuleList(config.attnLayers.map((_, i) => new ReformerLayer(config, i, options))));
    this.registerModule('layer_norm', new LayerNorm(2 * config.hiddenSize, { eps: config.layerNormEps, backend: options.backend }));
  }

  /** Runs every layer on (X1, X2) = (attnOutput, hiddenStates); each layer's temporaries are freed as it ends. */
  private runLayers(attnOutput0: Tensor, hiddenStates0: Tensor, options: EncoderOptions): StackOutputs {
    const out: StackOutputs = { attnOutput: attnOutput0, hiddenStates: hiddenStates0, buckets: [], allHiddenStates: [], allAttentions: [], present: [] };
    for (const [i, layer] of this.layers.items.entries()) {
      if (options.outputHiddenStates) out.allHiddenStates.push(out.hiddenStates);
      const layerOutputs = scope(() =>
        layer.forward(out.attnOutput, out.hiddenStates, {
          attentionMask: options.attentionMask,
          headMask: options.headMask?.[i] ?? null,
          numHashes: options.numHashes,
          pastBucketsStates: options.pastBucketsStates?.[i] ?? null,
          useCache: options.useCache,
          origSequenceLength: options.origSequenceLength,
          outputAttentions: options.outputAttentions,
        }),
      );
      // The previous layer's outputs are no longer needed (autograd keeps its own handles), unless they
      // are the stack's inputs or returned hidden states.
      if (out.attnOutput !== attnOutput0 && out.attnOutput !== hiddenStates0) out.attnOutput.dispose();
      if (out.hiddenStates !== attnOutput0 && out.hiddenStates !== hiddenStates0 && !options.outputHiddenStates) out.hiddenStates.dispose();
      out.attnOutput = layerOutputs.attnOutput;
      out.hiddenStates = layerOutputs.hiddenStates;
      out.buckets.push(layerOutputs.buckets ?? null);
      if (layerOutputs.attentionProbs) out.allAttentions.push(layerOutputs.attentionProbs);
      if (layerOutputs.presentBucketsStates) out.present.push(layerOutputs.presentBucketsStates);
    }
    if (options.outputHiddenStates) out.allHiddenStates.push(out.hiddenStates);
    return out;
  }

  forward(hiddenStates: Tensor, options: EncoderOptions = {}): EncoderOutput {
    let stack: StackOutputs | null = null;
    let output: Tensor;
    if (this.reversible && isGradEnabled() && hiddenStates.requiresGrad) {
      // The reversible function: the forward stores only the last layer's outputs (and the buckets); the
      // backward walks the layers from the top, recomputing each one's inputs from its outputs.
      const layers = this.layers.items;
      const headMask = options.headMask ?? null;
      const attentionMask = options.attentionMask ?? null;
      const half = hiddenStates.shape[hiddenStates.rank - 1];
      const fn: CustomFunction<[Tensor]> = {
        name: 'ReformerReversible',
        forward: (ctx, doubled) => {
          const x = doubled.slice(-1, 0, half); // both streams start as the embeddings
          const s = this.runLayers(x, x, options);
          stack = s;
          const withBuckets = s.buckets.map((b) => b !== null);
          ctx.withBuckets = withBuckets;
          ctx.saveForBackward(s.attnOutput, s.hiddenStates, ...(s.buckets.filter((b) => b !== null) as Tensor[]));
          return concat([s.attnOutput, s.hiddenStates], -1); // [batch, seq, 2 * hidden]
        },
        backward: (ctx, grad) => {
          const [attn, hidden, ...savedBuckets] = ctx.saved;
          const withBuckets = ctx.withBuckets as boolean[];
          let k = 0;
          const buckets = withBuckets.map((has) => (has ? savedBuckets[k++] : null));
          let state = { attnOutput: attn, hiddenStates: hidden, gradAttnOutput: grad!.slice(-1, 0, half), gradHiddenStates: grad!.slice(-1, half) };
          for (let i = layers.length - 1; i >= 0; i--) {
            const prev = state;
            // One layer's recomputation and backward, its temporaries freed before the next layer's.
            state = scope(() => layers[i].backwardPass(prev.attnOutput, prev.hiddenStates, prev.gradAttnOutput, prev.gradHiddenStates, { attentionMask, headMask: headMask?.[i] ?? null, buckets: buckets[i] }));
            // The layer above's inputs and gradients are spent (the first ones belong to autograd).
            if (i < layers.length - 1) for (const t of Object.values(prev)) if (!Object.values(state).includes(t)) t.dispose();
          }
          return [concat([state.gradAttnOutput, state.gradHiddenStates], -1)];
        },
      };
      // The embeddings are duplicated into the two streams; the gradient reaching them sums both halves.
      output = applyFunction(fn, concat([hiddenStates, hiddenStates], -1)) as Tensor; // [batch, seq, 2 * hidden]
    } else {
      stack = this.runLayers(hiddenStates, hiddenStates, options);
      output = concat([(stack as StackOutputs).attnOutput, (stack as StackOutputs).hiddenStates], -1); // [batch, seq, 2 * hidden]
    }
    const s = stack as unknown as StackOutputs;
    let normed = this.layer_norm.forward(output);
    normed = dropout(normed, this.dropout, this.training);
    const out: EncoderOutput = { hiddenStates: normed };
    if (options.outputHiddenStates) out.allHiddenStates = s.allHiddenStates;
    if (options.outputAttentions) out.allAttentions = s.allAttentions;
    if (options.useCache) out.pastBucketsStates = s.present;
    return out;
  }
}

// ---- the LM head ---------------------------------------------------------------------------------------

/** The vocabulary projection of the 2 * hidden output (`decoder`, its bias also registered as `bias`), chunked over positions. */
export class ReformerOnlyLMHead extends Module {
  readonly seqLenDim = 1;
  readonly chunkSizeLmHead: number;
  declare decoder: Linear;
  declare bias: Tensor;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.chunkSizeLmHead = config.chunkSizeLmHead;
    this.registerModule('decoder', new Linear(2 * config.hiddenSize, config.vocabSize, { bias: false, backend: options.backend }));
    this.registerParameter('bias', full([config.vocabSize], 0, { backend: options.backend }));
    // One tensor under both names, as the reference's `self.decoder.bias = self.bias`.
    this.decoder.bias = this.bias;
  }

  forward(hiddenStates: Tensor): Tensor {
    return applyChunkingToForward((x: Tensor) => this.decoder.forward(x), this.chunkSizeLmHead, this.seqLenDim, hiddenStates); // [batch, seq, vocab]
  }
}

// ---- the pretrained-model base ---------------------------------------------------------------------------

/** What every model forward accepts (the reference's arguments). */
export interface ReformerInputs {
  /** int32 [batch, seq] */
  inputIds?: Tensor | null;
  /** 1 = attend, 0 = padding: [batch, seq]. */
  attentionMask?: Tensor | null;
  /** int32 [batch, seq]; default pastLength .. pastLength + seq - 1. */
  positionIds?: Tensor | null;
  /** [heads] or [layers, heads]; multiplies the attention probabilities. */
  headMask?: Tensor | null;
  /** [batch, seq, hidden] instead of inputIds. */
  inputsEmbeds?: Tensor | null;
  /** Overrides config.numHashes for this call. */
  numHashes?: number | null;
  /** The previous call's `pastBucketsStates` (cached decoding, eval only). */
  pastBucketsStates?: PastBucketsStates | null;
  /** Return `pastBucketsStates` (default config.useCache). */
  useCache?: boolean;
  outputHiddenStates?: boolean;
  outputAttentions?: boolean;
}

/** Hidden states and attentions every head passes through from the base model. */
export interface ReformerOutputs {
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}

/** The base of every Reformer model: config parsing and weight init. */
export abstract class ReformerPreTrainedModel extends PreTrainedModel<ReformerConfig> {
  static override baseModelPrefix = 'reformer';

  static configFromJSON(json: JsonObject): ReformerConfig {
    return ReformerConfig.fromJSON(json);
  }

  /** The reference's _init_weights: axial weights ~ N(0, axialNormStd); Linear/Embedding ~ N(0, initializerRange); biases 0; LayerNorm 1/0. */
  protected initModule(module: Module): void {
    const std = this.config.initializerRange;
    if (module instanceof AxialPositionEmbeddings) {
      for (let i = 0; i < module.weights.length; i++) initInPlace(module.weights.at(i), { kind: 'normal', std: this.config.axialNormStd });
    }
    if (module instanceof Linear || module instanceof Embedding) initInPlace(module.weight, { kind: 'normal', std });
    if (module instanceof Linear && module.bias) initInPlace(module.bias, { kind: 'constant', value: 0 });
    if (module instanceof LayerNorm) {
      if (module.weight) initInPlace(module.weight, { kind: 'constant', value: 1 });
      if (module.bias) initInPlace(module.bias, { kind: 'constant', value: 0 });
    }
  }

  protected postInit(): void {
    if (!isInitSkipped()) for (const [, m] of this.namedModules()) this.initModule(m);
    this.tieWeights();
  }

  /** Injects the LSH random rotations of every LSH layer (tests, reproductions): source(layer, shape) -> tensor. */
  setRotationSource(source: ((layer: number, shape: number[]) => Tensor) | null): void {
    const base = this instanceof ReformerModel ? this : (this as unknown as { reformer: ReformerModel }).reformer;
    base.encoder.layers.items.forEach((layer, i) => {
      const attn = layer.attention.self_attention;
      if (attn instanceof LSHSelfAttention) attn.rotationSource = source ? (shape) => source(i, shape) : null;
    });
  }
}

/** Builds the base model inside a head without initialising it: the head's postInit initialises everything once. */
function baseModel(config: ReformerConfig, options: ModuleOptions): ReformerModel {
  return withoutInit(() => new ReformerModel(config, options));
}

// ---- the base model ------------------------------------------------------------------------------------

export interface ReformerModelOutput extends ReformerOutputs {
  /** [batch, seq, 2 * hidden] */
  lastHiddenState: Tensor;
  /** One [buckets | null, states] per layer (useCache). */
  pastBucketsStates?: LayerPastBucketsStates[];
}

/** Embeddings + the reversible encoder; pads the sequence to a multiple of the chunk length in eval. */
export class ReformerModel extends ReformerPreTrainedModel {
  declare embeddings: ReformerEmbeddings;
  declare encoder: ReformerEncoder;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super(config);
    validateReformerConfig(config);
    if (config.numHiddenLayers <= 0) throw new ReformerInputError(`ReformerConfig: num_hidden_layers must be positive, got ${config.numHiddenLayers}`);
    this.registerModule('embeddings', new ReformerEmbeddings(config, options));
    this.registerModule('encoder', new ReformerEncoder(config, options));
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    return this.embeddings.word_embeddings;
  }

  setInputEmbeddings(value: Embedding): void {
    this.embeddings.word_embeddings = value;
  }

  forward(options: ReformerInputs): ReformerModelOutput {
    return scope(() => {
      const config = this.config;
      // The cache is for decoding: training (and the reversible backward) never needs it.
      const useCache = options.useCache ?? (config.useCache && !this.training);
      const outputHiddenStates = options.outputHiddenStates ?? config.outputHiddenStates;
      const outputAttentions = options.outputAttentions ?? config.outputAttentions;
      let { inputIds, inputsEmbeds, attentionMask, positionIds } = options;
      if (inputIds && inputsEmbeds) throw new ReformerInputError('ReformerModel: you cannot specify both inputIds and inputsEmbeds at the same time');
      if (!inputIds && !inputsEmbeds) throw new ReformerInputError('ReformerModel: you have to specify either inputIds or inputsEmbeds');
      let inputShape = inputIds ? inputIds.shape : inputsEmbeds!.shape.slice(0, -1);
      if (inputShape.length !== 2) throw new ShapeError(`ReformerModel: inputIds must be [batch, seq], got [${inputShape.join(',')}]`);
      const past = options.pastBucketsStates ?? null;
      if (past && this.training) throw new ReformerInputError('ReformerModel: pastBucketsStates can only be used for inference, not in training mode');
      if (past && past.length !== config.attnLayers.length) {
        throw new ReformerInputError(`ReformerModel: pastBucketsStates has ${past.length} layers, the model ${config.attnLayers.length}`);
      }
      const backend = (inputIds ?? inputsEmbeds)!.backend;
      const headMask = this.getHeadMask(options.headMask, config.numHiddenLayers);

      // Pad to a multiple of the chunk lengths (eval only; training refuses).
      const origSequenceLength = inputShape[1];
      const lcm = leastCommonMultChunkLength(config);
      const mustPad = inputShape[1] % lcm !== 0 && inputShape[1] > minChunkLength(config) && past === null;
      if (mustPad) {
        const paddingLength = lcm - (inputShape[1] % lcm);
        if (this.training) {
          throw new ReformerInputError(
            `ReformerModel: in training the sequence length ${inputShape[1]} has to be a multiple of the least common multiple chunk length ${lcm} (lsh_attn_chunk_length / local_attn_chunk_length); pad the input to ${inputShape[1] + paddingLength}`,
          );
        }
        const [batch] = inputShape;
        const padIds = full([batch, paddingLength], config.padTokenId ?? 0, { dtype: 'int32', backend });
        const ones = full(inputShape, 1, { dtype: 'int32', backend });
        attentionMask = concat([attentionMask ? attentionMask.toInt() : ones, full([batch, paddingLength], 0, { dtype: 'int32', backend })], -1);
        if (positionIds) positionIds = concat([positionIds, arange(inputShape[1], inputShape[1] + paddingLength, 1, { backend }).reshape(1, -1).expand(batch, paddingLength)], -1);
        if (inputIds) inputIds = concat([inputIds, padIds], -1);
        if (inputsEmbeds) inputsEmbeds = concat([inputsEmbeds, this.embeddings.forward({ inputIds: padIds })], -2);
        inputShape = [batch, inputShape[1] + paddingLength];
      }

      const startIdxPosEncodings = past ? past[0][1]!.shape[1] : 0;
      const embeddingOutput = this.embeddings.forward({ inputIds, positionIds, inputsEmbeds, startIdxPosEncodings }); // [batch, seq, hidden]
      const encoderOutputs = this.encoder.forward(embeddingOutput, {
        attentionMask,
        headMask,
        numHashes: options.numHashes,
        pastBucketsStates: past,
        useCache,
        origSequenceLength,
        outputHiddenStates,
        outputAttentions,
      });
      let sequenceOutput = encoderOutputs.hiddenStates;
      if (mustPad) sequenceOutput = sequenceOutput.slice(1, 0, origSequenceLength); // cut the padding back
      const out: ReformerModelOutput = { lastHiddenState: sequenceOutput };
      if (useCache && encoderOutputs.pastBucketsStates) out.pastBucketsStates = encoderOutputs.pastBucketsStates;
      if (outputHiddenStates) out.hiddenStates = encoderOutputs.allHiddenStates;
      if (outputAttentions) out.attentions = encoderOutputs.allAttentions;
      return out;
    });
  }
}

// ---- heads ---------------------------------------------------------------------------------------------

/** The base model's hidden states and attentions, as every head returns them. */
function passThrough(outputs: ReformerModelOutput): ReformerOutputs {
  const out: ReformerOutputs = {};
  if (outputs.hiddenStates) out.hiddenStates = outputs.hiddenStates;
  if (outputs.attentions) out.attentions = outputs.attentions;
  return out;
}

/** The heads with the `lm_head` (its bias is the decoder's bias). */
abstract class ReformerWithLMHead extends ReformerPreTrainedModel {
  abstract reformer: ReformerModel;
  abstract lm_head: ReformerOnlyLMHead;
  // The decoder's weight is not tied (it reads 2 * hidden); its bias is `lm_head.bias`.
  protected override tiedWeightsKeys = ['lm_head.decoder.bias'];

  getInputEmbeddings(): Embedding {
    return this.reformer.getInputEmbeddings();
  }

  setInputEmbeddings(value: Embedding): void {
    this.reformer.setInputEmbeddings(value);
  }

  override getOutputEmbeddings(): Linear {
    return this.lm_head.decoder;
  }

  override setOutputEmbeddings(newEmbeddings: Linear): void {
    this.lm_head.decoder = newEmbeddings;
    if (newEmbeddings.bias) this.lm_head.bias = newEmbeddings.bias;
  }
}

export interface ReformerLMInputs extends ReformerInputs {
  /** int32 [batch, seq] targets, -100 = ignored (shifted inside for the causal head). */
  labels?: Tensor | null;
}

export interface ReformerModelWithLMHeadOutput extends ReformerOutputs {
  loss?: Tensor;
  /** [batch, seq, vocab] */
  logits: Tensor;
  pastBucketsStates?: LayerPastBucketsStates[];
}

/** Causal language modelling (config.isDecoder), with cached decoding through pastBucketsStates. */
export class ReformerModelWithLMHead extends ReformerWithLMHead {
  declare reformer: ReformerModel;
  declare lm_head: ReformerOnlyLMHead;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super(config);
    if (!config.isDecoder) throw new ReformerInputError('ReformerModelWithLMHead: set config.isDecoder (is_decoder) to true for causal attention');
    if (config.attnLayers.includes('local') && config.localNumChunksAfter !== 0) {
      throw new ReformerInputError(`ReformerModelWithLMHead: local_num_chunks_after must be 0 for causal attention, got ${config.localNumChunksAfter}`);
    }
    if (config.attnLayers.includes('lsh') && config.lshNumChunksAfter !== 0) {
      throw new ReformerInputError(`ReformerModelWithLMHead: lsh_num_chunks_after must be 0 for causal attention, got ${config.lshNumChunksAfter}`);
    }
    this.registerModule('reformer', baseModel(config, options));
    this.registerModule('lm_head', new ReformerOnlyLMHead(config, options));
    this.postInit();
  }

  forward(options: ReformerLMInputs): ReformerModelWithLMHeadOutput {
    return scope(() => {
      // With labels nothing is decoded next: no cache (as MegatronBertForCausalLM).
      const outputs = this.reformer.forward(options.labels ? { ...options, useCache: false } : options);
      const logits = this.lm_head.forward(outputs.lastHiddenState); // [batch, seq, vocab]
      const out: ReformerModelWithLMHeadOutput = { logits, ...passThrough(outputs) };
      if (outputs.pastBucketsStates) out.pastBucketsStates = outputs.pastBucketsStates;
      if (options.labels) {
        const seq = logits.shape[1];
        // Next-token targets: the logits of position t score the label at t + 1.
        const shiftLogits = logits.slice(1, 0, seq - 1).reshape(-1, this.config.vocabSize); // [batch * (seq-1), vocab]
        const shiftLabels = options.labels.slice(1, 1).reshape(-1); // [batch * (seq-1)]
        out.loss = crossEntropy(shiftLogits, shiftLabels);
      }
      return out;
    });
  }

  /**
   * One decoding step for @lm/layers' generation loop: the whole prompt first, then one token at a time
   * through `pastBucketsStates` (the reference's prepare_inputs_for_generation). Eval mode only.
   */
  decoderStep(options: { numHashes?: number | null } = {}): DecoderStep<PastBucketsStates> {
    return (inputIds, cache) => {
      const out = this.forward({ inputIds, pastBucketsStates: cache, useCache: true, numHashes: options.numHashes });
      const logits = out.logits.select(1, out.logits.shape[1] - 1).contiguous(); // [batch, vocab]
      out.logits.dispose();
      return { logits, cache: out.pastBucketsStates! };
    };
  }

  /** Greedy, sampling or beam-search generation (GenerateOptions of @lm/layers) with the cached decoding path. */
  async generate(inputIds: Tensor, options: ReformerGenerateOptions = {}): Promise<GenerateOutput> {
    if (this.training) throw new ReformerInputError('ReformerModelWithLMHead.generate: call model.eval() first (cached decoding is inference only)');
    const { numHashes, ...rest } = options;
    return generate(this.decoderStep({ numHashes }), inputIds, { eosTokenId: this.config.eosTokenId ?? undefined, padTokenId: this.config.padTokenId ?? undefined, ...rest });
  }
}

/** Options of ReformerModelWithLMHead.generate: @lm/layers' generation options, plus numHashes. */
export type ReformerGenerateOptions = GenerateOptions<PastBucketsStates> & { numHashes?: number | null };

export interface ReformerMaskedLMOutput extends ReformerOutputs {
  loss?: Tensor;
  /** [batch, seq, vocab] */
  logits: Tensor;
}

/** Bidirectional masked language modelling (config.isDecoder false). */
export class ReformerForMaskedLM extends ReformerWithLMHead {
  declare reformer: ReformerModel;
  declare lm_head: ReformerOnlyLMHead;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super(config);
    if (config.isDecoder) throw new ReformerInputError('ReformerForMaskedLM: set config.isDecoder (is_decoder) to false for bidirectional self-attention');
    this.registerModule('reformer', baseModel(config, options));
    this.registerModule('lm_head', new ReformerOnlyLMHead(config, options));
    this.postInit();
  }

  forward(options: ReformerLMInputs): ReformerMaskedLMOutput {
    return scope(() => {
      const outputs = this.reformer.forward({ ...options, pastBucketsStates: null, useCache: false });
      const logits = this.lm_head.forward(outputs.lastHiddenState); // [batch, seq, vocab]
      const out: ReformerMaskedLMOutput = { logits, ...passThrough(outputs) };
      if (options.labels) out.loss = crossEntropy(logits.reshape(-1, this.config.vocabSize), options.labels.reshape(-1));
      return out;
    });
  }
}

/** The heads without an LM projection. */
abstract class ReformerWithTaskHead extends ReformerPreTrainedModel {
  abstract reformer: ReformerModel;

  getInputEmbeddings(): Embedding {
    return this.reformer.getInputEmbeddings();
  }

  setInputEmbeddings(value: Embedding): void {
    this.reformer.setInputEmbeddings(value);
  }
}

/** The first position's 2 * hidden output -> dropout, dense (-> hidden), tanh, dropout, out_proj (-> numLabels). */
export class ReformerClassificationHead extends Module {
  declare dense: Linear;
  declare dropout: Dropout;
  declare out_proj: Linear;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(2 * config.hiddenSize, config.hiddenSize, options));
    this.registerModule('dropout', new Dropout(config.classifierDropout ?? config.hiddenDropoutProb));
    this.registerModule('out_proj', new Linear(config.hiddenSize, config.numLabels, options));
  }

  forward(hiddenStates: Tensor): Tensor {
    let x = hiddenStates.select(1, 0); // [batch, 2 * hidden]
    x = this.dropout.forward(x);
    x = this.dense.forward(x).tanh(); // [batch, hidden]
    x = this.dropout.forward(x);
    return this.out_proj.forward(x); // [batch, numLabels]
  }
}

export interface ReformerClassifierOutput extends ReformerOutputs {
  loss?: Tensor;
  logits: Tensor;
}

/**
 * Classification or regression from the first position. `labels`: int32 [batch] (single-label CE),
 * float [batch] when numLabels is 1 (MSE), or float [batch, numLabels] (multi-label BCE).
 */
export class ReformerForSequenceClassification extends ReformerWithTaskHead {
  readonly numLabels: number;
  declare reformer: ReformerModel;
  declare classifier: ReformerClassificationHead;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super(config);
    this.numLabels = config.numLabels;
    this.registerModule('reformer', baseModel(config, options));
    this.registerModule('classifier', new ReformerClassificationHead(config, options));
    this.postInit();
  }

  forward(options: ReformerLMInputs): ReformerClassifierOutput {
    return scope(() => {
      const outputs = this.reformer.forward({ ...options, pastBucketsStates: null, useCache: false });
      const logits = this.classifier.forward(outputs.lastHiddenState); // [batch, numLabels]
      const out: ReformerClassifierOutput = { logits, ...passThrough(outputs) };
      const labels = options.labels;
      if (labels) {
        if (this.config.problemType === null) {
          if (this.numLabels === 1) this.config.problemType = 'regression';
          else if (labels.dtype === 'int32') this.config.problemType = 'single_label_classification';
          else this.config.problemType = 'multi_label_classification';
        }
        if (this.config.problemType === 'regression') {
          const target = labels.toFloat();
          out.loss = this.numLabels === 1 ? mseLoss(logits.squeeze(), target.squeeze()) : mseLoss(logits, target);
        } else if (this.config.problemType === 'single_label_classification') {
          out.loss = crossEntropy(logits.reshape(-1, this.numLabels), labels.reshape(-1));
        } else {
          out.loss = binaryCrossEntropyWithLogits(logits, labels.toFloat());
        }
      }
      return out;
    });
  }
}

export interface ReformerForQuestionAnsweringInputs extends ReformerInputs {
  /** int32 [batch] span starts; positions outside [0, seq) are ignored. */
  startPositions?: Tensor | null;
  /** int32 [batch] span ends. */
  endPositions?: Tensor | null;
}

export interface ReformerQuestionAnsweringOutput extends ReformerOutputs {
  /** (start loss + end loss) / 2 */
  loss?: Tensor;
  /** [batch, seq] */
  startLogits: Tensor;
  /** [batch, seq] */
  endLogits: Tensor;
}

/** Extractive QA: span start and end scores for every token (qa_outputs: 2 * hidden -> numLabels = 2). */
export class ReformerForQuestionAnswering extends ReformerWithTaskHead {
  readonly numLabels: number;
  declare reformer: ReformerModel;
  declare qa_outputs: Linear;

  constructor(config: ReformerConfig, options: ModuleOptions = {}) {
    super(config);
    this.numLabels = config.numLabels;
    this.registerModule('reformer', baseModel(config, options));
    this.registerModule('qa_outputs', new Linear(2 * config.hiddenSize, config.numLabels, options));
    this.postInit();
  }

  forward(options: ReformerForQuestionAnsweringInputs): ReformerQuestionAnsweringOutput {
    return scope(() => {
      const outputs = this.reformer.forward({ ...options, pastBucketsStates: null, useCache: false });
      const logits = this.qa_outputs.forward(outputs.lastHiddenState); // [batch, seq, 2]
      const startLogits = logits.select(-1, 0).contiguous(); // [batch, seq]
      const endLogits = logits.select(-1, 1).contiguous(); // [batch, seq]
      const out: ReformerQuestionAnsweringOutput = { startLogits, endLogits, ...passThrough(outputs) };
      let { startPositions, endPositions } = options;
      if (startPositions && endPositions) {
        if (startPositions.rank > 1) startPositions = startPositions.squeeze(-1);
        if (endPositions.rank > 1) endPositions = endPositions.squeeze(-1);
        const ignoredIndex = startLogits.shape[1];
        const startLoss = crossEntropy(startLogits, startPositions.clamp(0, ignoredIndex), { ignoreIndex: ignoredIndex });
        const endLoss = crossEntropy(endLogits, endPositions.clamp(0, ignoredIndex), { ignoreIndex: ignoredIndex });
        out.loss = startLoss.add(endLoss).divScalar(2);
      }
      return out;
    });
  }
}
