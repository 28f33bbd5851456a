// T5: the encoder-decoder Transformer of Raffel et al. 2020, "Exploring the Limits of Transfer Learning
// with a Unified Text-to-Text Transformer" (arXiv:1910.10683), and T5 v1.1 (gated-GELU feed-forward,
// untied output layer). Pre-norm blocks with T5LayerNorm (RMS, no bias, no mean subtraction),
// attention without the 1/sqrt(d) scale, a bucketed relative position bias owned by block 0 of each
// stack and reused by the later blocks, no absolute positions, no biases anywhere.
//
// Mirrors Hugging Face transformers `src/transformers/models/t5/modeling_t5.py` (4.37 semantics, eager
// attention, tuple caches) class for class and in the same order, with the same state-dict names, so
// its checkpoints load with no rename table: layer norm, feed-forward, attention, the three layer
// wrappers, block, classification head, stack, the pretrained base, then T5Model,
// T5ForConditionalGeneration, T5EncoderModel, T5ForSequenceClassification, T5ForTokenClassification
// and T5ForQuestionAnswering.
//
// Conventions: forward methods take one options object with camelCase names (`inputIds`,
// `decoderInputIds`, ...) and return plain objects of tensors; ids, labels and masks are int32 (masks
// may be float); shape comments name the dims ([batch, seq, dModel]). Caches are the reference's
// legacy tuples: per decoder layer [selfKey, selfValue, crossKey, crossValue], each
// [batch, heads, length, dKv].

import {
  alias,
  arange,
  binaryCrossEntropyWithLogits,
  concat,
  crossEntropy,
  fromHost,
  full,
  mseLoss,
  scope,
  ShapeError,
  where,
  zeros,
  type FusedBiasActivation,
  type Tensor,
} from '@lm/tensor-gpu';
import {
  attentionCore,
  checkpoint,
  ConfigError,
  Dropout,
  Embedding,
  findPruneableHeadsAndIndices,
  generate,
  GenerationError,
  getExtendedAttentionMask,
  getHeadMask,
  initInPlace,
  invertAttentionMask,
  isInitSkipped,
  Linear,
  linearAct,
  Module,
  ModuleList,
  PreTrainedModel,
  pruneLinearLayer,
  resolveActivation,
  RMSNorm,
  stream,
  t5PositionBias,
  withoutInit,
  type Activation,
  type DecoderStep,
  type GenerateOptions,
  type GenerateOutput,
  type GradientCheckpointable,
  type JsonObject,
  type StreamEvent,
  type ModuleOptions,
} from '@lm/layers';
import { T5Config } from './config.js';
import { checkIdsInVocabulary, idOutsideVocabulary } from './ids.js';

/** One decoder layer's cache: [selfKey, selfValue, crossKey, crossValue], each [batch, heads, len, dKv]. */
export type T5LayerPastKeyValue = readonly Tensor[];
/** One entry per decoder layer (the reference's legacy tuple-of-tuples). */
export type T5PastKeyValues = readonly T5LayerPastKeyValue[];

// ---- layer norm ------------------------------------------------------------------------------------

/**
 * T5LayerNorm: x * rsqrt(mean(x^2) + eps) * weight, in float32, with no mean subtraction and no bias
 * (Zhang & Sennrich's RMSNorm, which `@lm/layers` provides as `RMSNorm`).
 */
export class T5LayerNorm extends RMSNorm {
  constructor(hiddenSize: number, options: { eps?: number; backend?: ModuleOptions['backend'] } = {}) {
    super(hiddenSize, { eps: options.eps ?? 1e-6, backend: options.backend });
  }
}

// ---- feed-forward ------------------------------------------------------------------------------------

/** T5 v1.0: wo(dropout(act(wi(x)))), no biases. */
export class T5DenseActDense extends Module {
  declare wi: Linear;
  declare wo: Linear;
  declare dropout: Dropout;
  readonly act: { fn: Activation; fused: FusedBiasActivation | null };

  constructor(config: T5Config, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    this.registerModule('wi', new Linear(config.dModel, config.dFf, { bias: false, backend }));
    this.registerModule('wo', new Linear(config.dFf, config.dModel, { bias: false, backend }));
    this.registerModule('dropout', new Dropout(config.dropoutRate));
    this.act = resolveActivation(config.denseActFn);
  }

  forward(hiddenStates: Tensor): Tensor {
    const h = linearAct(this.wi, hiddenStates, this.act); // [batch, seq, dFf]
    return this.wo.forward(this.dropout.forward(h)); // [batch, seq, dModel]
  }
}

/** T5 v1.1: wo(dropout(act(wi_0(x)) * wi_1(x))), no biases (gated-gelu uses the tanh GELU). */
export class T5DenseGatedActDense extends Module {
  declare wi_0: Linear;
  declare wi_1: Linear;
  declare wo: Linear;
  declare dropout: Dropout;
  readonly act: { fn: Activation; fused: FusedBiasActivation | null };

  constructor(config: T5Config, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    this.registerModule('wi_0', new Linear(config.dModel, config.dFf, { bias: false, backend }));
    this.registerModule('wi_1', new Linear(config.dModel, config.dFf, { bias: false, backend }));
    this.registerModule('wo', new Linear(config.dFf, config.dModel, { bias: false, backend }));
    this.registerModule('dropout', new Dropout(config.dropoutRate));
    this.act = resolveActivation(config.denseActFn);
  }

  forward(hiddenStates: Tensor): Tensor {
    const hiddenGelu = linearAct(this.wi_0, hiddenStates, this.act); // [batch, seq, dFf]
    const hiddenLinear = this.wi_1.forward(hiddenStates); // [batch, seq, dFf]
    return this.wo.forward(this.dropout.forward(hiddenGelu.mul(hiddenLinear))); // [batch, seq, dModel]
  }
}

/** h + dropout(DenseReluDense(layer_norm(h))). */
export class T5LayerFF extends Module {
  declare DenseReluDense: T5DenseActDense | T5DenseGatedActDense;
  declare layer_norm: T5LayerNorm;
  declare dropout: Dropout;

  constructor(config: T5Config, options: ModuleOptions = {}) {
    super();
    this.registerModule('DenseReluDense', config.isGatedAct ? new T5DenseGatedActDense(config, options) : new T5DenseActDense(config, options));
    this.registerModule('layer_norm', new T5LayerNorm(config.dModel, { eps: config.layerNormEpsilon, backend: options.backend }));
    this.registerModule('dropout', new Dropout(config.dropoutRate));
  }

  forward(hiddenStates: Tensor): Tensor {
    const forwardedStates = this.DenseReluDense.forward(this.layer_norm.forward(hiddenStates));
    return hiddenStates.add(this.dropout.forward(forwardedStates));
  }
}

// ---- attention ---------------------------------------------------------------------------------------

export interface T5AttentionOptions {
  /** Additive mask [batch, 1, 1|q, k] (0 = attend, finfo(float32).min = masked); joins the bias. */
  mask?: Tensor | null;
  /** Cross-attention: keys and values come from these [batch, encoderSeq, dModel]. */
  keyValueStates?: Tensor | null;
  /** [1|batch, heads, q, k] bias with the mask already added, from block 0 (computed here when null). */
  positionBias?: Tensor | null;
  /** [key, value] [batch, heads, past, dKv]: the past self-attention keys/values, or the cross ones. */
  pastKeyValue?: readonly Tensor[] | null;
  /** [1, heads, 1, 1] multiplying the probabilities. */
  layerHeadMask?: Tensor | null;
  useCache?: boolean;
  outputAttentions?: boolean;
}

export interface T5AttentionOutput {
  /** [batch, q, dModel] */
  output: Tensor;
  /** [key, value] for the next step (decoders with useCache). */
  presentKeyValue?: Tensor[];
  /** The bias the later blocks reuse (mask included). */
  positionBias: Tensor;
  /** [batch, heads, q, k] */
  attentions?: Tensor;
}

/**
 * Multi-head attention without the 1/sqrt(dKv) scale (folded into the initialisation of q). Only the
 * first block of a stack owns `relative_attention_bias` [numBuckets, heads]; bidirectional buckets in
 * the encoder, causal ones in the decoder; cross-attention has a zero bias.
 */
export class T5Attention extends Module {
  readonly isDecoder: boolean;
  readonly hasRelativeAttentionBias: boolean;
  readonly relativeAttentionNumBuckets: number;
  readonly relativeAttentionMaxDistance: number;
  readonly dModel: number;
  readonly keyValueProjDim: number;
  nHeads: number;
  readonly dropoutRate: number;
  innerDim: number;
  declare q: Linear;
  declare k: Linear;
  declare v: Linear;
  declare o: Linear;
  declare relative_attention_bias: Embedding | null;
  readonly prunedHeads = new Set<number>();

  constructor(config: T5Config, options: ModuleOptions & { hasRelativeAttentionBias?: boolean; isDecoder?: boolean } = {}) {
    super();
    const { backend } = options;
    this.isDecoder = options.isDecoder ?? config.isDecoder;
    this.hasRelativeAttentionBias = options.hasRelativeAttentionBias ?? false;
    this.relativeAttentionNumBuckets = config.relativeAttentionNumBuckets;
    this.relativeAttentionMaxDistance = config.relativeAttentionMaxDistance;
    this.dModel = config.dModel;
    this.keyValueProjDim = config.dKv;
    this.nHeads = config.numHeads;
    this.dropoutRate = config.dropoutRate;
    this.innerDim = this.nHeads * this.keyValueProjDim;
    this.registerModule('q', new Linear(this.dModel, this.innerDim, { bias: false, backend }));
    this.registerModule('k', new Linear(this.dModel, this.innerDim, { bias: false, backend }));
    this.registerModule('v', new Linear(this.dModel, this.innerDim, { bias: false, backend }));
    this.registerModule('o', new Linear(this.innerDim, this.dModel, { bias: false, backend }));
    this.registerModule('relative_attention_bias', this.hasRelativeAttentionBias ? new Embedding(this.relativeAttentionNumBuckets, this.nHeads, { backend }) : null);
  }

  /** Removes heads (original numbering) from q/k/v (rows) and o (columns). */
  pruneHeads(heads: Iterable<number>): void {
    const list = [...heads];
    if (list.length === 0) return;
    const found = findPruneableHeadsAndIndices(list, this.nHeads, this.keyValueProjDim, this.prunedHeads);
    const old = [this.q, this.k, this.v, this.o];
    this.q = pruneLinearLayer(this.q, found.index, 0);
    this.k = pruneLinearLayer(this.k, found.index, 0);
    this.v = pruneLinearLayer(this.v, found.index, 0);
    this.o = pruneLinearLayer(this.o, found.index, 1);
    old.forEach((m) => m.dispose());
    this.nHeads -= found.heads.size;
    this.innerDim = this.keyValueProjDim * this.nHeads;
    for (const h of found.heads) this.prunedHeads.add(h);
  }

  /** The reference's `compute_bias`: [1, heads, q, k] for queries at past .. past + q - 1. */
  computeBias(queryLength: number, keyLength: number, pastLength = 0): Tensor {
    return t5PositionBias(this.relative_attention_bias!.weight, queryLength, keyLength, {
      bidirectional: !this.isDecoder,
      numBuckets: this.relativeAttentionNumBuckets,
      maxDistance: this.relativeAttentionMaxDistance,
      pastLength,
    });
  }

  /** [batch, seq, heads * dKv] -> [batch, heads, seq, dKv] */
  private shape(x: Tensor): Tensor {
    const [batch, seq] = x.shape;
    return x.reshape(batch, seq, -1, this.keyValueProjDim).permute(0, 2, 1, 3);
  }

  forward(hiddenStates: Tensor, options: T5AttentionOptions = {}): T5AttentionOutput {
    const [batch, seqLength] = hiddenStates.shape;
    const past = options.pastKeyValue ?? null;
    const kv = options.keyValueStates ?? null;
    if (past && past.length !== 2) throw new ShapeError(`T5Attention: pastKeyValue must hold 2 tensors (key, value), got ${past.length}`);
    const pastLength = past && !kv ? past[0].shape[2] : 0;

    const query = this.shape(this.q.forward(hiddenStates)); // [batch, heads, q, dKv]
    const project = (layer: Linear, pastState: Tensor | undefined): Tensor => {
      if (!kv) {
        const own = this.shape(layer.forward(hiddenStates)); // [batch, heads, q, dKv]
        return pastState ? concat([pastState, own], 2) : own; // [batch, heads, past + q, dKv]
      }
      // Cross-attention: the encoder keys/values are projected once and then read from the cache.
      if (pastState && pastState.shape[2] === kv.shape[1]) return alias(pastState);
      return this.shape(layer.forward(kv)); // [batch, heads, encoderSeq, dKv]
    };
    const key = project(this.k, past?.[0]);
    const value = project(this.v, past?.[1]);
    const keyLength = key.shape[2];

    let positionBias = options.positionBias ?? null;
    if (!positionBias) {
      positionBias = this.hasRelativeAttentionBias
        ? this.computeBias(seqLength, keyLength, pastLength) // [1, heads, q, k]
        : zeros([1, this.nHeads + this.prunedHeads.size, seqLength, keyLength], { backend: hiddenStates.backend });
      if (options.mask) positionBias = positionBias.add(options.mask); // [batch, heads, q, k]
    }
    let bias = positionBias;
    if (this.prunedHeads.size > 0) {
      // The bias table keeps every original head; drop the pruned ones.
      const keptHeads = Array.from({ length: positionBias.shape[1] }, (_, h) => h).filter((h) => !this.prunedHeads.has(h));
      bias = positionBias.indexSelect(1, fromHost(Int32Array.from(keptHeads), [keptHeads.length], 'int32', positionBias.backend));
    }

    // softmax(q.k^T + bias) . v, no scaling.
    const { context, attentions } = attentionCore(query, key, value, {
      positionBias: bias,
      headMask: options.layerHeadMask ?? null,
      scale: 1,
      dropout: this.dropoutRate,
      training: this.training,
      outputAttentions: options.outputAttentions,
    }); // [batch, heads, q, dKv]
    const merged = context.permute(0, 2, 1, 3).reshape(batch, seqLength, this.innerDim); // [batch, q, heads * dKv]
    const out: T5AttentionOutput = { output: this.o.forward(merged), positionBias };
    if (this.isDecoder && options.useCache) out.presentKeyValue = [key, value];
    if (attentions) out.attentions = attentions;
    return out;
  }
}

/** h + dropout(SelfAttention(layer_norm(h))). */
export class T5LayerSelfAttention extends Module {
  declare SelfAttention: T5Attention;
  declare layer_norm: T5LayerNorm;
  declare dropout: Dropout;

  constructor(config: T5Config, options: ModuleOptions & { hasRelativeAttentionBias?: boolean; isDecoder?: boolean } = {}) {
    super();
    this.registerModule('SelfAttention', new T5Attention(config, options));
    this.registerModule('layer_norm', new T5LayerNorm(config.dModel, { eps: config.layerNormEpsilon, backend: options.backend }));
    this.registerModule('dropout', new Dropout(config.dropoutRate));
  }

  forward(hiddenStates: Tensor, options: Omit<T5AttentionOptions, 'keyValueStates'> = {}): T5AttentionOutput {
    const normed = this.layer_norm.forward(hiddenStates);
    const attention = this.SelfAttention.forward(normed, options);
    return { ...attention, output: hiddenStates.add(this.dropout.forward(attention.output)) };
  }
}

/** h + dropout(EncDecAttention(layer_norm(h), encoder states)). */
export class T5LayerCrossAttention extends Module {
  declare EncDecAttention: T5Attention;
  declare layer_norm: T5LayerNorm;
  declare dropout: Dropout;

  constructor(config: T5Config, options: ModuleOptions & { isDecoder?: boolean } = {}) {
    super();
    this.registerModule('EncDecAttention', new T5Attention(config, { ...options, hasRelativeAttentionBias: false }));
    this.registerModule('layer_norm', new T5LayerNorm(config.dModel, { eps: config.layerNormEpsilon, backend: options.backend }));
    this.registerModule('dropout', new Dropout(config.dropoutRate));
  }

  forward(hiddenStates: Tensor, options: T5AttentionOptions & { keyValueStates: Tensor }): T5AttentionOutput {
    const normed = this.layer_norm.forward(hiddenStates);
    const attention = this.EncDecAttention.forward(normed, options);
    return { ...attention, output: hiddenStates.add(this.dropout.forward(attention.output)) };
  }
}

// ---- block ---------------------------------------------------------------------------------------------

export interface T5BlockOptions {
  attentionMask?: Tensor | null;
  positionBias?: Tensor | null;
  encoderHiddenStates?: Tensor | null;
  encoderAttentionMask?: Tensor | null;
  encoderDecoderPositionBias?: Tensor | null;
  layerHeadMask?: Tensor | null;
  crossAttnLayerHeadMask?: Tensor | null;
  pastKeyValue?: T5LayerPastKeyValue | null;
  useCache?: boolean;
  outputAttentions?: boolean;
}

export interface T5BlockOutput {
  hiddenStates: Tensor;
  /** [selfKey, selfValue(, crossKey, crossValue)] with useCache in a decoder. */
  presentKeyValue?: Tensor[];
  positionBias: Tensor;
  encoderDecoderPositionBias?: Tensor;
  attentions?: Tensor;
  crossAttentions?: Tensor;
}

/**
 * float16 only: where any value of `h` overflowed to inf, clamp everything to +-(finfo(float16).max - 1000)
 * so that the later layers stay finite (the reference's "clamp inf values to enable fp16 training").
 */
export function clampFloat16(h: Tensor): Tensor {
  if (h.dtype !== 'float16') return h;
  const max = 65504;
  const anyInf = h.abs().ge(Infinity).toFloat().max(); // [] 1 when some value is inf
  const bound = anyInf.mulScalar(-1000).addScalar(max).cast('float16'); // []
  return h.minimum(bound).maximum(bound.neg());
}

/** One block: layer[0] self-attention, layer[1] cross-attention (decoder only), layer[-1] feed-forward. */
export class T5Block extends Module {
  readonly isDecoder: boolean;
  declare layer: ModuleList<T5LayerSelfAttention | T5LayerCrossAttention | T5LayerFF>;

  constructor(config: T5Config, options: ModuleOptions & { hasRelativeAttentionBias?: boolean; isDecoder?: boolean } = {}) {
    super();
    this.isDecoder = options.isDecoder ?? config.isDecoder;
    const layers: (T5LayerSelfAttention | T5LayerCrossAttention | T5LayerFF)[] = [new T5LayerSelfAttention(config, { ...options, isDecoder: this.isDecoder })];
    if (this.isDecoder) layers.push(new T5LayerCrossAttention(config, { backend: options.backend, isDecoder: true }));
    layers.push(new T5LayerFF(config, options));
    this.registerModule('layer', new ModuleList(layers));
  }

  get selfAttention(): T5LayerSelfAttention {
    return this.layer.at(0) as T5LayerSelfAttention;
  }

  get crossAttention(): T5LayerCrossAttention | null {
    return this.isDecoder ? (this.layer.at(1) as T5LayerCrossAttention) : null;
  }

  forward(hiddenStates: Tensor, options: T5BlockOptions = {}): T5BlockOutput {
    const past = options.pastKeyValue ?? null;
    if (past) {
      const expected = options.encoderHiddenStates ? 4 : 2;
      if (past.length !== expected) {
        throw new ShapeError(`T5Block: there should be ${expected} past states (${expected === 4 ? '2 (key / value) for cross attention. ' : ''}), got ${past.length}`);
      }
    }
    const selfAttention = this.selfAttention.forward(hiddenStates, {
      mask: options.attentionMask,
      positionBias: options.positionBias,
      layerHeadMask: options.layerHeadMask,
      pastKeyValue: past ? past.slice(0, 2) : null,
      useCache: options.useCache,
      outputAttentions: options.outputAttentions,
    });
    let hidden = clampFloat16(selfAttention.output);
    let present = selfAttention.presentKeyValue;
    const out: Omit<T5BlockOutput, 'hiddenStates'> = { positionBias: selfAttention.positionBias };
    if (selfAttention.attentions) out.attentions = selfAttention.attentions;

    const cross = this.crossAttention;
    if (cross && options.encoderHiddenStates) {
      const crossAttention = cross.forward(hidden, {
        keyValueStates: options.encoderHiddenStates,
        mask: options.encoderAttentionMask,
        positionBias: options.encoderDecoderPositionBias,
        layerHeadMask: options.crossAttnLayerHeadMask,
        pastKeyValue: past ? past.slice(2, 4) : null,
        useCache: options.useCache,
        outputAttentions: options.outputAttentions,
      });
      hidden = clampFloat16(crossAttention.output);
      if (present && crossAttention.presentKeyValue) present = [...present, ...crossAttention.presentKeyValue];
      out.encoderDecoderPositionBias = crossAttention.positionBias;
      if (crossAttention.attentions) out.crossAttentions = crossAttention.attentions;
    }

    hidden = clampFloat16((this.layer.at(this.layer.length - 1) as T5LayerFF).forward(hidden));
    if (present) out.presentKeyValue = present;
    return { hiddenStates: hidden, ...out };
  }
}

// ---- classification head ----------------------------------------------------------------------------------

/** Sentence-level classification: out_proj(dropout(tanh(dense(dropout(x))))). */
export class T5ClassificationHead extends Module {
  declare dense: Linear;
  declare dropout: Dropout;
  declare out_proj: Linear;

  constructor(config: T5Config, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.dModel, config.dModel, options));
    this.registerModule('dropout', new Dropout(config.classifierDropout));
    this.registerModule('out_proj', new Linear(config.dModel, config.numLabels, options));
  }

  forward(hiddenStates: Tensor): Tensor {
    const h = this.dense.forward(this.dropout.forward(hiddenStates), 'tanh'); // [batch, dModel]
    return this.out_proj.forward(this.dropout.forward(h)); // [batch, numLabels]
  }
}

// ---- stack -------------------------------------------------------------------------------------------------

export interface T5StackOptions {
  inputIds?: Tensor | null;
  /** 1 = attend, 0 = pad: [batch, past + seq] (decoders: the causal mask is multiplied in). */
  attentionMask?: Tensor | null;
  encoderHiddenStates?: Tensor | null;
  /** 1 = attend, 0 = pad: [batch, encoderSeq]. */
  encoderAttentionMask?: Tensor | null;
  inputsEmbeds?: Tensor | null;
  /** [heads] or [layers, heads], 1 keeps a head. */
  headMask?: Tensor | null;
  crossAttnHeadMask?: Tensor | null;
  pastKeyValues?: T5PastKeyValues | null;
  useCache?: boolean;
  outputAttentions?: boolean;
  outputHiddenStates?: boolean;
}

export interface T5StackOutput {
  /** final_layer_norm(output of the last block), [batch, seq, dModel]. */
  lastHiddenState: Tensor;
  pastKeyValues?: Tensor[][];
  /** numLayers + 1 entries: the embeddings, the outputs of blocks 0..L-2, and lastHiddenState. */
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
  crossAttentions?: Tensor[];
}

/** The tensor arguments of a block, handed to `checkpoint` as inputs. */
const CHECKPOINTED_INPUTS = ['attentionMask', 'positionBias', 'encoderHiddenStates', 'encoderAttentionMask', 'encoderDecoderPositionBias', 'layerHeadMask', 'crossAttnLayerHeadMask'] as const;

/** The encoder or the decoder: embed_tokens (shared), blocks, final_layer_norm; optionally recomputes each block in backward. */
export class T5Stack extends Module implements GradientCheckpointable {
  /** Recompute each block's activations in backward instead of storing them (training only; turns the cache off). */
  gradientCheckpointing = false;
  readonly isDecoder: boolean;
  readonly numLayers: number;
  readonly useCacheDefault: boolean;
  declare embed_tokens: Embedding;
  declare block: ModuleList<T5Block>;
  declare final_layer_norm: T5LayerNorm;
  declare dropout: Dropout;
  readonly dModel: number;

  constructor(config: T5Config, embedTokens: Embedding, options: ModuleOptions & { isDecoder: boolean }) {
    super();
    this.isDecoder = options.isDecoder;
    this.numLayers = this.isDecoder ? config.numDecoderLayers : config.numLayers;
    this.useCacheDefault = config.useCache;
    this.dModel = config.dModel;
    this.registerModule('embed_tokens', embedTokens);
    const blocks = Array.from({ length: this.numLayers }, (_, i) => new T5Block(config, { backend: options.backend, isDecoder: this.isDecoder, hasRelativeAttentionBias: i === 0 }));
    this.registerModule('block', new ModuleList(blocks));
    this.registerModule('final_layer_norm', new T5LayerNorm(config.dModel, { eps: config.layerNormEpsilon, backend: options.backend }));
    this.registerModule('dropout', new Dropout(config.dropoutRate));
  }

  forward(options: T5StackOptions): T5StackOutput {
    const name = this.isDecoder ? 'decoder' : 'encoder';
    const { inputIds, inputsEmbeds } = options;
    if (inputIds && inputsEmbeds) throw new TypeError(`T5Stack (${name}): you cannot specify both ${name}InputIds and ${name}InputsEmbeds at the same time`);
    if (!inputIds && !inputsEmbeds) throw new TypeError(`T5Stack (${name}): you have to specify either ${name}InputIds or ${name}InputsEmbeds`);
    const inputShape = inputIds ? inputIds.shape : inputsEmbeds!.shape.slice(0, -1);
    if (inputShape.length !== 2) throw new ShapeError(`T5Stack (${name}): input ids must be [batch, seq], got [${inputShape.join(',')}]`);
    if (inputsEmbeds && inputsEmbeds.shape[2] !== this.dModel) throw new ShapeError(`T5Stack (${name}): inputsEmbeds must be [batch, seq, ${this.dModel}], got [${inputsEmbeds.shape.join(',')}]`);
    const [batchSize, seqLength] = inputShape;
    const backend = (inputIds ?? inputsEmbeds)!.backend;
    if (inputIds) checkIds(inputIds, this.embed_tokens.numEmbeddings, `T5Stack (${name}): input ids`);

    if (options.useCache && !this.isDecoder) throw new TypeError('T5Stack (encoder): useCache can only be set for the decoder');
    // As the reference: checkpointed blocks run twice, so they keep no cache.
    const checkpointing = this.gradientCheckpointing && this.training;
    const useCache = this.isDecoder && !checkpointing ? (options.useCache ?? this.useCacheDefault) : false;
    const past = options.pastKeyValues ?? null;
    if (past && past.length !== this.numLayers) throw new ShapeError(`T5Stack (${name}): pastKeyValues has ${past.length} layers, the stack has ${this.numLayers}`);
    const pastLength = past ? past[0][0].shape[2] : 0;
    const maskSeqLength = pastLength + seqLength;

    const embeds = inputsEmbeds ?? this.embed_tokens.forward(inputIds!); // [batch, seq, dModel]
    const attentionMask = options.attentionMask ?? full([batchSize, maskSeqLength], 1, { backend });
    if (attentionMask.rank === 2 && (attentionMask.shape[0] !== batchSize || attentionMask.shape[1] !== maskSeqLength)) {
      throw new ShapeError(`T5Stack (${name}): attention mask [${attentionMask.shape.join(',')}] does not match [batch ${batchSize}, past ${pastLength} + seq ${seqLength}]`);
    }
    // [batch, 1, 1|q, k] additive; the decoder multiplies in the causal mask (aligned after the past).
    // Masked values are finfo(dtype).min of the model's dtype (float16 after cast('float16')), as in the reference.
    const maskDType = this.embed_tokens.weight.dtype === 'float16' ? 'float16' : 'float32';
    const extendedAttentionMask = getExtendedAttentionMask(attentionMask, [batchSize, seqLength], { isDecoder: this.isDecoder, dtype: maskDType });

    let encoderExtendedAttentionMask: Tensor | null = null;
    if (this.isDecoder && options.encoderHiddenStates) {
      const [encoderBatchSize, encoderSequenceLength] = options.encoderHiddenStates.shape;
      const encoderAttentionMask = options.encoderAttentionMask ?? full([encoderBatchSize, encoderSequenceLength], 1, { backend });
      encoderExtendedAttentionMask = invertAttentionMask(encoderAttentionMask, { dtype: maskDType }); // [batch, 1, 1, encoderSeq]
    }

    const headMask = getHeadMask(options.headMask, this.numLayers);
    const crossAttnHeadMask = getHeadMask(options.crossAttnHeadMask, this.numLayers);
    const allHiddenStates: Tensor[] | undefined = options.outputHiddenStates ? [] : undefined;
    const allAttentions: Tensor[] | undefined = options.outputAttentions ? [] : undefined;
    const allCrossAttentions: Tensor[] | undefined = options.outputAttentions && this.isDecoder ? [] : undefined;
    const presentKeyValueStates: Tensor[][] | undefined = useCache ? [] : undefined;

    let positionBias: Tensor | null = null;
    let encoderDecoderPositionBias: Tensor | null = null;
    const crossAttends = this.isDecoder && !!options.encoderHiddenStates;
    const checkpointBlocks = checkpointing && !options.outputAttentions;
    if (checkpointBlocks) {
      // Only hidden states leave a checkpointed block, so block 0's biases (mask included) are made here.
      positionBias = this.block.at(0).selfAttention.SelfAttention.computeBias(seqLength, pastLength + seqLength, pastLength).add(extendedAttentionMask);
      if (crossAttends) {
        const encoderLength = options.encoderHiddenStates!.shape[1];
        encoderDecoderPositionBias = zeros([1, this.block.at(0).selfAttention.SelfAttention.nHeads, seqLength, encoderLength], { backend }).add(encoderExtendedAttentionMask!);
      }
    }
    let hidden = this.dropout.forward(embeds);
    for (const [i, layerModule] of this.block.items.entries()) {
      allHiddenStates?.push(hidden);
      const blockOptions: T5BlockOptions = {
        attentionMask: extendedAttentionMask,
        positionBias,
        encoderHiddenStates: options.encoderHiddenStates,
        encoderAttentionMask: encoderExtendedAttentionMask,
        encoderDecoderPositionBias,
        layerHeadMask: headMask[i],
        crossAttnLayerHeadMask: crossAttnHeadMask[i],
        pastKeyValue: past?.[i] ?? null,
        useCache,
        outputAttentions: options.outputAttentions,
      };
      if (checkpointBlocks) {
        // Every tensor the block reads goes in as an input, so the recompute in backward finds it alive.
        const given = CHECKPOINTED_INPUTS.filter((name) => blockOptions[name]);
        const run = (h: Tensor, ...rest: Tensor[]) => layerModule.forward(h, { ...blockOptions, ...Object.fromEntries(given.map((name, k) => [name, rest[k]])) }).hiddenStates;
        hidden = checkpoint(run, hidden, ...given.map((name) => blockOptions[name] as Tensor));
        continue;
      }
      const layerOutputs = layerModule.forward(hidden, blockOptions);
      hidden = layerOutputs.hiddenStates;
      // Block 0 computed the biases (mask included); every later block reuses them.
      positionBias = layerOutputs.positionBias;
      if (crossAttends) encoderDecoderPositionBias = layerOutputs.encoderDecoderPositionBias ?? null;
      if (presentKeyValueStates && layerOutputs.presentKeyValue) presentKeyValueStates.push(layerOutputs.presentKeyValue);
      if (layerOutputs.attentions) allAttentions?.push(layerOutputs.attentions);
      if (layerOutputs.crossAttentions) allCrossAttentions?.push(layerOutputs.crossAttentions);
    }

    const lastHiddenState = this.dropout.forward(this.final_layer_norm.forward(hidden));
    allHiddenStates?.push(lastHiddenState);
    const out: T5StackOutput = { lastHiddenState };
    if (presentKeyValueStates) out.pastKeyValues = presentKeyValueStates;
    if (allHiddenStates) out.hiddenStates = allHiddenStates;
    if (allAttentions) out.attentions = allAttentions;
    if (allCrossAttentions) out.crossAttentions = allCrossAttentions;
    return out;
  }
}

/** The ids on the host when the backend reads synchronously (cpu); null on a device (WebGPU). */
function hostIds(ids: Tensor): Int32Array | null {
  return ids.backend.readSync ? (ids.dataSync() as Int32Array) : null;
}

/**
 * Token ids must index the vocabulary: a clear error before any work (ids < 0 or >= vocab). On a
 * device the ids cannot be read back synchronously; `generate` checks its own ids on the host.
 */
function checkIds(ids: Tensor, vocabSize: number, what: string): void {
  if (ids.dtype !== 'int32') throw new TypeError(`${what} must be int32, got ${ids.dtype}`);
  const data = hostIds(ids);
  if (data) checkIdsInVocabulary(data, vocabSize, `${what}:`);
}

// ---- the pretrained base ---------------------------------------------------------------------------------

export type T5ModelOptions = ModuleOptions;

/** Inputs every encoder-decoder T5 model takes. */
export interface T5Inputs {
  /** int32 [batch, seq] encoder input ids. */
  inputIds?: Tensor | null;
  /** 1 = attend, 0 = pad: [batch, seq] for the encoder (and the cross-attention keys). */
  attentionMask?: Tensor | null;
  /** int32 [batch, decoderSeq]. */
  decoderInputIds?: Tensor | null;
  /** 1 = attend, 0 = pad: [batch, past + decoderSeq]; all ones when absent (pads are not inferred). */
  decoderAttentionMask?: Tensor | null;
  headMask?: Tensor | null;
  decoderHeadMask?: Tensor | null;
  crossAttnHeadMask?: Tensor | null;
  /** The encoder's output, to skip the encoder (generation runs it once). */
  encoderOutputs?: T5StackOutput | { lastHiddenState: Tensor } | null;
  pastKeyValues?: T5PastKeyValues | null;
  inputsEmbeds?: Tensor | null;
  decoderInputsEmbeds?: Tensor | null;
  useCache?: boolean;
  outputAttentions?: boolean;
  outputHiddenStates?: boolean;
}

/** What the encoder-decoder models return beside their heads' outputs (the reference's Seq2Seq fields). */
export interface T5Seq2SeqOutputs {
  pastKeyValues?: Tensor[][];
  decoderHiddenStates?: Tensor[];
  decoderAttentions?: Tensor[];
  crossAttentions?: Tensor[];
  encoderLastHiddenState: Tensor;
  encoderHiddenStates?: Tensor[];
  encoderAttentions?: Tensor[];
}

/** The base of every T5 model: config parsing, the reference's `_init_weights`, `_shift_right`. */
export abstract class T5PreTrainedModel extends PreTrainedModel<T5Config> {
  static override baseModelPrefix = 'transformer';

  static configFromJSON(json: JsonObject): T5Config {
    return T5Config.fromJSON(json);
  }

  /** The reference's `_init_weights` (initializer_factor scales every std). */
  protected initModule(module: Module): void {
    const factor = this.config.initializerFactor;
    const { dModel, dKv, dFf } = this.config;
    const normal = (t: Tensor | null | undefined, std: number) => t && initInPlace(t, { kind: 'normal', std });
    const constant = (t: Tensor | null | undefined, value: number) => t && initInPlace(t, { kind: 'constant', value });
    if (module instanceof T5LayerNorm) constant(module.weight, factor);
    else if (module instanceof T5PreTrainedModel) {
      const m = module as unknown as { shared?: Embedding; lm_head?: Linear; qa_outputs?: Linear; classifier?: Linear };
      normal(m.shared?.weight, factor);
      if (m.lm_head && !this.config.tieWordEmbeddings) normal(m.lm_head.weight, factor);
      if (m.qa_outputs) {
        normal(m.qa_outputs.weight, factor * dModel ** -0.5);
        constant(m.qa_outputs.bias, 0);
      }
      if (m.classifier) {
        normal(m.classifier.weight, factor);
        constant(m.classifier.bias, 0);
      }
    } else if (module instanceof T5ClassificationHead) {
      normal(module.dense.weight, factor * dModel ** -0.5);
      constant(module.dense.bias, 0);
      normal(module.out_proj.weight, factor * dModel ** -0.5);
      constant(module.out_proj.bias, 0);
    } else if (module instanceof T5DenseActDense) {
      normal(module.wi.weight, factor * dModel ** -0.5);
      normal(module.wo.weight, factor * dFf ** -0.5);
    } else if (module instanceof T5DenseGatedActDense) {
      normal(module.wi_0.weight, factor * dModel ** -0.5);
      normal(module.wi_1.weight, factor * dModel ** -0.5);
      normal(module.wo.weight, factor * dFf ** -0.5);
    } else if (module instanceof T5Attention) {
      const nHeads = this.config.numHeads;
      normal(module.q.weight, factor * (dModel * dKv) ** -0.5);
      normal(module.k.weight, factor * dModel ** -0.5);
      normal(module.v.weight, factor * dModel ** -0.5);
      normal(module.o.weight, factor * (nHeads * dKv) ** -0.5);
      normal(module.relative_attention_bias?.weight, factor * dModel ** -0.5);
    }
  }

  protected override initWeights(t: Tensor): void {
    initInPlace(t, { kind: 'normal', std: this.config.initializerFactor });
  }

  /** The reference's `post_init`: initialise every weight (unless loading skips it), then tie weights. */
  protected postInit(): void {
    if (!isInitSkipped()) for (const [, m] of this.namedModules()) this.initModule(m);
    this.tieWeights();
  }

  /**
   * The reference's `_shift_right`: decoder inputs from labels, [start, y0, ..., y(n-2)], with -100
   * (ignored label) replaced by the pad id.
   */
  shiftRight(inputIds: Tensor): Tensor {
    const start = this.config.decoderStartTokenId;
    const pad = this.config.padTokenId;
    if (start === null) throw new ConfigError('T5: config.decoder_start_token_id has to be defined to shift labels right (in T5 it is usually the pad_token_id)');
    if (pad === null) throw new ConfigError('T5: config.pad_token_id has to be defined to shift labels right');
    const [batch, length] = inputIds.shape;
    const head = full([batch, 1], start, { dtype: 'int32', backend: inputIds.backend }); // [batch, 1]
    const shifted = length > 1 ? concat([head, inputIds.slice(1, 0, length - 1)], 1) : head; // [batch, length]
    return where(shifted.eq(-100), pad, shifted);
  }
}

/** Builds a sub-model without initialising it: the outer model's postInit initialises everything once. */
function uninitialised<M>(build: () => M): M {
  return withoutInit(build);
}

/** A shared embedding, then the encoder and (for encoder-decoders) the decoder built on it. */
function buildStacks(config: T5Config, options: ModuleOptions, withDecoder: boolean): { shared: Embedding; encoder: T5Stack; decoder: T5Stack | null } {
  if (config.dModel <= 0 || config.numHeads <= 0 || config.dKv <= 0) {
    throw new ConfigError(`T5: d_model (${config.dModel}), num_heads (${config.numHeads}) and d_kv (${config.dKv}) must be positive`);
  }
  const shared = new Embedding(config.vocabSize, config.dModel, { backend: options.backend });
  const encoder = new T5Stack(config, shared, { backend: options.backend, isDecoder: false });
  const decoder = withDecoder ? new T5Stack(config, shared, { backend: options.backend, isDecoder: true }) : null;
  return { shared, encoder, decoder };
}

/** The encoder's output object from the inputs, running the encoder unless `encoderOutputs` is given. */
function runEncoder(encoder: T5Stack, options: T5Inputs, outputAttentions: boolean, outputHiddenStates: boolean): T5StackOutput {
  if (options.encoderOutputs) return options.encoderOutputs;
  return encoder.forward({
    inputIds: options.inputIds,
    attentionMask: options.attentionMask,
    inputsEmbeds: options.inputsEmbeds,
    headMask: options.headMask,
    outputAttentions,
    outputHiddenStates,
  });
}

/** The Seq2Seq fields from the decoder and encoder outputs. */
function seq2seqFields(decoderOutputs: T5StackOutput, encoderOutputs: T5StackOutput): T5Seq2SeqOutputs {
  const out: T5Seq2SeqOutputs = { encoderLastHiddenState: encoderOutputs.lastHiddenState };
  if (decoderOutputs.pastKeyValues) out.pastKeyValues = decoderOutputs.pastKeyValues;
  if (decoderOutputs.hiddenStates) out.decoderHiddenStates = decoderOutputs.hiddenStates;
  if (decoderOutputs.attentions) out.decoderAttentions = decoderOutputs.attentions;
  if (decoderOutputs.crossAttentions) out.crossAttentions = decoderOutputs.crossAttentions;
  if (encoderOutputs.hiddenStates) out.encoderHiddenStates = encoderOutputs.hiddenStates;
  if (encoderOutputs.attentions) out.encoderAttentions = encoderOutputs.attentions;
  return out;
}

/** Every encoder-decoder model: shared embedding, encoder, decoder, pruning of encoder heads. */
abstract class T5EncoderDecoderBase extends T5PreTrainedModel {
  abstract shared: Embedding;
  abstract encoder: T5Stack;
  abstract decoder: T5Stack;

  getInputEmbeddings(): Embedding {
    return this.shared;
  }

  setInputEmbeddings(value: Embedding): void {
    this.shared = value;
    this.encoder.embed_tokens = value;
    this.decoder.embed_tokens = value;
  }

  getEncoder(): T5Stack {
    return this.encoder;
  }

  getDecoder(): T5Stack {
    return this.decoder;
  }

  /** As the reference's T5Model: prunes heads of the encoder's self-attention, `{ layer: [heads] }`. */
  protected override pruneHeadsImpl(headsToPrune: Record<number, number[]>): void {
    for (const [layer, heads] of Object.entries(headsToPrune)) this.encoder.block.at(Number(layer)).selfAttention.SelfAttention.pruneHeads(heads);
  }

  /** Runs the encoder (unless given) and the decoder on `decoderInputIds`. */
  protected runSeq2Seq(options: T5Inputs, decoderInputIds: Tensor | null | undefined): { encoderOutputs: T5StackOutput; decoderOutputs: T5StackOutput } {
    const config = this.config;
    const outputAttentions = options.outputAttentions ?? config.outputAttentions;
    const outputHiddenStates = options.outputHiddenStates ?? config.outputHiddenStates;
    const useCache = options.useCache ?? config.useCache;
    const encoderOutputs = runEncoder(this.encoder, options, outputAttentions, outputHiddenStates);
    const decoderOutputs = this.decoder.forward({
      inputIds: decoderInputIds,
      attentionMask: options.decoderAttentionMask,
      inputsEmbeds: options.decoderInputsEmbeds,
      pastKeyValues: options.pastKeyValues,
      encoderHiddenStates: encoderOutputs.lastHiddenState,
      encoderAttentionMask: options.attentionMask,
      // As the reference (a deprecated fallback): without decoderHeadMask, headMask applies to the decoder
      // too when both stacks have as many layers.
      headMask: options.decoderHeadMask ?? (options.headMask && config.numLayers === config.numDecoderLayers ? options.headMask : null),
      crossAttnHeadMask: options.crossAttnHeadMask,
      useCache,
      outputAttentions,
      outputHiddenStates,
    });
    return { encoderOutputs, decoderOutputs };
  }
}

// ---- T5Model -------------------------------------------------------------------------------------------------

export interface T5ModelOutput extends T5Seq2SeqOutputs {
  /** The decoder's last hidden state [batch, decoderSeq, dModel]. */
  lastHiddenState: Tensor;
}

/** The bare encoder-decoder: the decoder's last hidden state plus every Seq2Seq field. */
export class T5Model extends T5EncoderDecoderBase {
  declare shared: Embedding;
  declare encoder: T5Stack;
  declare decoder: T5Stack;

  constructor(config: T5Config, options: T5ModelOptions = {}) {
    super(config);
    const { shared, encoder, decoder } = buildStacks(config, options, true);
    this.registerModule('shared', shared);
    this.registerModule('encoder', encoder);
    this.registerModule('decoder', decoder!);
    this.postInit();
  }

  forward(options: T5Inputs): T5ModelOutput {
    return scope(() => {
      const { encoderOutputs, decoderOutputs } = this.runSeq2Seq(options, options.decoderInputIds);
      return { lastHiddenState: decoderOutputs.lastHiddenState, ...seq2seqFields(decoderOutputs, encoderOutputs) };
    });
  }
}

// ---- T5ForConditionalGeneration ----------------------------------------------------------------------------

export interface T5ForConditionalGenerationInputs extends T5Inputs {
  /** int32 [batch, targetSeq] targets, -100 = ignored; the decoder inputs are them shifted right unless given. */
  labels?: Tensor | null;
}

export interface T5Seq2SeqLMOutput extends T5Seq2SeqOutputs {
  /** Mean cross-entropy over the labels that are not -100. */
  loss?: Tensor;
  /** [batch, decoderSeq, vocab] */
  logits: Tensor;
}

/** T5 with the language-modelling head; tied (v1.0) heads scale the decoder output by dModel^-0.5 first. */
export class T5ForConditionalGeneration extends T5EncoderDecoderBase {
  declare shared: Embedding;
  declare encoder: T5Stack;
  declare decoder: T5Stack;
  declare lm_head: Linear;
  readonly modelDim: number;
  protected override tiedWeightsKeys = ['encoder.embed_tokens.weight', 'decoder.embed_tokens.weight', 'lm_head.weight'];

  constructor(config: T5Config, options: T5ModelOptions = {}) {
    super(config);
    this.modelDim = config.dModel;
    const { shared, encoder, decoder } = buildStacks(config, options, true);
    this.registerModule('shared', shared);
    this.registerModule('encoder', encoder);
    this.registerModule('decoder', decoder!);
    this.registerModule('lm_head', new Linear(config.dModel, config.vocabSize, { bias: false, backend: options.backend }));
    this.postInit();
  }

  override getOutputEmbeddings(): Linear {
    return this.lm_head;
  }

  override setOutputEmbeddings(newEmbeddings: Linear): void {
    this.lm_head = newEmbeddings;
  }

  /**
   * The DecoderStep generation runs on: the first call (cache null) runs the encoder once on
   * `inputIds` and the decoder on the decoder prompt, projecting the cross-attention keys/values;
   * every later call feeds only the new ids with the cache.
   */
  decoderStep(inputIds: Tensor, attentionMask?: Tensor | null): DecoderStep<T5GenerationCache> {
    return (ids, cache) => {
      if (!cache) {
        const mask = attentionMask ? alias(attentionMask) : full(inputIds.shape, 1, { dtype: 'int32', backend: inputIds.backend });
        const encoderOutputs = this.encoder.forward({ inputIds, attentionMask: mask }); // [batch, seq, dModel]
        const out = this.forward({ encoderOutputs, attentionMask: mask, decoderInputIds: ids, useCache: true });
        return { logits: out.logits, cache: { encoderHiddenStates: encoderOutputs.lastHiddenState, attentionMask: mask, pastKeyValues: out.pastKeyValues! } };
      }
      const out = this.forward({
        encoderOutputs: { lastHiddenState: cache.encoderHiddenStates },
        attentionMask: cache.attentionMask,
        decoderInputIds: ids,
        pastKeyValues: cache.pastKeyValues,
        useCache: true,
      });
      return { logits: out.logits, cache: { encoderHiddenStates: cache.encoderHiddenStates, attentionMask: cache.attentionMask, pastKeyValues: out.pastKeyValues! } };
    };
  }

  /** Checks the options and builds the decoder prompt ([batch, 1] start ids unless given). */
  private async generationInputs(inputIds: Tensor, options: T5GenerateOptions): Promise<{ step: DecoderStep<T5GenerationCache>; prompt: Tensor; rest: GenerateOptions<T5GenerationCache> }> {
    const { attentionMask, decoderStartTokenId, decoderInputIds, ...rest } = options;
    if (inputIds.rank !== 2 || inputIds.dtype !== 'int32') throw new GenerationError(`T5ForConditionalGeneration.generate: inputIds must be int32 [batch, seq], got ${inputIds.dtype} [${inputIds.shape.join(',')}]`);
    const maxNewTokens = rest.maxNewTokens ?? 20;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens <= 0) throw new GenerationError(`T5ForConditionalGeneration.generate: maxNewTokens must be a positive integer, got ${maxNewTokens}`);
    const vocab = this.config.vocabSize;
    const check = async (t: Tensor, what: string) => checkIdsInVocabulary((await t.data()) as Int32Array, vocab, `T5ForConditionalGeneration.generate: ${what}`, (m) => new GenerationError(m));
    await check(inputIds, 'input');
    if (attentionMask && (attentionMask.rank !== 2 || attentionMask.shape[0] !== inputIds.shape[0] || attentionMask.shape[1] !== inputIds.shape[1])) {
      throw new GenerationError(`T5ForConditionalGeneration.generate: attentionMask [${attentionMask.shape.join(',')}] must match inputIds [${inputIds.shape.join(',')}]`);
    }
    let prompt: Tensor;
    if (decoderInputIds) {
      if (decoderInputIds.rank !== 2 || decoderInputIds.shape[0] !== inputIds.shape[0]) throw new GenerationError(`T5ForConditionalGeneration.generate: decoderInputIds must be [batch ${inputIds.shape[0]}, n], got [${decoderInputIds.shape.join(',')}]`);
      await check(decoderInputIds, 'decoder');
      prompt = decoderInputIds;
    } else {
      const start = decoderStartTokenId ?? this.config.decoderStartTokenId ?? this.config.padTokenId;
      if (start === null || !Number.isInteger(start) || start < 0 || start >= vocab) {
        throw new GenerationError(`T5ForConditionalGeneration.generate: decoderStartTokenId must be a token id in [0, ${vocab}), got ${start}`);
      }
      prompt = full([inputIds.shape[0], 1], start, { dtype: 'int32', backend: inputIds.backend });
    }
    const eos = rest.eosTokenId ?? this.config.eosTokenId ?? undefined;
    const pad = rest.padTokenId ?? this.config.padTokenId ?? undefined;
    return { step: this.decoderStep(inputIds, attentionMask), prompt, rest: { ...rest, maxNewTokens, eosTokenId: eos, padTokenId: pad } };
  }

  /**
   * Text-to-text generation: greedy search, sampling (`doSample`, temperature, topK, topP) or beam
   * search (`numBeams`, lengthPenalty, earlyStopping, numReturnSequences), with the logits processors
   * of `@lm/layers`. The encoder runs once and the cross-attention keys/values are projected once.
   * `sequences` start with the decoder start token, as the reference's do. Stops at config.eos_token_id
   * unless `eosTokenId` says otherwise (pass `eosTokenId: []` to always run maxNewTokens steps).
   */
  async generate(inputIds: Tensor, options: T5GenerateOptions = {}): Promise<GenerateOutput> {
    const { step, prompt, rest } = await this.generationInputs(inputIds, options);
    try {
      return await generate(step, prompt, rest);
    } finally {
      if (prompt !== options.decoderInputIds) prompt.dispose();
    }
  }

  /** Greedy search or sampling, yielding each token as soon as it is chosen. */
  async *stream(inputIds: Tensor, options: T5GenerateOptions = {}): AsyncGenerator<StreamEvent> {
    const { step, prompt, rest } = await this.generationInputs(inputIds, options);
    try {
      yield* stream(step, prompt, rest);
    } finally {
      if (prompt !== options.decoderInputIds) prompt.dispose();
    }
  }

  forward(options: T5ForConditionalGenerationInputs): T5Seq2SeqLMOutput {
    return scope(() => {
      const labels = options.labels ?? null;
      if (labels) checkLabels(labels, this.config.vocabSize);
      // Teacher forcing: the decoder reads the labels shifted right.
      const decoderInputIds = labels && !options.decoderInputIds && !options.decoderInputsEmbeds ? this.shiftRight(labels) : options.decoderInputIds;
      const { encoderOutputs, decoderOutputs } = this.runSeq2Seq(options, decoderInputIds);
      let sequenceOutput = decoderOutputs.lastHiddenState; // [batch, decoderSeq, dModel]
      // Mesh TensorFlow rescales the output before the tied projection onto the vocabulary.
      if (this.config.tieWordEmbeddings) sequenceOutput = sequenceOutput.mulScalar(this.modelDim ** -0.5);
      const logits = this.lm_head.forward(sequenceOutput); // [batch, decoderSeq, vocab]
      const out: T5Seq2SeqLMOutput = { logits, ...seq2seqFields(decoderOutputs, encoderOutputs) };
      if (labels) out.loss = crossEntropy(logits.reshape(-1, logits.shape[2]), labels.reshape(-1));
      return out;
    });
  }
}

// ---- generation -----------------------------------------------------------------------------------------------

/**
 * What encoder-decoder generation carries from step to step, all batch-first so beam search can
 * reorder it: the encoder output (run once, on the first step), its 1/0 mask, and per decoder layer
 * [selfKey, selfValue, crossKey, crossValue]; the cross keys/values are projected on the first step
 * and read back from here afterwards.
 */
export interface T5GenerationCache {
  /** [batch, encoderSeq, dModel] */
  encoderHiddenStates: Tensor;
  /** [batch, encoderSeq], 1 = attend */
  attentionMask: Tensor;
  pastKeyValues: Tensor[][];
}

export interface T5GenerateOptions extends Omit<GenerateOptions<T5GenerationCache>, 'cacheOps'> {
  /** 1 = attend, 0 = pad: [batch, seq] for the encoder input. */
  attentionMask?: Tensor | null;
  /** The first decoder id (default config.decoder_start_token_id, the pad id in T5). */
  decoderStartTokenId?: number;
  /** A decoder prompt int32 [batch, n] to continue instead of the start token. */
  decoderInputIds?: Tensor | null;
}

/** Labels are vocabulary ids or -100 (ignored). */
function checkLabels(labels: Tensor, vocabSize: number): void {
  if (labels.dtype !== 'int32') throw new TypeError(`T5: labels must be int32, got ${labels.dtype}`);
  const data = hostIds(labels);
  const bad = data ? idOutsideVocabulary(data, vocabSize, -100) : -1;
  if (bad >= 0) throw new RangeError(`T5: label ${data![bad]} at flat index ${bad} is neither -100 nor in the vocabulary [0, ${vocabSize})`);
}

// ---- T5EncoderModel ---------------------------------------------------------------------------------------------

export interface T5EncoderInputs {
  inputIds?: Tensor | null;
  attentionMask?: Tensor | null;
  headMask?: Tensor | null;
  inputsEmbeds?: Tensor | null;
  outputAttentions?: boolean;
  outputHiddenStates?: boolean;
}

/** The encoder alone (T5 as a text encoder: sentence embeddings, FLAN-T5 / T5 v1.1 encoders). */
export class T5EncoderModel extends T5PreTrainedModel {
  declare shared: Embedding;
  declare encoder: T5Stack;
  protected override tiedWeightsKeys = ['encoder.embed_tokens.weight'];

  constructor(config: T5Config, options: T5ModelOptions = {}) {
    super(config);
    const { shared, encoder } = buildStacks(config, options, false);
    this.registerModule('shared', shared);
    this.registerModule('encoder', encoder);
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    return this.shared;
  }

  setInputEmbeddings(value: Embedding): void {
    this.shared = value;
    this.encoder.embed_tokens = value;
  }

  getEncoder(): T5Stack {
    return this.encoder;
  }

  protected override pruneHeadsImpl(headsToPrune: Record<number, number[]>): void {
    for (const [layer, heads] of Object.entries(headsToPrune)) this.encoder.block.at(Number(layer)).selfAttention.SelfAttention.pruneHeads(heads);
  }

  forward(options: T5EncoderInputs): T5StackOutput {
    return scope(() =>
      this.encoder.forward({
        inputIds: options.inputIds,
        attentionMask: options.attentionMask,
        inputsEmbeds: options.inputsEmbeds,
        headMask: options.headMask,
        outputAttentions: options.outputAttentions ?? this.config.outputAttentions,
        outputHiddenStates: options.outputHiddenStates ?? this.config.outputHiddenStates,
      }),
    );
  }
}

// ---- T5ForSequenceClassification ---------------------------------------------------------------------------------

export interface T5ForSequenceClassificationInputs extends T5Inputs {
  /** int32 [batch] class ids; float [batch] (regression) or [batch, numLabels] (multi-label). */
  labels?: Tensor | null;
}

export interface T5Seq2SeqClassifierOutput extends T5Seq2SeqOutputs {
  loss?: Tensor;
  /** [batch, numLabels] */
  logits: Tensor;
}

/** The loss the reference picks from config.problem_type (inferred from numLabels and the label dtype when unset). */
function classificationLoss(logits: Tensor, labels: Tensor, config: T5Config): Tensor {
  const numLabels = config.numLabels;
  const problem = config.problemType ?? (numLabels === 1 ? 'regression' : labels.dtype === 'int32' ? 'single_label_classification' : 'multi_label_classification');
  if (problem === 'regression') {
    const l = labels.toFloat();
    return numLabels === 1 ? mseLoss(logits.squeeze(), l.squeeze()) : mseLoss(logits, l);
  }
  if (problem === 'single_label_classification') return crossEntropy(logits.reshape(-1, numLabels), labels.reshape(-1));
  return binaryCrossEntropyWithLogits(logits, labels.toFloat());
}

/** Classification from the decoder state at the last <eos> of the input (the input shifted right feeds the decoder). */
export class T5ForSequenceClassification extends T5PreTrainedModel {
  declare transformer: T5Model;
  declare classification_head: T5ClassificationHead;

  constructor(config: T5Config, options: T5ModelOptions = {}) {
    super(config);
    this.registerModule('transformer', uninitialised(() => new T5Model(config, options)));
    this.registerModule('classification_head', new T5ClassificationHead(config, options));
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    return this.transformer.getInputEmbeddings();
  }

  setInputEmbeddings(value: Embedding): void {
    this.transformer.setInputEmbeddings(value);
  }

  protected override pruneHeadsImpl(headsToPrune: Record<number, number[]>): void {
    this.transformer.pruneHeads(headsToPrune);
  }

  forward(options: T5ForSequenceClassificationInputs): T5Seq2SeqClassifierOutput {
    const inputIds = options.inputIds;
    if (!inputIds) throw new TypeError('T5ForSequenceClassification: passing inputsEmbeds is not supported (the <eos> positions come from inputIds)');
    const eos = this.config.eosTokenId;
    if (eos === null) throw new ConfigError('T5ForSequenceClassification: config.eos_token_id must be set');
    // The representation is the decoder state at each row's last <eos>; every row needs as many <eos>.
    const [batch, seq] = inputIds.shape;
    const ids = hostIds(inputIds);
    if (ids) {
      let count = -1;
      for (let b = 0; b < batch; b++) {
        let n = 0;
        for (let s = 0; s < seq; s++) if (ids[b * seq + s] === eos) n++;
        if (n === 0) throw new ShapeError(`T5ForSequenceClassification: input row ${b} has no <eos> token (${eos})`);
        if (count !== -1 && n !== count) throw new ShapeError('T5ForSequenceClassification: all examples must have the same number of <eos> tokens');
        count = n;
      }
    }
    return scope(() => {
      const decoderInputIds = !options.decoderInputIds && !options.decoderInputsEmbeds ? this.shiftRight(inputIds) : options.decoderInputIds;
      const outputs = this.transformer.forward({ ...options, decoderInputIds });
      const sequenceOutput = outputs.lastHiddenState; // [batch, seq, dModel]
      // Last <eos> per row: argmax of (id == eos) * (position + 1), then its flat row b * seq + position.
      const positions = arange(1, seq + 1, 1, { backend: inputIds.backend }); // [seq]
      const lastEos = inputIds.eq(eos).toFloat().mul(positions).argmax(-1).toInt(); // [batch]
      const rows = lastEos.add(arange(0, batch * seq, seq, { dtype: 'int32', backend: inputIds.backend })); // [batch]
      const sentenceRepresentation = sequenceOutput.reshape(batch * seq, -1).indexSelect(0, rows); // [batch, dModel]
      const logits = this.classification_head.forward(sentenceRepresentation); // [batch, numLabels]
      const { lastHiddenState: _last, ...rest } = outputs;
      void _last;
      const out: T5Seq2SeqClassifierOutput = { logits, ...rest };
      if (options.labels) out.loss = classificationLoss(logits, options.labels, this.config);
      return out;
    });
  }
}

// ---- T5ForTokenClassification ---------------------------------------------------------------------------------------

export interface T5ForTokenClassificationInputs extends T5EncoderInputs {
  /** int32 [batch, seq] class ids, -100 = ignored. */
  labels?: Tensor | null;
}

export interface T5TokenClassifierOutput {
  loss?: Tensor;
  /** [batch, seq, numLabels] */
  logits: Tensor;
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}

/** Per-token classification on the encoder's output. */
export class T5ForTokenClassification extends T5PreTrainedModel {
  declare transformer: T5EncoderModel;
  declare dropout: Dropout;
  declare classifier: Linear;

  constructor(config: T5Config, options: T5ModelOptions = {}) {
    super(config);
    this.registerModule('transformer', uninitialised(() => new T5EncoderModel(config, options)));
    this.registerModule('dropout', new Dropout(config.classifierDropout));
    this.registerModule('classifier', new Linear(config.dModel, config.numLabels, options));
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    return this.transformer.getInputEmbeddings();
  }

  setInputEmbeddings(value: Embedding): void {
    this.transformer.setInputEmbeddings(value);
  }

  protected override pruneHeadsImpl(headsToPrune: Record<number, number[]>): void {
    this.transformer.pruneHeads(headsToPrune);
  }

  forward(options: T5ForTokenClassificationInputs): T5TokenClassifierOutput {
    return scope(() => {
      const outputs = this.transformer.forward(options);
      const hidden = this.dropout.forward(outputs.lastHiddenState);
      const logits = this.classifier.forward(hidden); // [batch, seq, numLabels]
      const out: T5TokenClassifierOutput = { logits };
      if (outputs.hiddenStates) out.hiddenStates = outputs.hiddenStates;
      if (outputs.attentions) out.attentions = outputs.attentions;
      if (options.labels) out.loss = crossEntropy(logits.reshape(-1, this.config.numLabels), options.labels.reshape(-1));
      return out;
    });
  }
}

// ---- T5ForQuestionAnswering ---------------------------------------------------------------------------------------------

export interface T5ForQuestionAnsweringInputs extends T5Inputs {
  /** int32 [batch] span starts; positions outside the sequence are clamped and ignored. */
  startPositions?: Tensor | null;
  endPositions?: Tensor | null;
}

export interface T5Seq2SeqQuestionAnsweringOutput extends T5Seq2SeqOutputs {
  loss?: Tensor;
  /** [batch, decoderSeq] */
  startLogits: Tensor;
  endLogits: Tensor;
}

/** Extractive QA: span start/end logits from the decoder output (decoder inputs = input ids shifted right). */
export class T5ForQuestionAnswering extends T5EncoderDecoderBase {
  declare shared: Embedding;
  declare encoder: T5Stack;
  declare decoder: T5Stack;
  declare qa_outputs: Linear;
  readonly numLabels: number;
  protected override tiedWeightsKeys = ['encoder.embed_tokens.weight', 'decoder.embed_tokens.weight'];

  constructor(config: T5Config, options: T5ModelOptions = {}) {
    super(config);
    this.numLabels = config.numLabels;
    const { shared, encoder, decoder } = buildStacks(config, options, true);
    this.registerModule('shared', shared);
    this.registerModule('encoder', encoder);
    this.registerModule('decoder', decoder!);
    this.registerModule('qa_outputs', new Linear(config.dModel, config.numLabels, { backend: options.backend }));
    this.postInit();
  }

  forward(options: T5ForQuestionAnsweringInputs): T5Seq2SeqQuestionAnsweringOutput {
    return scope(() => {
      const training = !!(options.startPositions && options.endPositions);
      let decoderInputIds = options.decoderInputIds;
      if (!decoderInputIds && !options.decoderInputsEmbeds) {
        if (!options.inputIds) throw new TypeError('T5ForQuestionAnswering: if no decoderInputIds or decoderInputsEmbeds are passed, inputIds cannot be empty (they are shifted right into the decoder)');
        decoderInputIds = this.shiftRight(options.inputIds);
      }
      const { encoderOutputs, decoderOutputs } = this.runSeq2Seq({ ...options, useCache: training ? false : options.useCache }, decoderInputIds);
      const logits = this.qa_outputs.forward(decoderOutputs.lastHiddenState); // [batch, seq, 2]
      const [startLogits, endLogits] = logits.split(1, -1).map((t) => t.squeeze(-1)); // [batch, seq] each
      const out: T5Seq2SeqQuestionAnsweringOutput = { startLogits, endLogits, ...seq2seqFields(decoderOutputs, encoderOutputs) };
      if (training) {
        // Positions outside the sequence are clamped to seq and ignored, as the reference does.
        const ignoredIndex = startLogits.shape[1];
        const clampPositions = (p: Tensor) => p.reshape(-1).clamp(0, ignoredIndex).toInt();
        const startLoss = crossEntropy(startLogits, clampPositions(options.startPositions!), { ignoreIndex: ignoredIndex });
        const endLoss = crossEntropy(endLogits, clampPositions(options.endPositions!), { ignoreIndex: ignoredIndex });
        out.loss = startLoss.add(endLoss).divScalar(2);
      }
      return out;
    });
  }
}

/** Every model class by its reference name. */
export const T5_CLASSES = {
  T5Model,
  T5ForConditionalGeneration,
  T5EncoderModel,
  T5ForSequenceClassification,
  T5ForTokenClassification,
  T5ForQuestionAnswering,
} as const;
