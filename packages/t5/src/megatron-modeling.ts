// Megatron-core's T5Model: T5 as NVIDIA Megatron-LM trains it (Raffel et al. 2020, arXiv:1910.10683,
// in Megatron's implementation, Shoeybi et al. 2019, arXiv:1909.08053): pre-LN encoder and decoder blocks
// with torch LayerNorm (weight and bias), biased linears, scaled dot-product attention with masked_fill
// -10000 masks, learned absolute positions (or RoPE), an exact-erf GELU MLP, and a language-model head
// that shares the word embeddings (with an output bias) or has its own output weight.
//
// Mirrors `megatron/core/models/T5/t5_model.py` (NVIDIA/Megatron-LM @ d98e8a64) with the local layer
// specs (`get_t5_encoder/decoder_with_local_block_spec`): `t5_extended_attention_mask`, `t5_position_ids`,
// `T5LMHead`, `T5Model`; and the modules those specs build, under Megatron's parameter names so
// `named_parameters()` checkpoints load with no rename table: `embedding.word_embeddings`,
// `embedding.position_embeddings`, `encoder.layers.<i>.self_attention.linear_qkv` (fused and GROUPED per
// query group: [q_g (np/ng * hn), k_g (hn), v_g (hn)] for each group g), `linear_proj`,
// `decoder.layers.<i>.cross_attention.linear_q` / `linear_kv` (per head [k_h, v_h]),
// `input_layernorm`, `pre_cross_attn_layernorm`, `pre_mlp_layernorm`, `mlp.linear_fc1` / `linear_fc2`,
// `final_layernorm`, `lm_head.output_layer`.
//
// Layout: Megatron computes in [seq, batch, hidden]; this file computes batch-first ([batch, seq, hidden],
// the same math) and keeps the reference's sequence-first layout at the API where the reference exposes
// it: `encoderHiddenStates` in and the `outputEncoderHiddenOnly` result are [seq, batch, hidden]; logits
// and lm_loss are batch-first, as T5Model returns them. Single process (tensor/pipeline parallel size 1):
// checkpoints hold the merged (TP=1) weights.

import { dropout, fromHost, getBackend, matmul, noGrad, scope, ShapeError, type Backend, type FusedBiasActivation, type Tensor } from '@lm/tensor-gpu';
import {
  attentionCore,
  ConfigError,
  Dropout,
  Embedding,
  initInPlace,
  isInitSkipped,
  LayerNorm,
  Linear,
  linearAct,
  Module,
  ModuleList,
  PretrainedLoadError,
  resolveActivation,
  RMSNorm,
  RotaryEmbedding,
  withoutInit,
  type Activation,
  type CosSin,
  type ModuleOptions,
} from '@lm/layers';
import { moduleShardedStateDict, openCheckpoint, writeShardedSafetensors, type Checkpoint, type ModuleShardingOptions, type ParallelLayout, type ShardedTensor, type ShardingRule } from '@lm/dist-ckpt';
import { MegatronT5Config } from './megatron-config.js';
import { checkIdsInVocabulary } from './ids.js';

// ---- the module-level functions -------------------------------------------------------------------------

/**
 * `t5_extended_attention_mask`: each [batch, sq, sk] mask becomes [batch, 1, sq, sk]; null entries stay
 * null. Masks are bool (true = masked out), as the reference's.
 */
export function t5ExtendedAttentionMask(attentionMaskList: readonly (Tensor | null)[]): (Tensor | null)[] {
  return attentionMaskList.map((m, i) => {
    if (m === null) return null;
    if (m.rank !== 3) throw new ShapeError(`t5ExtendedAttentionMask: mask ${i} must be [batch, sq, sk], got [${m.shape.join(',')}]`);
    return m.unsqueeze(1); // [batch, 1, sq, sk]
  });
}

/** `t5_position_ids`: arange(seq) expanded to the token ids' shape [batch, seq] (int32; padding is not skipped). */
export function t5PositionIds(tokenIds: Tensor): Tensor {
  if (tokenIds.rank !== 2) throw new ShapeError(`t5PositionIds: token ids must be [batch, seq], got [${tokenIds.shape.join(',')}]`);
  const [batch, seq] = tokenIds.shape;
  return fromHost(Int32Array.from({ length: batch * seq }, (_, i) => i % seq), [batch, seq], 'int32', tokenIds.backend);
}

/** A [batch, 1, sq, sk] mask as bool, true = masked out (int 0/1 masks from JSON are accepted). */
function maskedOut(mask: Tensor): Tensor {
  return mask.dtype === 'bool' ? mask : mask.ne(0);
}

// ---- embedding ---------------------------------------------------------------------------------------------

/** `LanguageModelEmbedding`: word (+ learned absolute position) embeddings, then dropout; no LayerNorm, no scaling. */
export class MegatronT5Embedding extends Module {
  declare word_embeddings: Embedding;
  declare position_embeddings: Embedding | null;
  declare embedding_dropout: Dropout;
  readonly maxSequenceLength: number;

  constructor(config: MegatronT5Config, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    this.maxSequenceLength = config.maxSequenceLength;
    this.registerModule('word_embeddings', new Embedding(config.vocabSize, config.hiddenSize, { backend }));
    const learned = config.positionEmbeddingType === 'learned_absolute';
    this.registerModule('position_embeddings', learned ? new Embedding(config.maxSequenceLength, config.hiddenSize, { backend }) : null);
    this.registerModule('embedding_dropout', new Dropout(config.hiddenDropout));
  }

  /** ids [batch, seq] -> [batch, seq, hidden]. */
  forward(inputIds: Tensor, positionIds: Tensor): Tensor {
    let embeddings = this.word_embeddings.forward(inputIds); // [batch, seq, hidden]
    if (this.position_embeddings) {
      const seq = inputIds.shape[1];
      if (seq > this.maxSequenceLength) throw new ShapeError(`MegatronT5Embedding: sequence length ${seq} exceeds max_sequence_length ${this.maxSequenceLength}`);
      embeddings = embeddings.add(this.position_embeddings.forward(positionIds)); // [batch, seq, hidden]
    }
    return this.embedding_dropout.forward(embeddings);
  }
}

// ---- attention ----------------------------------------------------------------------------------------------

/**
 * The local `DotProductAttention`: softmax(q.k^T / sqrt(kv_channels), masked_fill(mask, -10000)) . v in
 * float32, probabilities dropped out when training, through `@lm/layers`' attentionCore. q [batch, np,
 * sq, hn], k/v [batch, ng, sk, hn] (query groups share keys/values, repeated to the heads); mask bool
 * [batch|1, 1, sq, sk] (true = masked). The mask goes in as a keep mask (attentionCore adds
 * finfo(float32).min where it is false): in float32 that gives masked_fill's probabilities, exp() of a
 * masked score being 0 either way and a fully masked row uniform either way. apply_query_key_layer_scaling
 * divides the scores by layer_number and multiplies them back in the fp32 softmax, a no-op up to
 * rounding, so it is left out.
 */
function dotProductAttention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, options: { softmaxScale: number; dropout: number; training: boolean }): Tensor {
  const [batch, heads, , hn] = q.shape;
  const groups = k.shape[1];
  if (groups !== heads) {
    // repeat_interleave over heads: query head h reads group floor(h / (np / ng)).
    const rep = heads / groups;
    const expand = (t: Tensor) => t.unsqueeze(2).expand([batch, groups, rep, t.shape[2], hn]).reshape(batch, heads, t.shape[2], hn); // [batch, np, sk, hn]
    k = expand(k);
    v = expand(v);
  }
  const { context } = attentionCore(q, k, v, { mask: mask ? mask.logicalNot() : null, scale: options.softmaxScale, dropout: options.dropout, training: options.training });
  return context; // [batch, np, sq, hn]
}

/** Options shared by self- and cross-attention. */
interface AttentionSettings {
  numHeads: number;
  numQueryGroups: number;
  headDim: number;
  softmaxScale: number;
  attentionDropout: number;
}

function attentionSettings(config: MegatronT5Config): AttentionSettings {
  const headDim = config.kvChannels!;
  return {
    numHeads: config.numAttentionHeads,
    numQueryGroups: config.numQueryGroups!,
    headDim,
    softmaxScale: config.softmaxScale ?? 1 / Math.sqrt(headDim),
    attentionDropout: config.attentionDropout,
  };
}

function coreOptions(s: AttentionSettings, training: boolean) {
  return { softmaxScale: s.softmaxScale, dropout: s.attentionDropout, training };
}

/** `SelfAttention`: fused, grouped linear_qkv; RoPE on q and k; linear_proj (its bias joins the residual add). */
export class MegatronT5SelfAttention extends Module {
  declare linear_qkv: Linear;
  declare linear_proj: Linear;
  readonly s: AttentionSettings;

  constructor(config: MegatronT5Config, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    this.s = attentionSettings(config);
    const { numHeads, numQueryGroups, headDim } = this.s;
    const qkvBias = config.addBiasLinear || config.addQkvBias;
    this.registerModule('linear_qkv', new Linear(config.hiddenSize, (numHeads + 2 * numQueryGroups) * headDim, { bias: qkvBias, backend }));
    this.registerModule('linear_proj', new Linear(numHeads * headDim, config.hiddenSize, { bias: config.addBiasLinear, backend }));
  }

  forward(hiddenStates: Tensor, options: { attentionMask: Tensor | null; rotaryPosEmb: { rope: RotaryEmbedding; cosSin: CosSin } | null }): Tensor {
    const [batch, seq] = hiddenStates.shape;
    const { numHeads, numQueryGroups: ng, headDim: hn } = this.s;
    const perGroup = numHeads / ng;
    // [q_g, k_g, v_g] per query group, NOT [Q; K; V].
    const mixed = this.linear_qkv.forward(hiddenStates).reshape(batch, seq, ng, (perGroup + 2) * hn); // [batch, seq, ng, (np/ng + 2) * hn]
    let query = mixed.slice(-1, 0, perGroup * hn).reshape(batch, seq, numHeads, hn).permute(0, 2, 1, 3); // [batch, np, seq, hn]
    let key = mixed.slice(-1, perGroup * hn, (perGroup + 1) * hn).permute(0, 2, 1, 3); // [batch, ng, seq, hn]
    const value = mixed.slice(-1, (perGroup + 1) * hn, (perGroup + 2) * hn).permute(0, 2, 1, 3); // [batch, ng, seq, hn]
    if (options.rotaryPosEmb) {
      const { rope, cosSin } = options.rotaryPosEmb;
      query = rope.apply(query, cosSin);
      key = rope.apply(key, cosSin);
    }
    const context = dotProductAttention(query, key, value, options.attentionMask, coreOptions(this.s, this.training));
    const merged = context.permute(0, 2, 1, 3).reshape(batch, seq, numHeads * hn); // [batch, seq, np * hn]
    return this.linear_proj.forward(merged); // [batch, seq, hidden]
  }
}

/** `CrossAttention`: linear_q on the decoder states, linear_kv (per head [k_h, v_h]) on the encoder output; no RoPE. */
export class MegatronT5CrossAttention extends Module {
  declare linear_q: Linear;
  declare linear_kv: Linear;
  declare linear_proj: Linear;
  readonly s: AttentionSettings;

  constructor(config: MegatronT5Config, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    this.s = attentionSettings(config);
    const { numHeads, headDim } = this.s;
    const bias = config.addBiasLinear || config.addQkvBias;
    this.registerModule('linear_q', new Linear(config.hiddenSize, numHeads * headDim, { bias, backend }));
    this.registerModule('linear_kv', new Linear(config.hiddenSize, 2 * numHeads * headDim, { bias, backend }));
    this.registerModule('linear_proj', new Linear(numHeads * headDim, config.hiddenSize, { bias: config.addBiasLinear, backend }));
  }

  forward(hiddenStates: Tensor, options: { keyValueStates: Tensor; attentionMask: Tensor | null }): Tensor {
    const [batch, sq] = hiddenStates.shape;
    const sk = options.keyValueStates.shape[1];
    const { numHeads, headDim: hn } = this.s;
    const query = this.linear_q.forward(hiddenStates).reshape(batch, sq, numHeads, hn).permute(0, 2, 1, 3); // [batch, np, sq, hn]
    const mixedKv = this.linear_kv.forward(options.keyValueStates).reshape(batch, sk, numHeads, 2 * hn); // [batch, sk, np, 2 * hn]
    const key = mixedKv.slice(-1, 0, hn).permute(0, 2, 1, 3); // [batch, np, sk, hn]
    const value = mixedKv.slice(-1, hn, 2 * hn).permute(0, 2, 1, 3); // [batch, np, sk, hn]
    const context = dotProductAttention(query, key, value, options.attentionMask, coreOptions(this.s, this.training));
    const merged = context.permute(0, 2, 1, 3).reshape(batch, sq, numHeads * hn); // [batch, sq, np * hn]
    return this.linear_proj.forward(merged); // [batch, sq, hidden]
  }
}

// ---- MLP ----------------------------------------------------------------------------------------------------

/** `MLP`: linear_fc2(act(linear_fc1(x))) (gated: act(x1) * x2 over the two halves of fc1). */
export class MegatronT5MLP extends Module {
  declare linear_fc1: Linear;
  declare linear_fc2: Linear;
  readonly gated: boolean;
  readonly act: { fn: Activation; fused: FusedBiasActivation | null };

  constructor(config: MegatronT5Config, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    const ffn = config.ffnHiddenSize!;
    this.gated = config.gatedLinearUnit;
    this.registerModule('linear_fc1', new Linear(config.hiddenSize, this.gated ? 2 * ffn : ffn, { bias: config.addBiasLinear, backend }));
    this.registerModule('linear_fc2', new Linear(ffn, config.hiddenSize, { bias: config.addBiasLinear, backend }));
    // activation_func gelu is torch's exact erf GELU; the bias+GELU fusion uses the tanh approximation.
    const name = config.activationFunc === 'gelu' && config.biasActivationFusion ? 'geluTanh' : config.activationFunc;
    this.act = resolveActivation(name);
  }

  forward(hiddenStates: Tensor): Tensor {
    let intermediate: Tensor;
    if (this.gated) {
      const [x1, x2] = this.linear_fc1.forward(hiddenStates).chunk(2, -1); // [batch, seq, ffn] each
      intermediate = this.act.fn(x1).mul(x2);
    } else {
      intermediate = linearAct(this.linear_fc1, hiddenStates, this.act); // [batch, seq, ffn]
    }
    return this.linear_fc2.forward(intermediate); // [batch, seq, hidden]
  }
}

// ---- layer and block ------------------------------------------------------------------------------------------

function norm(config: MegatronT5Config, backend: Backend | undefined): LayerNorm | RMSNorm {
  return config.normalization === 'RMSNorm' ? new RMSNorm(config.hiddenSize, { eps: config.layernormEpsilon, backend }) : new LayerNorm(config.hiddenSize, { eps: config.layernormEpsilon, backend });
}

export interface MegatronT5LayerOptions {
  /** bool [batch|1, 1, sq, sq], true = masked out; null = unmasked. */
  attentionMask: Tensor | null;
  /** The encoder output [batch, sk, hidden] (decoder layers). */
  context?: Tensor | null;
  /** bool [batch|1, 1, sq, sk], true = masked out; null = unmasked. */
  contextMask?: Tensor | null;
  rotaryPosEmb: { rope: RotaryEmbedding; cosSin: CosSin } | null;
}

/**
 * `TransformerLayer` (pre-LN): h += drop(self_attention(input_layernorm(h)));
 * decoder: h += drop(cross_attention(pre_cross_attn_layernorm(h), context)); h += drop(mlp(pre_mlp_layernorm(h))).
 */
export class MegatronT5TransformerLayer extends Module {
  readonly layerNumber: number;
  readonly isDecoder: boolean;
  declare input_layernorm: LayerNorm | RMSNorm;
  declare self_attention: MegatronT5SelfAttention;
  declare pre_cross_attn_layernorm: LayerNorm | RMSNorm | null;
  declare cross_attention: MegatronT5CrossAttention | null;
  declare pre_mlp_layernorm: LayerNorm | RMSNorm;
  declare mlp: MegatronT5MLP;
  readonly hiddenDropout: number;

  constructor(config: MegatronT5Config, layerNumber: number, options: ModuleOptions & { isDecoder: boolean }) {
    super();
    const { backend } = options;
    this.layerNumber = layerNumber;
    this.isDecoder = options.isDecoder;
    this.hiddenDropout = config.hiddenDropout;
    this.registerModule('input_layernorm', norm(config, backend));
    this.registerModule('self_attention', new MegatronT5SelfAttention(config, { backend }));
    // The encoder spec has IdentityOp here: no parameters.
    this.registerModule('pre_cross_attn_layernorm', this.isDecoder ? norm(config, backend) : null);
    this.registerModule('cross_attention', this.isDecoder ? new MegatronT5CrossAttention(config, { backend }) : null);
    this.registerModule('pre_mlp_layernorm', norm(config, backend));
    this.registerModule('mlp', new MegatronT5MLP(config, { backend }));
  }

  /** bias-dropout-add: residual + dropout(x) (the linear's bias is already in x). */
  private bda(x: Tensor, residual: Tensor): Tensor {
    return residual.add(this.training && this.hiddenDropout > 0 ? dropout(x, this.hiddenDropout, true) : x);
  }

  forward(hiddenStates: Tensor, options: MegatronT5LayerOptions): Tensor {
    let hidden = this.bda(this.self_attention.forward(this.input_layernorm.forward(hiddenStates), { attentionMask: options.attentionMask, rotaryPosEmb: options.rotaryPosEmb }), hiddenStates);
    if (this.cross_attention && this.pre_cross_attn_layernorm) {
      if (!options.context) throw new ShapeError(`MegatronT5TransformerLayer ${this.layerNumber}: a decoder layer needs the encoder output (context)`);
      const cross = this.cross_attention.forward(this.pre_cross_attn_layernorm.forward(hidden), { keyValueStates: options.context, attentionMask: options.contextMask ?? null });
      hidden = this.bda(cross, hidden);
    }
    return this.bda(this.mlp.forward(this.pre_mlp_layernorm.forward(hidden)), hidden);
  }
}

/** `TransformerBlock`: the layers, then final_layernorm. */
export class MegatronT5TransformerBlock extends Module {
  declare layers: ModuleList<MegatronT5TransformerLayer>;
  declare final_layernorm: LayerNorm | RMSNorm;

  constructor(config: MegatronT5Config, numLayers: number, options: ModuleOptions & { isDecoder: boolean }) {
    super();
    // layer_number is 1-based in Megatron (it scales the scores with apply_query_key_layer_scaling).
    this.registerModule('layers', new ModuleList(Array.from({ length: numLayers }, (_, i) => new MegatronT5TransformerLayer(config, i + 1, options))));
    this.registerModule('final_layernorm', norm(config, options.backend));
  }

  forward(hiddenStates: Tensor, options: MegatronT5LayerOptions): Tensor {
    let hidden = hiddenStates;
    for (const layer of this.layers.items) hidden = layer.forward(hidden, options);
    return this.final_layernorm.forward(hidden);
  }
}

// ---- LM head ---------------------------------------------------------------------------------------------------

/**
 * `ColumnParallelLinear` as T5LMHead builds it: with shared embeddings it owns only a bias and takes
 * the word-embedding matrix at call time; untied it owns its weight and has no bias.
 */
export class MegatronT5OutputLayer extends Module {
  declare weight: Tensor | null;
  declare bias: Tensor | null;

  constructor(config: MegatronT5Config, options: ModuleOptions = {}) {
    super();
    const shared = config.shareEmbeddingsAndOutputWeights;
    const init = new Linear(config.hiddenSize, config.vocabSize, { bias: shared, backend: options.backend });
    this.registerParameter('weight', shared ? null : init.weight);
    this.registerParameter('bias', shared ? init.bias : null);
    if (shared) init.weight.dispose();
  }

  /** [batch, seq, hidden] -> [batch, seq, vocab] with `weight` (the shared embeddings) or its own. */
  forward(hiddenStates: Tensor, weight: Tensor | null): Tensor {
    const w = weight ?? this.weight;
    if (!w) throw new ShapeError('MegatronT5OutputLayer: share_embeddings_and_output_weights needs the word-embedding weight');
    const logits = matmul(hiddenStates, w.transpose(0, 1)); // [batch, seq, vocab]
    return this.bias ? logits.add(this.bias) : logits;
  }
}

/** `T5LMHead`: the output layer over the decoder's hidden states. */
export class MegatronT5LMHead extends Module {
  declare output_layer: MegatronT5OutputLayer;

  constructor(config: MegatronT5Config, options: ModuleOptions = {}) {
    super();
    this.registerModule('output_layer', new MegatronT5OutputLayer(config, options));
  }

  forward(hiddenStates: Tensor, wordEmbeddingsWeight: Tensor | null): Tensor {
    return this.output_layer.forward(hiddenStates, wordEmbeddingsWeight);
  }
}

// ---- T5Model ---------------------------------------------------------------------------------------------------

export interface MegatronT5ModelOptions extends ModuleOptions {
  /** Build the encoder (pipeline parallelism builds it on some ranks only); default true. */
  addEncoder?: boolean;
  /** Build the decoder; default true. */
  addDecoder?: boolean;
  /** Half-precision logits for the loss (fp16 runs only; float32 here, so it changes nothing). */
  fp16LmCrossEntropy?: boolean;
}

export interface MegatronT5Inputs {
  /** int32 [batch, sEnc] */
  encoderInputIds?: Tensor | null;
  /** int32 [batch, sDec] */
  decoderInputIds?: Tensor | null;
  /** bool/int [batch, 1, sEnc, sEnc], true = masked out; null = unmasked. */
  encoderAttnMask?: Tensor | null;
  /** bool/int [batch, 1, sDec, sDec]; null = causal. */
  decoderAttnMask?: Tensor | null;
  /** bool/int [batch, 1, sDec, sEnc]; null = unmasked. */
  encoderDecoderAttnMask?: Tensor | null;
  /** int32 [batch, sDec]: with labels the model returns lm_loss per token (ids outside the vocab count as no target). */
  lmLabels?: Tensor | null;
  /** The encoder output [sEnc, batch, hidden] (sequence-first): the encoder is skipped. */
  encoderHiddenStates?: Tensor | null;
  /** Return the encoder output [sEnc, batch, hidden] only. */
  outputEncoderHiddenOnly?: boolean;
}

export interface MegatronT5Output {
  /** [batch, sDec, vocab] (no lmLabels). */
  logits?: Tensor;
  /** [batch, sDec] per-token cross-entropy (with lmLabels). */
  lmLoss?: Tensor;
  /** [sEnc, batch, hidden] (outputEncoderHiddenOnly, or a model without a decoder). */
  encoderHiddenStates?: Tensor;
  /** [sDec, batch, hidden] (post_process false: no LM head). */
  decoderHiddenStates?: Tensor;
}

/** Fields this implementation cannot honour, checked before anything is built. */
function checkSupported(config: MegatronT5Config): void {
  const problems: [string, boolean][] = [
    ['qk_layernorm must be false', config.qkLayernorm],
    ['softmax_type must be "vanilla"', config.softmaxType !== 'vanilla'],
    ['window_size must be null (sliding-window attention is not implemented)', config.windowSize !== null],
    ['layernorm_zero_centered_gamma must be false', config.layernormZeroCenteredGamma],
    ['apply_residual_connection_post_layernorm must be false', config.applyResidualConnectionPostLayernorm],
    ['pre_process must be true (the embedding lives on this rank in a single process)', !config.preProcess],
  ];
  for (const [what, bad] of problems) if (bad) throw new ConfigError(`MegatronT5Model: config field ${what.split(' ')[0]}: ${what}`);
  if (!(config.vocabSize > 0)) throw new ConfigError(`MegatronT5Model: config field vocab_size must be positive, got ${config.vocabSize}`);
  if (!(config.hiddenSize > 0) || !(config.numAttentionHeads > 0)) throw new ConfigError(`MegatronT5Model: config fields hidden_size (${config.hiddenSize}) and num_attention_heads (${config.numAttentionHeads}) must be positive`);
  if (config.positionEmbeddingType !== 'learned_absolute' && config.positionEmbeddingType !== 'rope') {
    throw new ConfigError(`MegatronT5Model: config field position_embedding_type must be "learned_absolute" or "rope", got ${JSON.stringify(config.positionEmbeddingType)}`);
  }
  if (config.positionEmbeddingType === 'learned_absolute' && !(config.maxSequenceLength > 0)) throw new ConfigError(`MegatronT5Model: config field max_sequence_length must be positive for learned_absolute positions, got ${config.maxSequenceLength}`);
  if (config.numAttentionHeads % config.numQueryGroups! !== 0) throw new ConfigError(`MegatronT5Model: config field num_query_groups (${config.numQueryGroups}) must divide num_attention_heads (${config.numAttentionHeads})`);
  if (config.normalization !== 'LayerNorm' && config.normalization !== 'RMSNorm') throw new ConfigError(`MegatronT5Model: config field normalization must be "LayerNorm" or "RMSNorm", got ${JSON.stringify(config.normalization)}`);
  try {
    resolveActivation(config.activationFunc);
  } catch {
    throw new ConfigError(`MegatronT5Model: config field activation_func ${JSON.stringify(config.activationFunc)} is not a known activation`);
  }
}

/**
 * Megatron-core `T5Model`: embedding (shared by encoder and decoder), encoder and decoder blocks, T5LMHead.
 * `forward` returns logits, or lm_loss with lmLabels, or the encoder output with outputEncoderHiddenOnly.
 */
export class MegatronT5Model extends Module {
  readonly config: MegatronT5Config;
  readonly addEncoder: boolean;
  readonly addDecoder: boolean;
  readonly fp16LmCrossEntropy: boolean;
  declare embedding: MegatronT5Embedding;
  declare encoder: MegatronT5TransformerBlock | null;
  declare decoder: MegatronT5TransformerBlock | null;
  declare lm_head: MegatronT5LMHead | null;
  /** Megatron keeps inv_freq out of the state dict: not a module. */
  readonly rotaryPosEmb: RotaryEmbedding | null;

  constructor(config: MegatronT5Config, options: MegatronT5ModelOptions = {}) {
    super();
    checkSupported(config);
    const { backend } = options;
    this.config = config;
    this.addEncoder = options.addEncoder ?? true;
    this.addDecoder = options.addDecoder ?? true;
    this.fp16LmCrossEntropy = options.fp16LmCrossEntropy ?? false;
    this.registerModule('embedding', new MegatronT5Embedding(config, { backend }));
    // T5Model does not pass config.rotary_base: the rotary base is RotaryEmbedding's default 10000.
    this.rotaryPosEmb =
      config.positionEmbeddingType === 'rope'
        ? new RotaryEmbedding(config.kvChannels!, { rotaryPercent: config.rotaryPercent, interleaved: config.rotaryInterleaved, seqLenInterpolationFactor: config.seqLenInterpolationFactor })
        : null;
    this.registerModule('encoder', this.addEncoder ? new MegatronT5TransformerBlock(config, config.encoderLayers, { backend, isDecoder: false }) : null);
    this.registerModule('decoder', this.addDecoder ? new MegatronT5TransformerBlock(config, config.numLayers, { backend, isDecoder: true }) : null);
    this.registerModule('lm_head', config.postProcess ? new MegatronT5LMHead(config, { backend }) : null);
    if (!isInitSkipped()) this.initWeights();
  }

  /**
   * Megatron's init: normal(0, init_method_std) for embeddings, linear_qkv / linear_q / linear_kv /
   * linear_fc1 and an untied output layer; normal(0, std / sqrt(2 * num_layers)) for linear_proj and
   * linear_fc2 (output layers); biases 0; norms 1 / 0.
   */
  private initWeights(): void {
    const std = this.config.initMethodStd;
    const outputStd = std / Math.sqrt(2 * this.config.numLayers);
    for (const [name, m] of this.namedModules()) {
      if (m instanceof Linear) {
        const isOutput = name.endsWith('linear_proj') || name.endsWith('linear_fc2');
        initInPlace(m.weight, { kind: 'normal', std: isOutput ? outputStd : std });
        if (m.bias) initInPlace(m.bias, { kind: 'constant', value: 0 });
      } else if (m instanceof Embedding) initInPlace(m.weight, { kind: 'normal', std });
      else if (m instanceof MegatronT5OutputLayer) {
        if (m.weight) initInPlace(m.weight, { kind: 'normal', std });
        if (m.bias) initInPlace(m.bias, { kind: 'constant', value: 0 });
      }
    }
  }

  /**
   * Builds the model from a folder (Node path) holding config.json (Megatron's field names) and
   * `named_parameters()` weights (model.safetensors, sharded or not, or a PyTorch file). Every weight
   * must be there with its shape; Megatron's alias keys (`output_layer.*`, `position_embeddings.weight`)
   * and `_extra_state` entries are ignored.
   */
  static async fromPretrained(dir: string, options: { backend?: Backend } & MegatronT5ModelOptions = {}): Promise<MegatronT5Model> {
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    const path = await import(/* @vite-ignore */ 'node:path');
    let text: string;
    try {
      text = await fs.readFile(path.join(dir, 'config.json'), 'utf8');
    } catch (e) {
      throw new PretrainedLoadError(`MegatronT5Model.fromPretrained: cannot read config.json in ${dir}: ${(e as Error).message}`);
    }
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new PretrainedLoadError(`MegatronT5Model.fromPretrained: ${path.join(dir, 'config.json')} is not valid JSON: ${(e as Error).message}`);
    }
    const config = MegatronT5Config.fromJSON(json as never);
    const backend = options.backend ?? getBackend();
    const model = withoutInit(() => new MegatronT5Model(config, { ...options, backend }));
    const ckpt = await openCheckpoint(dir);
    try {
      await model.loadWeights(ckpt);
    } catch (e) {
      model.dispose();
      throw e;
    } finally {
      await ckpt.close();
    }
    model.eval();
    return model;
  }

  /** Fills every parameter from `ckpt`; a missing key or a wrong shape fails naming the key, before anything is copied. */
  async loadWeights(ckpt: Checkpoint): Promise<void> {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !ckpt.has(k));
    const mismatched = [...own].filter(([k, t]) => ckpt.has(k) && ckpt.info(k).shape.join(',') !== t.shape.join(',')).map(([k, t]) => `${k}: checkpoint [${ckpt.info(k).shape.join(',')}], model [${t.shape.join(',')}]`);
    if (missing.length || mismatched.length) {
      const parts = [];
      if (missing.length) parts.push(`missing weights: ${missing.join(', ')}`);
      if (mismatched.length) parts.push(`shape mismatches: ${mismatched.join('; ')}`);
      throw new PretrainedLoadError(`MegatronT5Model.fromPretrained (${ckpt.name}): ${parts.join('; ')}`);
    }
    for (const [key, t] of own) {
      const { data } = await ckpt.readTensor(key);
      const tmp = fromHost(data as Float32Array, t.shape, 'float32', t.backend);
      noGrad(() => t.copy_(tmp));
      tmp.dispose();
    }
  }

  /** Writes config.json and model.safetensors (named_parameters() names) into `dir`. */
  async savePretrained(dir: string, options: { maxShardSize?: number | string } = {}): Promise<void> {
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    const path = await import(/* @vite-ignore */ 'node:path');
    await fs.mkdir(dir, { recursive: true });
    const entries = [...this.stateDict()].map(([name, t]) => [name, { dtype: 'F32' as const, shape: [...t.shape], data: () => t.data() as Promise<Float32Array> }] as const);
    await writeShardedSafetensors(dir, entries, { maxShardSize: options.maxShardSize ?? '5GB', metadata: { format: 'pt' } });
    await fs.writeFile(path.join(dir, 'config.json'), `${JSON.stringify(this.config.toJSON(), null, 2)}\n`);
  }

  /**
   * `sharded_state_dict`: every parameter as a ShardedTensor of the global tensor under Megatron's
   * tensor-parallel rules (MEGATRON_T5_RULES), for `@lm/dist-ckpt`'s save / load. This single-process
   * model holds the whole (TP=1) tensors; `megatronT5ShardedStateDict` does the same for one TP rank's
   * slices, so a checkpoint saved by TP=2 ranks loads here and under any other TP size.
   */
  shardedStateDict(layout: ParallelLayout = { tpRank: 0, tpSize: 1 }, options: Omit<ModuleShardingOptions, 'rules'> = {}): Record<string, ShardedTensor> {
    if (layout.tpSize !== 1) throw new ShapeError(`MegatronT5Model.shardedStateDict: this model holds the whole tensors (TP=1), got tpSize ${layout.tpSize}; use megatronT5ShardedStateDict for one rank's slices`);
    return megatronT5ShardedStateDict(this.stateDict(), layout, { ...options, gatedLinearUnit: this.config.gatedLinearUnit });
  }

  /** Number of parameters (each tensor once). */
  numParameters(): number {
    return [...new Set(this.parameters())].reduce((n, p) => n + p.size, 0);
  }

  /** `shared_embedding_or_output_weight`: the matrix the output layer multiplies by when shared. */
  sharedEmbeddingOrOutputWeight(): Tensor {
    return this.embedding.word_embeddings.weight;
  }

  /** RoPE angles for positions 0 .. seq - 1 of one block (the encoder's or the decoder's own length). */
  private rotary(seq: number, backend: Backend): { rope: RotaryEmbedding; cosSin: CosSin } | null {
    if (!this.rotaryPosEmb) return null;
    return { rope: this.rotaryPosEmb, cosSin: this.rotaryPosEmb.forward(seq, { backend }) };
  }

  forward(inputs: MegatronT5Inputs): MegatronT5Output {
    return scope(() => {
      const config = this.config;
      const checkIds = (ids: Tensor | null | undefined, what: string): Tensor => {
        if (!ids) throw new TypeError(`MegatronT5Model: ${what} is required`);
        if (ids.rank !== 2 || ids.dtype !== 'int32') throw new ShapeError(`MegatronT5Model: ${what} must be int32 [batch, seq], got ${ids.dtype} [${ids.shape.join(',')}]`);
        if (ids.backend.readSync) checkIdsInVocabulary(ids.dataSync() as Int32Array, config.vocabSize, `MegatronT5Model: ${what}`);
        return ids;
      };
      const checkMask = (mask: Tensor | null | undefined, batch: number, sq: number, sk: number, what: string): Tensor | null => {
        if (!mask) return null;
        const [b, one, q, k] = mask.shape;
        if (mask.rank !== 4 || (b !== batch && b !== 1) || one !== 1 || q !== sq || k !== sk) {
          throw new ShapeError(`MegatronT5Model: ${what} must be [batch ${batch}, 1, ${sq}, ${sk}] (true = masked out), got [${mask.shape.join(',')}]`);
        }
        return maskedOut(mask);
      };

      // ---- encoder
      let encoderHiddenStates: Tensor; // [batch, sEnc, hidden] inside
      if (inputs.encoderHiddenStates) {
        const e = inputs.encoderHiddenStates;
        if (e.rank !== 3 || e.shape[2] !== config.hiddenSize) throw new ShapeError(`MegatronT5Model: encoderHiddenStates must be [sEnc, batch, ${config.hiddenSize}], got [${e.shape.join(',')}]`);
        encoderHiddenStates = e.transpose(0, 1); // [sEnc, batch, hidden] -> [batch, sEnc, hidden]
      } else {
        if (!this.encoder) throw new TypeError('MegatronT5Model: the model has no encoder (addEncoder false); pass encoderHiddenStates');
        const ids = checkIds(inputs.encoderInputIds, 'encoderInputIds');
        const [batch, sEnc] = ids.shape;
        const encoderMask = checkMask(inputs.encoderAttnMask, batch, sEnc, sEnc, 'encoderAttnMask');
        const encoderInput = this.embedding.forward(ids, t5PositionIds(ids)); // [batch, sEnc, hidden]
        encoderHiddenStates = this.encoder.forward(encoderInput, { attentionMask: encoderMask, rotaryPosEmb: this.rotary(sEnc, ids.backend) });
      }
      if (!this.decoder || inputs.outputEncoderHiddenOnly) return { encoderHiddenStates: encoderHiddenStates.transpose(0, 1) }; // [sEnc, batch, hidden]

      // ---- decoder
      const ids = checkIds(inputs.decoderInputIds, 'decoderInputIds');
      const [batch, sDec] = ids.shape;
      const sEnc = encoderHiddenStates.shape[1];
      if (encoderHiddenStates.shape[0] !== batch) throw new ShapeError(`MegatronT5Model: the encoder output has batch ${encoderHiddenStates.shape[0]}, decoderInputIds batch ${batch}`);
      // A null decoder mask is the causal mask (AttnMaskType.causal): key j is masked for query i < j.
      const decoderMask = checkMask(inputs.decoderAttnMask, batch, sDec, sDec, 'decoderAttnMask') ?? fromHost(Uint8Array.from({ length: sDec * sDec }, (_, i) => Number(i % sDec > Math.floor(i / sDec))), [1, 1, sDec, sDec], 'bool', ids.backend);
      const crossMask = checkMask(inputs.encoderDecoderAttnMask, batch, sDec, sEnc, 'encoderDecoderAttnMask');
      const decoderInput = this.embedding.forward(ids, t5PositionIds(ids)); // [batch, sDec, hidden]
      const decoderHiddenStates = this.decoder.forward(decoderInput, { attentionMask: decoderMask, context: encoderHiddenStates, contextMask: crossMask, rotaryPosEmb: this.rotary(sDec, ids.backend) });
      if (!this.lm_head) return { decoderHiddenStates: decoderHiddenStates.transpose(0, 1) }; // [sDec, batch, hidden]

      const outputWeight = config.shareEmbeddingsAndOutputWeights ? this.sharedEmbeddingOrOutputWeight() : null;
      const logits = this.lm_head.forward(decoderHiddenStates, outputWeight); // [batch, sDec, vocab]
      if (!inputs.lmLabels) return { logits };
      const labels = inputs.lmLabels;
      if (labels.dtype !== 'int32' || labels.rank !== 2 || labels.shape[0] !== batch || labels.shape[1] !== sDec) {
        throw new ShapeError(`MegatronT5Model: lmLabels must be int32 [batch ${batch}, ${sDec}], got ${labels.dtype} [${labels.shape.join(',')}]`);
      }
      return { lmLoss: vocabParallelCrossEntropy(logits, labels) };
    });
  }

  /** The model's own loss: sum(lm_loss * loss_mask) / sum(loss_mask), as pretrain_t5's loss_func and the schedule compute it. */
  static maskedLoss(lmLoss: Tensor, lossMask: Tensor): Tensor {
    const mask = lossMask.toFloat();
    return lmLoss.mul(mask).sum().div(mask.sum());
  }
}

/**
 * `vocab_parallel_cross_entropy` on one rank, per token: log(sum(exp(l - max))) - (l[y] - max), where a
 * label outside [0, vocab) contributes no target term (the dataset pads labels with -1). The max is a
 * constant for the gradient (softmax - onehot(valid target)), as in the reference's custom backward.
 */
export function vocabParallelCrossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const vocab = logits.shape[logits.rank - 1];
  const logitsMax = logits.max(-1, true).detach(); // [batch, seq, 1]
  const shifted = logits.sub(logitsMax); // [batch, seq, vocab]
  const valid = labels.ge(0).logicalAnd(labels.lt(vocab)); // [batch, seq]
  const target = labels.mul(valid.toInt()).unsqueeze(-1); // [batch, seq, 1]: invalid labels read column 0
  const predicted = shifted.gather(-1, target).mul(valid.toFloat().unsqueeze(-1)); // [batch, seq, 1]
  return shifted.logsumexp(-1, true).sub(predicted).reshape(labels.shape); // [batch, seq]
}

// ---- distributed checkpoints -------------------------------------------------------------------------------

/**
 * Megatron's tensor-parallel layout of T5Model's parameters: ColumnParallelLinear (linear_qkv, whose
 * rows are grouped per query group so a contiguous split hands whole groups to each rank; linear_q;
 * linear_kv, per head [k_h, v_h]; linear_fc1) splits the output dim, RowParallelLinear (linear_proj,
 * linear_fc2) the input dim with a replicated bias, VocabParallelEmbedding and the LM head's output
 * layer (weight when untied, bias when shared) the vocabulary; norms and position embeddings are replicated.
 */
export const MEGATRON_T5_RULES: readonly ShardingRule[] = [
  { pattern: /(^|\.)word_embeddings\.weight$/, kind: 'vocab' },
  { pattern: /(^|\.)output_layer\.(weight|bias)$/, kind: 'vocab' },
  { pattern: /\.(linear_qkv|linear_q|linear_kv|linear_fc1)\.(weight|bias)$/, kind: 'column' },
  { pattern: /\.(linear_proj|linear_fc2)\.weight$/, kind: 'row' },
];

/**
 * The sharded state dict of a T5Model state dict held by one tensor-parallel rank (its slices), keyed by
 * Megatron's names. A gated (GLU) linear_fc1 is laid out [gate; up] per rank in Megatron, which a
 * contiguous split does not reproduce: refused for tpSize > 1.
 */
export function megatronT5ShardedStateDict(
  stateDict: ReadonlyMap<string, Tensor>,
  layout: ParallelLayout,
  options: Omit<ModuleShardingOptions, 'rules'> & { gatedLinearUnit?: boolean } = {},
): Record<string, ShardedTensor> {
  const { gatedLinearUnit, ...rest } = options;
  if (gatedLinearUnit && layout.tpSize > 1) throw new ConfigError('megatronT5ShardedStateDict: gated_linear_unit with tensor parallelism > 1 needs the per-rank [gate; up] layout of linear_fc1, which is not implemented');
  return moduleShardedStateDict(stateDict, layout, { ...rest, rules: MEGATRON_T5_RULES });
}
