// Attention masks: the padding / causal / prefix-LM / head masks every model family builds before its
// attention layers. Mirrors Hugging Face transformers `ModuleUtilsMixin` (modeling_utils.py, 4.37):
// `get_extended_attention_mask`, `create_extended_attention_mask_for_decoder`,
// `invert_attention_mask`, `get_head_mask` / `_convert_head_mask_to_5d`; and ChatGLM-6B's
// `ChatGLMModel.get_masks` (modeling_chatglm.py) for the prefix-LM mask.
//
// Conventions: an HF `attention_mask` holds 1 = attend, 0 = padding; "extended" masks are additive
// floats, 0 where attended and finfo(dtype).min where not. Bool masks in @lm/tensor-gpu mean keep
// (true = attend) unless a function says otherwise (`format: 'masked'` is ChatGLM's true = masked out).

import { ShapeError, full, fromHost, unary, where, type Backend, type Tensor } from '@lm/tensor-gpu';

/** torch.finfo(torch.float32).min: the additive mask value HF uses for masked positions. */
export const FLOAT32_MIN = -3.4028234663852886e38;
/** torch.finfo(torch.float16).min. */
export const FLOAT16_MIN = -65504;

export type MaskDType = 'float32' | 'float16';

/** How a mask builder returns its mask: bool keep (true = attend), bool masked (true = masked out), or additive float. */
export type MaskFormat = 'keep' | 'masked' | 'additive';

function finfoMin(dtype: MaskDType): number {
  return dtype === 'float16' ? FLOAT16_MIN : FLOAT32_MIN;
}

/** (1 - m) * finfo(dtype).min, with m cast to dtype first (HF's last step of every extended mask). */
function toAdditive(m: Tensor, dtype: MaskDType): Tensor {
  const cast = m.cast(dtype);
  const inverted = unary('affine', cast, -1, 1); // 1 - m
  const out = inverted.mulScalar(finfoMin(dtype));
  cast.dispose();
  inverted.dispose();
  return out;
}

/**
 * The causal part of HF's `create_extended_attention_mask_for_decoder`: [q, k] ones on and below the
 * diagonal, with a leading block of ones for the k - q cached positions (key j is visible to query i
 * when j <= i + k - q).
 */
function decoderCausal(backend: Backend, queryLength: number, keyLength: number, dtype: 'float32' | 'bool'): Tensor {
  const ones = full([queryLength, keyLength], 1, { backend, dtype });
  const causal = ones.tril(keyLength - queryLength);
  ones.dispose();
  return causal;
}

export interface ExtendedAttentionMaskOptions {
  /** Multiply a causal mask into a 2-D mask first (HF `config.is_decoder`). */
  isDecoder?: boolean;
  /** Float dtype of the result (its finfo.min marks masked positions); default float32. */
  dtype?: MaskDType;
}

/**
 * HF `get_extended_attention_mask`: a 2-D [batch, keys] mask becomes [batch, 1, 1, keys] (with
 * `isDecoder`, [batch, 1, queries, keys] after multiplying in the causal mask, which has a block of
 * ones for cached positions when the mask is longer than the input); a 3-D [batch, queries, keys]
 * mask becomes [batch, 1, queries, keys]. Returns (1 - m) * finfo(dtype).min. `inputShape` is
 * [batch, queryLength] (HF's `input_shape`).
 */
export function getExtendedAttentionMask(attentionMask: Tensor, inputShape: readonly number[], options: ExtendedAttentionMaskOptions = {}): Tensor {
  const dtype = options.dtype ?? 'float32';
  const m = attentionMask;
  if (m.rank === 3) {
    const ext = m.unsqueeze(1); // [batch, 1, q, k]
    const out = toAdditive(ext, dtype);
    ext.dispose();
    return out;
  }
  if (m.rank !== 2) {
    throw new ShapeError(`getExtendedAttentionMask: attention mask must be [batch, keys] or [batch, queries, keys], got [${m.shape.join(',')}] (input shape [${inputShape.join(',')}])`);
  }
  if (!options.isDecoder) {
    const ext = m.reshape(m.shape[0], 1, 1, m.shape[1]); // [batch, 1, 1, k]
    const out = toAdditive(ext, dtype);
    ext.dispose();
    return out;
  }
  const [batch, queryLength] = inputShape;
  const keyLength = m.shape[1];
  if (batch !== m.shape[0] || queryLength > keyLength) {
    throw new ShapeError(`getExtendedAttentionMask: decoder mask [${m.shape.join(',')}] does not fit input shape [${inputShape.join(',')}] (needs batch ${batch} and at least ${queryLength} keys)`);
  }
  const floatMask = m.cast(dtype);
  const causal = decoderCausal(m.backend, queryLength, keyLength, 'float32'); // [q, k]
  const causalT = causal.cast(dtype);
  const pad = floatMask.reshape(batch, 1, 1, keyLength); // [batch, 1, 1, k]
  const combined = causalT.mul(pad); // [batch, 1, q, k]
  const out = toAdditive(combined, dtype);
  [floatMask, causal, causalT, pad, combined].forEach((t) => t.dispose());
  return out;
}

/**
 * HF `invert_attention_mask`: an encoder mask (1 = attend) for cross-attention, [batch, keys] ->
 * [batch, 1, 1, keys] or [batch, queries, keys] -> [batch, 1, queries, keys], as (1 - m) * finfo.min.
 */
export function invertAttentionMask(encoderAttentionMask: Tensor, options: { dtype?: MaskDType } = {}): Tensor {
  const m = encoderAttentionMask;
  if (m.rank !== 2 && m.rank !== 3) {
    throw new ShapeError(`invertAttentionMask: encoder mask must be [batch, keys] or [batch, queries, keys], got [${m.shape.join(',')}]`);
  }
  const ext = m.rank === 3 ? m.unsqueeze(1) : m.reshape(m.shape[0], 1, 1, m.shape[1]); // [batch, 1, q|1, k]
  const out = toAdditive(ext, options.dtype ?? 'float32');
  ext.dispose();
  return out;
}

export interface MaskBuildOptions {
  backend?: Backend;
  /** 'keep' (default: bool, true = attend), 'masked' (bool, true = masked out) or 'additive' (0 / finfo.min float). */
  format?: MaskFormat;
  /** Float dtype for 'additive'. */
  dtype?: MaskDType;
}

function formatBoolKeep(keep: Tensor, options: MaskBuildOptions): Tensor {
  const format = options.format ?? 'keep';
  if (format === 'keep') return keep;
  const out = format === 'masked' ? keep.logicalNot() : where(keep, 0, finfoMin(options.dtype ?? 'float32'));
  if (format === 'additive' && (options.dtype ?? 'float32') !== 'float32') {
    const cast = out.cast(options.dtype ?? 'float32');
    out.dispose();
    keep.dispose();
    return cast;
  }
  keep.dispose();
  return out;
}

/**
 * [queryLength, keyLength] causal mask: key j is visible to query i when j <= i + pastLength
 * (pastLength defaults to keyLength - queryLength, the KV-cache alignment).
 */
export function causalMask(queryLength: number, keyLength = queryLength, options: MaskBuildOptions & { pastLength?: number } = {}): Tensor {
  const pastLength = options.pastLength ?? keyLength - queryLength;
  const ones = full([queryLength, keyLength], 1, { backend: options.backend, dtype: 'bool' });
  const keep = ones.tril(pastLength);
  ones.dispose();
  return formatBoolKeep(keep, options);
}

/**
 * ChatGLM-6B `get_masks`: [batch, 1, seqLen, seqLen] where query i may see key j when j <= i (causal)
 * or j < contextLengths[b] (the bidirectional prefix). `format: 'masked'` returns exactly the
 * reference's bool mask (true = masked out); the default 'keep' is its negation.
 */
export function prefixLMMask(contextLengths: readonly number[], seqLen: number, options: MaskBuildOptions = {}): Tensor {
  const batch = contextLengths.length;
  const host = new Uint8Array(batch * seqLen * seqLen);
  contextLengths.forEach((ctx, b) => {
    if (!Number.isInteger(ctx) || ctx < 0) throw new RangeError(`prefixLMMask: context length ${ctx} of row ${b} must be a non-negative integer`);
    for (let i = 0; i < seqLen; i++) {
      for (let j = 0; j < seqLen; j++) host[(b * seqLen + i) * seqLen + j] = j <= i || j < ctx ? 1 : 0;
    }
  });
  const keep = fromHost(host, [batch, 1, seqLen, seqLen], 'bool', options.backend); // [batch, 1, q, k]
  return formatBoolKeep(keep, options);
}

export interface HeadMaskOptions {
  /** Append a trailing unit axis (HF `is_attention_chunked`, Reformer's chunked attention). */
  isAttentionChunked?: boolean;
  dtype?: MaskDType;
}

/**
 * HF `get_head_mask`: null -> [null x numLayers]; a 1-D [heads] mask applies to every layer; a 2-D
 * [numLayers, heads] mask gives one row per layer. Each layer's mask is [1, heads, 1, 1] (broadcast
 * against attention probabilities [batch, heads, q, k]); with `isAttentionChunked`, [1, heads, 1, 1, 1].
 * Every returned tensor is a separate handle the caller disposes.
 */
export function getHeadMask(headMask: Tensor | null | undefined, numLayers: number, options: HeadMaskOptions = {}): (Tensor | null)[] {
  if (!headMask) return Array.from({ length: numLayers }, () => null);
  const tail = options.isAttentionChunked ? [1, 1, 1] : [1, 1];
  const dtype = options.dtype ?? 'float32';
  if (headMask.rank === 1) {
    const heads = headMask.shape[0];
    const cast = headMask.cast(dtype);
    const out = Array.from({ length: numLayers }, () => cast.reshape(1, heads, ...tail)); // [1, heads, 1, 1]
    cast.dispose();
    return out;
  }
  if (headMask.rank === 2) {
    const [layers, heads] = headMask.shape;
    if (layers !== numLayers) throw new ShapeError(`getHeadMask: head mask [${headMask.shape.join(',')}] has ${layers} layers, the model ${numLayers}`);
    const cast = headMask.cast(dtype);
    const out = Array.from({ length: numLayers }, (_, i) => {
      const row = cast.select(0, i);
      const shaped = row.reshape(1, heads, ...tail); // [1, heads, 1, 1]
      row.dispose();
      return shaped;
    });
    cast.dispose();
    return out;
  }
  throw new ShapeError(`getHeadMask: head mask must be [heads] or [layers, heads], got [${headMask.shape.join(',')}]`);
}
