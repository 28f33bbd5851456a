// The backend contract: storage, the primitive kernels every backend has, and a table of optional
// fused kernels (`fused`) that speed up an op the ops layer can also compose from primitives. A backend
// knows nothing about autograd, scopes or user-facing validation; the ops layer (src/ops) checks shapes
// and dtypes once, allocates outputs and calls these kernels. Every kernel writes into `out`, a view
// over storage the ops layer allocated (contiguous unless the kernel says otherwise).

import type { AnyHostArray, DType } from './dtype.js';
import type { Shape } from './layout.js';
import type { BinaryOpName, FusedBiasActivation, UnaryOpName } from './elementwise-math.js';

export type BackendName = 'cpu' | 'webgpu';

/** A backend-owned block of elements of one dtype. Reference-counted by the tensors viewing it. */
export interface Storage {
  readonly backend: Backend;
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  /** Bytes the backend holds for it. */
  readonly byteLength: number;
  /** Tensor handles (and saved autograd references) sharing it; freed at 0. */
  refs: number;
}

/** A strided window onto a storage: what kernels read and write. Offsets and strides are in elements. */
export interface View {
  readonly storage: Storage;
  readonly dtype: DType;
  readonly shape: Shape;
  readonly strides: readonly number[];
  readonly offset: number;
}

export type ReduceOpName = 'sum' | 'prod' | 'max' | 'min' | 'argmax' | 'argmin';
export type RandomKind = 'uniform' | 'normal' | 'bernoulli';

/** Hyperparameters of one fused Adam/AdamW step (see FusedKernels.adamStep). */
export interface AdamStepParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** true: AdamW (p *= 1 - lr * weightDecay); false: Adam (g += weightDecay * p). */
  decoupled: boolean;
  maximize: boolean;
  /** 1 - beta1^step and 1 - beta2^step. */
  biasCorrection1: number;
  biasCorrection2: number;
}

export interface MemoryInfo {
  /** Live storages and the bytes they hold. */
  storages: number;
  bytes: number;
  /** Bytes kept in the backend's reuse pool (not counted in `bytes`). */
  pooledBytes: number;
}

/**
 * Numeric contract: float kernels compute in f32 (f64 accumulation is allowed on cpu). int32 stays
 * exact for copy, gather/scatter, where, sort, sum/cumsum, add/sub/mul, max/min, comparisons and
 * neg/abs/sign/square; other generic kernels compute int32 inputs in f32 (exact below 2^24).
 */
export interface Backend {
  readonly name: BackendName;
  /** Human-readable adapter description: `cpu (wasm-simd128, 2 threads)`, `webgpu: google swiftshader`. */
  readonly adapterInfo: string;
  /** True for software GPU adapters (SwiftShader): correct but slow. */
  readonly isSoftware: boolean;
  readonly supportsFloat16: boolean;
  /** Largest storage, in bytes, one kernel binding can address. */
  readonly maxBindingBytes: number;
  /**
   * True when matmul and the fused attention read any [batch, r, c] strides with an offset, so the ops
   * hand them one view per outer batch index instead of copying a batch that does not merge into one
   * stride (attention's [B, H] head split of [B, L, H, D]); otherwise such a batch is made contiguous.
   * The fused attention's `out` may then have any batch and row strides (rows contiguous): the op writes
   * a head split's context into [B, L, H, Dv] storage so that merging the heads is a view.
   */
  readonly readsStridedBatches?: boolean;

  // ---- storage -------------------------------------------------------------------------------
  /** Uninitialised storage for `size` elements of `dtype`, with refs = 1 (the tensor about to wrap it). */
  alloc(dtype: DType, size: number): Storage;
  /** Storage (refs = 1) holding a copy of host data (float16 is given widened to Float32Array). */
  upload(data: AnyHostArray, dtype: DType): Storage;
  /** A contiguous host copy of a view, in row-major order of its shape. */
  read(view: View): Promise<AnyHostArray>;
  /** Synchronous read; only backends whose data lives on the host implement it. */
  readSync?(view: View): AnyHostArray;
  /** Releases storage (called when its refs reach 0). */
  free(storage: Storage): void;
  /** Submits queued work. Compute ops only encode; this and `read` make it run. */
  flush(): void;
  /** Resolves when all submitted work has finished. */
  sync(): Promise<void>;
  memory(): MemoryInfo;
  /** Returns pooled (free, kept for reuse) memory to the system; optional. */
  trim?(): void;
  /** Frees pooled memory and releases the device. The backend is unusable afterwards. */
  destroy(): void;

  /** Optional fused kernels; an op whose kernel is missing here runs its composite (see FusedKernels). */
  readonly fused: FusedKernels;

  // ---- kernels -------------------------------------------------------------------------------
  fill(out: View, value: number): void;
  /** out[i] = start + i * step (out contiguous). */
  arange(out: View, start: number, step: number): void;
  /**
   * Counter-based random numbers (Philox4x32-10, see random.ts for the exact mapping) so both backends
   * give the same values: element i uses counter (offset + i). uniform in [p0, p1); normal with mean p0,
   * std p1; bernoulli(p0) gives 1 with probability p0.
   */
  random(out: View, kind: RandomKind, seed: number, offset: number, p0: number, p1: number): void;
  /** Strided copy with dtype conversion: dst[i] = cast(src[i]). Both views have the same shape. */
  copy(src: View, dst: View): void;
  /** out = op(x, p0, p1), elementwise; x may be strided/broadcast, out contiguous of x's shape. */
  unary(op: UnaryOpName, x: View, out: View, p0: number, p1: number): void;
  /** out = op(a, b); a and b are views already broadcast to out's shape (0 strides where expanded). */
  binary(op: BinaryOpName, a: View, b: View, out: View): void;
  /** out = cond ? a : b; all three broadcast to out's shape. */
  where(cond: View, a: View, b: View, out: View): void;
  /** Reduces the last dim of a contiguous [outer, inner] view into out [outer]. argmax/argmin give int32. */
  reduce(op: ReduceOpName, x: View, out: View): void;
  /**
   * Batched matmul: a [batch, M, K] @ b [batch, K, N] -> out [batch, M, N] (contiguous). a and b may have
   * any strides (a transposed operand is a stride swap; a broadcast batch has stride 0).
   */
  matmul(a: View, b: View, out: View): void;
  /**
   * out[..., j, ...] = x[..., index[..., j, ...], ...] along `axis`; index (int32) has out's shape and may be
   * a broadcast view. Indices out of [0, x.shape[axis]) are an IndexError (on GPU, raised at the next read).
   */
  gather(x: View, index: View, axis: number, out: View, opName: string): void;
  /** out[..., index[..., j, ...], ...] += src[..., j, ...] along `axis`; out already holds the base values. */
  scatterAdd(out: View, index: View, src: View, axis: number, opName: string): void;
  /** Inclusive cumulative sum along the middle dim of contiguous [outer, n, inner]. */
  cumsum(x: View, out: View): void;
  /** Stable sort of each row of contiguous [outer, n]: values and int32 source indices. */
  sort(x: View, values: View, indices: View, descending: boolean): void;
}

/**
 * Fused kernels a backend may provide. Each replaces a composite of primitive kernels that the ops
 * layer runs when the entry is missing; the composite stays the reference the fused kernel is tested
 * against (src/ops/op-table.test.ts runs the op table on a backend with none of these). A backend's
 * table holds one line per kernel it has, pointing at that kernel's file.
 */
export interface FusedKernels {
  /** Softmax (or log-softmax) over the last dim of contiguous [outer, inner]. */
  softmax?: (x: View, out: View, log: boolean) => void;
  /**
   * The input gradient of softmax (log: log-softmax) over the last dim of contiguous [outer, inner]
   * rows, from the forward's output y and gradOut (contiguous, same shape):
   *   softmax: gradIn = y * (gradOut - sum(gradOut * y));  log-softmax: gradIn = gradOut - exp(y) * sum(gradOut)
   */
  softmaxBackward?: (y: View, gradOut: View, gradIn: View, log: boolean) => void;
  /**
   * Cross-entropy rows (ops/cross-entropy.ts): logits contiguous float32 [N, C] and targets contiguous
   * int32 [N] -> loss and lse, contiguous float32 [N], each logits row read once:
   *   lse = log sum_c exp(x[n, c]) (shifted by the row max);  loss = lse - (1 - eps) x[n, t] - eps mean_c x[n, c]
   * with eps = smoothing; loss 0 where t = ignoreIndex (lse is written all the same). A target outside
   * [0, C) that is not ignoreIndex is an IndexError naming crossEntropy (cpu: before any work; GPU: at the
   * next read, that row's loss written as 0, as gather does).
   */
  crossEntropy?: (logits: View, targets: View, loss: View, lse: View, ignoreIndex: number, smoothing: number) => void;
  /**
   * The input gradient of crossEntropy from its logits, targets and lse and the loss's gradient g
   * (contiguous float32 [N]) into gradIn (contiguous float32 [N, C]), softmax recomputed from the logits:
   *   gradIn[n, c] = g[n] (exp(x[n, c] - lse[n]) - (1 - eps) [c == t[n]] - eps / C);  zero rows where t = ignoreIndex
   */
  crossEntropyBackward?: (logits: View, targets: View, lse: View, gradLoss: View, gradIn: View, ignoreIndex: number, smoothing: number) => void;
  /**
   * Layer norm over the last dim of contiguous [outer, inner]: (x - mean) / sqrt(var + eps) * w + b,
   * or with `rms`, x / sqrt(mean(x^2) + eps) * w. weight/bias are [inner] or null.
   */
  layerNorm?: (x: View, weight: View | null, bias: View | null, out: View, eps: number, rms: boolean) => void;
  /**
   * The input gradient of layerNorm (rms: RMS norm) over the last dim of contiguous [outer, inner] rows,
   * from the forward's x and weight ([inner] or null) and gradOut (contiguous [outer, inner]):
   *   xhat = (x - mean) * rstd  (mean = 0 for rms);  gw = gradOut * w
   *   gradIn = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))  (rms: without the mean(gw) term)
   * and, when gradOutXhat is given, gradOutXhat = gradOut * xhat (the caller sums its rows into the
   * weight's gradient). gradIn and gradOutXhat are contiguous [outer, inner].
   */
  layerNormBackward?: (x: View, weight: View | null, gradOut: View, gradIn: View, gradOutXhat: View | null, eps: number, rms: boolean) => void;
  /**
   * One Adam/AdamW step, in place, over contiguous float32 views of one size (torch's single-tensor
   * algorithm, each step rounded to float32):
   *   g = maximize ? -grad : grad;  Adam: g += wd * p;  AdamW: base = p * (1 - lr * wd)
   *   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g * g;  amsgrad: vmax = max(vmax, v)
   *   p = base - (m / (sqrt(v or vmax) / sqrt(bc2) + eps)) * (lr / bc1)
   */
  adamStep?: (param: View, grad: View, expAvg: View, expAvgSq: View, maxExpAvgSq: View | null, h: AdamStepParams) => void;
  /**
   * Fused scaled-dot-product attention: q [B, Lq, D], k [B, Lk, D], v [B, Lk, Dv] (any strides) ->
   * out [B, Lq, Dv]. mask is null or a float (additive) / bool (true = keep) view broadcast to [B, Lq, Lk].
   * causal masks keys j > i + (Lk - Lq). Masked scores (bool false, causal) become float32 min
   * (-3.4028235e38), not -inf, so a fully masked row averages v uniformly (as the references do with
   * finfo.min); an additive mask is simply added, so a row that is all -inf gives NaN.
   */
  attention?: (q: View, k: View, v: View, mask: View | null, out: View, scale: number, causal: boolean) => void;
  /**
   * The gradients of `attention` (same arguments) for gradOut [B, Lq, Dv] (any strides): gradQ [B, Lq, D],
   * gradK [B, Lk, D], gradV [B, Lk, Dv], contiguous; the mask gets none. Returns false, having done
   * nothing, for shapes the backend leaves to the composite backward (recomputing the weights with ops).
   */
  attentionBackward?: (
    q: View, k: View, v: View, mask: View | null, gradOut: View, gradQ: View, gradK: View, gradV: View, scale: number, causal: boolean,
  ) => boolean;
  /**
   * Weight-only quantized matmul (ops/quantized-matmul.ts for the weight layout): x contiguous float32
   * [rows, inFeatures], weight contiguous int32 [out, rowWords] of int8 (bits 8) or packed int4
   * (bits 4) rows, scale float32 [out] -> out contiguous float32 [rows, out] = x @ (q * scale)^T,
   * dequantizing in registers and accumulating in float32.
   */
  quantizedMatmul?: (x: View, weight: View, scale: View, out: View, bits: 4 | 8 | 16, inFeatures: number) => void;
  /** The float32 weight [out, inFeatures] = q * scale[row] of a quantized weight (layout as quantizedMatmul). */
  dequantizeWeight?: (weight: View, scale: View, out: View, bits: 4 | 8 | 16, inFeatures: number) => void;
  /**
   * gradIn = gradOut * gelu'(x) for the exact ('none') or tanh GELU, elementwise; gradOut and x have
   * gradIn's shape (any strides), gradIn is contiguous.
   */
  geluBackward?: (gradOut: View, x: View, gradIn: View, approximate: 'none' | 'tanh') => void;
  /** gradIn = gradOut * silu'(x), elementwise; layouts as geluBackward. */
  siluBackward?: (gradOut: View, x: View, gradIn: View) => void;
  /**
   * Maximum-inner-product search (ops/matmul-topk.ts): queries contiguous float32 [Q, D], blocks contiguous
   * float32/float16 [rows_i, D] each (their rows in order are the blocks) -> values float32 / indices int32
   * [Q, k] (contiguous), best first, ties to the smaller id, holding at most a tile of scores. tileRows 0:
   * the kernel's own choice. Returns false, having done nothing, for a k it does not take (the op then
   * runs its composite).
   */
  matmulTopk?: (queries: View, blocks: readonly View[], values: View, indices: View, k: number, tileRows: number) => boolean;
  /** out = activation(x + bias); x and bias are views already broadcast to out's shape. */
  biasActivation?: (activation: FusedBiasActivation, x: View, bias: View, out: View) => void;
}

export type FusedKernelName = keyof FusedKernels;
