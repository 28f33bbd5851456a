// Rotary position embeddings (RoFormer, Su et al. 2021) in the variants our model families use:
// - standard rotate-half RoPE over the first `rotaryPercent` of each head's channels, with the
//   interleaved (rotate-every-two) layout as an option: Megatron-core
//   `models/common/embeddings/rotary_pos_embedding.py` (`RotaryEmbedding`, `_rotate_half`,
//   `apply_rotary_pos_emb_bshd`), the same math as GPT-NeoX;
// - rotation by cos/sin tables gathered at position ids (ChatGLM-6B's `apply_rotary_pos_emb_index`)
//   and `inv_freq` rounded to float16 (ChatGLM-6B's `inv_freq.half()`). ChatGLM's own rotary module
//   and its 2D variant live in `@lm/chatglm`.
//
// Angles and cos/sin tables are computed on the host in float32 steps (as torch does on CPU) and
// uploaded: GPU sin/cos of large angles is less accurate than the reference.

import { concat, embedding, fromHost, roundToFloat16, stack, type Backend, type Tensor } from '@lm/tensor-gpu';

const f32 = Math.fround;

export interface InvFreqOptions {
  base?: number;
  /** Round to float16 after computing in float32 (ChatGLM-6B's `inv_freq.half()`). */
  halfPrecision?: boolean;
}

/** inv_freq = 1 / base^(arange(0, dim, 2) / dim), each step in float32; ceil(dim / 2) entries. */
export function rotaryInvFreq(dim: number, options: InvFreqOptions = {}): Float32Array {
  const base = options.base ?? 10000;
  const out = new Float32Array(Math.ceil(dim / 2));
  for (let i = 0; i < out.length; i++) {
    const v = f32(1 / f32(Math.pow(base, f32((2 * i) / dim))));
    out[i] = options.halfPrecision ? roundToFloat16(v) : v;
  }
  return out;
}

/**
 * Rotation angles [positions.length, 2 * invFreq.length]: freqs = outer(positions, inv_freq) in
 * float32, laid out cat(freqs, freqs) (rotate-half) or [f0, f0, f1, f1, ...] (interleaved).
 */
export function rotaryAngles(positions: ArrayLike<number>, invFreq: ArrayLike<number>, options: { interleaved?: boolean } = {}): Float32Array {
  const half = invFreq.length;
  const dim = 2 * half;
  const out = new Float32Array(positions.length * dim);
  for (let p = 0; p < positions.length; p++) {
    const pos = f32(positions[p]);
    for (let i = 0; i < half; i++) {
      const a = f32(pos * invFreq[i]);
      if (options.interleaved) {
        out[p * dim + 2 * i] = a;
        out[p * dim + 2 * i + 1] = a;
      } else {
        out[p * dim + i] = a;
        out[p * dim + half + i] = a;
      }
    }
  }
  return out;
}

export interface CosSin {
  cos: Tensor;
  sin: Tensor;
}

/** cos and sin of host angles as float32 tensors of `shape`. */
export function cosSinTensors(angles: Float32Array, shape: readonly number[], backend?: Backend, mscale = 1): CosSin {
  const cos = new Float32Array(angles.length);
  const sin = new Float32Array(angles.length);
  for (let i = 0; i < angles.length; i++) {
    cos[i] = Math.cos(angles[i]) * mscale;
    sin[i] = Math.sin(angles[i]) * mscale;
  }
  return { cos: fromHost(cos, shape, 'float32', backend), sin: fromHost(sin, shape, 'float32', backend) };
}

/** Megatron/NeoX/ChatGLM `rotate_half`: [x1, x2] -> [-x2, x1] over the last dim. */
export function rotateHalf(x: Tensor): Tensor {
  const d = x.shape[x.rank - 1];
  if (d % 2 !== 0) throw new RangeError(`rotateHalf: last dim ${d} must be even`);
  const x1 = x.slice(-1, 0, d / 2); // [..., d/2]
  const x2 = x.slice(-1, d / 2, d); // [..., d/2]
  const neg = x2.neg();
  const out = concat([neg, x1], -1); // [..., d]
  [x1, x2, neg].forEach((t) => t.dispose());
  return out;
}

/** Megatron's interleaved `_rotate_half`: pairs (x0, x1), (x2, x3), ... -> (-x1, x0), (-x3, x2), ... */
export function rotateInterleaved(x: Tensor): Tensor {
  const d = x.shape[x.rank - 1];
  if (d % 2 !== 0) throw new RangeError(`rotateInterleaved: last dim ${d} must be even`);
  const even = x.slice(-1, 0, d, 2); // [..., d/2]
  const odd = x.slice(-1, 1, d, 2); // [..., d/2]
  const neg = odd.neg();
  const pairs = stack([neg, even], -1); // [..., d/2, 2]
  const out = pairs.reshape([...x.shape]); // [..., d]
  [even, odd, neg, pairs].forEach((t) => t.dispose());
  return out;
}

/**
 * x * cos + rotate(x) * sin over the first rotDim = cos.shape[-1] channels of x's last dim; the rest
 * pass through (Megatron `apply_rotary_pos_emb_bshd`, partial rotary). cos/sin broadcast against
 * x[..., :rotDim] (e.g. [seq, rotDim] for x [batch, heads, seq, headDim]).
 */
export function applyRotaryPosEmb(x: Tensor, cos: Tensor, sin: Tensor, options: { interleaved?: boolean } = {}): Tensor {
  const d = x.shape[x.rank - 1];
  const rotDim = cos.shape[cos.rank - 1];
  if (rotDim > d) throw new RangeError(`applyRotaryPosEmb: rotary dim ${rotDim} exceeds the head dim ${d} of [${x.shape.join(',')}]`);
  const t = rotDim === d ? x : x.slice(-1, 0, rotDim); // [..., rotDim]
  const rotated = options.interleaved ? rotateInterleaved(t) : rotateHalf(t);
  const a = t.mul(cos);
  const b = rotated.mul(sin);
  const out = a.add(b);
  [rotated, a, b].forEach((u) => u.dispose());
  if (rotDim === d) return out;
  const pass = x.slice(-1, rotDim, d); // [..., d - rotDim]
  const joined = concat([out, pass], -1); // [..., d]
  [t, out, pass].forEach((u) => u.dispose());
  return joined;
}

export interface RotaryEmbeddingOptions {
  /** Fraction of each head's channels that rotate (Megatron `rotary_percent`); default 1. */
  rotaryPercent?: number;
  base?: number;
  interleaved?: boolean;
  /** Positions are divided by this (Megatron `seq_len_interpolation_factor`). */
  seqLenInterpolationFactor?: number | null;
}

/**
 * Megatron-core `RotaryEmbedding`: dim = int(kvChannels * rotaryPercent) (kvChannels when the percent
 * is 1); `forward(seqLen, offset)` gives cos/sin [seqLen, dim] for positions offset .. offset+seqLen-1.
 * Megatron returns the angles as [seq, 1, 1, dim] for its [seq, batch, heads, headDim] layout; reshape
 * cos/sin the same way for that layout (they broadcast as they are against [batch, heads, seq, dim]).
 * Not a Module: Megatron keeps inv_freq out of the state dict.
 */
export class RotaryEmbedding {
  readonly dim: number;
  readonly interleaved: boolean;
  readonly invFreq: Float32Array;
  readonly seqLenInterpolationFactor: number | null;

  constructor(kvChannels: number, options: RotaryEmbeddingOptions = {}) {
    const percent = options.rotaryPercent ?? 1;
    if (!(percent > 0 && percent <= 1)) throw new RangeError(`RotaryEmbedding: rotaryPercent must be in (0, 1], got ${percent}`);
    this.dim = percent < 1 ? Math.trunc(kvChannels * percent) : kvChannels;
    this.interleaved = options.interleaved ?? false;
    this.seqLenInterpolationFactor = options.seqLenInterpolationFactor ?? null;
    this.invFreq = rotaryInvFreq(this.dim, { base: options.base });
  }

  /** Positions offset .. offset + seqLen - 1 (scaled by 1/seqLenInterpolationFactor), float32. */
  positions(seqLen: number, offset = 0): Float32Array {
    const pos = new Float32Array(seqLen);
    const factor = this.seqLenInterpolationFactor;
    for (let i = 0; i < seqLen; i++) {
      const p = f32(i + offset);
      pos[i] = factor === null ? p : f32(p * f32(1 / factor));
    }
    return pos;
  }

  /** cos/sin [seqLen, dim]. */
  forward(seqLen: number, options: { offset?: number; backend?: Backend } = {}): CosSin {
    const angles = rotaryAngles(this.positions(seqLen, options.offset ?? 0), this.invFreq, { interleaved: this.interleaved });
    return cosSinTensors(angles, [seqLen, this.dim], options.backend);
  }

  /** Rotates the first `dim` channels of x [..., headDim] with cos/sin from forward(). */
  apply(x: Tensor, { cos, sin }: CosSin): Tensor {
    return applyRotaryPosEmb(x, cos, sin, { interleaved: this.interleaved });
  }
}

/**
 * Rotary with tables gathered by position ids (ChatGLM-6B `apply_rotary_pos_emb_index`) for one tensor: cos/sin ([maxPos, 1, dim] or [maxPos, dim])
 * gathered by int32 `positionIds` (F.embedding), a unit axis inserted after the position axes, then
 * x * cos + rotate_half(x) * sin. With positionIds [seq, batch] and x [seq, batch, heads, dim] (the
 * reference layout) the gathered tables are [seq, batch, 1, dim].
 */
export function applyRotaryPosEmbIndex(x: Tensor, cos: Tensor, sin: Tensor, positionIds: Tensor, options: { unsqueezeAxis?: number } = {}): Tensor {
  const axis = options.unsqueezeAxis ?? positionIds.rank;
  const table = (t: Tensor): Tensor => {
    const flat = t.reshape(t.shape[0], t.shape[t.rank - 1]); // [maxPos, dim]
    const rows = embedding(flat, positionIds); // [...positionIds.shape, dim]
    const out = rows.unsqueeze(axis); // [seq, batch, 1, dim]
    flat.dispose();
    rows.dispose();
    return out;
  };
  const c = table(cos);
  const s = table(sin);
  const out = applyRotaryPosEmb(x, c, s);
  c.dispose();
  s.dispose();
  return out;
}
