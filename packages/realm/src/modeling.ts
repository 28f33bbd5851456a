// REALM: Retrieval-Augmented Language Model pre-training (Guu et al. 2020, arXiv:2002.08909).
// A retriever embeds questions and evidence blocks into one space (RealmEmbedder, RealmScorer), a
// knowledge-augmented encoder predicts masked tokens given each retrieved block and marginalises over
// the blocks (RealmKnowledgeAugEncoder), and for open-domain QA a reader scores answer spans inside the
// top-k blocks (RealmReader, RealmForOpenQA).
//
// Mirrors Hugging Face transformers `models/realm/modeling_realm.py` (4.37 semantics, eager attention;
// the `models/deprecated/realm` copy) class for class and in the same order, with the same state-dict
// names: REALM's own BERT (classic post-LayerNorm: LN(x + sublayer(x)), with an embedding LayerNorm),
// the prediction and projection heads, the pretrained-model base, then the five model classes.
// The retriever's text side (block records, question/block pairs, answer matching) is in retrieval.ts.
//
// Conventions: forward methods take one options object with camelCase names (`inputIds`,
// `attentionMask`, ...) and return plain objects of tensors; ids, labels and positions are int32;
// shape comments name the dims ([batch, seq, hidden]).

import { crossEntropy, enableGrad, full, fromHost, isGradEnabled, noGrad, scope, ShapeError, tensor, type FusedBiasActivation, type Tensor } from '@lm/tensor-gpu';
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
  type SavePretrainedOptions,
} from '@lm/layers';
import { RealmConfig } from './config.js';
import { RealmError } from './errors.js';
import { RealmBlockIndex, type BlockIndexOptions } from './block-index.js';
import type { RealmRetriever } from './retrieval.js';

/** torch.finfo(float32).min: the additive score of a masked span or a wrong candidate. */
const FLOAT32_MIN = -3.4028234663852886e38;

type PositionEmbeddingType = 'absolute' | 'relative_key' | 'relative_key_query';

/** REALM's config has no position_embedding_type field; the reference reads it with getattr (default absolute). */
function positionEmbeddingType(config: RealmConfig): PositionEmbeddingType {
  const t = (config.extra as JsonObject).position_embedding_type ?? 'absolute';
  if (t !== 'absolute' && t !== 'relative_key' && t !== 'relative_key_query') {
    throw new RealmError(`RealmConfig: position_embedding_type must be absolute, relative_key or relative_key_query, got ${JSON.stringify(t)}`);
  }
  return t;
}

// ---- embeddings ------------------------------------------------------------------------------------

/** Word + token type (+ absolute position) embeddings, then LayerNorm and dropout (BERT's embeddings). */
export class RealmEmbeddings extends Module {
  readonly positionEmbeddingType: PositionEmbeddingType;
  declare word_embeddings: Embedding;
  declare position_embeddings: Embedding;
  declare token_type_embeddings: Embedding;
  declare LayerNorm: LayerNorm;
  declare dropout: Dropout;
  /** [1, maxPositionEmbeddings] int32: 0, 1, 2, ... (non-persistent, as the reference registers it). */
  declare position_ids: Tensor;

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    this.registerModule('word_embeddings', new Embedding(config.vocabSize, config.hiddenSize, { paddingIdx: config.padTokenId, backend }));
    this.registerModule('position_embeddings', new Embedding(config.maxPositionEmbeddings, config.hiddenSize, { backend }));
    this.registerModule('token_type_embeddings', new Embedding(config.typeVocabSize, config.hiddenSize, { backend }));
    this.registerModule('LayerNorm', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps, backend }));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
    const ids = Int32Array.from({ length: config.maxPositionEmbeddings }, (_, i) => i);
    this.registerBuffer('position_ids', fromHost(ids, [1, config.maxPositionEmbeddings], 'int32', backend), { persistent: false });
    this.positionEmbeddingType = positionEmbeddingType(config);
  }

  forward(options: { inputIds?: Tensor | null; tokenTypeIds?: Tensor | null; positionIds?: Tensor | null; inputsEmbeds?: Tensor | null }): Tensor {
    const { inputIds, inputsEmbeds } = options;
    const inputShape = inputIds ? inputIds.shape : inputsEmbeds!.shape.slice(0, -1); // [batch, seq]
    const seqLength = inputShape[1];
    const positionIds = options.positionIds ?? this.position_ids.slice(1, 0, seqLength); // [1, seq]
    const tokenTypeIds = options.tokenTypeIds ?? full(inputShape, 0, { dtype: 'int32', backend: this.position_ids.backend }); // [batch, seq]

    const wordEmbeds = inputsEmbeds ?? this.word_embeddings.forward(inputIds!); // [batch, seq, hidden]
    let embeddings = wordEmbeds.add(this.token_type_embeddings.forward(tokenTypeIds)); // [batch, seq, hidden]
    if (this.positionEmbeddingType === 'absolute') embeddings = embeddings.add(this.position_embeddings.forward(positionIds));
    return this.dropout.forward(this.LayerNorm.forward(embeddings));
  }
}

// ---- self-attention ----------------------------------------------------------------------------------

export interface SelfAttentionOptions {
  /** Additive mask [batch, 1, 1|q, k] (0 = attend, finfo(float32).min = masked). */
  attentionMask?: Tensor | null;
  /** Multiplies the attention probabilities: [1, heads, 1, 1]. */
  headMask?: Tensor | null;
  outputAttentions?: boolean;
}

export interface SelfAttentionOutput {
  /** [batch, q, hidden] */
  context: Tensor;
  /** [batch, heads, q, k] probabilities, when asked for. */
  attentions?: Tensor;
}

/** Multi-head scaled dot-product attention with BERT's optional relative_key(_query) position scores. */
export class RealmSelfAttention extends Module {
  numAttentionHeads: number;
  readonly attentionHeadSize: number;
  allHeadSize: number;
  declare query: Linear;
  declare key: Linear;
  declare value: Linear;
  readonly attentionProbsDropoutProb: number;
  readonly positionEmbeddingType: PositionEmbeddingType;
  readonly maxPositionEmbeddings: number;
  /** [2 * maxPositionEmbeddings - 1, headDim] for relative_key(_query); null for absolute positions. */
  declare distance_embedding: Embedding | null;

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    if (config.hiddenSize % config.numAttentionHeads !== 0) {
      throw new ShapeError(`RealmSelfAttention: the hidden size (${config.hiddenSize}) is not a multiple of the number of attention heads (${config.numAttentionHeads})`);
    }
    this.numAttentionHeads = config.numAttentionHeads;
    this.attentionHeadSize = config.hiddenSize / config.numAttentionHeads;
    this.allHeadSize = this.numAttentionHeads * this.attentionHeadSize;
    this.registerModule('query', new Linear(config.hiddenSize, this.allHeadSize, { backend }));
    this.registerModule('key', new Linear(config.hiddenSize, this.allHeadSize, { backend }));
    this.registerModule('value', new Linear(config.hiddenSize, this.allHeadSize, { backend }));
    this.attentionProbsDropoutProb = config.attentionProbsDropoutProb;
    this.positionEmbeddingType = positionEmbeddingType(config);
    this.maxPositionEmbeddings = config.maxPositionEmbeddings;
    const relative = this.positionEmbeddingType !== 'absolute';
    this.registerModule('distance_embedding', relative ? new Embedding(2 * config.maxPositionEmbeddings - 1, this.attentionHeadSize, { backend }) : null);
  }

  /** [batch, seq, heads * headDim] -> [batch, heads, seq, headDim] */
  transposeForScores(x: Tensor): Tensor {
    const [batch, seq] = x.shape;
    return x.reshape(batch, seq, this.numAttentionHeads, this.attentionHeadSize).permute(0, 2, 1, 3);
  }

  forward(hiddenStates: Tensor, options: SelfAttentionOptions = {}): SelfAttentionOutput {
    const [batch, queryLength] = hiddenStates.shape;
    const queryLayer = this.transposeForScores(this.query.forward(hiddenStates)); // [batch, heads, q, headDim]
    const keyLayer = this.transposeForScores(this.key.forward(hiddenStates)); // [batch, heads, k, headDim]
    const valueLayer = this.transposeForScores(this.value.forward(hiddenStates)); // [batch, heads, k, headDim]
    const relativeScores = this.distance_embedding
      ? relativeKeyScores(queryLayer, keyLayer, this.distance_embedding.weight, {
          type: this.positionEmbeddingType as 'relative_key' | 'relative_key_query',
          maxPositionEmbeddings: this.maxPositionEmbeddings,
          hasPast: false,
        }) // [batch, heads, q, k]
      : null;
    // softmax((q.k^T + relative) / sqrt(headDim) + mask) * headMask, then . v
    const { context, attentions } = attentionCore(queryLayer, keyLayer, valueLayer, {
      mask: options.attentionMask ?? null,
      extraScores: relativeScores,
      headMask: options.headMask ?? null,
      scale: 1 / Math.sqrt(this.attentionHeadSize),
      dropout: this.attentionProbsDropoutProb,
      training: this.training,
      outputAttentions: options.outputAttentions,
    }); // context [batch, heads, q, headDim]
    const merged = context.permute(0, 2, 1, 3).reshape(batch, queryLength, this.allHeadSize); // [batch, q, hidden]
    return attentions ? { context: merged, attentions } : { context: merged };
  }
}

/** dense + dropout, then LayerNorm of the sum with the residual (post-LN). */
export class RealmSelfOutput extends Module {
  declare dense: Linear;
  declare LayerNorm: LayerNorm;
  declare dropout: Dropout;

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.hiddenSize, config.hiddenSize, options));
    this.registerModule('LayerNorm', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps, backend: options.backend }));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
  }

  forward(hiddenStates: Tensor, inputTensor: Tensor): Tensor {
    return this.LayerNorm.forward(this.dropout.forward(this.dense.forward(hiddenStates)).add(inputTensor));
  }
}

/** The attention block: LN(h + SelfOutput(SelfAttention(h))). */
export class RealmAttention extends Module {
  declare self: RealmSelfAttention;
  declare output: RealmSelfOutput;
  readonly prunedHeads = new Set<number>();

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('self', new RealmSelfAttention(config, options));
    this.registerModule('output', new RealmSelfOutput(config, options));
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
    const selfOutputs = this.self.forward(hiddenStates, options);
    return { ...selfOutputs, context: this.output.forward(selfOutputs.context, hiddenStates) };
  }
}

// ---- MLP ----------------------------------------------------------------------------------------------

/** dense + activation (hidden -> intermediate), fused into one kernel where the activation allows. */
export class RealmIntermediate extends Module {
  declare dense: Linear;
  readonly intermediateActFn: { fn: Activation; fused: FusedBiasActivation | null };

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.hiddenSize, config.intermediateSize, options));
    this.intermediateActFn = resolveActivation(config.hiddenAct);
  }

  forward(hiddenStates: Tensor): Tensor {
    return linearAct(this.dense, hiddenStates, this.intermediateActFn); // [batch, seq, intermediate]
  }
}

/** dense (intermediate -> hidden) + dropout, then LayerNorm of the sum with the residual. */
export class RealmOutput extends Module {
  declare dense: Linear;
  declare LayerNorm: LayerNorm;
  declare dropout: Dropout;

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.intermediateSize, config.hiddenSize, options));
    this.registerModule('LayerNorm', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps, backend: options.backend }));
    this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
  }

  forward(hiddenStates: Tensor, inputTensor: Tensor): Tensor {
    return this.LayerNorm.forward(this.dropout.forward(this.dense.forward(hiddenStates)).add(inputTensor));
  }
}

// ---- layer and encoder -------------------------------------------------------------------------------

/** One post-LN block: attention, then the MLP with its residual and LayerNorm. */
export class RealmLayer extends Module {
  readonly chunkSizeFeedForward: number;
  readonly seqLenDim = 1;
  declare attention: RealmAttention;
  declare intermediate: RealmIntermediate;
  declare output: RealmOutput;

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    this.chunkSizeFeedForward = config.chunkSizeFeedForward;
    this.registerModule('attention', new RealmAttention(config, options));
    this.registerModule('intermediate', new RealmIntermediate(config, options));
    this.registerModule('output', new RealmOutput(config, options));
  }

  forward(hiddenStates: Tensor, options: SelfAttentionOptions = {}): SelfAttentionOutput {
    const selfAttention = this.attention.forward(hiddenStates, options);
    const attentionOutput = selfAttention.context;
    const layerOutput = applyChunkingToForward((x) => this.feedForwardChunk(x), this.chunkSizeFeedForward, this.seqLenDim, attentionOutput);
    return { ...selfAttention, context: layerOutput };
  }

  /** LN(h + Output(Intermediate(h))) */
  feedForwardChunk(attentionOutput: Tensor): Tensor {
    return this.output.forward(this.intermediate.forward(attentionOutput), attentionOutput);
  }
}

export interface EncoderOptions {
  attentionMask?: Tensor | null;
  /** One mask per layer ([1, heads, 1, 1] or null), as getHeadMask returns. */
  headMask?: readonly (Tensor | null)[] | null;
  outputAttentions?: boolean;
  outputHiddenStates?: boolean;
}

export interface EncoderOutput {
  /** [batch, seq, hidden] */
  lastHiddenState: Tensor;
  /** numLayers + 1 entries: the embeddings, then every layer's output. */
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}

/** The stack of layers; optionally recomputes each layer in backward. */
export class RealmEncoder extends Module implements GradientCheckpointable {
  declare layer: ModuleList<RealmLayer>;
  /** Recompute each layer's activations in backward instead of storing them (training only). */
  gradientCheckpointing = false;

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('layer', new ModuleList(Array.from({ length: config.numHiddenLayers }, () => new RealmLayer(config, options))));
  }

  forward(hiddenStates: Tensor, options: EncoderOptions = {}): EncoderOutput {
    const checkpointing = this.gradientCheckpointing && this.training && !options.outputAttentions;
    const allHiddenStates: Tensor[] | undefined = options.outputHiddenStates ? [] : undefined;
    const allSelfAttentions: Tensor[] | undefined = options.outputAttentions ? [] : undefined;
    let hidden = hiddenStates;
    for (const [i, layerModule] of this.layer.items.entries()) {
      allHiddenStates?.push(hidden);
      const layerOptions: SelfAttentionOptions = {
        attentionMask: options.attentionMask,
        headMask: options.headMask?.[i] ?? null,
        outputAttentions: options.outputAttentions,
      };
      // Every temporary of the layer is freed when its scope ends; only its outputs survive.
      const layerOutputs = scope((): SelfAttentionOutput => {
        if (checkpointing) {
          // Every tensor the layer reads goes in as an input, so the recompute in backward finds it alive.
          const mask = layerOptions.attentionMask ?? null;
          const head = layerOptions.headMask ?? null;
          const run = (h: Tensor, ...rest: Tensor[]) => {
            let k = 0;
            const m = mask ? rest[k++] : null;
            const hm = head ? rest[k++] : null;
            return layerModule.forward(h, { attentionMask: m, headMask: hm }).context;
          };
          return { context: checkpoint(run, hidden, ...[mask, head].filter((t): t is Tensor => t !== null)) };
        }
        return layerModule.forward(hidden, layerOptions);
      });
      if (hidden !== hiddenStates && !allHiddenStates) hidden.dispose();
      hidden = layerOutputs.context;
      if (layerOutputs.attentions) allSelfAttentions?.push(layerOutputs.attentions);
    }
    allHiddenStates?.push(hidden);
    const out: EncoderOutput = { lastHiddenState: hidden };
    if (allHiddenStates) out.hiddenStates = allHiddenStates;
    if (allSelfAttentions) out.attentions = allSelfAttentions;
    return out;
  }
}

/** tanh(dense(hidden state of the first token)). */
export class RealmPooler extends Module {
  declare dense: Linear;

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.hiddenSize, config.hiddenSize, options));
  }

  forward(hiddenStates: Tensor): Tensor {
    return this.dense.forward(hiddenStates.select(1, 0), 'tanh'); // [batch, hidden]
  }
}

// ---- prediction and projection heads -----------------------------------------------------------------

/** dense + activation + LayerNorm, before the vocabulary projection (BERT's, from @lm/layers). */
export class RealmPredictionHeadTransform extends BertPredictionHeadTransform {}

/** transform, then the vocabulary projection `decoder` + `bias` (BERT's, from @lm/layers). */
export class RealmLMPredictionHead extends BertLMPredictionHead {}

/** The masked-LM head alone (BERT's `cls.predictions`, from @lm/layers). */
export class RealmOnlyMLMHead extends BertOnlyMLMHead {}

/**
 * The embedder's head: dense (hidden -> retrieverProjSize) + LayerNorm. It also holds an MLM head
 * (`predictions`) that the forward never uses, because the reference's checkpoints carry it.
 */
export class RealmScorerProjection extends Module {
  declare predictions: RealmLMPredictionHead;
  declare dense: Linear;
  declare LayerNorm: LayerNorm;

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('predictions', new RealmLMPredictionHead(config, options));
    this.registerModule('dense', new Linear(config.hiddenSize, config.retrieverProjSize, options));
    this.registerModule('LayerNorm', new LayerNorm(config.retrieverProjSize, { eps: config.layerNormEps, backend: options.backend }));
  }

  forward(hiddenStates: Tensor): Tensor {
    return this.LayerNorm.forward(this.dense.forward(hiddenStates)); // [batch, retrieverProjSize]
  }
}

/** The answer-span candidates of a sequence: every span of width 1..maxSpanWidth, by width then start. */
export function spanCandidates(maxSequenceLen: number, maxSpanWidth: number): { starts: Int32Array; ends: Int32Array } {
  const starts: number[] = [];
  const ends: number[] = [];
  for (let width = 1; width <= maxSpanWidth; width++) {
    for (let s = 0; s + width <= maxSequenceLen; s++) {
      starts.push(s);
      ends.push(s + width - 1);
    }
  }
  return { starts: Int32Array.from(starts), ends: Int32Array.from(ends) };
}

/**
 * The reader's span scorer: start and end projections of every token, summed per candidate span, ReLU,
 * LayerNorm, then one score; spans not wholly inside the evidence block get finfo(float32).min added.
 */
export class RealmReaderProjection extends Module {
  readonly spanHiddenSize: number;
  readonly maxSpanWidth: number;
  declare dense_intermediate: Linear;
  declare dense_output: Linear;
  declare layer_normalization: LayerNorm;

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super();
    this.spanHiddenSize = config.spanHiddenSize;
    this.maxSpanWidth = config.maxSpanWidth;
    this.registerModule('dense_intermediate', new Linear(config.hiddenSize, config.spanHiddenSize * 2, options));
    this.registerModule('dense_output', new Linear(config.spanHiddenSize, 1, options));
    this.registerModule('layer_normalization', new LayerNorm(config.spanHiddenSize, { eps: config.readerLayerNormEps, backend: options.backend }));
  }

  /**
   * hiddenStates [readerBeam, seq, hidden], blockMask [readerBeam, seq] (bool or 0/1) ->
   * readerLogits [readerBeam, numSpans], candidateStarts / candidateEnds int32 [numSpans].
   */
  forward(hiddenStates: Tensor, blockMask: Tensor): { readerLogits: Tensor; candidateStarts: Tensor; candidateEnds: Tensor } {
    const backend = hiddenStates.backend;
    const projected = this.dense_intermediate.forward(hiddenStates); // [readerBeam, seq, 2 * span]
    const [startProjection, endProjection] = projected.chunk(2, -1); // each [readerBeam, seq, span]

    const { starts, ends } = spanCandidates(blockMask.shape[1], this.maxSpanWidth);
    const candidateStarts = fromHost(starts, [starts.length], 'int32', backend); // [numSpans]
    const candidateEnds = fromHost(ends, [ends.length], 'int32', backend); // [numSpans]
    const mask = blockMask.toFloat(); // [readerBeam, seq]
    const candidateMask = mask.indexSelect(1, candidateStarts).mul(mask.indexSelect(1, candidateEnds)); // [readerBeam, numSpans]

    const candidateHidden = startProjection.indexSelect(1, candidateStarts).add(endProjection.indexSelect(1, candidateEnds)).relu(); // [readerBeam, numSpans, span]
    const normed = this.layer_normalization.forward(candidateHidden);
    const logits = this.dense_output.forward(normed).squeeze(-1); // [readerBeam, numSpans]
    const readerLogits = logits.add(maskToScore(candidateMask));
    return { readerLogits, candidateStarts, candidateEnds };
  }
}

/** (1 - mask) * finfo(float32).min: 0 where the mask holds, the most negative float where it does not. */
function maskToScore(mask: Tensor): Tensor {
  return mask.toFloat().mulScalar(-1).addScalar(1).mulScalar(FLOAT32_MIN);
}

// ---- the pretrained-model base -----------------------------------------------------------------------

/** What every model forward accepts (the reference's common arguments). */
export interface RealmInputs {
  /** int32 [batch, seq] ([batch, numCandidates, seq] for the knowledge-augmented encoder). */
  inputIds?: Tensor | null;
  /** 1 = attend, 0 = masked. Default all ones. */
  attentionMask?: Tensor | null;
  /** int32 segment ids, default zeros. */
  tokenTypeIds?: Tensor | null;
  /** int32 positions, default 0 .. seq - 1. */
  positionIds?: Tensor | null;
  /** [heads] (every layer) or [layers, heads]; multiplies the attention probabilities. */
  headMask?: Tensor | null;
  /** [batch, seq, hidden] instead of inputIds. */
  inputsEmbeds?: Tensor | null;
  outputAttentions?: boolean;
  outputHiddenStates?: boolean;
}

/** Hidden states and attentions every model passes through from its BERT. */
export interface RealmOutputs {
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}

/** The base of every REALM model: config parsing, weight init, input flattening. */
export abstract class RealmPreTrainedModel extends PreTrainedModel<RealmConfig> {
  static override baseModelPrefix = 'realm';

  static configFromJSON(json: JsonObject): RealmConfig {
    return RealmConfig.fromJSON(json);
  }

  /** The reference's `_init_weights`: Linear/Embedding ~ N(0, initializerRange) (padding row 0), biases 0, LayerNorm 1/0. */
  protected initModule(module: Module): void {
    const std = this.config.initializerRange;
    if (module instanceof Linear) {
      initInPlace(module.weight, { kind: 'normal', std });
      if (module.bias) initInPlace(module.bias, { kind: 'constant', value: 0 });
    } else if (module instanceof Embedding) {
      initInPlace(module.weight, { kind: 'normal', std });
      if (module.paddingIdx !== null) {
        const row = module.weight.narrow(0, module.paddingIdx, 1);
        initInPlace(row, { kind: 'constant', value: 0 });
        row.dispose();
      }
    } else if (module instanceof LayerNorm) {
      if (module.weight) initInPlace(module.weight, { kind: 'constant', value: 1 });
      if (module.bias) initInPlace(module.bias, { kind: 'constant', value: 0 });
    }
  }

  /** The reference's `post_init`: initialise every weight (unless loading skips it), then tie weights. */
  protected postInit(): void {
    if (!isInitSkipped()) for (const [, m] of this.namedModules()) this.initModule(m);
    this.tieWeights();
  }

  protected override pruneHeadsImpl(headsToPrune: Record<number, number[]>): void {
    const bert = (this as unknown as { realm?: RealmBertModel }).realm;
    if (!bert) throw new TypeError(`${this.constructor.name}: prune the heads of its embedder or reader instead`);
    bert.pruneHeads(headsToPrune);
  }
}

/** Builds a sub-model inside another without initialising it: the outer postInit initialises everything once. */
function inner<T>(build: () => T): T {
  return withoutInit(build);
}

/** [..., seq] -> [-1, seq]: the reference's `_flatten_inputs` (rank 2 and below pass through). */
function flatten(t: Tensor | null | undefined): Tensor | null {
  if (!t) return null;
  return t.rank > 2 ? t.reshape(-1, t.shape[t.rank - 1]) : t;
}

function passThrough(outputs: RealmOutputs): RealmOutputs {
  const out: RealmOutputs = {};
  if (outputs.hiddenStates) out.hiddenStates = outputs.hiddenStates;
  if (outputs.attentions) out.attentions = outputs.attentions;
  return out;
}

// ---- REALM's BERT ------------------------------------------------------------------------------------

export interface RealmBertModelOutput extends RealmOutputs {
  /** [batch, seq, hidden] */
  lastHiddenState: Tensor;
  /** [batch, hidden] (absent without a pooler). */
  poolerOutput?: Tensor;
}

/** The classic post-LN BERT encoder every REALM model builds on (`RealmBertModel`). */
export class RealmBertModel extends RealmPreTrainedModel {
  declare embeddings: RealmEmbeddings;
  declare encoder: RealmEncoder;
  declare pooler: RealmPooler | null;

  constructor(config: RealmConfig, options: ModuleOptions & { addPoolingLayer?: boolean } = {}) {
    super(config);
    if (config.isDecoder || config.addCrossAttention) {
      throw new RealmError('RealmBertModel: REALM is an encoder; is_decoder and add_cross_attention are not supported');
    }
    this.registerModule('embeddings', new RealmEmbeddings(config, options));
    this.registerModule('encoder', new RealmEncoder(config, options));
    this.registerModule('pooler', options.addPoolingLayer === false ? null : new RealmPooler(config, options));
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

  forward(options: RealmInputs): RealmBertModelOutput {
    return scope(() => {
      const config = this.config;
      const { inputIds, inputsEmbeds } = options;
      if (inputIds && inputsEmbeds) throw new TypeError('RealmBertModel: you cannot specify both inputIds and inputsEmbeds at the same time');
      if (!inputIds && !inputsEmbeds) throw new TypeError('RealmBertModel: you have to specify either inputIds or inputsEmbeds');
      const inputShape = inputIds ? inputIds.shape : inputsEmbeds!.shape.slice(0, -1);
      if (inputShape.length !== 2) throw new ShapeError(`RealmBertModel: inputs must be [batch, seq], got [${inputShape.join(',')}]`);
      if (inputShape[1] > config.maxPositionEmbeddings) {
        throw new ShapeError(`RealmBertModel: sequence length ${inputShape[1]} exceeds max_position_embeddings (${config.maxPositionEmbeddings})`);
      }
      const backend = (inputIds ?? inputsEmbeds)!.backend;
      const attentionMask = options.attentionMask ?? full([inputShape[0], inputShape[1]], 1, { backend });
      const extendedAttentionMask = this.getExtendedAttentionMask(attentionMask, inputShape); // [batch, 1, 1|q, k]
      const headMask = this.getHeadMask(options.headMask, config.numHiddenLayers);
      const embeddingOutput = this.embeddings.forward({ inputIds, positionIds: options.positionIds, tokenTypeIds: options.tokenTypeIds, inputsEmbeds }); // [batch, seq, hidden]
      const encoderOutputs = this.encoder.forward(embeddingOutput, {
        attentionMask: extendedAttentionMask,
        headMask,
        outputAttentions: options.outputAttentions ?? config.outputAttentions,
        outputHiddenStates: options.outputHiddenStates ?? config.outputHiddenStates,
      });
      const out: RealmBertModelOutput = { ...encoderOutputs };
      if (this.pooler) out.poolerOutput = this.pooler.forward(encoderOutputs.lastHiddenState);
      return out;
    });
  }
}

// ---- RealmEmbedder -----------------------------------------------------------------------------------

export interface RealmEmbedderOutput extends RealmOutputs {
  /** [batch, retrieverProjSize] */
  projectedScore: Tensor;
}

/** The retriever's embedder: BERT pooler output -> dense -> LayerNorm(retrieverProjSize). */
export class RealmEmbedder extends RealmPreTrainedModel {
  declare realm: RealmBertModel;
  declare cls: RealmScorerProjection;
  protected override tiedWeightsKeys = ['cls.predictions.decoder.bias'];

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super(config);
    this.registerModule('realm', inner(() => new RealmBertModel(config, options)));
    this.registerModule('cls', new RealmScorerProjection(config, options));
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    return this.realm.embeddings.word_embeddings;
  }

  setInputEmbeddings(value: Embedding): void {
    this.realm.embeddings.word_embeddings = value;
  }

  forward(options: RealmInputs): RealmEmbedderOutput {
    return scope(() => {
      const realmOutputs = this.realm.forward(options);
      const projectedScore = this.cls.forward(realmOutputs.poolerOutput!); // [batch, retrieverProjSize]
      return { projectedScore, ...passThrough(realmOutputs) };
    });
  }
}

// ---- RealmScorer -------------------------------------------------------------------------------------

export interface RealmScorerInputs extends RealmInputs {
  /** int32 [batch, numCandidates, seq] */
  candidateInputIds?: Tensor | null;
  candidateAttentionMask?: Tensor | null;
  candidateTokenTypeIds?: Tensor | null;
  /** [batch * numCandidates, seq, hidden] instead of candidateInputIds. */
  candidateInputsEmbeds?: Tensor | null;
}

export interface RealmScorerOutput {
  /** [batch, numCandidates]: query . candidate, before softmax. */
  relevanceScore: Tensor;
  /** [batch, retrieverProjSize] */
  queryScore: Tensor;
  /** [batch, numCandidates, retrieverProjSize] */
  candidateScore: Tensor;
}

/**
 * Relevance scores of candidate blocks for each query: the inner product of their embeddings. The
 * query embedder is the candidate embedder unless another is given; shared, the state dict holds it
 * under both `embedder.*` and `query_embedder.*`, as the reference's does.
 */
export class RealmScorer extends RealmPreTrainedModel {
  declare embedder: RealmEmbedder;
  declare query_embedder: RealmEmbedder;

  constructor(config: RealmConfig, options: ModuleOptions & { queryEmbedder?: RealmEmbedder | null } = {}) {
    super(config);
    this.registerModule('embedder', inner(() => new RealmEmbedder(config, options)));
    this.registerModule('query_embedder', options.queryEmbedder ?? this.embedder);
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    return this.embedder.getInputEmbeddings();
  }

  setInputEmbeddings(value: Embedding): void {
    this.embedder.setInputEmbeddings(value);
  }

  forward(options: RealmScorerInputs): RealmScorerOutput {
    return scope(() => {
      if (!options.inputIds && !options.inputsEmbeds) throw new RealmError('RealmScorer: you have to specify either inputIds or inputsEmbeds');
      if (!options.candidateInputIds && !options.candidateInputsEmbeds) {
        throw new RealmError('RealmScorer: you have to specify either candidateInputIds or candidateInputsEmbeds');
      }
      const { numCandidates, retrieverProjSize } = this.config;
      const queryOutputs = this.query_embedder.forward(options);
      const candidateOutputs = this.embedder.forward({
        inputIds: flatten(options.candidateInputIds), // [batch * numCandidates, candidateSeq]
        attentionMask: flatten(options.candidateAttentionMask),
        tokenTypeIds: flatten(options.candidateTokenTypeIds),
        positionIds: options.positionIds,
        inputsEmbeds: options.candidateInputsEmbeds,
        outputAttentions: options.outputAttentions,
        outputHiddenStates: options.outputHiddenStates,
      });
      const queryScore = queryOutputs.projectedScore; // [batch, proj]
      if (candidateOutputs.projectedScore.shape[0] % numCandidates !== 0) {
        throw new ShapeError(`RealmScorer: ${candidateOutputs.projectedScore.shape[0]} candidates do not split into rows of num_candidates (${numCandidates})`);
      }
      const candidateScore = candidateOutputs.projectedScore.reshape(-1, numCandidates, retrieverProjSize); // [batch, numCandidates, proj]
      // einsum('bd,bnd->bn')
      const relevanceScore = candidateScore.matmul(queryScore.unsqueeze(-1)).squeeze(-1); // [batch, numCandidates]
      return { relevanceScore, queryScore, candidateScore };
    });
  }
}

// ---- RealmKnowledgeAugEncoder ------------------------------------------------------------------------

export interface RealmKnowledgeAugEncoderInputs extends RealmInputs {
  /** [batch, numCandidates] retrieval scores (RealmScorer's relevanceScore); needed with labels. */
  relevanceScore?: Tensor | null;
  /** int32 [batch, seq], -100 = ignored. */
  labels?: Tensor | null;
  /** [batch, seq], 1 = counts in the loss; default all ones. */
  mlmMask?: Tensor | null;
}

export interface RealmMaskedLMOutput extends RealmOutputs {
  /** The negative marginal log-likelihood, when labels are given. */
  loss?: Tensor;
  /** [batch * numCandidates, seq, vocab] */
  logits: Tensor;
}

/**
 * The knowledge-augmented encoder: each (query, retrieved block) pair is read jointly and scored by the
 * MLM head; with labels, the loss is the masked tokens' log-likelihood marginalised over the candidates,
 * weighted by the retrieval distribution softmax(relevanceScore).
 */
export class RealmKnowledgeAugEncoder extends RealmPreTrainedModel {
  declare realm: RealmBertModel;
  declare cls: RealmOnlyMLMHead;
  protected override tiedWeightsKeys = ['cls.predictions.decoder.weight', 'cls.predictions.decoder.bias'];

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super(config);
    this.registerModule('realm', inner(() => new RealmBertModel(config, options)));
    this.registerModule('cls', new RealmOnlyMLMHead(config, options));
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    return this.realm.embeddings.word_embeddings;
  }

  setInputEmbeddings(value: Embedding): void {
    this.realm.embeddings.word_embeddings = value;
  }

  override getOutputEmbeddings(): Linear {
    return this.cls.predictions.decoder;
  }

  override setOutputEmbeddings(newEmbeddings: Linear): void {
    this.cls.predictions.decoder = newEmbeddings;
    if (newEmbeddings.bias) this.cls.predictions.bias = newEmbeddings.bias;
  }

  forward(options: RealmKnowledgeAugEncoderInputs): RealmMaskedLMOutput {
    return scope(() => {
      const { labels, relevanceScore } = options;
      if (labels && !relevanceScore) {
        throw new RealmError('RealmKnowledgeAugEncoder: you have to specify relevanceScore when labels is specified in order to compute loss');
      }
      const { numCandidates, vocabSize } = this.config;
      const jointOutputs = this.realm.forward({
        ...options,
        inputIds: flatten(options.inputIds), // [batch * numCandidates, jointSeq]
        attentionMask: flatten(options.attentionMask),
        tokenTypeIds: flatten(options.tokenTypeIds),
        inputsEmbeds: options.inputsEmbeds && options.inputsEmbeds.rank > 3 ? options.inputsEmbeds.reshape(-1, ...options.inputsEmbeds.shape.slice(-2)) : options.inputsEmbeds,
      });
      const predictionScores = this.cls.forward(jointOutputs.lastHiddenState); // [batch * numCandidates, jointSeq, vocab]
      const out: RealmMaskedLMOutput = { logits: predictionScores, ...passThrough(jointOutputs) };
      if (labels) {
        const [batchSize, seqLength] = labels.shape;
        if (relevanceScore!.rank !== 2 || relevanceScore!.shape[0] !== batchSize || relevanceScore!.shape[1] !== numCandidates) {
          throw new ShapeError(`RealmKnowledgeAugEncoder: relevanceScore must be [${batchSize}, ${numCandidates}] (batch, num_candidates), got [${relevanceScore!.shape.join(',')}]`);
        }
        const mlmMask = options.mlmMask ? options.mlmMask.toFloat() : full(labels.shape, 1, { backend: labels.backend }); // [batch, seq]
        // Per-token log p of the gold token (0 where the label is -100), every candidate sharing the labels.
        const mlmTargets = labels.unsqueeze(1).expand(batchSize, numCandidates, seqLength).reshape(-1); // [batch * numCandidates * seq]
        const maskedLmLogProb = crossEntropy(predictionScores.reshape(-1, vocabSize), mlmTargets, { reduction: 'none' })
          .neg()
          .reshape(batchSize, numCandidates, seqLength); // [batch, numCandidates, seq]
        const candidateLogProb = relevanceScore!.logSoftmax(-1).unsqueeze(-1); // [batch, numCandidates, 1]
        const marginalGoldLogProbs = candidateLogProb.add(maskedLmLogProb).logsumexp(1); // [batch, seq]
        const loss = marginalGoldLogProbs.mul(mlmMask).sum().div(mlmMask.sum()).neg(); // []
        // -nansum(...): a NaN (no unmasked token) counts as 0.
        out.loss = loss.maskedFill(loss.isNan(), 0);
      }
      return out;
    });
  }
}

// ---- RealmReader -------------------------------------------------------------------------------------

export interface RealmReaderInputs extends RealmInputs {
  /** [searcherBeam] retrieval scores of the blocks; the first readerBeamSize join the span scores. */
  relevanceScore?: Tensor | null;
  /** [searcherBeam | readerBeam, seq] (bool or 0/1): tokens of the evidence block, where spans may lie. */
  blockMask?: Tensor | null;
  /** int32 [searcherBeam, numAnswers] gold span starts, -1 = no answer. */
  startPositions?: Tensor | null;
  /** int32 [searcherBeam, numAnswers] gold span ends. */
  endPositions?: Tensor | null;
  /** [searcherBeam] (bool or 0/1): whether each block holds an answer. */
  hasAnswers?: Tensor | null;
}

export interface RealmReaderOutput extends RealmOutputs {
  /** retrieverLoss + readerLoss */
  loss?: Tensor;
  retrieverLoss?: Tensor;
  readerLoss?: Tensor;
  /** bool [searcherBeam] */
  retrieverCorrect?: Tensor;
  /** bool [readerBeam, numSpans] */
  readerCorrect?: Tensor;
  /** int32 [] the block the best span is in. */
  blockIdx: Tensor;
  /** int32 [] the best span's candidate index. */
  candidate: Tensor;
  /** int32 [1] */
  startPos: Tensor;
  /** int32 [1] */
  endPos: Tensor;
}

/**
 * logsumexp(logits) - logsumexp(logits + (1 - correct) * finfo.min): the negative log of the
 * probability mass on the correct entries.
 */
function marginalLogLoss(logits: Tensor, isCorrect: Tensor): Tensor {
  const logNumerator = logits.add(maskToScore(isCorrect)).logsumexp(-1);
  const logDenominator = logits.logsumexp(-1);
  return logDenominator.sub(logNumerator);
}

/** 1.0 when any entry is set, else 0.0 (a float scalar). */
function anyAsFloat(mask: Tensor): Tensor {
  return mask.toFloat().max().gtScalar(0).toFloat();
}

/** The reader: scores every answer span in the top readerBeamSize blocks, plus each block's retrieval score. */
export class RealmReader extends RealmPreTrainedModel {
  readonly numLabels: number;
  declare realm: RealmBertModel;
  declare cls: RealmOnlyMLMHead;
  declare qa_outputs: RealmReaderProjection;
  protected override tiedWeightsKeys = ['cls.predictions.decoder.bias'];

  constructor(config: RealmConfig, options: ModuleOptions = {}) {
    super(config);
    this.numLabels = config.numLabels;
    this.registerModule('realm', inner(() => new RealmBertModel(config, options)));
    this.registerModule('cls', new RealmOnlyMLMHead(config, options));
    this.registerModule('qa_outputs', new RealmReaderProjection(config, options));
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    return this.realm.embeddings.word_embeddings;
  }

  setInputEmbeddings(value: Embedding): void {
    this.realm.embeddings.word_embeddings = value;
  }

  forward(options: RealmReaderInputs): RealmReaderOutput {
    return scope(() => {
      const { relevanceScore, blockMask } = options;
      const { readerBeamSize, maxSpanWidth } = this.config;
      if (!relevanceScore) throw new RealmError('RealmReader: you have to specify relevanceScore to calculate logits and loss');
      if (!blockMask) throw new RealmError('RealmReader: you have to specify blockMask to separate question block and evidence block');
      const seq = (options.inputIds ?? options.inputsEmbeds)?.shape[1] ?? 0;
      if (seq < maxSpanWidth) {
        throw new RealmError(`RealmReader: the input sequence length (${seq}) must be greater than or equal to config.max_span_width (${maxSpanWidth})`);
      }
      const beam = Math.min(readerBeamSize, relevanceScore.shape[0]);
      const outputs = this.realm.forward(options);
      const sequenceOutput = outputs.lastHiddenState; // [readerBeam, seq, hidden]

      const { readerLogits: spanLogits, candidateStarts, candidateEnds } = this.qa_outputs.forward(sequenceOutput, blockMask.slice(0, 0, readerBeamSize)); // [readerBeam, numSpans]
      const retrieverLogits = relevanceScore.slice(0, 0, readerBeamSize).unsqueeze(-1); // [readerBeam, 1]
      const readerLogits = spanLogits.add(retrieverLogits); // [readerBeam, numSpans]
      const predictedBlockIndex = readerLogits.max(1).argmax(0); // []
      const predictedCandidate = readerLogits.max(0).argmax(0); // []
      const predictedStart = candidateStarts.indexSelect(0, predictedCandidate.reshape(1)); // [1]
      const predictedEnd = candidateEnds.indexSelect(0, predictedCandidate.reshape(1)); // [1]

      const out: RealmReaderOutput = {
        blockIdx: predictedBlockIndex,
        candidate: predictedCandidate,
        startPos: predictedStart,
        endPos: predictedEnd,
        ...passThrough(outputs),
      };
      const { startPositions, endPositions, hasAnswers } = options;
      if (startPositions && endPositions && hasAnswers) {
        // Positions outside the input are clamped to seq (never a candidate); -1 means no answer.
        const ignoredIndex = sequenceOutput.shape[1];
        const goldStarts = startPositions.clamp(-1, ignoredIndex).slice(0, 0, beam); // [readerBeam, numAnswers]
        const goldEnds = endPositions.clamp(-1, ignoredIndex).slice(0, 0, beam);
        const retrieverCorrect = hasAnswers.dtype === 'bool' ? hasAnswers : hasAnswers.ne(0); // [searcherBeam]
        const numSpans = candidateStarts.shape[0];
        let readerCorrect: Tensor; // [readerBeam, numSpans]
        if (goldStarts.shape[1] === 0) {
          readerCorrect = full([goldStarts.shape[0], numSpans], 0, { backend: readerLogits.backend }).ne(0);
        } else {
          // [readerBeam, numAnswers, numSpans]: a span is correct when both its ends match one gold answer.
          const isGoldStart = candidateStarts.reshape(1, 1, numSpans).eq(goldStarts.unsqueeze(-1));
          const isGoldEnd = candidateEnds.reshape(1, 1, numSpans).eq(goldEnds.unsqueeze(-1));
          readerCorrect = isGoldStart.logicalAnd(isGoldEnd).toFloat().max(1).gtScalar(0);
        }
        const retrieverLoss = marginalLogLoss(relevanceScore, retrieverCorrect).mul(anyAsFloat(retrieverCorrect));
        const readerLoss = marginalLogLoss(readerLogits.reshape(-1), readerCorrect.reshape(-1)).mul(anyAsFloat(readerCorrect));
        out.loss = retrieverLoss.add(readerLoss);
        out.retrieverLoss = retrieverLoss;
        out.readerLoss = readerLoss;
        out.retrieverCorrect = retrieverCorrect;
        out.readerCorrect = readerCorrect;
      }
      return out;
    });
  }
}

// ---- RealmForOpenQA ----------------------------------------------------------------------------------

export interface RealmForOpenQAInputs {
  /** int32 [1, seq]: the question, tokenised (batch size 1, as the reference). */
  inputIds: Tensor;
  attentionMask?: Tensor | null;
  tokenTypeIds?: Tensor | null;
  /** Token ids of each acceptable answer (no special tokens); with them the losses are computed. */
  answerIds?: readonly (readonly number[])[] | null;
}

/** What the retriever step produced: intermediate values, useful for debugging and for the pipeline. */
export interface RealmRetrievalTrace {
  /** [1, retrieverProjSize] */
  questionProjection: Tensor;
  /** int32 [searcherBeam], best first. */
  retrievedBlockIds: Tensor;
  /** [searcherBeam] question . block */
  retrievedLogits: Tensor;
  /** The (question, block) pairs fed to the reader, int32 [searcherBeam, seq] each. */
  concatInputs: { inputIds: Tensor; attentionMask: Tensor; tokenTypeIds: Tensor; specialTokensMask: Tensor };
  /** bool [searcherBeam, seq]: tokens of the block (not special, segment 1). */
  blockMask: Tensor;
}

export interface RealmForOpenQAOutput {
  readerOutput: RealmReaderOutput;
  /** int32 [answerLength]: the predicted span's token ids. */
  predictedAnswerIds: Tensor;
  retriever: RealmRetrievalTrace;
  /** What the forward already read back to the host: the retrieved block ids, the reader's choice and the answer ids. */
  host: { blockIds: number[]; blockIdx: number; startPos: number; endPos: number; answerIds: number[] };
}

/**
 * End-to-end open-domain QA: embed the question, score every block of the index (`block_emb`, a
 * persistent buffer [numBlockRecords, retrieverProjSize]), take the top searcherBeamSize (readerBeamSize
 * in eval), pair the question with each block's text (the retriever), and read answer spans.
 */
export class RealmForOpenQA extends RealmPreTrainedModel {
  declare embedder: RealmEmbedder;
  declare reader: RealmReader;
  declare block_emb: Tensor;
  retriever: RealmRetriever | null;
  protected override tiedWeightsKeys = ['embedder.cls.predictions.decoder.bias', 'reader.cls.predictions.decoder.bias'];

  constructor(config: RealmConfig, options: ModuleOptions & { retriever?: RealmRetriever | null } = {}) {
    super(config);
    this.registerModule('embedder', inner(() => new RealmEmbedder(config, options)));
    this.registerModule('reader', inner(() => new RealmReader(config, options)));
    this.registerBuffer('block_emb', full([config.numBlockRecords, config.retrieverProjSize], 0, { backend: options.backend }));
    this.retriever = options.retriever ?? null;
    this.postInit();
  }

  /** The number of blocks retrieved per question: searcherBeamSize in training, readerBeamSize in eval. */
  get searcherBeamSize(): number {
    return this.training ? this.config.searcherBeamSize : this.config.readerBeamSize;
  }

  getInputEmbeddings(): Embedding {
    return this.embedder.getInputEmbeddings();
  }

  setInputEmbeddings(value: Embedding): void {
    this.embedder.setInputEmbeddings(value);
  }

  /** Replaces the index: blockEmb [numBlocks, retrieverProjSize] (the model takes it; the old one is freed). */
  setBlockEmb(blockEmb: Tensor): void {
    const { retrieverProjSize } = this.config;
    if (blockEmb.rank !== 2 || blockEmb.shape[1] !== retrieverProjSize) {
      throw new ShapeError(`RealmForOpenQA.setBlockEmb: block_emb must be [numBlocks, ${retrieverProjSize}] (retriever_proj_size), got [${blockEmb.shape.join(',')}]`);
    }
    this.setBuffer('block_emb', blockEmb);
    this.config.numBlockRecords = blockEmb.shape[0];
    this.dropIndex();
  }

  private index: RealmBlockIndex | null = null;
  private ownsIndex = false;

  /**
   * The searchable index: the one given to `setIndex`, else one over `block_emb` built on first use
   * (the buffer itself when it fits one shard, else a float32 copy sharded under the binding limit).
   */
  getIndex(): RealmBlockIndex {
    // An index built here over a block_emb that has since been replaced (a cast, a new buffer) is rebuilt.
    if (this.index && this.ownsIndex && this.indexedBuffer !== this.block_emb) this.dropIndex();
    if (!this.index) {
      this.index = RealmBlockIndex.over(this.block_emb);
      this.ownsIndex = true;
      this.indexedBuffer = this.block_emb;
    }
    return this.index;
  }

  /** The block_emb tensor the owned index was built over. */
  private indexedBuffer: Tensor | null = null;

  /**
   * Searches this index instead of `block_emb` (e.g. one sharded over several buffers, or float16); the
   * caller keeps ownership. Its width must be retriever_proj_size.
   */
  setIndex(index: RealmBlockIndex): void {
    if (index.dim !== this.config.retrieverProjSize) {
      throw new ShapeError(`RealmForOpenQA.setIndex: the index width is ${index.dim} but retriever_proj_size is ${this.config.retrieverProjSize}`);
    }
    this.dropIndex();
    this.index = index;
  }

  /** Rebuilds the searchable copy of block_emb with other storage (float16, smaller shards or tiles). */
  reindex(options: BlockIndexOptions): void {
    this.dropIndex();
    this.index = RealmBlockIndex.fromTensor(this.block_emb, options);
    this.ownsIndex = true;
    this.indexedBuffer = this.block_emb;
  }

  private dropIndex(): void {
    if (this.index && this.ownsIndex) this.index.dispose();
    this.index = null;
    this.ownsIndex = false;
    this.indexedBuffer = null;
  }

  override dispose(): void {
    this.dropIndex();
    super.dispose();
  }

  /**
   * Writes config.json and the weights with `block_emb` (the rows of an index given to `setIndex`, when
   * there is one), and the retriever's block_records.json and tokenizer files when it has a retriever.
   */
  override async savePretrained(dir: string, options: SavePretrainedOptions = {}): Promise<void> {
    if (this.index && !this.ownsIndex) {
      const rows = await this.index.toHost();
      this.setBuffer('block_emb', fromHost(rows, [this.index.numBlocks, this.index.dim], 'float32', this.block_emb.backend));
      this.config.numBlockRecords = this.index.numBlocks;
    }
    await super.savePretrained(dir, options);
    if (this.retriever) await this.retriever.savePretrained(dir);
  }

  /** The checks that need no model work: batch 1, an index that matches the config and the retriever, k within it. */
  private checkInputs(options: RealmForOpenQAInputs): void {
    const { inputIds } = options;
    if (!inputIds || inputIds.rank !== 2 || inputIds.shape[0] !== 1) {
      throw new RealmError(`RealmForOpenQA: inputIds must be [1, seq] (batch size 1), got ${inputIds ? `[${inputIds.shape.join(',')}]` : 'nothing'}`);
    }
    if (inputIds.shape[1] === 0) throw new RealmError('RealmForOpenQA: the question is empty (inputIds has no tokens)');
    if (!this.retriever) throw new RealmError('RealmForOpenQA: no retriever; pass { retriever } to the constructor or fromPretrained');
    const [rows, width] = this.block_emb.shape;
    if (width !== this.config.retrieverProjSize) {
      throw new ShapeError(`RealmForOpenQA: block_emb is [${rows}, ${width}] but retriever_proj_size is ${this.config.retrieverProjSize}`);
    }
    const numBlocks = this.index ? this.index.numBlocks : rows;
    if (this.retriever.blockRecords.length !== numBlocks) {
      throw new RealmError(`RealmForOpenQA: the retriever has ${this.retriever.blockRecords.length} block records but the index (block_emb) has ${numBlocks} rows`);
    }
    if (this.searcherBeamSize > numBlocks) {
      throw new RealmError(`RealmForOpenQA: k = ${this.searcherBeamSize} (${this.training ? 'searcher_beam_size' : 'reader_beam_size'}) is larger than the index (${numBlocks} blocks)`);
    }
  }

  async forward(options: RealmForOpenQAInputs): Promise<RealmForOpenQAOutput> {
    this.checkInputs(options);
    const retriever = this.retriever!;
    const { readerBeamSize, readerSeqLen } = this.config;
    const k = this.searcherBeamSize;
    const backend = options.inputIds.backend;
    // The forward awaits the host between its steps: every step runs in the caller's grad mode.
    const inGradMode = isGradEnabled() ? enableGrad : noGrad;

    // Retrieval: the question's projection against every block; the top k ids come to the host.
    const index = this.getIndex();
    const { questionProjection, retrievedBlockIds, idsHost, questionHost } = inGradMode(() => scope(() => {
      const q = this.embedder.forward({ inputIds: options.inputIds, attentionMask: options.attentionMask, tokenTypeIds: options.tokenTypeIds }).projectedScore; // [1, proj]
      const ids = index.search(q, k).indices.reshape(k); // [k], best first (tiled block_emb . q and top-k on the backend)
      return { questionProjection: q, retrievedBlockIds: ids, idsHost: ids.data(), questionHost: options.inputIds.data() };
    }));
    const blockIds = Array.from(await idsHost);
    const questionIds = Array.from(await questionHost);

    // The retriever: (question, block) pairs tokenised for the reader, and where the answers are in them.
    const pairs = retriever.retrieve(blockIds, questionIds, options.answerIds ?? null, { maxLength: readerSeqLen });

    const readerAndTrace = inGradMode(() => scope(() => {
      const asTensor = (rows: number[][], dtype: 'int32' | 'bool' = 'int32') => tensor(rows, { dtype, backend });
      const concatInputs = {
        inputIds: asTensor(pairs.inputIds),
        attentionMask: asTensor(pairs.attentionMask),
        tokenTypeIds: asTensor(pairs.tokenTypeIds),
        specialTokensMask: asTensor(pairs.specialTokensMask),
      };
      const blockMask = concatInputs.specialTokensMask.eq(0).logicalAnd(concatInputs.tokenTypeIds.ne(0)); // [k, seq]
      // [k, proj] . [proj] -> [k]: the retrieval scores of the retrieved blocks, with gradient to the embedder.
      const retrievedBlockEmb = index.rows(blockIds); // [k, proj]
      const retrievedLogits = retrievedBlockEmb.matmul(questionProjection.reshape(-1, 1)).reshape(k); // [k]
      const answers = pairs.answers;
      const readerOutput = this.reader.forward({
        inputIds: concatInputs.inputIds.slice(0, 0, readerBeamSize),
        attentionMask: concatInputs.attentionMask.slice(0, 0, readerBeamSize),
        tokenTypeIds: concatInputs.tokenTypeIds.slice(0, 0, readerBeamSize),
        relevanceScore: retrievedLogits,
        blockMask,
        hasAnswers: answers ? tensor(answers.hasAnswers.map(Number), { dtype: 'int32', backend }).ne(0) : null,
        startPositions: answers ? fromHost(Int32Array.from(answers.startPos.flat()), [k, answers.maxAnswers], 'int32', backend) : null,
        endPositions: answers ? fromHost(Int32Array.from(answers.endPos.flat()), [k, answers.maxAnswers], 'int32', backend) : null,
      });
      return {
        readerOutput,
        trace: { questionProjection, retrievedBlockIds, retrievedLogits, concatInputs, blockMask },
        where: [readerOutput.blockIdx.data(), readerOutput.startPos.data(), readerOutput.endPos.data()] as const,
      };
    }));
    const [blockIdx, start, end] = (await Promise.all(readerAndTrace.where)).map((d) => Number(d[0]));
    const answer = pairs.inputIds[blockIdx].slice(start, end + 1);
    const predictedAnswerIds = fromHost(Int32Array.from(answer), [answer.length], 'int32', backend);
    return {
      readerOutput: readerAndTrace.readerOutput,
      predictedAnswerIds,
      retriever: readerAndTrace.trace,
      host: { blockIds, blockIdx, startPos: start, endPos: end, answerIds: answer },
    };
  }
}

/** Every model class by its reference name. */
export const REALM_CLASSES = {
  RealmEmbedder,
  RealmScorer,
  RealmKnowledgeAugEncoder,
  RealmReader,
  RealmForOpenQA,
} as const;
