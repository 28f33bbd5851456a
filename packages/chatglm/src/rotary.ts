// ChatGLM-6B's rotary position embedding (THUDM/chatglm-6b `modeling_chatglm.py`: `RotaryEmbedding`,
// `apply_rotary_pos_emb_index`, and the 2D variant of `position_encoding_2d`), on the shared rotary
// math of @lm/layers (`rotaryInvFreq` with its float16 rounding, `rotaryAngles`, `cosSinTensors`,
// `applyRotaryPosEmbIndex`).

import { Module, applyRotaryPosEmbIndex, cosSinTensors, rotaryAngles, rotaryInvFreq, type CosSin } from '@lm/layers';
import { concat, fromHost, type Backend, type Tensor } from '@lm/tensor-gpu';

export interface ChatGLMRotaryEmbeddingOptions {
  base?: number;
  /** Round inv_freq to float16 (upstream always calls `inv_freq.half()`); default true. */
  halfInvFreq?: boolean;
  backend?: Backend;
}

/**
 * ChatGLM-6B `RotaryEmbedding(dim)`: the persistent buffer `inv_freq` [dim/2] (fp16-rounded values,
 * float32 storage, as after model.float()) and the cos/sin tables [len, 1, dim] built from
 * emb = cat(freqs, freqs) with freqs = outer(arange(len), inv_freq) in float32. Like the reference
 * (whose `_load_from_state_dict` is a no-op), the tables always come from the recomputed inv_freq,
 * never from a loaded one. The tables are built once and cached as non-persistent buffers (the
 * reference's `cos_cached` / `sin_cached`): a table row depends only on its position, so a longer
 * table is built only when a larger position is asked for.
 */
export class ChatGLMRotaryEmbedding extends Module {
  readonly dim: number;
  readonly invFreq: Float32Array;
  /** The persistent buffer, [dim / 2] float32 (a checkpoint's copy is ignored, as in the reference). */
  declare inv_freq: Tensor;
  /** [cachedLength, 1, dim] cos / sin of the cached angles (non-persistent buffers). */
  declare cos_cached: Tensor | null;
  declare sin_cached: Tensor | null;

  constructor(dim: number, options: ChatGLMRotaryEmbeddingOptions = {}) {
    super();
    this.dim = dim;
    this.invFreq = rotaryInvFreq(dim, { base: options.base, halfPrecision: options.halfInvFreq ?? true });
    this.registerBuffer('inv_freq', fromHost(Float32Array.from(this.invFreq), [this.invFreq.length], 'float32', options.backend));
    this.registerBuffer('cos_cached', null, { persistent: false });
    this.registerBuffer('sin_cached', null, { persistent: false });
  }

  /** Rows in the cached tables (0 before the first call). */
  get cachedLength(): number {
    return this.cos_cached?.shape[0] ?? 0;
  }

  /**
   * The cached tables, grown to at least `length` rows ([length, 1, dim]). They belong to the module:
   * callers gather from them (by position ids) and never dispose them.
   */
  tables(length: number): CosSin {
    if (!Number.isInteger(length) || length < 1) throw new RangeError(`ChatGLMRotaryEmbedding.tables: length must be a positive integer, got ${length}`);
    if (length > this.cachedLength || this.cos_cached!.backend !== this.inv_freq.backend) {
      const pos = Float32Array.from({ length }, (_, i) => i);
      const { cos, sin } = cosSinTensors(rotaryAngles(pos, this.invFreq), [length, 1, 2 * this.invFreq.length], this.inv_freq.backend); // [len, 1, dim]
      this.setBuffer('cos_cached', cos, { disposeOld: true });
      this.setBuffer('sin_cached', sin, { disposeOld: true });
    }
    return { cos: this.cos_cached!, sin: this.sin_cached! };
  }

  /** cos/sin [seqLen, 1, dim] (seqLen = max position id + 1 in the reference): new views of the cache, the caller's to dispose. */
  forward(seqLen: number): CosSin {
    const { cos, sin } = this.tables(seqLen);
    return { cos: cos.narrow(0, 0, seqLen), sin: sin.narrow(0, 0, seqLen) }; // [seq, 1, dim]
  }
}

/**
 * ChatGLM-6B's 2D rotary (position_encoding_2d): q/k [seq, batch, heads, headDim] split in two halves
 * along headDim; the first rotated by positionIds, the second by blockPositionIds (both int32
 * [seq, batch]) with cos/sin caches of width headDim / 2; the halves joined again.
 */
export function applyChatGLMRotary2D(x: Tensor, cos: Tensor, sin: Tensor, positionIds: Tensor, blockPositionIds: Tensor): Tensor {
  const d = x.shape[x.rank - 1];
  if (d % 2 !== 0) throw new RangeError(`applyChatGLMRotary2D: head dim ${d} must be even`);
  const [x1, x2] = x.chunk(2, -1); // [..., d/2] each
  const r1 = applyRotaryPosEmbIndex(x1, cos, sin, positionIds);
  const r2 = applyRotaryPosEmbIndex(x2, cos, sin, blockPositionIds);
  const out = concat([r1, r2], -1); // [..., d]
  [x1, x2, r1, r2].forEach((t) => t.dispose());
  return out;
}
