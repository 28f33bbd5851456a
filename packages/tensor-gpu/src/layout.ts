// Shapes, strides and views. A tensor is (storage, shape, strides, offset); views change only the
// last three, so reshape/permute/slice/expand cost nothing when the layout allows.

import { IndexError, ShapeError, fmtShape } from './errors.js';

export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== s) return false;
    s *= shape[i];
  }
  return true;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Normalises a possibly negative axis for a tensor of `rank` dims. */
export function normAxis(op: string, axis: number, rank: number, shape?: Shape): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= rank) {
    throw new IndexError(
      `${op}: axis ${axis} is out of range for a tensor of rank ${rank}${shape ? ` ${fmtShape(shape)}` : ''}`,
    );
  }
  return a;
}

/** Normalises a list of axes (or all axes when undefined); sorted, unique. */
export function normAxes(op: string, axes: number | readonly number[] | undefined, shape: Shape): number[] {
  if (axes === undefined) return shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(op, a, shape.length, shape)))];
  if (out.length !== list.length) throw new IndexError(`${op}: repeated axis in [${list.join(',')}]`);
  return out.sort((x, y) => x - y);
}

/** The broadcast shape of several shapes (NumPy rules), or a ShapeError naming the op. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i];
      if (d === out[o] || d === 1) continue;
      if (out[o] === 1) out[o] = d;
      else throw new ShapeError(`${op}: shapes ${shapes.map(fmtShape).join(' and ')} cannot be broadcast together`);
    }
  }
  return out;
}

/** Strides that view a (shape, strides) tensor as broadcast to `target` (0 strides for new/expanded dims). */
export function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const out = new Array<number>(target.length).fill(0);
  const lead = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) {
    out[lead + i] = shape[i] === 1 && target[lead + i] !== 1 ? 0 : strides[i];
  }
  return out;
}

/**
 * Resolves a reshape target (one -1 allowed) against a size.
 */
export function resolveShape(op: string, from: Shape, to: readonly number[]): number[] {
  const size = sizeOf(from);
  let infer = -1;
  let known = 1;
  to.forEach((d, i) => {
    if (d === -1) {
      if (infer >= 0) throw new ShapeError(`${op}: only one dimension can be -1 in ${fmtShape(to)}`);
      infer = i;
    } else if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(`${op}: invalid dimension ${d} in ${fmtShape(to)}`);
    } else known *= d;
  });
  const out = [...to];
  if (infer >= 0) {
    if (known === 0 || size % known !== 0) {
      throw new ShapeError(`${op}: cannot reshape ${fmtShape(from)} (size ${size}) to ${fmtShape(to)}`);
    }
    out[infer] = size / known;
  } else if (known !== size) {
    throw new ShapeError(`${op}: cannot reshape ${fmtShape(from)} (size ${size}) to ${fmtShape(to)}`);
  }
  return out;
}

/**
 * Strides for viewing (shape, strides) as `to` without a copy, or null when the layout does not allow it
 * (PyTorch's `view` rule: each group of merged/split dims must be contiguous among themselves).
 */
export function viewStrides(shape: Shape, strides: readonly number[], to: Shape): number[] | null {
  // Drop size-1 dims, which impose no constraint.
  const dims: { size: number; stride: number }[] = [];
  shape.forEach((d, i) => {
    if (d !== 1) dims.push({ size: d, stride: strides[i] });
  });
  const out = new Array<number>(to.length);
  let di = 0;
  let ti = 0;
  while (ti < to.length) {
    if (to[ti] === 1) {
      out[ti] = ti + 1 < to.length ? 0 : 1;
      ti++;
      continue;
    }
    if (di >= dims.length) return null;
    // Collect a chunk of source dims that is contiguous and whose product matches a chunk of target dims.
    let srcProd = dims[di].size;
    let tgtProd = to[ti];
    const tgtStart = ti;
    while (srcProd !== tgtProd) {
      if (srcProd < tgtProd) {
        di++;
        if (di >= dims.length) return null;
        if (dims[di - 1].stride !== dims[di].stride * dims[di].size) return null;
        srcProd *= dims[di].size;
      } else {
        ti++;
        if (ti >= to.length) return null;
        tgtProd *= to[ti];
      }
    }
    let s = dims[di].stride;
    for (let t = ti; t >= tgtStart; t--) {
      if (to[t] === 1) {
        out[t] = s;
        continue;
      }
      out[t] = s;
      s *= to[t];
    }
    di++;
    ti++;
  }
  if (di !== dims.length) return null;
  // Size-1 target dims: any stride works; give them the natural one.
  for (let t = to.length - 1; t >= 0; t--) {
    if (to[t] === 1) out[t] = t + 1 < to.length ? out[t + 1] * to[t + 1] : 1;
  }
  return out;
}

export function checkIndex(op: string, index: number, size: number, what = 'index'): number {
  const i = index < 0 ? index + size : index;
  if (!Number.isInteger(index) || i < 0 || i >= size) {
    throw new IndexError(`${op}: ${what} ${index} is out of range for a dimension of size ${size}`);
  }
  return i;
}
