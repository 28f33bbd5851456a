// View ops: new shape/strides/offset over the same storage, no copy, when the layout allows.

import { record } from '../autograd.js';
import { ShapeError, fmtShape } from '../errors.js';
import { checkIndex, isContiguous, normAxis, resolveShape, shapesEqual, viewStrides } from '../layout.js';
import type { Tensor } from '../tensor.js';
import { backendOf, empty } from './util.js';
// elementwise imports alias from here; the cycle is safe because both are only called at run time.
import { sumToShape } from './broadcast.js';

/** A new handle on the same values that passes gradients through unchanged. */
export function alias(x: Tensor): Tensor {
  backendOf('alias', x);
  const out = x.viewOf(x.shape, x.strides, x.offset);
  return record('alias', out, [x], [], ([g]) => [g]);
}

/** A contiguous copy (or a new handle when already contiguous). */
export function contiguous(x: Tensor): Tensor {
  const backend = backendOf('contiguous', x);
  if (isContiguous(x.shape, x.strides)) return alias(x);
  const out = empty(backend, x.dtype, x.shape);
  backend.copy(x, out);
  return record('contiguous', out, [x], [], ([g]) => [g]);
}

/** A copy with its own storage (torch.clone); gradients pass through. */
export function clone(x: Tensor): Tensor {
  const backend = backendOf('clone', x);
  const out = empty(backend, x.dtype, x.shape);
  backend.copy(x, out);
  return record('clone', out, [x], [], ([g]) => [g]);
}

export function view(x: Tensor, shape: readonly number[]): Tensor {
  backendOf('view', x);
  const to = resolveShape('view', x.shape, shape);
  const strides = viewStrides(x.shape, x.strides, to);
  if (!strides) {
    throw new ShapeError(`view: a tensor of shape ${fmtShape(x.shape)} with strides ${fmtShape(x.strides)} cannot be viewed as ${fmtShape(to)}; use reshape (copies)`);
  }
  const from = x.shape;
  return record('view', x.viewOf(to, strides, x.offset), [x], [], ([g]) => [reshape(g!, from)]);
}

/** view when the layout allows, else a contiguous copy reshaped. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  backendOf('reshape', x);
  const to = resolveShape('reshape', x.shape, shape);
  if (viewStrides(x.shape, x.strides, to)) return view(x, to);
  const c = contiguous(x);
  const out = view(c, to);
  c.dispose();
  return out;
}

export function permute(x: Tensor, axes: readonly number[]): Tensor {
  backendOf('permute', x);
  if (axes.length !== x.rank) {
    throw new ShapeError(`permute: got ${axes.length} axes [${axes.join(',')}] for a tensor of rank ${x.rank} ${fmtShape(x.shape)}`);
  }
  const norm = axes.map((a) => normAxis('permute', a, x.rank, x.shape));
  if (new Set(norm).size !== norm.length) throw new ShapeError(`permute: repeated axis in [${axes.join(',')}]`);
  const out = x.viewOf(
    norm.map((a) => x.shape[a]),
    norm.map((a) => x.strides[a]),
    x.offset,
  );
  const inverse = new Array<number>(norm.length);
  norm.forEach((a, i) => (inverse[a] = i));
  return record('permute', out, [x], [], ([g]) => [permute(g!, inverse)]);
}

export function transpose(x: Tensor, axis0: number, axis1: number): Tensor {
  const a = normAxis('transpose', axis0, x.rank, x.shape);
  const b = normAxis('transpose', axis1, x.rank, x.shape);
  const axes = x.shape.map((_, i) => i);
  axes[a] = b;
  axes[b] = a;
  return permute(x, axes);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis('unsqueeze', axis, x.rank + 1);
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return view(x, shape);
}

export function squeeze(x: Tensor, axis?: number | number[]): Tensor {
  const axes =
    axis === undefined
      ? x.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)
      : (typeof axis === 'number' ? [axis] : axis).map((a) => normAxis('squeeze', a, x.rank, x.shape));
  const shape = x.shape.filter((d, i) => !(axes.includes(i) && d === 1));
  return view(x, shape);
}

/** Broadcasts size-1 dims to `shape` (-1 keeps a dim), no copy. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  backendOf('expand', x);
  if (shape.length < x.rank) throw new ShapeError(`expand: target ${fmtShape(shape)} has fewer dims than ${fmtShape(x.shape)}`);
  const lead = shape.length - x.rank;
  const target = shape.map((d, i) => (d === -1 ? x.shape[i - lead] : d));
  const strides = target.map((d, i) => {
    if (i < lead) return 0;
    const src = x.shape[i - lead];
    if (src === d) return x.strides[i - lead];
    if (src === 1) return 0;
    throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)} (dim ${i}: ${src} -> ${d})`);
  });
  const from = x.shape;
  if (shapesEqual(from, target)) return alias(x);
  return record('expand', x.viewOf(target, strides, x.offset), [x], [], ([g]) => [sumToShape(g!, from)]);
}

export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  if (x.rank === 0) return reshape(x, [1]);
  const s = normAxis('flatten', startAxis, x.rank, x.shape);
  const e = normAxis('flatten', endAxis, x.rank, x.shape);
  const shape = [...x.shape.slice(0, s), x.shape.slice(s, e + 1).reduce((p, d) => p * d, 1), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}

/** Elements [start, end) with step along axis; negative start/end count from the end (Python slicing). */
export function slice(x: Tensor, axis: number, start = 0, end?: number, step = 1): Tensor {
  backendOf('slice', x);
  const a = normAxis('slice', axis, x.rank, x.shape);
  const n = x.shape[a];
  if (!Number.isInteger(step) || step <= 0) throw new ShapeError(`slice: step must be a positive integer, got ${step}`);
  const clampIdx = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIdx(start);
  const e = end === undefined ? n : clampIdx(end);
  const len = Math.max(0, Math.ceil((e - s) / step));
  const shape = [...x.shape];
  shape[a] = len;
  const strides = [...x.strides];
  strides[a] = x.strides[a] * step;
  const out = x.viewOf(shape, strides, x.offset + s * x.strides[a]);
  const from = x.shape;
  return record('slice', out, [x], [], ([g]) => [sliceBackward(g!, from, a, s, step)]);
}

function sliceBackward(g: Tensor, shape: readonly number[], axis: number, start: number, step: number): Tensor {
  // Scatter the gradient back into zeros of the input's shape.
  const zeros = empty(g.backend, g.dtype, shape);
  g.backend.fill(zeros, 0);
  const strides = [...zeros.strides];
  const offset = start * strides[axis];
  strides[axis] *= step;
  const target = zeros.viewOf(g.shape, strides, offset);
  g.backend.copy(g, target);
  target.dispose();
  return zeros;
}

/** Index one position along axis, dropping it. */
export function select(x: Tensor, axis: number, index: number): Tensor {
  const a = normAxis('select', axis, x.rank, x.shape);
  const i = checkIndex('select', index, x.shape[a]);
  const s = slice(x, a, i, i + 1);
  const out = squeeze(s, a);
  s.dispose();
  return out;
}
