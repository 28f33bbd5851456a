// Neural-network ops: softmax, normalisation, dropout, losses and attention. Where the backend has a
// fused kernel (Backend.fused) the op runs it; where it lacks one the op runs its composite of simpler
// ops, which is also the reference the fused kernels are tested against (op-table.test.ts runs the op
// table on a backend without any).

import { noGrad, record } from '../autograd.js';
import { ShapeError, fmtShape } from '../errors.js';
import { broadcastShapes, normAxis, sizeOf } from '../layout.js';
import { scope } from '../memory.js';
import { defaultGenerator, type Generator } from '../random.js';
import type { View } from '../backend.js';
import type { Tensor } from '../tensor.js';
import { bernoulli, full } from './creation.js';
import { sumToShape } from './broadcast.js';
import { where } from './elementwise.js';
import { backendOf, describe, empty, requireFloat } from './util.js';
import { flatBatch, outerBatchViews } from './batch-views.js';
import { alias, contiguous, reshape, transpose } from './views.js';
import { matmul } from './linalg.js';
import { fusedAttentionGrads } from './attention-backward.js';

/**
 * Runs a last-dim row kernel on tensors of one shape along `axis` (moving it last and back when needed):
 * kernel(rows of each input, rows of the output), all contiguous [outer, inner].
 */
function alongLastAxis(op: string, inputs: readonly Tensor[], axis: number, dtype: Tensor['dtype'], kernel: (rows: Tensor[], out: Tensor) => void): Tensor {
  const x = inputs[0];
  const a = normAxis(op, axis, x.rank, x.shape);
  const last = a === x.rank - 1;
  const moved = inputs.map((t) => (last ? t : noGrad(() => transpose(t, a, -1))));
  const flat = moved.map((t) => noGrad(() => contiguous(t)));
  const shape = flat[0].shape;
  const inner = x.rank === 0 ? 1 : shape[shape.length - 1];
  const rowShape = [sizeOf(shape) / Math.max(inner, 1), inner];
  const rows = flat.map((c) => c.viewOf(rowShape, [inner, 1], c.offset));
  const out = empty(x.backend, dtype, shape);
  const outRows = out.viewOf(rowShape, [inner, 1], 0);
  if (outRows.size > 0) kernel(rows, outRows);
  [...rows, outRows, ...flat].forEach((t) => t.dispose());
  moved.forEach((t, i) => t !== inputs[i] && t.dispose());
  if (last) return out;
  const back = noGrad(() => transpose(out, a, -1));
  out.dispose();
  return back;
}

/** The gradient of softmax (log: log-softmax) along `axis` from its output y: one row kernel, or the composite. */
function softmaxGrad(y: Tensor, g: Tensor, axis: number, log: boolean): Tensor {
  const kernel = y.backend.fused.softmaxBackward;
  if (!kernel) {
    // softmax: y (g - sum(g y));  log-softmax: g - exp(y) sum(g)
    return scope(() => (log ? g.sub(y.exp().mul(g.sum(axis, true))) : y.mul(g.sub(g.mul(y).sum(axis, true)))));
  }
  const dtype = y.dtype === 'float16' && g.dtype === 'float16' ? 'float16' : 'float32';
  return alongLastAxis(log ? 'logSoftmax' : 'softmax', [y, g], axis, dtype, ([ys, gs], out) => kernel(ys, gs, out, log));
}

/** softmax / log-softmax from ops: shift by the (constant) row max, exp, normalise. Autograd sees every step. */
function softmaxComposite(x: Tensor, axis: number, log: boolean): Tensor {
  return scope(() => {
    const z = x.sub(noGrad(() => x.max(axis, true)));
    if (log) return z.sub(z.exp().sum(axis, true).log());
    const e = z.exp();
    return e.div(e.sum(axis, true));
  });
}

function softmaxOp(op: 'softmax' | 'logSoftmax', x: Tensor, axis: number): Tensor {
  const backend = backendOf(op, x);
  requireFloat(op, x);
  const log = op === 'logSoftmax';
  const kernel = backend.fused.softmax;
  if (!kernel) return softmaxComposite(x, axis, log);
  const y = alongLastAxis(op, [x], axis, x.dtype, ([rows], out) => kernel(rows, out, log));
  return record(op, y, [x], [y], ([g], [ys]) => [softmaxGrad(ys, g!, axis, log)]);
}

export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp('softmax', x, axis);
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp('logSoftmax', x, axis);
}

function normRows(op: string, x: Tensor, normalized: number, weight: Tensor | null, bias: Tensor | null): { inner: number } {
  requireFloat(op, x);
  if (normalized < 1 || normalized > x.rank) throw new ShapeError(`${op}: normalizedShape of ${normalized} dims does not fit input ${describe(x)}`);
  const inner = x.shape.slice(x.rank - normalized).reduce((n, d) => n * d, 1);
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t && t.size !== inner) {
      throw new ShapeError(`${op}: ${name} ${fmtShape(t.shape)} does not match normalized shape ${fmtShape(x.shape.slice(x.rank - normalized))}`);
    }
  }
  return { inner };
}

/** The last `k` axes of a rank-`rank` tensor. */
function lastAxes(rank: number, k: number): number[] {
  return Array.from({ length: k }, (_, i) => rank - k + i);
}

/**
 * A norm over the last `k` dims from ops: (x - mean) / sqrt(var + eps) * w + b, or with `rms`,
 * x / sqrt(mean(x^2) + eps) * w. Autograd sees every step.
 */
function normComposite(x: Tensor, k: number, weight: Tensor | null, bias: Tensor | null, eps: number, rms: boolean): Tensor {
  return scope(() => {
    const axes = lastAxes(x.rank, k);
    const centred = rms ? x : x.sub(x.mean(axes, true));
    let y = centred.mul(centred.square().mean(axes, true).addScalar(eps).rsqrt());
    // weight and bias may come flat ([inner]) for a normalized shape of several dims
    const normShape = x.shape.slice(x.rank - k);
    if (weight) y = y.mul(reshape(weight, normShape));
    if (bias) y = y.add(reshape(bias, normShape));
    return y;
  });
}

function runNorm(x: Tensor, inner: number, weight: Tensor | null, bias: Tensor | null, eps: number, rms: boolean): Tensor {
  const backend = x.backend;
  const c = noGrad(() => contiguous(x));
  const rows = c.viewOf([x.size / Math.max(inner, 1), inner], [inner, 1], c.offset);
  const out = empty(backend, x.dtype, x.shape);
  const outRows = out.viewOf(rows.shape, rows.strides, 0);
  const w = weight && noGrad(() => contiguous(weight));
  const b = bias && noGrad(() => contiguous(bias));
  if (rows.size > 0) backend.fused.layerNorm!(rows, w, b, outRows, eps, rms);
  [rows, outRows, c, w, b].forEach((t) => t?.dispose());
  return out;
}

/** A norm's backward: its input x and weight, the incoming gradient, over rows of `inner` elements. */
interface NormBackward {
  x: Tensor;
  weight: Tensor | null;
  gradOut: Tensor;
  inner: number;
  eps: number;
  rms: boolean;
  /** Also return gradOut * xhat, for the weight's gradient. */
  wantGradOutXhat: boolean;
}

/**
 * The gradients of a norm, from the fused backward kernel or its composite: the input's, and
 * gradOut * xhat (when asked), both of x's shape.
 */
function runNormBackward(args: NormBackward): { gradIn: Tensor; gradOutXhat: Tensor | null } {
  const { x, weight, gradOut, inner, eps, rms, wantGradOutXhat } = args;
  const backend = x.backend;
  const kernel = backend.fused.layerNormBackward;
  if (!kernel) return normBackwardComposite(args);
  const rowsOf = (t: Tensor) => t.viewOf([x.size / Math.max(inner, 1), inner], [inner, 1], t.offset);
  const xc = contiguous(x);
  const gc = contiguous(gradOut);
  const w = weight && contiguous(weight);
  const dtype = x.dtype === 'float16' && gradOut.dtype === 'float16' ? 'float16' : 'float32';
  const gradIn = empty(backend, dtype, x.shape);
  const gradOutXhat = wantGradOutXhat ? empty(backend, dtype, x.shape) : null;
  const views = [rowsOf(xc), rowsOf(gc), rowsOf(gradIn), gradOutXhat && rowsOf(gradOutXhat)] as const;
  if (x.size > 0) kernel(views[0], w, views[1], views[2], views[3], eps, rms);
  [...views, xc, gc, w].forEach((t) => t?.dispose());
  return { gradIn, gradOutXhat };
}

/** FusedKernels.layerNormBackward from ops. */
function normBackwardComposite({ x, weight, gradOut, inner, eps, rms, wantGradOutXhat }: NormBackward): { gradIn: Tensor; gradOutXhat: Tensor | null } {
  return scope(() => {
    const rowShape = [x.size / Math.max(inner, 1), inner];
    const xr = reshape(x, rowShape); // [outer, inner]
    const g = reshape(gradOut, rowShape); // [outer, inner]
    const centred = rms ? xr : xr.sub(xr.mean(-1, true));
    const rstd = centred.square().mean(-1, true).addScalar(eps).rsqrt(); // [outer, 1]
    const xhat = centred.mul(rstd);
    const gw = weight ? g.mul(reshape(weight, [inner])) : g;
    // rstd * (gw - mean(gw) - xhat * mean(gw * xhat)), without the mean(gw) term for rms
    let centredGrad = gw.sub(xhat.mul(gw.mul(xhat).mean(-1, true)));
    if (!rms) centredGrad = centredGrad.sub(gw.mean(-1, true));
    const gradIn = reshape(rstd.mul(centredGrad), x.shape);
    const gradOutXhat = wantGradOutXhat ? reshape(g.mul(xhat), x.shape) : null;
    return { gradIn, gradOutXhat };
  });
}

/**
 * Layer norm over the last `normalizedShape` dims (torch.nn.functional.layer_norm).
 * weight/bias have the normalized shape (or are omitted). With the fused kernels the backward is one
 * kernel (FusedKernels.layerNormBackward) for the input, plus row sums for weight and bias.
 */
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  backendOf('layerNorm', x, weight, bias);
  const k = typeof normalizedShape === 'number' ? 1 : normalizedShape.length;
  const { inner } = normRows('layerNorm', x, k, weight ?? null, bias ?? null);
  if (!x.backend.fused.layerNorm) return normComposite(x, k, weight ?? null, bias ?? null, eps, false);
  const y = runNorm(x, inner, weight ?? null, bias ?? null, eps, false);
  return record('layerNorm', y, [x, weight, bias], [x, ...(weight ? [weight] : [])], ([g], [xs, ws]) => {
    const { gradIn, gradOutXhat } = runNormBackward({ x: xs, weight: ws ?? null, gradOut: g!, inner, eps, rms: false, wantGradOutXhat: !!weight?.requiresGrad });
    const outer = Array.from({ length: x.rank - k }, (_, i) => i);
    const dw = gradOutXhat && weight ? reshape(gradOutXhat.sum(outer), weight.shape) : null;
    const db = bias?.requiresGrad ? reshape(g!.sum(outer), bias.shape) : null;
    return [x.requiresGrad ? gradIn : null, dw, db];
  });
}

/** RMS norm (T5's variance-only LayerNorm): x / sqrt(mean(x^2) + eps) * weight, over the last dim. */
export function rmsNorm(x: Tensor, weight?: Tensor | null, eps = 1e-6): Tensor {
  backendOf('rmsNorm', x, weight);
  const { inner } = normRows('rmsNorm', x, 1, weight ?? null, null);
  if (!x.backend.fused.layerNorm) return normComposite(x, 1, weight ?? null, null, eps, true);
  const y = runNorm(x, inner, weight ?? null, null, eps, true);
  return record('rmsNorm', y, [x, weight], [x, ...(weight ? [weight] : [])], ([g], [xs, ws]) => {
    const { gradIn, gradOutXhat } = runNormBackward({ x: xs, weight: ws ?? null, gradOut: g!, inner, eps, rms: true, wantGradOutXhat: !!weight?.requiresGrad });
    const outer = Array.from({ length: x.rank - 1 }, (_, i) => i);
    const dw = gradOutXhat && weight ? reshape(gradOutXhat.sum(outer), weight.shape) : null;
    return [x.requiresGrad ? gradIn : null, dw];
  });
}

/** Inverted dropout: zeroes elements with probability p and scales the rest by 1/(1-p) when training. */
export function dropout(x: Tensor, p: number, training = true, generator: Generator = defaultGenerator): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  // The identity costs a view, not a copy.
  if (!training || p === 0) return alias(x);
  if (p === 1) return x.mulScalar(0);
  const keepMask = bernoulli(x.shape, 1 - p, { backend: x.backend, generator, dtype: x.dtype === 'float16' ? 'float16' : 'float32' });
  const scaled = keepMask.mulScalar(1 / (1 - p));
  keepMask.dispose();
  const out = x.mul(scaled);
  scaled.dispose();
  return out;
}

export interface MSELossOptions {
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * torch.nn.functional.mse_loss: (input - target)^2, averaged ('mean', default), summed or kept per
 * element. The shapes must be equal (torch broadcasts with a warning that the result is likely wrong;
 * this refuses instead).
 */
export function mseLoss(input: Tensor, target: Tensor, options: MSELossOptions = {}): Tensor {
  backendOf('mseLoss', input, target);
  requireFloat('mseLoss', input, 'input');
  requireFloat('mseLoss', target, 'target');
  requireSameShape('mseLoss', input, target);
  const squared = input.sub(target).square();
  return reduceLoss(squared, options.reduction ?? 'mean', 'mseLoss');
}

export interface BinaryCrossEntropyWithLogitsOptions {
  /** Rescales each element's loss; broadcastable to the input's shape. */
  weight?: Tensor | null;
  /** Weight of the positive term per class (the last dim); broadcastable to the input's shape. */
  posWeight?: Tensor | null;
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * torch.nn.functional.binary_cross_entropy_with_logits: -[p y log s(x) + (1 - y) log(1 - s(x))] with
 * s the sigmoid and p the positive weight (1 by default), in torch's stable form
 * (1 - y) x + (1 + (p - 1) y) (log(1 + exp(-|x|)) + max(-x, 0)), so large |x| neither overflows nor
 * loses the loss to log(0). Targets are probabilities in [0, 1] of the input's shape.
 */
export function binaryCrossEntropyWithLogits(input: Tensor, target: Tensor, options: BinaryCrossEntropyWithLogitsOptions = {}): Tensor {
  const weight = options.weight ?? null;
  const posWeight = options.posWeight ?? null;
  backendOf('binaryCrossEntropyWithLogits', input, target, weight, posWeight);
  requireFloat('binaryCrossEntropyWithLogits', input, 'input');
  requireFloat('binaryCrossEntropyWithLogits', target, 'target');
  requireSameShape('binaryCrossEntropyWithLogits', input, target);
  if (weight) broadcastShapes('binaryCrossEntropyWithLogits weight', weight.shape, input.shape);
  if (posWeight) broadcastShapes('binaryCrossEntropyWithLogits posWeight', posWeight.shape, input.shape);
  // log(1 + exp(-|x|)) + max(-x, 0) = -log s(x), finite for every x.
  const negLogSigmoid = input.abs().neg().exp().log1p().add(input.neg().relu());
  const logWeight = posWeight ? posWeight.subScalar(1).mul(target).addScalar(1) : null; // 1 + (p - 1) y
  let loss = target.neg().addScalar(1).mul(input).add(logWeight ? logWeight.mul(negLogSigmoid) : negLogSigmoid);
  if (weight) loss = loss.mul(weight);
  return reduceLoss(loss, options.reduction ?? 'mean', 'binaryCrossEntropyWithLogits');
}

function requireSameShape(op: string, input: Tensor, target: Tensor): void {
  if (input.shape.length !== target.shape.length || input.shape.some((d, i) => d !== target.shape[i])) {
    throw new ShapeError(`${op}: input ${fmtShape(input.shape)} and target ${fmtShape(target.shape)} must have the same shape`);
  }
}

function reduceLoss(perElement: Tensor, reduction: 'mean' | 'sum' | 'none', op: string): Tensor {
  if (reduction === 'none') return perElement;
  if (reduction === 'sum') return perElement.sum();
  if (reduction === 'mean') return perElement.mean();
  throw new TypeError(`${op}: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
}

export interface AttentionOptions {
  /** Float (added to the scores) or bool (true = attend) mask broadcastable to [..., Lq, Lk]. */
  mask?: Tensor | null;
  /** Mask keys after each query (aligned to the end when Lk > Lq, as with a KV cache). */
  causal?: boolean;
  /** Score scale; default 1/sqrt(headDim). */
  scale?: number;
}

const FLOAT32_MIN = -3.4028234663852886e38;

/**
 * The attention weights softmax(q k^T * scale + mask) [..., Lq, Lk] from ops. Scores a bool mask or
 * causality removes become float32 min, not -inf, so a fully masked row averages v uniformly.
 */
function attentionWeights(q: Tensor, k: Tensor, mask: Tensor | null, scale: number, causal: boolean): Tensor {
  const [Lq, Lk] = [q.shape[q.rank - 2], k.shape[k.rank - 2]];
  const scores = matmul(q, transpose(k, -1, -2)).mulScalar(scale);
  let masked = scores;
  if (mask) masked = mask.dtype === 'bool' ? where(mask, masked, FLOAT32_MIN) : masked.add(mask);
  if (causal) masked = where(causalKeep(q.backend, Lq, Lk), masked, FLOAT32_MIN);
  return softmax(masked, -1);
}

/**
 * softmax(q k^T * scale + mask) v for q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv]. With the fused
 * kernel the forward never materialises the score matrix and the backward recomputes the scores;
 * without it the op is its composite (attentionWeights, then @ v).
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const mask = options.mask ?? null;
  const backend = backendOf('attention', q, k, v, mask);
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) requireFloat('attention', t, n);
  if (q.rank < 2 || k.rank !== q.rank || v.rank !== q.rank) {
    throw new ShapeError(`attention: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} must have the same rank >= 2`);
  }
  const [Lq, D] = q.shape.slice(-2);
  const [Lk, Dk] = k.shape.slice(-2);
  const [Lv, Dv] = v.shape.slice(-2);
  if (D !== Dk || Lk !== Lv) {
    throw new ShapeError(`attention: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}: need q/k head dims equal and k/v lengths equal`);
  }
  const batch = broadcastShapes('attention', q.shape.slice(0, -2), k.shape.slice(0, -2), v.shape.slice(0, -2));
  const B = batch.reduce((n, d) => n * d, 1);
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const causal = options.causal ?? false;
  if (mask) broadcastShapes('attention mask', mask.shape, [...batch, Lq, Lk]);
  const kernel = backend.fused.attention;
  if (!kernel) return scope(() => matmul(attentionWeights(q, k, mask, scale, causal), v));
  const flat = (t: Tensor, r: number, c: number) => flatBatch(t, batch, r, c);
  let out: Tensor;
  if (backend.readsStridedBatches && batch.length >= 2) {
    // Heads (batch's last dim H) written straight into [..., Lq, H, Dv] storage and returned as its
    // [..., H, Lq, Dv] view, so the head merge that follows (permute + reshape) is a view, not a copy.
    const H = batch[batch.length - 1];
    const outer = B / H;
    const store = empty(backend, q.dtype, [outer, Lq, H, Dv]);
    const slab = Lq * H * Dv; // one outer index: [Lq, H, Dv]
    const headsOf = (o: number): View => ({ storage: store.storage, dtype: store.dtype, shape: [H, Lq, Dv], strides: [Dv, H * Dv, 1], offset: o * slab });
    const perOuter = outerBatchViews(backend, batch, [[q, Lq, D], [k, Lk, D], [v, Lk, Dv], [mask, Lq, Lk]]);
    if (perOuter) {
      // a batch that does not merge (a [B, H] head split, a mask broadcast over heads): one call per outer index, no copies
      perOuter.forEach(([qo, ko, vo, mo], o) => kernel(qo!, ko!, vo!, mo, headsOf(o), scale, causal));
    } else {
      // every input merges to [B, r, c] (views): the outer indices are slices of it
      const flats = [flat(q, Lq, D), flat(k, Lk, D), flat(v, Lk, Dv), mask ? flat(mask, Lq, Lk) : null];
      const slice = (t: Tensor | null, o: number): View | null =>
        t && { storage: t.storage, dtype: t.dtype, shape: [H, t.shape[1], t.shape[2]], strides: t.strides, offset: t.offset + o * H * t.strides[0] };
      for (let o = 0; o < outer; o++) kernel(slice(flats[0], o)!, slice(flats[1], o)!, slice(flats[2], o)!, slice(flats[3], o), headsOf(o), scale, causal);
      flats.forEach((t) => t?.dispose());
    }
    // [..., H, Lq, Dv] over [outer..., Lq, H, Dv] storage
    const outerStrides = batch.slice(0, -1).map((_, d) => batch.slice(d + 1, -1).reduce((n, x) => n * x, 1) * slab);
    out = store.viewOf([...batch, Lq, Dv], [...outerStrides, Dv, H * Dv, 1], 0);
    store.dispose();
  } else {
    const out3 = empty(backend, q.dtype, [B, Lq, Dv]);
    const q3 = flat(q, Lq, D);
    const k3 = flat(k, Lk, D);
    const v3 = flat(v, Lk, Dv);
    const m3 = mask ? flat(mask, Lq, Lk) : null;
    kernel(q3, k3, v3, m3, out3, scale, causal);
    [q3, k3, v3, m3].forEach((t) => t?.dispose());
    out = reshape(out3, [...batch, Lq, Dv]);
    out3.dispose();
  }
  const saved = mask ? [q, k, v, mask] : [q, k, v];
  return record('attention', out, [q, k, v, mask], saved, ([g], [qs, ks, vs, ms]) => {
    // A fused backward (flash kernels) when the backend has one and the mask needs no gradient.
    const fused = mask?.requiresGrad && mask.dtype !== 'bool' ? null : fusedAttentionGrads(qs, ks, vs, ms ?? null, g!, batch, scale, causal);
    if (fused) {
      const wanted = [q.requiresGrad, k.requiresGrad, v.requiresGrad];
      return [...fused.map((t, n) => (wanted[n] ? t : (t.dispose(), null))), null];
    }
    const p = attentionWeights(qs, ks, ms ?? null, scale, causal);
    const dv = matmul(transpose(p, -1, -2), g!);
    const dp = matmul(g!, transpose(vs, -1, -2));
    let ds = softmaxGrad(p, dp, -1, false);
    // Scores replaced by a constant (bool mask, causal) get no gradient; additive masks pass it on.
    if (ms && ms.dtype === 'bool') ds = where(ms, ds, 0);
    if (causal) ds = where(causalKeep(backend, Lq, Lk), ds, 0);
    const dq = matmul(ds, ks).mulScalar(scale);
    const dk = matmul(transpose(ds, -1, -2), qs).mulScalar(scale);
    const dmask = mask?.requiresGrad && mask.dtype !== 'bool' ? sumToShape(ds, mask.shape) : null;
    return [
      q.requiresGrad ? sumToShape(dq, q.shape) : null,
      k.requiresGrad ? sumToShape(dk, k.shape) : null,
      v.requiresGrad ? sumToShape(dv, v.shape) : null,
      dmask,
    ];
  });
}

/** [Lq, Lk] bool: key j is visible to query i when j <= i + (Lk - Lq). */
export function causalKeep(backend: Tensor['backend'], Lq: number, Lk: number): Tensor {
  return noGrad(() => {
    const ones = full([Lq, Lk], 1, { backend, dtype: 'bool' });
    const keep = ones.tril(Lk - Lq);
    ones.dispose();
    return keep;
  });
}
