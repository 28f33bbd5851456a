// MegatronBERT: BERT with pre-LayerNorm transformer blocks (Shoeybi et al. 2019, "Megatron-LM: Training
// Multi-Billion Parameter Language Models Using Model Parallelism", arXiv:1909.08053).
// Each layer computes h + Attn(LN(h)), then h + MLP(LN(h)); there is no LayerNorm on the embeddings and
// one final LayerNorm (`encoder.ln`) after the last layer.
//
// Mirrors Hugging Face transformers `src/transformers/models/megatron_bert/modeling_megatron_bert.py`
// (4.37 semantics, eager attention) class for class and in the same order, with the same state-dict
// names, so its checkpoints load with no rename table and this file can be read side by side with it:
// embeddings, self-attention, attention block, MLP, layer, encoder, pooler, the prediction heads, the
// pretrained-model base, then MegatronBertModel and its eight task heads.
//
// Conventions: forward methods take one options object with camelCase names (`inputIds`,
// `attentionMask`, ...) and return plain objects of tensors (so `scope` can keep them); ids, labels and
// positions are int32; shape comments name the dims ([batch, seq, hidden]).

import {
  alias,
  binaryCrossEntropyWithLogits,
  concat,
  crossEntropy,
  fromHost,
  full,
  mseLoss,
  scope,
  ShapeError,
  type FusedBiasActivation,
  type Tensor,
} from '@lm/tensor-gpu';
import {
  BertLMPredictionHead,
  BertOnlyMLMHead,
  BertPredictionHeadTransform,
  applyChunkingToForward,
  attentionCore,
  checkpoint,
  Dropout,
  Embedding,
  findPruneableHeadsAndIndices,
  initInPlace,
  isInitSkipped,
  LayerNorm,
  Linear,
  linearAct,
  Module,
  ModuleList,
  PreTrainedModel,
  pruneLinearLayer,
  relativeKeyScores,
  resolveActivation,
  withoutInit,
  type Activation,
  type GradientCheckpointable,
  type JsonObject,
  type ModuleOptions,
} from '@lm/layers';
import { MegatronBertConfig } from './config.js';

/**
 * One layer's cache, laid out as the reference's tuple: [selfKey, selfValue], plus [crossKey, crossValue]
 * when the layer has cross-attention; each [batch, heads, length, headDim].
 */
export type LayerPastKeyValue = readonly Tensor[];
/** One entry per layer. */
export type PastKeyValues = readonly LayerPastKeyValue[];

// ---- embeddings ------------------------------------------------------------------------------------

/** Word + token type (+ absolute position) embeddings, then dropout. Megatron moves BERT's embedding LayerNorm into the layers. */
export class MegatronBertEmbeddings extends Module {
  readonly positionEmbeddingType: MegatronBertConfig['positionEmbeddingType'];
  declare word_embeddings: Embedding;
  declare position_embeddings: Embedding;
  declare token_type_embeddings: Embedding;
  declare dropout: Dropout;
  /** [1, maxPositionEmbeddings] int32: 0, 1, 2, ... (a non-persistent buffer, as the reference registers it). */
  declare position_ids: Tensor;

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    this.registerModule('word_embeddings', new Embedding(config.vocabSize, config.hiddenSize, { paddingIdx: config.padTokenId, backend }));
    this.registerModule('position_embeddings', new Embedding(config.maxPositionEmbeddings, config.hiddenSize, { backend }));
    this.registerModule('token_type_embeddings', new Embedding(config.typeVocabSize, config.hiddenSize, { backend }));
    // In Megatron the embedding LayerNorm is applied after the dropout, inside each layer: none here.
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
    const ids = Int32Array.from({ length: config.maxPositionEmbeddings }, (_, i) => i);
    this.registerBuffer('position_ids', fromHost(ids, [1, config.maxPositionEmbeddings], 'int32', backend), { persistent: false });
    this.positionEmbeddingType = config.positionEmbeddingType;
  }

  forward(options: { inputIds?: Tensor | null; tokenTypeIds?: Tensor | null; positionIds?: Tensor | null; inputsEmbeds?: Tensor | null; pastKeyValuesLength?: number }): Tensor {
    const { inputIds, inputsEmbeds } = options;
    const inputShape = inputIds ? inputIds.shape : inputsEmbeds!.shape.slice(0, -1); // [batch, seq]
    const seqLength = inputShape[1];
    const past = options.pastKeyValuesLength ?? 0;
    const positionIds = options.positionIds ?? this.position_ids.slice(1, past, past + seqLength); // [1, seq]
    const tokenTypeIds = options.tokenTypeIds ?? full(inputShape, 0, { dtype: 'int32', backend: this.position_ids.backend }); // [batch, seq]

    const wordEmbeds = inputsEmbeds ?? this.word_embeddings.forward(inputIds!); // [batch, seq, hidden]
    let embeddings = wordEmbeds.add(this.token_type_embeddings.forward(tokenTypeIds)); // [batch, seq, hidden]
    if (this.positionEmbeddingType === 'absolute') {
      embeddings = embeddings.add(this.position_embeddings.forward(positionIds)); // [batch, seq, hidden]
    }
    return this.dropout.forward(embeddings);
  }
}

// ---- self-attention ----------------------------------------------------------------------------------

export interface SelfAttentionOptions {
  /** Additive mask [batch, 1, 1|q, k] (0 = attend, finfo(float32).min = masked). */
  attentionMask?: Tensor | null;
  /** Multiplies the attention probabilities: [1, heads, 1, 1]. */
  headMask?: Tensor | null;
  /** Cross-attention: keys and values come from these [batch, encoderSeq, hidden]. */
  encoderHiddenStates?: Tensor | null;
  /** Additive mask for cross-attention [batch, 1, 1|q, encoderSeq]; replaces attentionMask there. */
  encoderAttentionMask?: Tensor | null;
  /** [key, value] from earlier steps (self-attention), or the projected encoder keys/values (cross). */
  pastKeyValue?: LayerPastKeyValue | null;
  outputAttentions?: boolean;
}

export interface SelfAttentionOutput {
  /** [batch, q, heads * headDim] */
  context: Tensor;
  /** [batch, heads, q, k] probabilities after dropout and head mask, when asked for. */
  attentions?: Tensor;
  /** [key, value] [batch, heads, k, headDim] for the next step (decoders only). */
  presentKeyValue?: LayerPastKeyValue;
}

/** Multi-head scaled dot-product attention with BERT's optional relative_key(_query) position scores. */
export class MegatronBertSelfAttention extends Module {
  numAttentionHeads: number;
  readonly attentionHeadSize: number;
  allHeadSize: number;
  declare query: Linear;
  declare key: Linear;
  declare value: Linear;
  readonly attentionProbsDropoutProb: number;
  readonly positionEmbeddingType: MegatronBertConfig['positionEmbeddingType'];
  readonly maxPositionEmbeddings: number;
  /** [2 * maxPositionEmbeddings - 1, headDim] for relative_key(_query); null for absolute positions. */
  declare distance_embedding: Embedding | null;
  readonly isDecoder: boolean;

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    if (config.hiddenSize % config.numAttentionHeads !== 0) {
      throw new ShapeError(`MegatronBertSelfAttention: the hidden size (${config.hiddenSize}) is not a multiple of the number of attention heads (${config.numAttentionHeads})`);
    }
    this.numAttentionHeads = config.numAttentionHeads;
    this.attentionHeadSize = config.hiddenSize / config.numAttentionHeads;
    this.allHeadSize = this.numAttentionHeads * this.attentionHeadSize;
    this.registerModule('query', new Linear(config.hiddenSize, this.allHeadSize, { backend }));
    this.registerModule('key', new Linear(config.hiddenSize, this.allHeadSize, { backend }));
    this.registerModule('value', new Linear(config.hiddenSize, this.allHeadSize, { backend }));
    this.attentionProbsDropoutProb = config.attentionProbsDropoutProb;
    this.positionEmbeddingType = config.positionEmbeddingType;
    this.maxPositionEmbeddings = config.maxPositionEmbeddings;
    const relative = this.positionEmbeddingType !== 'absolute';
    this.registerModule('distance_embedding', relative ? new Embedding(2 * config.maxPositionEmbeddings - 1, this.attentionHeadSize, { backend }) : null);
    this.isDecoder = config.isDecoder;
  }

  /** [batch, seq, heads * headDim] -> [batch, heads, seq, headDim] */
  transposeForScores(x: Tensor): Tensor {
    const [batch, seq] = x.shape;
    return x.reshape(batch, seq, this.numAttentionHeads, this.attentionHeadSize).permute(0, 2, 1, 3);
  }

  forward(hiddenStates: Tensor, options: SelfAttentionOptions = {}): SelfAttentionOutput {
    const [batch, queryLength] = hiddenStates.shape;
    const past = options.pastKeyValue ?? null;
    const isCrossAttention = !!options.encoderHiddenStates;
    let attentionMask = options.attentionMask ?? null;

    let keyLayer: Tensor; // [batch, heads, k, headDim]
    let valueLayer: Tensor; // [batch, heads, k, headDim]
    if (isCrossAttention && past) {
      // Reuse the encoder keys/values projected on the first step (new handles: the caller owns the old ones).
      keyLayer = alias(past[0]);
      valueLayer = alias(past[1]);
      attentionMask = options.encoderAttentionMask ?? null;
    } else if (isCrossAttention) {
      keyLayer = this.transposeForScores(this.key.forward(options.encoderHiddenStates!));
      valueLayer = this.transposeForScores(this.value.forward(options.encoderHiddenStates!));
      attentionMask = options.encoderAttentionMask ?? null;
    } else if (past) {
      keyLayer = concat([past[0], this.transposeForScores(this.key.forward(hiddenStates))], 2); // [batch, heads, past + q, headDim]
      valueLayer = concat([past[1], this.transposeForScores(this.value.forward(hiddenStates))], 2);
    } else {
      keyLayer = this.transposeForScores(this.key.forward(hiddenStates));
      valueLayer = this.transposeForScores(this.value.forward(hiddenStates));
    }
    const queryLayer = this.transposeForScores(this.query.forward(hiddenStates)); // [batch, heads, q, headDim]

    // relative_key(_query): distance_embedding[l - r + max_pos - 1] scores join q.k^T before the
    // 1/sqrt(headDim) scaling. With a past the reference places the query at key_length - 1.
    const relativeScores = this.distance_embedding
      ? relativeKeyScores(queryLayer, keyLayer, this.distance_embedding.weight, {
          type: this.positionEmbeddingType as 'relative_key' | 'relative_key_query',
          maxPositionEmbeddings: this.maxPositionEmbeddings,
          hasPast: past !== null,
        }) // [batch, heads, q, k]
      : null;

    // softmax((q.k^T + relative) / sqrt(headDim) + mask) * headMask, then . v. The fused kernel runs
    // unless the probabilities are needed (returned, head-masked or dropped out).
    const { context, attentions } = attentionCore(queryLayer, keyLayer, valueLayer, {
      mask: attentionMask,
      extraScores: relativeScores,
      headMask: options.headMask ?? null,
      scale: 1 / Math.sqrt(this.attentionHeadSize),
      dropout: this.attentionProbsDropoutProb,
      training: this.training,
      outputAttentions: options.outputAttentions,
    }); // context [batch, heads, q, headDim]
    const merged = context.permute(0, 2, 1, 3).reshape(batch, queryLength, this.allHeadSize); // [batch, q, hidden]

    const out: SelfAttentionOutput = { context: merged };
    if (attentions) out.attentions = attentions;
    if (this.isDecoder) out.presentKeyValue = [keyLayer, valueLayer];
    return out;
  }
}

/** dense + dropout, added to the residual (BERT's SelfOutput without its LayerNorm, which moved before the attention). */
export class MegatronBertSelfOutput extends Module {
  declare dense: Linear;
  declare dropout: Dropout;

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.hiddenSize, config.hiddenSize, options));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
  }

  forward(hiddenStates: Tensor, residual: Tensor): Tensor {
    return residual.add(this.dropout.forward(this.dense.forward(hiddenStates)));
  }
}

/** The pre-LN attention block: h + SelfOutput(SelfAttention(LN(h))). */
export class MegatronBertAttention extends Module {
  declare ln: LayerNorm;
  declare self: MegatronBertSelfAttention;
  declare output: MegatronBertSelfOutput;
  readonly prunedHeads = new Set<number>();

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('ln', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps, backend: options.backend }));
    this.registerModule('self', new MegatronBertSelfAttention(config, options));
    this.registerModule('output', new MegatronBertSelfOutput(config, options));
  }

  /** Removes heads (original numbering) from query/key/value (rows) and output.dense (columns). */
  pruneHeads(heads: Iterable<number>): void {
    const list = [...heads];
    if (list.length === 0) return;
    const found = findPruneableHeadsAndIndices(list, this.self.numAttentionHeads, this.self.attentionHeadSize, this.prunedHeads);
    const old = [this.self.query, this.self.key, this.self.value, this.output.dense];
    this.self.query = pruneLinearLayer(this.self.query, found.index, 0);
    this.self.key = pruneLinearLayer(this.self.key, found.index, 0);
    this.self.value = pruneLinearLayer(this.self.value, found.index, 0);
    this.output.dense = pruneLinearLayer(this.output.dense, found.index, 1);
    old.forEach((m) => m.dispose());
    this.self.numAttentionHeads -= found.heads.size;
    this.self.allHeadSize = this.self.attentionHeadSize * this.self.numAttentionHeads;
    for (const h of found.heads) this.prunedHeads.add(h);
  }

  forward(hiddenStates: Tensor, options: SelfAttentionOptions = {}): SelfAttentionOutput {
    const lnOutputs = this.ln.forward(hiddenStates);
    const selfOutputs = this.self.forward(lnOutputs, options);
    return { ...selfOutputs, context: this.output.forward(selfOutputs.context, hiddenStates) };
  }
}

// ---- MLP ----------------------------------------------------------------------------------------------

/** dense + activation (hidden -> intermediate), fused into one kernel where the activation allows. */
export class MegatronBertIntermediate extends Module {
  declare dense: Linear;
  readonly intermediateActFn: { fn: Activation; fused: FusedBiasActivation | null };

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.hiddenSize, config.intermediateSize, options));
    this.intermediateActFn = resolveActivation(config.hiddenAct);
  }

  forward(hiddenStates: Tensor): Tensor {
    return linearAct(this.dense, hiddenStates, this.intermediateActFn); // [batch, seq, intermediate]
  }
}

/** dense (intermediate -> hidden) + dropout, added to the residual (BERT's Output without its LayerNorm). */
export class MegatronBertOutput extends Module {
  declare dense: Linear;
  declare dropout: Dropout;

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.intermediateSize, config.hiddenSize, options));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
  }

  forward(hiddenStates: Tensor, inputTensor: Tensor): Tensor {
    return inputTensor.add(this.dropout.forward(this.dense.forward(hiddenStates)));
  }
}

// ---- layer and encoder -------------------------------------------------------------------------------

export interface LayerOptions {
  attentionMask?: Tensor | null;
  headMask?: Tensor | null;
  encoderHiddenStates?: Tensor | null;
  encoderAttentionMask?: Tensor | null;
  pastKeyValue?: LayerPastKeyValue | null;
  outputAttentions?: boolean;
}

export interface LayerOutput {
  /** [batch, seq, hidden], not normalised. */
  hiddenStates: Tensor;
  attentions?: Tensor;
  crossAttentions?: Tensor;
  /** Decoders: [selfKey, selfValue] (+ [crossKey, crossValue] with cross-attention). */
  presentKeyValue?: LayerPastKeyValue;
}

/** One pre-LN block: self-attention, optional cross-attention (decoders), then LN + MLP with a residual. */
export class MegatronBertLayer extends Module {
  readonly chunkSizeFeedForward: number;
  readonly seqLenDim = 1;
  readonly isDecoder: boolean;
  readonly addCrossAttention: boolean;
  declare attention: MegatronBertAttention;
  declare crossattention: MegatronBertAttention | null;
  declare ln: LayerNorm;
  declare intermediate: MegatronBertIntermediate;
  declare output: MegatronBertOutput;

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    this.chunkSizeFeedForward = config.chunkSizeFeedForward;
    this.isDecoder = config.isDecoder;
    this.addCrossAttention = config.addCrossAttention;
    this.registerModule('attention', new MegatronBertAttention(config, options));
    if (this.addCrossAttention && !this.isDecoder) {
      throw new TypeError('MegatronBertLayer should be used as a decoder model if cross attention is added (set isDecoder)');
    }
    this.registerModule('crossattention', this.addCrossAttention ? new MegatronBertAttention(config, options) : null);
    this.registerModule('ln', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps, backend: options.backend }));
    this.registerModule('intermediate', new MegatronBertIntermediate(config, options));
    this.registerModule('output', new MegatronBertOutput(config, options));
  }

  forward(hiddenStates: Tensor, options: LayerOptions = {}): LayerOutput {
    const past = options.pastKeyValue ?? null;
    // The decoder's self-attention cache is past[0..1], its cross-attention cache past[2..3].
    const selfAttention = this.attention.forward(hiddenStates, {
      attentionMask: options.attentionMask,
      headMask: options.headMask,
      outputAttentions: options.outputAttentions,
      pastKeyValue: past ? past.slice(0, 2) : null,
    });
    let attentionOutput = selfAttention.context;
    const out: Omit<LayerOutput, 'hiddenStates'> = {};
    if (selfAttention.attentions) out.attentions = selfAttention.attentions;
    let present = selfAttention.presentKeyValue;

    if (this.isDecoder && options.encoderHiddenStates) {
      if (!this.crossattention) {
        throw new TypeError('MegatronBertLayer: encoderHiddenStates were passed, so the layer needs cross-attention layers (set config.addCrossAttention)');
      }
      const crossAttention = this.crossattention.forward(attentionOutput, {
        attentionMask: options.attentionMask,
        headMask: options.headMask,
        encoderHiddenStates: options.encoderHiddenStates,
        encoderAttentionMask: options.encoderAttentionMask,
        pastKeyValue: past ? past.slice(-2) : null,
        outputAttentions: options.outputAttentions,
      });
      attentionOutput = crossAttention.context;
      if (crossAttention.attentions) out.crossAttentions = crossAttention.attentions;
      present = [...present!, ...crossAttention.presentKeyValue!];
    }

    const layerOutput = applyChunkingToForward((x) => this.feedForwardChunk(x), this.chunkSizeFeedForward, this.seqLenDim, attentionOutput);
    if (this.isDecoder) out.presentKeyValue = present;
    return { hiddenStates: layerOutput, ...out };
  }

  /** h + Output(Intermediate(LN(h))) */
  feedForwardChunk(attentionOutput: Tensor): Tensor {
    const lnOutput = this.ln.forward(attentionOutput);
    const intermediateOutput = this.intermediate.forward(lnOutput);
    return this.output.forward(intermediateOutput, attentionOutput);
  }
}

export interface EncoderOptions {
  attentionMask?: Tensor | null;
  /** One mask per layer ([1, heads, 1, 1] or null), as getHeadMask returns. */
  headMask?: readonly (Tensor | null)[] | null;
  encoderHiddenStates?: Tensor | null;
  encoderAttentionMask?: Tensor | null;
  pastKeyValues?: PastKeyValues | null;
  useCache?: boolean;
  outputAttentions?: boolean;
  outputHiddenStates?: boolean;
}

export interface EncoderOutput {
  /** ln(output of the last layer), [batch, seq, hidden]. */
  lastHiddenState: Tensor;
  pastKeyValues?: Tensor[][];
  /** numLayers + 1 entries: the embeddings, the (un-normalised) outputs of layers 0..L-2, and lastHiddenState. */
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
  crossAttentions?: Tensor[];
}

/** The tensor arguments of a layer, handed to `checkpoint` as inputs. */
const CHECKPOINTED_INPUTS = ['attentionMask', 'headMask', 'encoderHiddenStates', 'encoderAttentionMask'] as const;

/** The stack of layers and the final LayerNorm; optionally recomputes each layer in backward. */
export class MegatronBertEncoder extends Module implements GradientCheckpointable {
  declare layer: ModuleList<MegatronBertLayer>;
  declare ln: LayerNorm;
  /** Recompute each layer's activations in backward instead of storing them (training only). */
  gradientCheckpointing = false;
  readonly addCrossAttention: boolean;

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('layer', new ModuleList(Array.from({ length: config.numHiddenLayers }, () => new MegatronBertLayer(config, options))));
    // The final LayerNorm: BERT's per-layer post-LN moved to the start of each layer, plus this one.
    this.registerModule('ln', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps, backend: options.backend }));
    this.addCrossAttention = config.addCrossAttention;
  }

  forward(hiddenStates: Tensor, options: EncoderOptions = {}): EncoderOutput {
    const checkpointing = this.gradientCheckpointing && this.training;
    // As the reference: caching is switched off while checkpointing (the layers run twice).
    const useCache = !!options.useCache && !checkpointing;
    const allHiddenStates: Tensor[] | undefined = options.outputHiddenStates ? [] : undefined;
    const allSelfAttentions: Tensor[] | undefined = options.outputAttentions ? [] : undefined;
    const allCrossAttentions: Tensor[] | undefined = options.outputAttentions && this.addCrossAttention ? [] : undefined;
    const nextDecoderCache: Tensor[][] | undefined = useCache ? [] : undefined;

    let hidden = hiddenStates;
    for (const [i, layerModule] of this.layer.items.entries()) {
      allHiddenStates?.push(hidden);
      const layerOptions: LayerOptions = {
        attentionMask: options.attentionMask,
        headMask: options.headMask?.[i] ?? null,
        encoderHiddenStates: options.encoderHiddenStates,
        encoderAttentionMask: options.encoderAttentionMask,
        pastKeyValue: options.pastKeyValues?.[i] ?? null,
        outputAttentions: options.outputAttentions,
      };
      // Every temporary of the layer is freed when its scope ends; only its outputs survive.
      const layerOutputs = scope((): LayerOutput => {
        if (checkpointing && !options.outputAttentions) {
          // Only the hidden states leave a checkpointed layer (attentions would need a second output).
          // Every tensor the layer reads goes in as an input, so the recompute in backward finds it alive.
          const given = CHECKPOINTED_INPUTS.filter((name) => layerOptions[name]);
          const run = (h: Tensor, ...rest: Tensor[]) =>
            layerModule.forward(h, { ...layerOptions, ...Object.fromEntries(given.map((name, k) => [name, rest[k]])) }).hiddenStates;
          return { hiddenStates: checkpoint(run, hidden, ...given.map((name) => layerOptions[name]!)) };
        }
        return layerModule.forward(hidden, layerOptions);
      });
      // The previous hidden state is no longer needed unless it was returned (autograd keeps its own handle).
      if (hidden !== hiddenStates && !allHiddenStates) hidden.dispose();
      hidden = layerOutputs.hiddenStates;
      if (nextDecoderCache && layerOutputs.presentKeyValue) nextDecoderCache.push([...layerOutputs.presentKeyValue!]);
      if (layerOutputs.attentions) allSelfAttentions?.push(layerOutputs.attentions);
      if (layerOutputs.crossAttentions) allCrossAttentions?.push(layerOutputs.crossAttentions);
    }

    // The layers' outputs are not normalised; the final LayerNorm makes the last hidden state.
    const lastHiddenState = this.ln.forward(hidden);
    if (hidden !== hiddenStates && !allHiddenStates) hidden.dispose();
    allHiddenStates?.push(lastHiddenState);

    const out: EncoderOutput = { lastHiddenState };
    if (nextDecoderCache) out.pastKeyValues = nextDecoderCache;
    if (allHiddenStates) out.hiddenStates = allHiddenStates;
    if (allSelfAttentions) out.attentions = allSelfAttentions;
    if (allCrossAttentions) out.crossAttentions = allCrossAttentions;
    return out;
  }
}

// ---- pooler and prediction heads ---------------------------------------------------------------------

/** tanh(dense(hidden state of the first token)). */
export class MegatronBertPooler extends Module {
  declare dense: Linear;

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.hiddenSize, config.hiddenSize, options));
  }

  forward(hiddenStates: Tensor): Tensor {
    const firstTokenTensor = hiddenStates.select(1, 0); // [batch, hidden]
    return this.dense.forward(firstTokenTensor, 'tanh'); // [batch, hidden]
  }
}

/** dense + activation + LayerNorm, before the vocabulary projection (BERT's, from @lm/layers). */
export class MegatronBertPredictionHeadTransform extends BertPredictionHeadTransform {}

/** transform, then the vocabulary projection `decoder` + `bias` (BERT's, from @lm/layers). */
export class MegatronBertLMPredictionHead extends BertLMPredictionHead {}

/** The masked-LM head alone (BERT's `cls.predictions`, from @lm/layers). */
export class MegatronBertOnlyMLMHead extends BertOnlyMLMHead {}

/** The next-sentence head alone: pooled output -> 2 scores. */
export class MegatronBertOnlyNSPHead extends Module {
  declare seq_relationship: Linear;

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('seq_relationship', new Linear(config.hiddenSize, 2, options));
  }

  forward(pooledOutput: Tensor): Tensor {
    return this.seq_relationship.forward(pooledOutput);
  }
}

/** Both pretraining heads: masked LM on the sequence, next sentence on the pooled output. */
export class MegatronBertPreTrainingHeads extends Module {
  declare predictions: MegatronBertLMPredictionHead;
  declare seq_relationship: Linear;

  constructor(config: MegatronBertConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('predictions', new MegatronBertLMPredictionHead(config, options));
    this.registerModule('seq_relationship', new Linear(config.hiddenSize, 2, options));
  }

  forward(sequenceOutput: Tensor, pooledOutput: Tensor): { predictionScores: Tensor; seqRelationshipScore: Tensor } {
    return { predictionScores: this.predictions.forward(sequenceOutput), seqRelationshipScore: this.seq_relationship.forward(pooledOutput) };
  }
}

// ---- the pretrained-model base -----------------------------------------------------------------------

/** Constructor options of every MegatronBERT model class. */
export interface MegatronBertModelOptions extends ModuleOptions {
  /** MegatronBertModel only: build the pooler (default true). */
  addPoolingLayer?: boolean;
}

/** What every model forward accepts (the reference's common arguments). */
export interface MegatronBertInputs {
  /** int32 [batch, seq] (MultipleChoice: [batch, choices, seq]). */
  inputIds?: Tensor | null;
  /** 1 = attend, 0 = masked: [batch, keys] or [batch, queries, keys]. Default all ones. */
  attentionMask?: Tensor | null;
  /** int32 segment ids, default zeros. */
  tokenTypeIds?: Tensor | null;
  /** int32 positions, default pastLength .. pastLength + seq - 1. */
  positionIds?: Tensor | null;
  /** [heads] (every layer) or [layers, heads]; multiplies the attention probabilities. */
  headMask?: Tensor | null;
  /** [batch, seq, hidden] instead of inputIds. */
  inputsEmbeds?: Tensor | null;
  outputAttentions?: boolean;
  outputHiddenStates?: boolean;
}

/** The extra arguments of the base model and the decoder heads. */
export interface MegatronBertDecoderInputs extends MegatronBertInputs {
  /** Cross-attention inputs (decoders with config.addCrossAttention): [batch, encoderSeq, hidden]. */
  encoderHiddenStates?: Tensor | null;
  /** 1 = attend, 0 = masked, [batch, encoderSeq]. Default all ones. */
  encoderAttentionMask?: Tensor | null;
  /** The previous step's `pastKeyValues` (decoders). */
  pastKeyValues?: PastKeyValues | null;
  /** Return `pastKeyValues` (decoders; default config.useCache). */
  useCache?: boolean;
}

/** Hidden states and attentions every head passes through from the base model. */
export interface MegatronBertOutputs {
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}

/** The base of every MegatronBERT model: config parsing, weight init, embeddings, pruning. */
export abstract class MegatronBertPreTrainedModel extends PreTrainedModel<MegatronBertConfig> {
  static override baseModelPrefix = 'bert';

  static configFromJSON(json: JsonObject): MegatronBertConfig {
    return MegatronBertConfig.fromJSON(json);
  }

  /** The reference's `_init_weights`: Linear/Embedding weights ~ N(0, initializerRange), biases 0, LayerNorm 1/0. */
  protected initModule(module: Module): void {
    const std = this.config.initializerRange;
    if (module instanceof Linear || module instanceof Embedding) initInPlace(module.weight, { kind: 'normal', std });
    if (module instanceof LayerNorm) {
      if (module.weight) initInPlace(module.weight, { kind: 'constant', value: 1 });
      if (module.bias) initInPlace(module.bias, { kind: 'constant', value: 0 });
    }
    if (module instanceof Linear && module.bias) initInPlace(module.bias, { kind: 'constant', value: 0 });
  }

  /** The reference's `post_init`: initialise every weight (unless loading skips it), then tie weights. */
  protected postInit(): void {
    // The LM head's `bias` is the decoder's bias, so initialising the decoder zeroes it too.
    if (!isInitSkipped()) for (const [, m] of this.namedModules()) this.initModule(m);
    this.tieWeights();
  }
}

/** Builds the base model inside a head without initialising it: the head's postInit initialises everything once. */
function baseModel(config: MegatronBertConfig, options: MegatronBertModelOptions): MegatronBertModel {
  return withoutInit(() => new MegatronBertModel(config, options));
}

// ---- the base model ----------------------------------------------------------------------------------

export interface MegatronBertModelOutput extends MegatronBertOutputs {
  /** [batch, seq, hidden] */
  lastHiddenState: Tensor;
  /** [batch, hidden] (absent without a pooler). */
  poolerOutput?: Tensor;
  pastKeyValues?: Tensor[][];
  crossAttentions?: Tensor[];
}

/**
 * The bare encoder (or decoder, with config.isDecoder; with config.addCrossAttention it cross-attends
 * to `encoderHiddenStates`), returning hidden states and the pooled first token.
 */
export class MegatronBertModel extends MegatronBertPreTrainedModel {
  declare embeddings: MegatronBertEmbeddings;
  declare encoder: MegatronBertEncoder;
  declare pooler: MegatronBertPooler | null;

  constructor(config: MegatronBertConfig, options: MegatronBertModelOptions = {}) {
    super(config);
    this.registerModule('embeddings', new MegatronBertEmbeddings(config, options));
    this.registerModule('encoder', new MegatronBertEncoder(config, options));
    this.registerModule('pooler', options.addPoolingLayer === false ? null : new MegatronBertPooler(config, options));
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    return this.embeddings.word_embeddings;
  }

  setInputEmbeddings(value: Embedding): void {
    this.embeddings.word_embeddings = value;
  }

  protected override pruneHeadsImpl(headsToPrune: Record<number, number[]>): void {
    for (const [layer, heads] of Object.entries(headsToPrune)) this.encoder.layer.at(Number(layer)).attention.pruneHeads(heads);
  }

  forward(options: MegatronBertDecoderInputs): MegatronBertModelOutput {
    return scope(() => {
      const config = this.config;
      const outputAttentions = options.outputAttentions ?? config.outputAttentions;
      const outputHiddenStates = options.outputHiddenStates ?? config.outputHiddenStates;
      const useCache = config.isDecoder ? (options.useCache ?? config.useCache) : false;

      const { inputIds, inputsEmbeds } = options;
      if (inputIds && inputsEmbeds) throw new TypeError('MegatronBertModel: you cannot specify both inputIds and inputsEmbeds at the same time');
      if (!inputIds && !inputsEmbeds) throw new TypeError('MegatronBertModel: you have to specify either inputIds or inputsEmbeds');
      const inputShape = inputIds ? inputIds.shape : inputsEmbeds!.shape.slice(0, -1);
      if (inputShape.length !== 2) throw new ShapeError(`MegatronBertModel: inputs must be [batch, seq], got [${inputShape.join(',')}]`);
      const [batchSize, seqLength] = inputShape;
      const backend = (inputIds ?? inputsEmbeds)!.backend;

      const pastKeyValuesLength = options.pastKeyValues ? options.pastKeyValues[0][0].shape[2] : 0;
      const attentionMask = options.attentionMask ?? full([batchSize, seqLength + pastKeyValuesLength], 1, { backend });
      // [batch, 1, 1|q, k] additive; for decoders the causal mask is multiplied in first.
      const extendedAttentionMask = this.getExtendedAttentionMask(attentionMask, inputShape);

      let encoderExtendedAttentionMask: Tensor | null = null;
      if (config.isDecoder && options.encoderHiddenStates) {
        const [encoderBatchSize, encoderSequenceLength] = options.encoderHiddenStates.shape;
        const encoderAttentionMask = options.encoderAttentionMask ?? full([encoderBatchSize, encoderSequenceLength], 1, { backend });
        encoderExtendedAttentionMask = this.invertAttentionMask(encoderAttentionMask); // [batch, 1, 1|q, encoderSeq]
      }

      // 1 keeps a head; [heads] or [layers, heads] -> one [1, heads, 1, 1] per layer.
      const headMask = this.getHeadMask(options.headMask, config.numHiddenLayers);

      const embeddingOutput = this.embeddings.forward({
        inputIds,
        positionIds: options.positionIds,
        tokenTypeIds: options.tokenTypeIds,
        inputsEmbeds,
        pastKeyValuesLength,
      }); // [batch, seq, hidden]
      const encoderOutputs = this.encoder.forward(embeddingOutput, {
        attentionMask: extendedAttentionMask,
        headMask,
        encoderHiddenStates: options.encoderHiddenStates,
        encoderAttentionMask: encoderExtendedAttentionMask,
        pastKeyValues: options.pastKeyValues,
        useCache,
        outputAttentions,
        outputHiddenStates,
      });
      const sequenceOutput = encoderOutputs.lastHiddenState;
      const out: MegatronBertModelOutput = { ...encoderOutputs };
      if (this.pooler) out.poolerOutput = this.pooler.forward(sequenceOutput);
      return out;
    });
  }
}

// ---- heads with a tied decoder ---------------------------------------------------------------------------

/** The heads whose `cls.predictions.decoder` shares the word embeddings (and `cls.predictions.bias`). */
abstract class MegatronBertWithLMHead extends MegatronBertPreTrainedModel {
  abstract bert: MegatronBertModel;
  abstract cls: { predictions: MegatronBertLMPredictionHead };
  protected override tiedWeightsKeys = ['cls.predictions.decoder.weight', 'cls.predictions.decoder.bias'];

  getInputEmbeddings(): Embedding {
    return this.bert.getInputEmbeddings();
  }

  setInputEmbeddings(value: Embedding): void {
    this.bert.setInputEmbeddings(value);
  }

  override getOutputEmbeddings(): Linear {
    return this.cls.predictions.decoder;
  }

  override setOutputEmbeddings(newEmbeddings: Linear): void {
    // The head's `bias` stays the decoder's bias (the reference links them so resizing reaches both).
    this.cls.predictions.decoder = newEmbeddings;
    if (newEmbeddings.bias) this.cls.predictions.bias = newEmbeddings.bias;
  }

  protected override pruneHeadsImpl(headsToPrune: Record<number, number[]>): void {
    this.bert.pruneHeads(headsToPrune);
  }
}

export interface MegatronBertForPreTrainingInputs extends MegatronBertInputs {
  /** int32 [batch, seq] masked-LM targets, -100 = ignored. */
  labels?: Tensor | null;
  /** int32 [batch]: 0 = B continues A, 1 = B is random. */
  nextSentenceLabel?: Tensor | null;
}

export interface MegatronBertForPreTrainingOutput extends MegatronBertOutputs {
  /** masked-LM loss + next-sentence loss (when both label sets are given). */
  loss?: Tensor;
  /** [batch, seq, vocab] */
  predictionLogits: Tensor;
  /** [batch, 2] */
  seqRelationshipLogits: Tensor;
}

/** Both pretraining heads: masked LM and next sentence prediction (total loss = MLM + NSP). */
export class MegatronBertForPreTraining extends MegatronBertWithLMHead {
  declare bert: MegatronBertModel;
  declare cls: MegatronBertPreTrainingHeads;

  constructor(config: MegatronBertConfig, options: MegatronBertModelOptions = {}) {
    super(config);
    this.registerModule('bert', baseModel(config, { backend: options.backend }));
    this.registerModule('cls', new MegatronBertPreTrainingHeads(config, options));
    this.postInit();
  }

  forward(options: MegatronBertForPreTrainingInputs): MegatronBertForPreTrainingOutput {
    return scope(() => {
      const outputs = this.bert.forward(options);
      const { predictionScores, seqRelationshipScore } = this.cls.forward(outputs.lastHiddenState, outputs.poolerOutput!);
      const out: MegatronBertForPreTrainingOutput = {
        predictionLogits: predictionScores,
        seqRelationshipLogits: seqRelationshipScore,
        ...passThrough(outputs),
      };
      if (options.labels && options.nextSentenceLabel) {
        const maskedLmLoss = crossEntropy(predictionScores.reshape(-1, this.config.vocabSize), options.labels.reshape(-1));
        const nextSentenceLoss = crossEntropy(seqRelationshipScore.reshape(-1, 2), options.nextSentenceLabel.reshape(-1));
        out.loss = maskedLmLoss.add(nextSentenceLoss);
      }
      return out;
    });
  }
}

export interface MegatronBertForCausalLMInputs extends MegatronBertDecoderInputs {
  /** int32 [batch, seq] next-token targets (shifted inside), -100 = ignored. */
  labels?: Tensor | null;
}

export interface MegatronBertCausalLMOutput extends MegatronBertOutputs {
  loss?: Tensor;
  /** [batch, seq, vocab] */
  logits: Tensor;
  pastKeyValues?: Tensor[][];
  crossAttentions?: Tensor[];
}

/** Left-to-right language modelling (config.isDecoder), with a KV cache and optional cross-attention. */
export class MegatronBertForCausalLM extends MegatronBertWithLMHead {
  declare bert: MegatronBertModel;
  declare cls: MegatronBertOnlyMLMHead;

  constructor(config: MegatronBertConfig, options: MegatronBertModelOptions = {}) {
    super(config);
    this.registerModule('bert', baseModel(config, { backend: options.backend, addPoolingLayer: false }));
    this.registerModule('cls', new MegatronBertOnlyMLMHead(config, options));
    this.postInit();
  }

  forward(options: MegatronBertForCausalLMInputs): MegatronBertCausalLMOutput {
    return scope(() => {
      const outputs = this.bert.forward({ ...options, useCache: options.labels ? false : options.useCache });
      const predictionScores = this.cls.forward(outputs.lastHiddenState); // [batch, seq, vocab]
      const out: MegatronBertCausalLMOutput = { logits: predictionScores, ...passThrough(outputs) };
      if (outputs.pastKeyValues) out.pastKeyValues = outputs.pastKeyValues;
      if (outputs.crossAttentions) out.crossAttentions = outputs.crossAttentions;
      if (options.labels) {
        // Next-token prediction: the scores at position t are compared with the label at t + 1.
        const seq = predictionScores.shape[1];
        const shiftedPredictionScores = predictionScores.slice(1, 0, seq - 1).reshape(-1, this.config.vocabSize); // [batch * (seq-1), vocab]
        const shiftedLabels = options.labels.slice(1, 1).reshape(-1); // [batch * (seq-1)]
        out.loss = crossEntropy(shiftedPredictionScores, shiftedLabels);
      }
      return out;
    });
  }
}

export interface MegatronBertForMaskedLMInputs extends MegatronBertInputs {
  encoderHiddenStates?: Tensor | null;
  encoderAttentionMask?: Tensor | null;
  /** int32 [batch, seq], -100 = ignored. */
  labels?: Tensor | null;
}

export interface MegatronBertMaskedLMOutput extends MegatronBertOutputs {
  loss?: Tensor;
  /** [batch, seq, vocab] */
  logits: Tensor;
}

/** Masked language modelling: every position scored over the vocabulary. */
export class MegatronBertForMaskedLM extends MegatronBertWithLMHead {
  declare bert: MegatronBertModel;
  declare cls: MegatronBertOnlyMLMHead;

  constructor(config: MegatronBertConfig, options: MegatronBertModelOptions = {}) {
    super(config);
    this.registerModule('bert', baseModel(config, { backend: options.backend, addPoolingLayer: false }));
    this.registerModule('cls', new MegatronBertOnlyMLMHead(config, options));
    this.postInit();
  }

  forward(options: MegatronBertForMaskedLMInputs): MegatronBertMaskedLMOutput {
    return scope(() => {
      const outputs = this.bert.forward({ ...options, pastKeyValues: null, useCache: false });
      const predictionScores = this.cls.forward(outputs.lastHiddenState); // [batch, seq, vocab]
      const out: MegatronBertMaskedLMOutput = { logits: predictionScores, ...passThrough(outputs) };
      if (options.labels) out.loss = crossEntropy(predictionScores.reshape(-1, this.config.vocabSize), options.labels.reshape(-1));
      return out;
    });
  }
}

// ---- heads on the pooled output or on every token --------------------------------------------------------

/** The heads without an output projection tied to the embeddings. */
abstract class MegatronBertWithTaskHead extends MegatronBertPreTrainedModel {
  abstract bert: MegatronBertModel;

  getInputEmbeddings(): Embedding {
    return this.bert.getInputEmbeddings();
  }

  setInputEmbeddings(value: Embedding): void {
    this.bert.setInputEmbeddings(value);
  }

  protected override pruneHeadsImpl(headsToPrune: Record<number, number[]>): void {
    this.bert.pruneHeads(headsToPrune);
  }
}

export interface MegatronBertWithLabelsInputs extends MegatronBertInputs {
  /** The task's targets (see each head). */
  labels?: Tensor | null;
}

export interface MegatronBertClassifierOutput extends MegatronBertOutputs {
  loss?: Tensor;
  logits: Tensor;
}

/** Next sentence prediction on the pooled output. `labels`: int32 [batch], 0 = continuation, 1 = random. */
export class MegatronBertForNextSentencePrediction extends MegatronBertWithTaskHead {
  declare bert: MegatronBertModel;
  declare cls: MegatronBertOnlyNSPHead;

  constructor(config: MegatronBertConfig, options: MegatronBertModelOptions = {}) {
    super(config);
    this.registerModule('bert', baseModel(config, { backend: options.backend }));
    this.registerModule('cls', new MegatronBertOnlyNSPHead(config, options));
    this.postInit();
  }

  forward(options: MegatronBertWithLabelsInputs & { nextSentenceLabel?: Tensor | null }): MegatronBertClassifierOutput {
    return scope(() => {
      // `nextSentenceLabel` is the reference's deprecated name for `labels`.
      const labels = options.labels ?? options.nextSentenceLabel ?? null;
      const outputs = this.bert.forward(options);
      const seqRelationshipScores = this.cls.forward(outputs.poolerOutput!); // [batch, 2]
      const out: MegatronBertClassifierOutput = { logits: seqRelationshipScores, ...passThrough(outputs) };
      if (labels) out.loss = crossEntropy(seqRelationshipScores.reshape(-1, 2), labels.reshape(-1));
      return out;
    });
  }
}

/**
 * Classification or regression on the pooled output. `labels`: int32 [batch] class ids (single-label
 * cross-entropy), float [batch] targets when numLabels is 1 (MSE), or float [batch, numLabels] (multi-label
 * BCE); config.problemType decides, inferred from numLabels and the labels' dtype when unset.
 */
export class MegatronBertForSequenceClassification extends MegatronBertWithTaskHead {
  readonly numLabels: number;
  declare bert: MegatronBertModel;
  declare dropout: Dropout;
  declare classifier: Linear;

  constructor(config: MegatronBertConfig, options: MegatronBertModelOptions = {}) {
    super(config);
    this.numLabels = config.numLabels;
    this.registerModule('bert', baseModel(config, { backend: options.backend }));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
    this.registerModule('classifier', new Linear(config.hiddenSize, config.numLabels, options));
    this.postInit();
  }

  forward(options: MegatronBertWithLabelsInputs): MegatronBertClassifierOutput {
    return scope(() => {
      const outputs = this.bert.forward(options);
      const pooledOutput = this.dropout.forward(outputs.poolerOutput!);
      const logits = this.classifier.forward(pooledOutput); // [batch, numLabels]
      const out: MegatronBertClassifierOutput = { logits, ...passThrough(outputs) };
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
        } else if (this.config.problemType === 'multi_label_classification') {
          out.loss = binaryCrossEntropyWithLogits(logits, labels.toFloat());
        }
      }
      return out;
    });
  }
}

/**
 * Multiple choice: inputs [batch, choices, seq] are flattened to [batch * choices, seq], each scored from
 * its pooled output, and the scores reshaped to [batch, choices]. `labels`: int32 [batch] choice index.
 */
export class MegatronBertForMultipleChoice extends MegatronBertWithTaskHead {
  declare bert: MegatronBertModel;
  declare dropout: Dropout;
  declare classifier: Linear;

  constructor(config: MegatronBertConfig, options: MegatronBertModelOptions = {}) {
    super(config);
    this.registerModule('bert', baseModel(config, { backend: options.backend }));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
    this.registerModule('classifier', new Linear(config.hiddenSize, 1, options));
    this.postInit();
  }

  forward(options: MegatronBertWithLabelsInputs): MegatronBertClassifierOutput {
    return scope(() => {
      const numChoices = options.inputIds ? options.inputIds.shape[1] : options.inputsEmbeds!.shape[1];
      const flat = (t: Tensor | null | undefined) => (t ? t.reshape(-1, t.shape[t.rank - 1]) : null); // [batch * choices, seq]
      const outputs = this.bert.forward({
        ...options,
        inputIds: flat(options.inputIds),
        attentionMask: flat(options.attentionMask),
        tokenTypeIds: flat(options.tokenTypeIds),
        positionIds: flat(options.positionIds),
        inputsEmbeds: options.inputsEmbeds ? options.inputsEmbeds.reshape(-1, ...options.inputsEmbeds.shape.slice(-2)) : null, // [batch * choices, seq, hidden]
      });
      const pooledOutput = this.dropout.forward(outputs.poolerOutput!);
      const logits = this.classifier.forward(pooledOutput); // [batch * choices, 1]
      const reshapedLogits = logits.reshape(-1, numChoices); // [batch, choices]
      const out: MegatronBertClassifierOutput = { logits: reshapedLogits, ...passThrough(outputs) };
      if (options.labels) out.loss = crossEntropy(reshapedLogits, options.labels);
      return out;
    });
  }
}

/** Per-token classification (NER). `labels`: int32 [batch, seq] in [0, numLabels), -100 = ignored. */
export class MegatronBertForTokenClassification extends MegatronBertWithTaskHead {
  readonly numLabels: number;
  declare bert: MegatronBertModel;
  declare dropout: Dropout;
  declare classifier: Linear;

  constructor(config: MegatronBertConfig, options: MegatronBertModelOptions = {}) {
    super(config);
    this.numLabels = config.numLabels;
    this.registerModule('bert', baseModel(config, { backend: options.backend, addPoolingLayer: false }));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
    this.registerModule('classifier', new Linear(config.hiddenSize, config.numLabels, options));
    this.postInit();
  }

  forward(options: MegatronBertWithLabelsInputs): MegatronBertClassifierOutput {
    return scope(() => {
      const outputs = this.bert.forward(options);
      const sequenceOutput = this.dropout.forward(outputs.lastHiddenState);
      const logits = this.classifier.forward(sequenceOutput); // [batch, seq, numLabels]
      const out: MegatronBertClassifierOutput = { logits, ...passThrough(outputs) };
      if (options.labels) out.loss = crossEntropy(logits.reshape(-1, this.numLabels), options.labels.reshape(-1));
      return out;
    });
  }
}

export interface MegatronBertForQuestionAnsweringInputs extends MegatronBertInputs {
  /** int32 [batch] span starts; positions outside [0, seq) are ignored. */
  startPositions?: Tensor | null;
  /** int32 [batch] span ends. */
  endPositions?: Tensor | null;
}

export interface MegatronBertQuestionAnsweringOutput extends MegatronBertOutputs {
  /** (start loss + end loss) / 2 */
  loss?: Tensor;
  /** [batch, seq] */
  startLogits: Tensor;
  /** [batch, seq] */
  endLogits: Tensor;
}

/** Extractive QA: span start and end scores for every token. */
export class MegatronBertForQuestionAnswering extends MegatronBertWithTaskHead {
  readonly numLabels: number;
  declare bert: MegatronBertModel;
  declare qa_outputs: Linear;

  constructor(config: MegatronBertConfig, options: MegatronBertModelOptions = {}) {
    super(config);
    this.numLabels = config.numLabels;
    this.registerModule('bert', baseModel(config, { backend: options.backend, addPoolingLayer: false }));
    this.registerModule('qa_outputs', new Linear(config.hiddenSize, config.numLabels, options));
    this.postInit();
  }

  forward(options: MegatronBertForQuestionAnsweringInputs): MegatronBertQuestionAnsweringOutput {
    return scope(() => {
      const outputs = this.bert.forward(options);
      const logits = this.qa_outputs.forward(outputs.lastHiddenState); // [batch, seq, 2]
      const startLogits = logits.select(-1, 0).contiguous(); // [batch, seq]
      const endLogits = logits.select(-1, 1).contiguous(); // [batch, seq]
      const out: MegatronBertQuestionAnsweringOutput = { startLogits, endLogits, ...passThrough(outputs) };
      let { startPositions, endPositions } = options;
      if (startPositions && endPositions) {
        if (startPositions.rank > 1) startPositions = startPositions.squeeze(-1);
        if (endPositions.rank > 1) endPositions = endPositions.squeeze(-1);
        // Positions outside the input are clamped to seq, which is then ignored by the loss.
        const ignoredIndex = startLogits.shape[1];
        const startLoss = crossEntropy(startLogits, startPositions.clamp(0, ignoredIndex), { ignoreIndex: ignoredIndex });
        const endLoss = crossEntropy(endLogits, endPositions.clamp(0, ignoredIndex), { ignoreIndex: ignoredIndex });
        out.loss = startLoss.add(endLoss).divScalar(2);
      }
      return out;
    });
  }
}

/** The base model's hidden states and attentions, as every head returns them. */
function passThrough(outputs: MegatronBertModelOutput): MegatronBertOutputs {
  const out: MegatronBertOutputs = {};
  if (outputs.hiddenStates) out.hiddenStates = outputs.hiddenStates;
  if (outputs.attentions) out.attentions = outputs.attentions;
  return out;
}

/** Every model class by its reference name. */
export const MEGATRON_BERT_CLASSES = {
  MegatronBertModel,
  MegatronBertForPreTraining,
  MegatronBertForCausalLM,
  MegatronBertForMaskedLM,
  MegatronBertForNextSentencePrediction,
  MegatronBertForSequenceClassification,
  MegatronBertForMultipleChoice,
  MegatronBertForTokenClassification,
  MegatronBertForQuestionAnswering,
} as const;
