// ChatGLM-6B: the GLM architecture (Du et al. 2022, "GLM: General Language Model Pretraining with
// Autoregressive Blank Infilling", arXiv:2103.10360) as THUDM released it for chat: post-LN-free
// "deep norm" GLM blocks (h = LN(x) * alpha + Attn(LN(x))), 2-D rotary positions (position and block
// position, half the head dim each), a GELU MLP, and the prefix-LM attention of blank infilling
// (bidirectional over the context up to <bos>, causal after it).
//
// Mirrors THUDM/chatglm-6b `modeling_chatglm.py` (v1, the final revision of the main branch) class for
// class and in the same order, with the same state-dict names, so its checkpoints load with no rename
// table: PrefixEncoder, gelu, the rotary embedding (rotary.ts), attention_fn + SelfAttention, GLU,
// GLMBlock, ChatGLMPreTrainedModel (get_masks / get_position_ids), ChatGLMModel and
// ChatGLMForConditionalGeneration (with prepare_inputs_for_generation and
// _update_model_kwargs_for_generation).
//
// Conventions: hidden states are SEQUENCE-FIRST [seq, batch, hidden] as in the reference; logits are
// [batch, seq, vocab]. Attention masks follow the reference: bool [batch, 1, q, k] with true = MASKED.
// Key/value caches are [key, value] per layer, each [k, batch, heads, headDim] (keys after rotary).
// Ids, labels and positions are int32. Forward methods take one options object (camelCase) and return
// plain objects of tensors.

import { arange, concat, crossEntropy, dropout, fromHost, full, noGrad, packFloat16Rows, quantizedRowWords, ShapeError, scope, stack, where, type Backend, type Tensor } from '@lm/tensor-gpu';
import {
  applyRotaryPosEmbIndex,
  attentionCore,
  checkpointKeyOf,
  Embedding,
  initInPlace,
  isInitSkipped,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  PretrainedLoadError,
  PreTrainedModel,
  type JsonObject,
  type ModuleOptions,
  type SavedTensor,
  withoutInit,
} from '@lm/layers';
import type { Checkpoint } from '@lm/dist-ckpt';
import { ChatGLMConfig } from './config.js';
import { FLOAT16_BLOCK_ROWS, Float16Embedding, Float16Linear, Float16Table, float16Table, float16TableBits, writeRows } from './float16.js';
import { QuantizedLinear, type QuantizationRounding } from './quantization.js';
import { ChatGLMRotaryEmbedding, applyChatGLMRotary2D } from './rotary.js';

/** One layer's cache: [key, value], each [k, batch, heads, headDim] (sequence-first, keys after rotary). */
export type LayerPast = readonly [Tensor, Tensor];
/** One entry per layer. */
export type PastKeyValues = readonly LayerPast[];

/**
 * GLMBlock's `num_layers` argument defaults to 28 (ChatGLM-6B's depth) and `ChatGLMModel.get_layer`
 * does not pass `config.num_layers`, so the reference's residual scale is sqrt(2 * 28) for every
 * config. Reproduced as is: checkpoints were trained with it.
 */
export const GLM_BLOCK_DEFAULT_NUM_LAYERS = 28;

/** A linear layer of a GLM block: float, or int8/int4 weight-only (config.quantizationBit). */
export type GLMLinear = Linear | QuantizedLinear;

/** The Linear the reference's `quantize(bits)` replaces, or a QuantizedLinear when the config is quantized. */
function blockLinear(config: ChatGLMConfig, inFeatures: number, outFeatures: number, backend: Backend | undefined): GLMLinear {
  const bits = config.quantizationBit;
  if (bits === 0) return new Linear(inFeatures, outFeatures, { backend });
  if (bits !== 4 && bits !== 8) throw new RangeError(`ChatGLM: quantization_bit must be 0, 4 or 8, got ${bits}`);
  return new QuantizedLinear(bits, inFeatures, outFeatures, { backend });
}

/** A bad input to a ChatGLM model, named with what was given. */
export class ChatGLMInputError extends Error {
  override name = 'ChatGLMInputError';
}

// ---- P-tuning v2 prefix encoder ------------------------------------------------------------------------

/** The reference's `torch.nn.Tanh` slot inside `trans` (no weights; keeps the state-dict indices 0 and 2). */
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}

/**
 * P-tuning v2 (Liu et al. 2021, arXiv:2110.07602): prefix tokens 0..preSeqLen-1 encoded into past
 * keys/values for every layer, [batch, preSeqLen, numLayers * 2 * hidden]. Without prefix_projection
 * the embedding holds them directly; with it, a hidden-size embedding goes through
 * Linear -> tanh -> Linear (`trans.0`, `trans.2`).
 */
export class PrefixEncoder extends Module {
  readonly prefixProjection: boolean;
  declare embedding: Embedding;
  declare trans: ModuleList | null;

  constructor(config: ChatGLMConfig, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    const preSeqLen = config.preSeqLen ?? 0;
    const kvSize = config.numLayers * config.hiddenSize * 2;
    this.prefixProjection = config.prefixProjection;
    if (this.prefixProjection) {
      this.registerModule('embedding', new Embedding(preSeqLen, config.hiddenSize, { backend }));
      this.registerModule('trans', new ModuleList([new Linear(config.hiddenSize, config.hiddenSize, { backend }), new Tanh(), new Linear(config.hiddenSize, kvSize, { backend })]));
    } else {
      this.registerModule('embedding', new Embedding(preSeqLen, kvSize, { backend }));
      this.registerModule('trans', null);
    }
  }

  /** prefix int32 [batch, preSeqLen] -> [batch, preSeqLen, numLayers * 2 * hidden] */
  forward(prefix: Tensor): Tensor {
    if (!this.trans) return this.embedding.forward(prefix);
    const prefixTokens = this.embedding.forward(prefix); // [batch, pre, hidden]
    const [first, , second] = this.trans.items as [Linear, Tanh, Linear];
    return second.forward(first.forward(prefixTokens, 'tanh')); // [batch, pre, 2 * layers * hidden]
  }
}

// ---- self-attention ------------------------------------------------------------------------------------

export interface SelfAttentionOptions {
  /** int32 [batch, 2, seq] (2-D: positions, block positions) or [batch, seq] (1-D). */
  positionIds: Tensor;
  /** bool [batch, 1, q, k], true = masked; null attends everywhere. */
  attentionMask: Tensor | null;
  /** Rows the rotary tables need (more than the largest position id). */
  rotaryLength: number;
  layerPast?: LayerPast | null;
  useCache?: boolean;
  outputAttentions?: boolean;
}

export interface SelfAttentionOutput {
  /** [seq, batch, hidden] */
  output: Tensor;
  present?: LayerPast;
  /** [batch * heads, q, k] (the reference's view of its probabilities). */
  attentions?: Tensor;
}

/**
 * Multi-head self-attention with one fused query_key_value projection (per head: [q | k | v]), rotary
 * positions on q and k, and the reference's `attention_fn` scores: q / (sqrt(headDim) * (layer + 1)),
 * masked scores filled with -10000, times (layer + 1), softmax in float32. The layer scaling cancels
 * and a filled score is -10000 * (layer + 1), so this is softmax(q.k / sqrt(headDim)) over the kept
 * keys; a fully masked row (left padding) attends uniformly, as the fill makes it. The bool keep mask
 * given to attentionCore becomes finfo(float32).min, which reproduces both.
 */
export class SelfAttention extends Module {
  readonly layerId: number;
  readonly hiddenSize: number;
  readonly numAttentionHeads: number;
  readonly hiddenSizePerAttentionHead: number;
  readonly innerHiddenSize: number;
  readonly positionEncoding2d: boolean;
  declare rotary_emb: ChatGLMRotaryEmbedding;
  declare query_key_value: GLMLinear;
  declare dense: GLMLinear;

  constructor(config: ChatGLMConfig, layerId: number, options: ModuleOptions = {}) {
    super();
    const { backend } = options;
    if (config.hiddenSize % config.numAttentionHeads !== 0) {
      throw new ShapeError(`SelfAttention: hidden_size ${config.hiddenSize} is not a multiple of num_attention_heads ${config.numAttentionHeads}`);
    }
    this.layerId = layerId;
    this.hiddenSize = config.hiddenSize;
    this.numAttentionHeads = config.numAttentionHeads;
    this.hiddenSizePerAttentionHead = config.hiddenSize / config.numAttentionHeads;
    this.innerHiddenSize = this.numAttentionHeads * this.hiddenSizePerAttentionHead;
    this.positionEncoding2d = config.positionEncoding2d;
    // 2-D: each half of a head is rotated by its own position, so the rotary dim is headDim / 2.
    const rotaryDim = this.positionEncoding2d ? config.hiddenSize / (config.numAttentionHeads * 2) : this.hiddenSizePerAttentionHead;
    this.registerModule('rotary_emb', new ChatGLMRotaryEmbedding(rotaryDim, { backend }));
    this.registerModule('query_key_value', blockLinear(config, config.hiddenSize, 3 * this.innerHiddenSize, backend));
    this.registerModule('dense', blockLinear(config, this.innerHiddenSize, config.hiddenSize, backend));
  }

  forward(hiddenStates: Tensor, options: SelfAttentionOptions): SelfAttentionOutput {
    const [seq, batch] = hiddenStates.shape;
    const heads = this.numAttentionHeads;
    const headDim = this.hiddenSizePerAttentionHead;
    const mixedRawLayer = this.query_key_value.forward(hiddenStates).reshape(seq, batch, heads, 3 * headDim); // [seq, batch, heads, 3 * headDim]
    let [queryLayer, keyLayer, valueLayer] = mixedRawLayer.chunk(3, -1); // [seq, batch, heads, headDim] each

    const { cos, sin } = this.rotary_emb.tables(options.rotaryLength); // [len, 1, rotaryDim]
    if (this.positionEncoding2d) {
      const positionIds = options.positionIds.select(1, 0).transpose(0, 1).contiguous(); // [seq, batch]
      const blockPositionIds = options.positionIds.select(1, 1).transpose(0, 1).contiguous(); // [seq, batch]
      queryLayer = applyChatGLMRotary2D(queryLayer, cos, sin, positionIds, blockPositionIds);
      keyLayer = applyChatGLMRotary2D(keyLayer, cos, sin, positionIds, blockPositionIds);
    } else {
      const positionIds = options.positionIds.transpose(0, 1).contiguous(); // [seq, batch]
      queryLayer = applyRotaryPosEmbIndex(queryLayer, cos, sin, positionIds);
      keyLayer = applyRotaryPosEmbIndex(keyLayer, cos, sin, positionIds);
    }

    // ---- attention_fn
    if (options.layerPast) {
      keyLayer = concat([options.layerPast[0], keyLayer], 0); // [past + seq, batch, heads, headDim]
      valueLayer = concat([options.layerPast[1], valueLayer], 0);
    }
    const present: LayerPast | undefined = options.useCache ? [keyLayer, valueLayer] : undefined;
    const keyLength = keyLayer.shape[0];
    const mask = options.attentionMask ? options.attentionMask.logicalNot() : null; // keep mask [batch, 1, q, k]
    const { context, attentions } = attentionCore(
      queryLayer.permute(1, 2, 0, 3), // [batch, heads, q, headDim]
      keyLayer.permute(1, 2, 0, 3), // [batch, heads, k, headDim]
      valueLayer.permute(1, 2, 0, 3), // [batch, heads, k, headDim]
      { mask, scale: 1 / Math.sqrt(headDim), outputAttentions: options.outputAttentions },
    ); // context [batch, heads, q, headDim]
    const contextLayer = context.permute(2, 0, 1, 3).reshape(seq, batch, this.innerHiddenSize); // [seq, batch, hidden]

    const out: SelfAttentionOutput = { output: this.dense.forward(contextLayer) };
    if (present) out.present = present;
    if (attentions) out.attentions = attentions.reshape(batch * heads, seq, keyLength); // [batch * heads, q, k]
    return out;
  }
}

// ---- MLP ---------------------------------------------------------------------------------------------

/** The reference's `GLU`: dense_4h_to_h(gelu(dense_h_to_4h(x))) with the tanh GELU (not gated, despite the name). */
export class GLU extends Module {
  declare dense_h_to_4h: GLMLinear;
  declare dense_4h_to_h: GLMLinear;

  constructor(config: ChatGLMConfig, options: ModuleOptions = {}) {
    super();
    const inner = config.innerHiddenSize;
    this.registerModule('dense_h_to_4h', blockLinear(config, config.hiddenSize, inner, options.backend));
    this.registerModule('dense_4h_to_h', blockLinear(config, inner, config.hiddenSize, options.backend));
  }

  /** [seq, batch, hidden] -> [seq, batch, hidden] */
  forward(hiddenStates: Tensor): Tensor {
    return this.dense_4h_to_h.forward(this.dense_h_to_4h.forward(hiddenStates, 'geluTanh'));
  }
}

// ---- GLM block ------------------------------------------------------------------------------------------

export interface GLMBlockOutput {
  /** [seq, batch, hidden] */
  hiddenStates: Tensor;
  present?: LayerPast;
  attentions?: Tensor;
}

/** One GLM layer with the deep-norm residual: h = LN1(x) * alpha + Attn(LN1(x)); out = LN2(h) * alpha + MLP(LN2(h)). */
export class GLMBlock extends Module {
  readonly layerId: number;
  /** sqrt(2 * numLayers) with the reference's default numLayers (GLM_BLOCK_DEFAULT_NUM_LAYERS). */
  readonly alpha: number;
  declare input_layernorm: LayerNorm;
  declare attention: SelfAttention;
  declare post_attention_layernorm: LayerNorm;
  declare mlp: GLU;

  constructor(config: ChatGLMConfig, layerId: number, options: ModuleOptions & { numLayers?: number } = {}) {
    super();
    const { backend } = options;
    this.layerId = layerId;
    this.alpha = Math.sqrt(2 * (options.numLayers ?? GLM_BLOCK_DEFAULT_NUM_LAYERS));
    this.registerModule('input_layernorm', new LayerNorm(config.hiddenSize, { eps: config.layernormEpsilon, backend }));
    this.registerModule('attention', new SelfAttention(config, layerId, { backend }));
    this.registerModule('post_attention_layernorm', new LayerNorm(config.hiddenSize, { eps: config.layernormEpsilon, backend }));
    this.registerModule('mlp', new GLU(config, { backend }));
  }

  forward(hiddenStates: Tensor, options: SelfAttentionOptions): GLMBlockOutput {
    const attentionInput = this.input_layernorm.forward(hiddenStates); // [seq, batch, hidden]
    const attention = this.attention.forward(attentionInput, options);
    const residual = attentionInput.mulScalar(this.alpha).add(attention.output);
    const mlpInput = this.post_attention_layernorm.forward(residual);
    const output = mlpInput.mulScalar(this.alpha).add(this.mlp.forward(mlpInput)); // [seq, batch, hidden]
    const out: GLMBlockOutput = { hiddenStates: output };
    if (attention.present) out.present = attention.present;
    if (attention.attentions) out.attentions = attention.attentions;
    return out;
  }
}

// ---- the pretrained-model base: masks and position ids ----------------------------------------------------

/** Per-row positions of the special tokens the masks and position ids derive from, as int32 [batch] tensors. */
export interface SpecialPositions {
  /** Index of the first <bos> (seq when absent). */
  contextLengths: Tensor;
  /** Index of the first [gMASK] if the row has one, else of the first [MASK] (seq when neither). */
  maskPositions: Tensor;
  /** Whether the row's mask token is [gMASK]. */
  useGmasks: Tensor;
}

export abstract class ChatGLMPreTrainedModel extends PreTrainedModel<ChatGLMConfig> {
  static override baseModelPrefix = 'transformer';

  static configFromJSON(json: JsonObject): ChatGLMConfig {
    return ChatGLMConfig.fromJSON(json);
  }

  /**
   * Reference `_init_weights` is a no-op (THUDM initialises through torch's defaults with skip_init);
   * here Linear/Embedding keep torch's defaults and LayerNorms are 1/0.
   */
  protected initModule(module: Module): void {
    if (module instanceof LayerNorm) {
      if (module.weight) initInPlace(module.weight, { kind: 'constant', value: 1 });
      if (module.bias) initInPlace(module.bias, { kind: 'constant', value: 0 });
    }
  }

  protected postInit(): void {
    if (!isInitSkipped()) for (const [, m] of this.namedModules()) this.initModule(m);
  }

  /**
   * The special-token positions of every row, on the device: first index of <bos>, and of [gMASK]
   * (or [MASK] when the row has no [gMASK]). On a backend that reads synchronously (cpu) a row without
   * <bos> or without any mask token is refused, as the reference's `list.index` refuses it.
   */
  specialPositions(inputIds: Tensor): SpecialPositions {
    const seq = inputIds.shape[1];
    const { bosTokenId, gmaskTokenId, maskTokenId } = this.config;
    if (inputIds.backend.readSync) checkSpecialTokens(inputIds, this.config);
    const positions = arange(0, seq, 1, { backend: inputIds.backend }).reshape(1, seq); // [1, seq]
    const firstIndex = (token: number | null) => where(inputIds.eq(token ?? -1), positions, seq).min(1); // [batch]
    const contextLengths = firstIndex(bosTokenId);
    const gmask = firstIndex(gmaskTokenId);
    const useGmasks = gmask.lt(seq);
    const maskPositions = where(useGmasks, gmask, firstIndex(maskTokenId));
    return { contextLengths, maskPositions, useGmasks };
  }

  /**
   * `get_masks`: bool [batch, 1, seq, seq], true = masked: causal, except that every query sees the
   * whole context before <bos> (padding is not masked on this path).
   */
  getMasks(inputIds: Tensor, special: SpecialPositions = this.specialPositions(inputIds)): Tensor {
    const [batch, seq] = inputIds.shape;
    const backend = inputIds.backend;
    const q = arange(0, seq, 1, { backend }).reshape(1, 1, seq, 1);
    const k = arange(0, seq, 1, { backend }).reshape(1, 1, 1, seq);
    const keep = k.le(q).logicalOr(k.lt(special.contextLengths.reshape(batch, 1, 1, 1))); // [batch, 1, seq, seq]
    return keep.logicalNot();
  }

  /**
   * `get_position_ids`: 2-D int32 [batch, 2, seq]: positions arange(seq) with every position from <bos>
   * on set to the mask position, and block positions 0 before <bos>, then 1, 2, ...; 1-D [batch, seq]:
   * arange(seq), set to the mask position from <bos> on only in [MASK] rows ([gMASK] rows keep arange).
   */
  getPositionIds(inputIds: Tensor, special: SpecialPositions = this.specialPositions(inputIds)): Tensor {
    const [batch, seq] = inputIds.shape;
    const positions = arange(0, seq, 1, { backend: inputIds.backend }).reshape(1, seq); // [1, seq]
    const context = special.contextLengths.reshape(batch, 1);
    const maskPosition = special.maskPositions.reshape(batch, 1);
    const afterContext = positions.ge(context); // [batch, seq]
    if (this.config.positionEncoding2d) {
      const positionIds = where(afterContext, maskPosition, positions); // [batch, seq]
      const blockPositionIds = where(afterContext, positions.sub(context).add(1), 0); // [batch, seq]
      return stack([positionIds, blockPositionIds], 1); // [batch, 2, seq]
    }
    const moved = afterContext.logicalAnd(special.useGmasks.logicalNot().reshape(batch, 1));
    return where(moved, maskPosition, positions); // [batch, seq]
  }
  /**
   * The reference's `quantize(bits)`: every GLM block's query_key_value, dense, dense_h_to_4h and
   * dense_4h_to_h become QuantizedLinear (weights rounded to float16 first, as the reference quantizes a
   * .half() model; embeddings, LayerNorms and lm_head stay float). `rounding` picks the reference's CPU
   * (float32 quotient, default) or GPU (float16 quotient) rule. Sets config.quantizationBit.
   */
  async quantize(bits: 4 | 8, options: { rounding?: QuantizationRounding } = {}): Promise<this> {
    if (bits !== 4 && bits !== 8) throw new RangeError(`${this.constructor.name}.quantize: bits must be 4 or 8, got ${String(bits)}`);
    if (this.config.quantizationBit !== 0) throw new ChatGLMInputError(`${this.constructor.name}.quantize: the model is already quantized (quantization_bit ${this.config.quantizationBit})`);
    const targets: [Module, string][] = [];
    for (const [, m] of this.namedModules()) {
      if (m instanceof SelfAttention) targets.push([m, 'query_key_value'], [m, 'dense']);
      if (m instanceof GLU) targets.push([m, 'dense_h_to_4h'], [m, 'dense_4h_to_h']);
    }
    for (const [m, name] of targets) {
      const old = (m as unknown as Record<string, GLMLinear>)[name];
      if (!(old instanceof Linear)) continue;
      m.setModule(name, await QuantizedLinear.fromLinear(old, bits, options));
      old.dispose();
    }
    this.config.quantizationBit = bits;
    return this;
  }

  /**
   * Fills the model from a checkpoint (one tensor at a time), checking every name, shape and dtype
   * first so that a bad checkpoint is refused before anything is read: quantized layers read the
   * reference's stored int8 layout (I8 [out, in] or [out, in/2]) and must agree with quantization_bit;
   * the rotary `inv_freq` buffers are recomputed, never loaded (the reference ignores them too); every
   * other tensor converts to float32 (checkpoints are float16).
   */
  override async loadWeights(ckpt: Checkpoint, options: { strict?: boolean; prefix?: string } = {}): Promise<{ missingKeys: string[]; unexpectedKeys: string[] }> {
    const own = this.stateDict();
    const quantized = new Map<string, QuantizedLinear>();
    const tables = new Map<string, Float16Table>();
    for (const [name, m] of this.namedModules()) {
      if (m instanceof QuantizedLinear) quantized.set(`${name}.weight`, m);
      if (m instanceof Float16Table) tables.set(`${name}.weight`, m);
    }
    const prefix = options.prefix ?? '';
    const fileKeys = new Set(ckpt.tensors.map((t) => t.name));
    const toFile = checkpointKeyOf(own.keys(), fileKeys, prefix);
    const bits = this.config.quantizationBit;
    const missingKeys: string[] = [];
    const problems: string[] = [];
    const used = new Set<string>();
    const plan: [string, Tensor, QuantizedLinear | undefined][] = [];
    const tablePlan: [string, Float16Table][] = [];
    for (const [key, t] of own) {
      const fileKey = toFile(key);
      if (key.endsWith('rotary_emb.inv_freq')) {
        used.add(fileKey);
        continue;
      }
      if (!fileKeys.has(fileKey)) {
        missingKeys.push(key);
        continue;
      }
      used.add(fileKey);
      const info = ckpt.info(fileKey);
      const layer = quantized.get(key);
      const table = tables.get(key);
      const expected = layer ? layer.storedShape : table ? [table.rows, table.cols] : t.shape;
      const sameShape = info.shape.length === expected.length && info.shape.every((d, i) => d === expected[i]);
      if (layer && (info.dtype !== 'I8' || !sameShape)) {
        const [out, inF] = [layer.outFeatures, layer.inFeatures];
        const seen = info.dtype !== 'I8' ? 'a float weight' : info.shape[1] === inF ? 'the int8 layout' : info.shape[1] === Math.ceil(inF / 2) ? 'the int4 layout' : 'neither layout';
        problems.push(`${fileKey} is ${info.dtype} [${info.shape.join(',')}] (${seen}), but quantization_bit ${bits} in config.json needs I8 [${out},${expected[1]}]`);
      } else if (!layer && !sameShape) {
        problems.push(`${fileKey}: checkpoint [${info.shape.join(',')}], model [${expected.join(',')}]`);
      } else if (table && !['F16', 'BF16', 'F32', 'F64'].includes(info.dtype)) {
        problems.push(`${fileKey} is ${info.dtype}, but a table held in float16 needs float values`);
      } else if (!layer && info.dtype === 'I8' && bits === 0) {
        problems.push(`${fileKey} is I8 (a quantized weight), but config.json has quantization_bit 0`);
      }
      if (table) tablePlan.push([fileKey, table]);
      else plan.push([fileKey, t, layer]);
    }
    const unexpectedKeys = [...fileKeys].filter((k) => !used.has(k));
    const scales = unexpectedKeys.filter((k) => k.endsWith('.weight_scale'));
    if (bits === 0 && scales.length) problems.push(`the checkpoint holds quantized weights (${scales[0]}, ...), but config.json has quantization_bit 0`);
    if (options.strict !== false && (missingKeys.length || problems.length)) {
      const parts = [];
      if (missingKeys.length) parts.push(`missing weights: ${missingKeys.join(', ')}`);
      if (problems.length) parts.push(problems.join('; '));
      throw new PretrainedLoadError(`${this.constructor.name}.fromPretrained (${ckpt.name}): ${parts.join('; ')}`);
    }
    for (const [fileKey, t, layer] of plan) {
      if (layer) {
        const { data } = await ckpt.readTensor(fileKey, { as: 'native' });
        layer.loadStored(data as Int8Array);
        continue;
      }
      const { data } = await ckpt.readTensor(fileKey);
      const hostDtype = data instanceof Int32Array ? 'int32' : data instanceof Uint8Array ? 'bool' : 'float32';
      const tmp = fromHost(data, t.shape, hostDtype, t.backend);
      noGrad(() => t.copy_(tmp));
      tmp.dispose();
    }
    await loadFloat16Tables(ckpt, tablePlan);
    return { missingKeys, unexpectedKeys };
  }

  /**
   * The published layout, which loadWeights reads back: a QuantizedLinear's `weight` as the reference's
   * int8 bytes (int4: nibble pairs, [out, in/2]) and its `weight_scale` in float16 (float16-exact);
   * tables held in 16 bits as float16 [rows, cols], under both names when shared (as THUDM's files
   * hold `transformer.word_embeddings.weight` and `lm_head.weight`).
   */
  protected override savedTensors(): [string, SavedTensor][] {
    const saved = new Map(super.savedTensors());
    for (const [name, m] of this.namedModules()) {
      if (m instanceof QuantizedLinear) {
        saved.set(`${name}.weight`, { dtype: 'I8', shape: m.storedShape, data: async () => (await m.storedWeight()).data });
        saved.set(`${name}.weight_scale`, { dtype: 'F16', shape: [m.outFeatures], data: () => m.weight_scale.data() as Promise<Float32Array> });
      } else if (m instanceof Float16Table) {
        saved.set(`${name}.weight`, { dtype: 'F16', shape: [m.rows, m.cols], data: () => float16TableBits(m.weight, m.rows, m.cols) });
      }
    }
    return [...saved];
  }
}

/**
 * Fills tables held in 16 bits straight from the checkpoint (float16 values move as bits; others must
 * be float16-exact), written into the existing table in blocks of rows: no float32 copy, no second
 * table. A table two modules share (built tied) stays shared when the second name holds equal values,
 * as THUDM's checkpoints do; otherwise that module gets a table of its own.
 */
async function loadFloat16Tables(ckpt: Checkpoint, tablePlan: [string, Float16Table][]): Promise<void> {
  const filled = new Set<Tensor>();
  for (const [fileKey, m] of tablePlan) {
    const { rows, cols } = m;
    const rowWords = quantizedRowWords(16, cols);
    let words: Int32Array;
    if (ckpt.info(fileKey).dtype === 'F16') {
      const bits = (await ckpt.readTensor(fileKey, { as: 'native' })).data as Uint16Array;
      words = float16BitsToWords(bits, rows, cols);
    } else {
      words = packFloat16Rows((await ckpt.readTensor(fileKey, { as: 'float32' })).data, rows, cols, fileKey);
    }
    let target = m.weight;
    if (filled.has(target)) {
      if (await tableEquals(target, words)) continue;
      target = withoutInit(() => float16Table(rows, cols, target.backend));
      m.setBuffer('weight', target, { disposeOld: false });
    }
    for (let r0 = 0; r0 < rows; r0 += FLOAT16_BLOCK_ROWS) {
      const n = Math.min(FLOAT16_BLOCK_ROWS, rows - r0);
      writeRows(target, r0, words.subarray(r0 * rowWords, (r0 + n) * rowWords));
    }
    filled.add(target);
  }
}

/** float16 bits [rows, cols] -> the table's words [rows, ceil(cols / 2)] (a view when cols is even). */
function float16BitsToWords(bits: Uint16Array, rows: number, cols: number): Int32Array {
  const rowWords = quantizedRowWords(16, cols);
  if (rowWords * 2 === cols && bits.byteOffset % 4 === 0) return new Int32Array(bits.buffer, bits.byteOffset, rows * rowWords);
  const words = new Int32Array(rows * rowWords);
  const halves = new Uint16Array(words.buffer);
  for (let r = 0; r < rows; r++) halves.set(bits.subarray(r * cols, (r + 1) * cols), r * rowWords * 2);
  return words;
}

/** Whether a table holds these words, read back in blocks of rows. */
async function tableEquals(table: Tensor, words: Int32Array): Promise<boolean> {
  const [rows, rowWords] = table.shape;
  for (let r0 = 0; r0 < rows; r0 += FLOAT16_BLOCK_ROWS) {
    const n = Math.min(FLOAT16_BLOCK_ROWS, rows - r0);
    const block = table.narrow(0, r0, n); // [n, rowWords]
    const have = (await block.data()) as Int32Array;
    if (block !== table) block.dispose();
    if (!sameWords(have, words.subarray(r0 * rowWords, (r0 + n) * rowWords))) return false;
  }
  return true;
}

function sameWords(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Refuses (host check) rows the reference's `list.index` would refuse: no <bos>, or neither [gMASK] nor [MASK]. */
function checkSpecialTokens(inputIds: Tensor, config: ChatGLMConfig): void {
  const [batch, seq] = inputIds.shape;
  const ids = inputIds.contiguous();
  const data = ids.dataSync();
  if (ids !== inputIds) ids.dispose();
  for (let b = 0; b < batch; b++) {
    const row = Array.from(data.subarray(b * seq, (b + 1) * seq));
    if (!row.includes(config.bosTokenId ?? -1)) {
      throw new ChatGLMInputError(`ChatGLMModel: input_ids row ${b} has no <bos> (id ${config.bosTokenId}); without attention_mask and position_ids the masks derive from it`);
    }
    if (!row.includes(config.gmaskTokenId) && !row.includes(config.maskTokenId)) {
      throw new ChatGLMInputError(`ChatGLMModel: input_ids row ${b} has neither [gMASK] (id ${config.gmaskTokenId}) nor [MASK] (id ${config.maskTokenId}); the position ids derive from it`);
    }
  }
}

// ---- the base model ---------------------------------------------------------------------------------------

export interface ChatGLMModelInputs {
  /** int32 [batch, seq] */
  inputIds?: Tensor | null;
  /** int32 [batch, 2, seq] (2-D) or [batch, seq] (1-D); derived from the ids when absent (and no past). */
  positionIds?: Tensor | null;
  /** bool [batch, 1, seq, pastLength + seq], true = masked; derived when absent (and no past). */
  attentionMask?: Tensor | null;
  pastKeyValues?: PastKeyValues | null;
  /** [batch, seq, hidden] instead of inputIds (masks and positions must then be given). */
  inputsEmbeds?: Tensor | null;
  useCache?: boolean;
  outputAttentions?: boolean;
  outputHiddenStates?: boolean;
}

export interface ChatGLMModelOutput {
  /** [seq, batch, hidden] (after final_layernorm). */
  lastHiddenState: Tensor;
  pastKeyValues?: LayerPast[];
  /** numLayers + 1 entries, each [seq, batch, hidden]: layer inputs, then the final_layernorm output. */
  hiddenStates?: Tensor[];
  /** One per layer, [batch * heads, q, k]. */
  attentions?: Tensor[];
}

export interface ChatGLMModelOptions extends ModuleOptions {
  /**
   * 'float16': build `word_embeddings` (and lm_head, sharing its table) held in 16 bits from the start,
   * as `holdEmbeddingsInFloat16` leaves them, so that loading never holds float32 tables (THUDM's
   * checkpoints are float16: exact). Inference only. Default 'float32'.
   */
  embeddingsDtype?: 'float32' | 'float16';
}

/** The GLM transformer: word embeddings, the GLM blocks, final LayerNorm, and the optional P-tuning v2 prefix. */
export class ChatGLMModel extends ChatGLMPreTrainedModel {
  /** An Embedding, or after `holdEmbeddingsInFloat16` a Float16Embedding. */
  declare word_embeddings: Embedding | Float16Embedding;
  declare layers: ModuleList<GLMBlock>;
  declare final_layernorm: LayerNorm;
  declare prefix_encoder: PrefixEncoder | null;

  constructor(config: ChatGLMConfig, options: ChatGLMModelOptions = {}) {
    super(config);
    const { backend } = options;
    const { vocabSize, hiddenSize } = config;
    const dtype = options.embeddingsDtype ?? 'float32';
    if (dtype !== 'float32' && dtype !== 'float16') throw new ChatGLMInputError(`ChatGLMModel: embeddingsDtype must be 'float32' or 'float16', got ${String(dtype)}`);
    const embeddings = dtype === 'float16' ? new Float16Embedding(float16Table(vocabSize, hiddenSize, backend), vocabSize, hiddenSize) : new Embedding(vocabSize, hiddenSize, { backend });
    this.registerModule('word_embeddings', embeddings);
    this.registerModule('layers', new ModuleList(Array.from({ length: config.numLayers }, (_, i) => new GLMBlock(config, i, { backend }))));
    this.registerModule('final_layernorm', new LayerNorm(config.hiddenSize, { eps: config.layernormEpsilon, backend }));
    if (config.preSeqLen !== null) {
      // P-tuning v2: the model itself is frozen; only the prefix encoder (built after) trains.
      for (const [, p] of this.namedParameters()) p.requiresGrad_(false);
      this.registerModule('prefix_encoder', new PrefixEncoder(config, { backend }));
    } else {
      this.registerModule('prefix_encoder', null);
    }
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    if (this.word_embeddings instanceof Float16Embedding) {
      throw new ChatGLMInputError('ChatGLMModel.getInputEmbeddings: the word embeddings are held in float16 (holdEmbeddingsInFloat16); load the model again for float ones');
    }
    return this.word_embeddings;
  }

  setInputEmbeddings(value: Embedding): void {
    this.word_embeddings = value;
  }

  /**
   * `get_prompt`: the prefix past keys/values, per layer [preSeqLen, batch, heads, headDim] each
   * (the prefix dropout p = 0.1 only while training).
   */
  getPrompt(batch: number, backend: Backend): LayerPast[] {
    const { preSeqLen, numLayers, numAttentionHeads, hiddenSize } = this.config;
    if (!this.prefix_encoder || preSeqLen === null) throw new ChatGLMInputError('ChatGLMModel.getPrompt: the config has no pre_seq_len');
    const prefixTokens = arange(0, preSeqLen, 1, { backend }).reshape(1, preSeqLen).expand(batch, preSeqLen).contiguous(); // [batch, pre]
    let past = this.prefix_encoder.forward(prefixTokens).reshape(batch, preSeqLen, numLayers * 2, numAttentionHeads, hiddenSize / numAttentionHeads); // [batch, pre, 2L, heads, headDim]
    if (this.training) past = dropout(past, 0.1, true);
    const perLayer = past.permute(2, 1, 0, 3, 4); // [2L, pre, batch, heads, headDim]
    return Array.from({ length: numLayers }, (_, i) => [perLayer.select(0, 2 * i), perLayer.select(0, 2 * i + 1)] as const);
  }

  forward(options: ChatGLMModelInputs): ChatGLMModelOutput {
    return scope(() => {
      const config = this.config;
      const outputAttentions = options.outputAttentions ?? config.outputAttentions;
      const outputHiddenStates = options.outputHiddenStates ?? config.outputHiddenStates;
      const useCache = options.useCache ?? config.useCache;
      const { inputIds, inputsEmbeds } = options;
      if (inputIds && inputsEmbeds) throw new ChatGLMInputError('ChatGLMModel: you cannot specify both input_ids and inputs_embeds at the same time');
      if (!inputIds && !inputsEmbeds) throw new ChatGLMInputError('ChatGLMModel: you have to specify either input_ids or inputs_embeds');
      const inputShape = inputIds ? inputIds.shape : inputsEmbeds!.shape.slice(0, -1);
      if (inputShape.length !== 2) throw new ShapeError(`ChatGLMModel: input_ids must be [batch, seq], got [${inputShape.join(',')}]`);
      const [batch, seq] = inputShape;
      const backend = (inputIds ?? inputsEmbeds)!.backend;
      if (inputIds && inputIds.dtype !== 'int32') throw new ChatGLMInputError(`ChatGLMModel: input_ids must be int32, got ${inputIds.dtype}`);

      let pastKeyValues: PastKeyValues | null = options.pastKeyValues ?? null;
      let attentionMask = options.attentionMask ?? null;
      let positionIds = options.positionIds ?? null;
      if (pastKeyValues && pastKeyValues.length !== config.numLayers) {
        throw new ChatGLMInputError(`ChatGLMModel: past_key_values has ${pastKeyValues.length} layers, the model ${config.numLayers}`);
      }
      if (!pastKeyValues) {
        if (this.prefix_encoder) pastKeyValues = this.getPrompt(batch, backend);
        if (!attentionMask || !positionIds) {
          if (!inputIds) throw new ChatGLMInputError('ChatGLMModel: with inputs_embeds, attention_mask and position_ids must be given (they derive from input_ids)');
          const special = this.specialPositions(inputIds);
          attentionMask ??= this.getMasks(inputIds, special);
          positionIds ??= this.getPositionIds(inputIds, special);
        }
      }
      if (!positionIds) throw new ChatGLMInputError('ChatGLMModel: position_ids must be given with past_key_values');
      const pastLength = pastKeyValues ? pastKeyValues[0][0].shape[0] : 0;
      const preSeqLen = config.preSeqLen ?? 0;
      checkPositionIds(positionIds, batch, seq, config.positionEncoding2d);
      if (attentionMask) {
        if (attentionMask.dtype !== 'bool') throw new ChatGLMInputError(`ChatGLMModel: attention_mask must be bool (true = masked) as the reference's, got ${attentionMask.dtype}`);
        // The prefix keys are attended by every query: pre_seq_len leading false columns.
        if (this.prefix_encoder) {
          attentionMask = concat([full([batch, 1, seq, preSeqLen], 0, { dtype: 'bool', backend }), attentionMask], 3); // [batch, 1, seq, pre + k]
        }
        const [mb, , mq, mk] = attentionMask.shape;
        if (attentionMask.rank !== 4 || (mb !== batch && mb !== 1) || mq !== seq || mk !== pastLength + seq) {
          throw new ShapeError(`ChatGLMModel: attention_mask must be [${batch}, 1, ${seq}, ${pastLength + seq}] (true = masked), got [${attentionMask.shape.join(',')}]`);
        }
      }
      // Rotary tables long enough for every position id (ids never exceed the total length here).
      const rotaryLength = Math.max(config.maxSequenceLength, pastLength + seq + 1);

      const embeds = inputsEmbeds ?? this.word_embeddings.forward(inputIds!); // [batch, seq, hidden]
      let hiddenStates = embeds.transpose(0, 1); // [seq, batch, hidden]
      const presents: LayerPast[] = [];
      const allHiddenStates: Tensor[] = [];
      const allAttentions: Tensor[] = [];
      this.layers.items.forEach((layer, i) => {
        if (outputHiddenStates) allHiddenStates.push(hiddenStates);
        const ret = layer.forward(hiddenStates, {
          positionIds: positionIds!,
          attentionMask,
          rotaryLength,
          layerPast: pastKeyValues ? pastKeyValues[i] : null,
          useCache,
          outputAttentions,
        });
        hiddenStates = ret.hiddenStates;
        if (ret.present) presents.push(ret.present);
        if (ret.attentions) allAttentions.push(ret.attentions);
      });
      hiddenStates = this.final_layernorm.forward(hiddenStates);
      if (outputHiddenStates) allHiddenStates.push(hiddenStates);

      const out: ChatGLMModelOutput = { lastHiddenState: hiddenStates };
      if (useCache) out.pastKeyValues = presents;
      if (outputHiddenStates) out.hiddenStates = allHiddenStates;
      if (outputAttentions) out.attentions = allAttentions;
      return out;
    });
  }
}

function checkPositionIds(positionIds: Tensor, batch: number, seq: number, twoD: boolean): void {
  const expected = twoD ? [batch, 2, seq] : [batch, seq];
  if (positionIds.dtype !== 'int32' || positionIds.rank !== expected.length || positionIds.shape.some((d, i) => d !== expected[i])) {
    throw new ShapeError(`ChatGLMModel: position_ids must be int32 [${expected.join(', ')}] (position_encoding_2d ${twoD}), got ${positionIds.dtype} [${positionIds.shape.join(',')}]`);
  }
}

// ---- the language model ------------------------------------------------------------------------------------

export interface ChatGLMForConditionalGenerationInputs extends ChatGLMModelInputs {
  /** int32 [batch, seq] next-token targets (shifted inside), -100 = ignored. */
  labels?: Tensor | null;
}

export interface ChatGLMCausalLMOutput {
  loss?: Tensor;
  /** [batch, seq, vocab] */
  logits: Tensor;
  pastKeyValues?: LayerPast[];
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}

/** ChatGLMModel with the output projection `lm_head` (not tied to the word embeddings) and the shifted LM loss. */
export class ChatGLMForConditionalGeneration extends ChatGLMPreTrainedModel {
  declare transformer: ChatGLMModel;
  /** A Linear, or after `holdEmbeddingsInFloat16` a Float16Linear (possibly over the embeddings' table). */
  declare lm_head: Linear | Float16Linear;

  constructor(config: ChatGLMConfig, options: ChatGLMModelOptions = {}) {
    super(config);
    const { backend } = options;
    // The transformer initialises itself (torch's defaults for Linear / Embedding) unless loading skips it.
    this.registerModule('transformer', new ChatGLMModel(config, options));
    const emb = this.transformer.word_embeddings;
    // 16-bit tables: lm_head reads the embeddings' table until a checkpoint holds different values there.
    const head = emb instanceof Float16Embedding ? new Float16Linear(emb.weight, config.hiddenSize, config.vocabSize) : new Linear(config.hiddenSize, config.vocabSize, { bias: false, backend });
    this.registerModule('lm_head', head);
    this.postInit();
  }

  getInputEmbeddings(): Embedding {
    return this.transformer.getInputEmbeddings();
  }

  setInputEmbeddings(value: Embedding): void {
    this.transformer.setInputEmbeddings(value);
  }

  /** lm_head, or null once it is held in float16 (a Float16Linear is not a Linear to re-tie or resize). */
  override getOutputEmbeddings(): Linear | null {
    return this.lm_head instanceof Float16Linear ? null : this.lm_head;
  }

  override setOutputEmbeddings(linear: Linear): void {
    this.lm_head = linear;
  }

  /**
   * Never ties: the reference builds `lm_head` as its own Linear and its fixtures load it separately.
   * (transformers' from_pretrained would tie it through tie_word_embeddings' default, but THUDM's
   * checkpoints hold equal values under both names, so loading both gives the same logits.)
   */
  override tieWeights(): void {}

  /**
   * Holds `transformer.word_embeddings.weight` and `lm_head.weight` in 16 bits (float16 pairs, int32
   * [vocab, hidden / 2]; the cpu backend would hold each widened to float32), and as ONE table when
   * their values are equal, as in THUDM's checkpoints: tying is detected from the values at this call,
   * not assumed from `tie_word_embeddings` (the reference builds lm_head as its own Linear, and the
   * fixtures' checkpoints hold different tables under the two names). Lossless: both tables must be
   * float16-exact (THUDM's are float16; a value that is not is refused, naming the tensor and position,
   * and the model is left as it was). Inference only: the tables are frozen afterwards.
   * Returns whether one table is shared and the bytes the tables now take.
   */
  async holdEmbeddingsInFloat16(): Promise<{ tied: boolean; bytes: number }> {
    const emb = this.transformer.word_embeddings;
    const head = this.lm_head;
    const { vocabSize, hiddenSize } = this.config;
    if (emb instanceof Float16Embedding && head instanceof Float16Linear) {
      return { tied: emb.weight === head.weight, bytes: (emb.weight === head.weight ? 1 : 2) * emb.weight.size * 4 };
    }
    if (emb instanceof Float16Embedding || head instanceof Float16Linear || head.bias) {
      throw new ChatGLMInputError('ChatGLMForConditionalGeneration.holdEmbeddingsInFloat16: expects float word_embeddings and a bias-free float lm_head');
    }
    const backend = emb.weight.backend;
    // Read in blocks of rows (a few MB of host copies at a time, not two 2.1 GB ones). Packing checks
    // exactness first: a refused table leaves both modules untouched.
    const rowWords = quantizedRowWords(16, hiddenSize);
    const packAll = async (t: Tensor, name: string, compareWith: Int32Array | null): Promise<{ table: Int32Array; same: boolean }> => {
      const table = new Int32Array(vocabSize * rowWords);
      let same = compareWith !== null;
      for (let r0 = 0; r0 < vocabSize; r0 += FLOAT16_BLOCK_ROWS) {
        const n = Math.min(FLOAT16_BLOCK_ROWS, vocabSize - r0);
        const block = t.narrow(0, r0, n); // [n, hidden]
        const values = (await block.data()) as Float32Array;
        block.dispose();
        const words = packFloat16Rows(values, n, hiddenSize, name, r0);
        if (same && !sameWords(words, compareWith!.subarray(r0 * rowWords, (r0 + n) * rowWords))) same = false;
        table.set(words, r0 * rowWords);
      }
      return { table, same };
    };
    const embTable = (await packAll(emb.weight, 'transformer.word_embeddings.weight', null)).table;
    const headPacked = await packAll(head.weight, 'lm_head.weight', embTable);
    const tied = headPacked.same;
    const shape = [vocabSize, rowWords];
    const table = fromHost(embTable, shape, 'int32', backend);
    const headTensor = tied ? table : fromHost(headPacked.table, shape, 'int32', backend);
    this.transformer.setModule('word_embeddings', new Float16Embedding(table, vocabSize, hiddenSize));
    this.setModule('lm_head', new Float16Linear(headTensor, hiddenSize, vocabSize));
    emb.dispose();
    head.dispose();
    return { tied, bytes: (tied ? 1 : 2) * table.size * 4 };
  }

  /**
   * The P-tuning v2 prefix alone, as the reference's ptuning scripts save it: every
   * `transformer.prefix_encoder.*` tensor (the frozen model is not saved).
   */
  prefixStateDict(): Map<string, Tensor> {
    if (!this.transformer.prefix_encoder) throw new ChatGLMInputError('ChatGLMForConditionalGeneration.prefixStateDict: the config has no pre_seq_len');
    return new Map([...this.stateDict()].filter(([k]) => k.startsWith('transformer.prefix_encoder.')));
  }

  /**
   * Loads a P-tuning v2 prefix checkpoint (the reference's `prefix_encoder.load_state_dict` of the
   * `transformer.prefix_encoder.*` entries; other tensors in the file are ignored). Every shape is
   * checked first: a prefix trained with another pre_seq_len or prefix_projection is refused by name.
   */
  async loadPrefix(ckpt: Checkpoint): Promise<void> {
    const own = this.prefixStateDict();
    const { preSeqLen, prefixProjection } = this.config;
    const problems: string[] = [];
    for (const [key, t] of own) {
      if (!ckpt.has(key)) {
        problems.push(`${key} is missing (prefix_projection ${prefixProjection} in config.json)`);
        continue;
      }
      const shape = ckpt.info(key).shape;
      if (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])) {
        const hint = key.endsWith('embedding.weight') && shape[0] !== preSeqLen ? `: the prefix was trained with pre_seq_len ${shape[0]}, config.json has ${preSeqLen}` : '';
        problems.push(`${key} is [${shape.join(',')}] in the checkpoint, the model's is [${t.shape.join(',')}]${hint}`);
      }
    }
    if (problems.length) throw new PretrainedLoadError(`ChatGLMForConditionalGeneration.loadPrefix (${ckpt.name}): ${problems.join('; ')}`);
    for (const [key, t] of own) {
      const { data } = await ckpt.readTensor(key, { as: 'float32' });
      const tmp = fromHost(data, t.shape, 'float32', t.backend);
      noGrad(() => t.copy_(tmp));
      tmp.dispose();
    }
  }

  forward(options: ChatGLMForConditionalGenerationInputs): ChatGLMCausalLMOutput {
    return scope(() => {
      const outputs = this.transformer.forward(options);
      const logits = this.lm_head.forward(outputs.lastHiddenState).permute(1, 0, 2).contiguous(); // [batch, seq, vocab]
      const out: ChatGLMCausalLMOutput = { logits };
      if (options.labels) {
        const seq = logits.shape[1];
        if (options.labels.dtype !== 'int32' || options.labels.rank !== 2 || options.labels.shape[0] !== logits.shape[0] || options.labels.shape[1] !== seq) {
          throw new ShapeError(`ChatGLMForConditionalGeneration: labels must be int32 [${logits.shape[0]}, ${seq}], got ${options.labels.dtype} [${options.labels.shape.join(',')}]`);
        }
        // Next-token prediction: the logits at t are scored against the label at t + 1.
        const shiftLogits = logits.slice(1, 0, seq - 1).reshape(-1, this.config.vocabSize); // [batch * (seq-1), vocab]
        const shiftLabels = options.labels.slice(1, 1).reshape(-1); // [batch * (seq-1)]
        out.loss = crossEntropy(shiftLogits, shiftLabels);
      }
      if (outputs.pastKeyValues) out.pastKeyValues = outputs.pastKeyValues;
      if (outputs.hiddenStates) out.hiddenStates = outputs.hiddenStates;
      if (outputs.attentions) out.attentions = outputs.attentions;
      return out;
    });
  }
}

/** Every model class by its reference name. */
export const CHATGLM_CLASSES = { ChatGLMModel, ChatGLMForConditionalGeneration } as const;
