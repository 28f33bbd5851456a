// Broadcasting helpers shared by the ops: a view of a tensor at a broadcast shape, and the sum that
// brings a gradient at that shape back to the input's.

import { broadcastStrides, shapesEqual } from '../layout.js';
import type { Tensor } from '../tensor.js';

/** Sums a broadcast gradient back to `shape` (over leading dims and dims that were 1). */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const summed = g.sum(axes, true);
  return lead > 0 ? summed.reshape([...shape]) : summed;
}

/** Views `t` broadcast to `shape` (0 strides on expanded dims), no copy. */
export function broadcastTo(t: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(t.shape, shape)) return t;
  return t.viewOf(shape, broadcastStrides(t.shape, t.strides, shape), t.offset);
}
