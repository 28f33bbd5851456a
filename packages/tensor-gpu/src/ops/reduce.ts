// Reductions over any axes. The reduced axes are moved last and the input made contiguous, so each
// backend implements one kernel: reduce the last dim of [outer, inner].

import { record } from '../autograd.js';
import type { ReduceOpName } from '../backend.js';
import { DTypeError } from '../errors.js';
import { normAxes, sizeOf } from '../layout.js';
import type { Tensor } from '../tensor.js';
import { backendOf, empty, describe } from './util.js';
import { contiguous, expand, permute, reshape } from './views.js';
import { noGrad } from '../autograd.js';

interface Plan {
  axes: number[];
  keptShape: number[]; // output shape with keepDim
  outShape: number[]; // output shape as requested
}

function plan(op: string, x: Tensor, axes: number | readonly number[] | undefined, keepDim: boolean): Plan {
  const list = normAxes(op, axes, x.shape);
  const keptShape = x.shape.map((d, i) => (list.includes(i) ? 1 : d));
  const outShape = keepDim ? keptShape : x.shape.filter((_, i) => !list.includes(i));
  return { axes: list, keptShape, outShape };
}

/** Runs the backend reduction; returns a tensor of plan.outShape (no autograd). */
function rawReduce(op: ReduceOpName, x: Tensor, p: Plan, outDType = x.dtype): Tensor {
  const backend = backendOf(op, x);
  const kept = x.shape.map((_, i) => i).filter((i) => !p.axes.includes(i));
  const inner = p.axes.reduce((n, a) => n * x.shape[a], 1);
  const outer = sizeOf(x.shape) / Math.max(inner, 1);
  const moved = noGrad(() => permute(x, [...kept, ...p.axes]));
  const flat = noGrad(() => contiguous(moved));
  moved.dispose();
  const rows = flat.viewOf([kept.reduce((n, a) => n * x.shape[a], 1), inner], [inner, 1], flat.offset);
  flat.dispose();
  const out = empty(backend, outDType, p.outShape);
  if (inner === 0 || outer === 0) {
    // Empty reduction: PyTorch gives the identity (sum 0, prod 1); max/min/argmax of nothing is an error.
    if (op === 'sum' || op === 'prod') backend.fill(out, op === 'sum' ? 0 : 1);
    else if (sizeOf(p.outShape) > 0) {
      rows.dispose();
      out.dispose();
      throw new DTypeError(`${op}: cannot reduce over an empty dimension of ${describe(x)}`);
    }
  } else backend.reduce(op, rows, out);
  rows.dispose();
  return out;
}

/** Broadcasts a reduced gradient (of outShape) back to the input's shape. */
function expandBack(g: Tensor, p: Plan, shape: readonly number[]): Tensor {
  const r = reshape(g, p.keptShape);
  const e = expand(r, shape);
  r.dispose();
  return e;
}

function sumDType(x: Tensor): Tensor['dtype'] {
  return x.dtype === 'bool' ? 'int32' : x.dtype;
}

export function sum(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  const p = plan('sum', x, axes, keepDim);
  const out = rawReduce('sum', x, p, sumDType(x));
  const shape = x.shape;
  return record('sum', out, [x], [], ([g]) => [expandBack(g!, p, shape)]);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  const p = plan('mean', x, axes, keepDim);
  const n = p.axes.reduce((k, a) => k * x.shape[a], 1);
  const xf = x.dtype === 'int32' || x.dtype === 'bool' ? x.toFloat() : x;
  const s = sum(xf, axes, keepDim);
  const out = s.mulScalar(1 / n);
  s.dispose();
  if (xf !== x) xf.dispose();
  return out;
}

export function prod(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  const p = plan('prod', x, axes, keepDim);
  const out = rawReduce('prod', x, p, sumDType(x));
  const shape = x.shape;
  return record('prod', out, [x], [x, out], ([g], [xs, ys]) => [expandBack(g!.mul(ys), p, shape).div(xs)]);
}

function extremum(op: 'max' | 'min', x: Tensor, axes: number | readonly number[] | undefined, keepDim: boolean): Tensor {
  const p = plan(op, x, axes, keepDim);
  const out = rawReduce(op, x, p);
  const shape = x.shape;
  // Gradient is shared evenly among tied extrema (torch.amax semantics).
  return record(op, out, [x], [x, out], ([g], [xs, ys]) => {
    const yb = expandBack(ys, p, shape);
    const hit = xs.eq(yb).toFloat();
    const count = sum(hit, p.axes, true);
    return [expandBack(g!, p, shape).mul(hit).div(count)];
  });
}

export function max(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  return extremum('max', x, axes, keepDim);
}

export function min(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  return extremum('min', x, axes, keepDim);
}

/** Index (int32) of the first maximum along axis, or over the flattened tensor when axis is undefined. */
export function argmax(x: Tensor, axis?: number, keepDim = false): Tensor {
  if (axis === undefined) {
    const flat = reshape(x, [-1]);
    const out = rawReduce('argmax', flat, plan('argmax', flat, 0, false), 'int32');
    flat.dispose();
    return out;
  }
  return rawReduce('argmax', x, plan('argmax', x, axis, keepDim), 'int32');
}

export function argmin(x: Tensor, axis?: number, keepDim = false): Tensor {
  if (axis === undefined) {
    const flat = reshape(x, [-1]);
    const out = rawReduce('argmin', flat, plan('argmin', flat, 0, false), 'int32');
    flat.dispose();
    return out;
  }
  return rawReduce('argmin', x, plan('argmin', x, axis, keepDim), 'int32');
}

/** Variance with Bessel's correction by default (correction 1), as torch.var. */
export function variance(
  x: Tensor,
  axes?: number | readonly number[],
  options: { correction?: number; keepDim?: boolean } = {},
): Tensor {
  const p = plan('var', x, axes, true);
  const n = p.axes.reduce((k, a) => k * x.shape[a], 1);
  const correction = options.correction ?? 1;
  const m = mean(x, p.axes, true);
  const d = x.sub(m);
  const sq = d.square();
  const s = sum(sq, p.axes, options.keepDim ?? false);
  const out = s.mulScalar(1 / Math.max(n - correction, 0));
  [m, d, sq, s].forEach((t) => t.dispose());
  return out;
}

/** log(sum(exp(x))) over axes, stabilised by the max. */
export function logsumexp(x: Tensor, axes: number | readonly number[], keepDim = false): Tensor {
  const p = plan('logsumexp', x, axes, keepDim);
  const m = noGrad(() => max(x, p.axes, true));
  const safeM = noGrad(() => m.maskedFill(m.abs().eq(Infinity), 0));
  const shifted = x.sub(safeM);
  const e = shifted.exp();
  const s = sum(e, p.axes, true);
  const l = s.log();
  const withMax = l.add(safeM);
  const out = keepDim ? withMax : reshape(withMax, p.outShape);
  [m, safeM, shifted, e, s, l].forEach((t) => t.dispose());
  if (out !== withMax) withMax.dispose();
  return out;
}
