// Indexing ops: gather / indexSelect / scatterAdd / embedding, cumsum, sort / topk, oneHot.

import { noGrad, record } from '../autograd.js';
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { normAxis, sizeOf } from '../layout.js';
import type { Tensor } from '../tensor.js';
import { full } from './creation.js';
import { backendOf, describe, empty } from './util.js';
import { contiguous, reshape, slice, transpose } from './views.js';

function requireIndex(op: string, index: Tensor): void {
  if (index.dtype !== 'int32') throw new DTypeError(`${op}: index must be int32, got ${describe(index)}`);
}

/** torch.gather: out[i][j][k] = x[i][index[i][j][k]][k] (axis 1); out has index's shape. */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  const backend = backendOf('gather', x, index);
  requireIndex('gather', index);
  const a = normAxis('gather', axis, x.rank, x.shape);
  if (index.rank !== x.rank || index.shape.some((d, i) => i !== a && d > x.shape[i])) {
    throw new ShapeError(`gather: index ${fmtShape(index.shape)} does not fit input ${fmtShape(x.shape)} along axis ${a}`);
  }
  const out = empty(backend, x.dtype, index.shape);
  if (out.size > 0) backend.gather(x, index, a, out, 'gather');
  const xShape = x.shape;
  return record('gather', out, [x], [index], ([g], [idx]) => [scatterAddInto(full(xShape, 0, { backend, dtype: g!.dtype }), a, idx, g!, 'gather backward')]);
}

/** Rows (or slices) of x along axis picked by a 1-D int32 index (torch.index_select). */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  const backend = backendOf('indexSelect', x, index);
  requireIndex('indexSelect', index);
  const a = normAxis('indexSelect', axis, x.rank, x.shape);
  if (index.rank !== 1) throw new ShapeError(`indexSelect: index must be 1-D, got ${fmtShape(index.shape)}`);
  const shape = [...x.shape];
  shape[a] = index.shape[0];
  // The index, viewed with 0 strides on every other axis, acts as a gather index of out's shape.
  const strides = shape.map((_, i) => (i === a ? index.strides[0] : 0));
  const wide = index.viewOf(shape, strides, index.offset);
  const out = empty(backend, x.dtype, shape);
  if (out.size > 0) backend.gather(x, wide, a, out, 'indexSelect');
  const xShape = x.shape;
  const result = record('indexSelect', out, [x], [wide], ([g], [idx]) => [
    scatterAddInto(full(xShape, 0, { backend, dtype: g!.dtype }), a, idx, g!, 'indexSelect backward'),
  ]);
  wide.dispose();
  return result;
}

/** Adds src into base at index along axis, in place on a fresh `base` the caller owns; returns it. */
function scatterAddInto(base: Tensor, axis: number, index: Tensor, src: Tensor, opName: string): Tensor {
  const s = noGrad(() => contiguous(src));
  if (s.size > 0) base.backend.scatterAdd(base, index, s, axis, opName);
  s.dispose();
  return base;
}

/** out = x with src added at index along axis (torch.scatter_add). */
export function scatterAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  const backend = backendOf('scatterAdd', x, index, src);
  requireIndex('scatterAdd', index);
  const a = normAxis('scatterAdd', axis, x.rank, x.shape);
  if (index.rank !== x.rank || src.rank !== x.rank || index.shape.some((d, i) => d > src.shape[i] || (i !== a && d > x.shape[i]))) {
    throw new ShapeError(`scatterAdd: index ${fmtShape(index.shape)} and src ${fmtShape(src.shape)} do not fit ${fmtShape(x.shape)} along axis ${a}`);
  }
  if (src.dtype !== x.dtype) throw new DTypeError(`scatterAdd: src ${describe(src)} must have the dtype of x ${describe(x)}`);
  const out = empty(backend, x.dtype, x.shape);
  backend.copy(x, out);
  const srcPart = index.shape.every((d, i) => d === src.shape[i]) ? src : noGrad(() => sliceTo(src, index.shape));
  scatterAddInto(out, a, index, srcPart, 'scatterAdd');
  if (srcPart !== src) srcPart.dispose();
  return record('scatterAdd', out, [x, src], [index], ([g], [idx]) => [g, src.requiresGrad ? gather(g!, a, idx) : null]);
}

function sliceTo(t: Tensor, shape: readonly number[]): Tensor {
  let cur = t;
  shape.forEach((d, i) => {
    if (cur.shape[i] !== d) {
      const next = slice(cur, i, 0, d);
      if (cur !== t) cur.dispose();
      cur = next;
    }
  });
  return cur;
}

/**
 * Embedding lookup: weight [V, D] rows for int32 ids of any shape -> [...ids.shape, D]. The row at
 * paddingIdx receives no gradient (nn.Embedding semantics).
 */
export function embedding(weight: Tensor, ids: Tensor, options: { paddingIdx?: number | null } = {}): Tensor {
  backendOf('embedding', weight, ids);
  requireIndex('embedding', ids);
  if (weight.rank !== 2) throw new ShapeError(`embedding: weight must be [numEmbeddings, dim], got ${fmtShape(weight.shape)}`);
  const flat = reshape(ids, [-1]);
  const rows = noGrad(() => indexSelect(weight, 0, flat));
  const out = reshape(rows, [...ids.shape, weight.shape[1]]);
  rows.dispose();
  const pad = options.paddingIdx;
  const wShape = weight.shape;
  const result = record('embedding', out, [weight], [flat], ([g], [idx]) => {
    let g2 = reshape(g!, [idx.shape[0], wShape[1]]);
    if (pad !== undefined && pad !== null) g2 = g2.mul(idx.ne(pad < 0 ? pad + wShape[0] : pad).unsqueeze(1));
    const wide = idx.viewOf([idx.shape[0], wShape[1]], [idx.strides[0], 0], idx.offset);
    const base = full(wShape, 0, { backend: g!.backend, dtype: g!.dtype });
    scatterAddInto(base, 0, wide, g2, 'embedding backward');
    wide.dispose();
    return [base];
  });
  flat.dispose();
  return result;
}

/** Runs fn on x with `axis` moved last and made contiguous as [outer, n]; moves results back. */
function rowsAlong(x: Tensor, axis: number, fn: (rows: Tensor, outer: number, n: number) => Tensor[]): Tensor[] {
  const a = normAxis('rows', axis, x.rank, x.shape);
  const moved = a === x.rank - 1 ? x : transpose(x, a, -1);
  const c = contiguous(moved);
  if (moved !== x) moved.dispose();
  const n = c.shape[c.rank - 1];
  const rows = c.viewOf([sizeOf(c.shape) / Math.max(n, 1), n], [n, 1], c.offset);
  const outs = fn(rows, rows.shape[0], n).map((o) => {
    const shaped = o.viewOf(c.shape, c.strides, 0);
    o.dispose();
    if (a === x.rank - 1) return shaped;
    const back = transpose(shaped, a, -1);
    shaped.dispose();
    return back;
  });
  rows.dispose();
  c.dispose();
  return outs;
}

/** Inclusive cumulative sum along axis. */
export function cumsum(x: Tensor, axis: number): Tensor {
  const backend = backendOf('cumsum', x);
  const a = normAxis('cumsum', axis, x.rank, x.shape);
  const dtype = x.dtype === 'bool' ? 'int32' : x.dtype;
  const outer = x.shape.slice(0, a).reduce((n, d) => n * d, 1);
  const inner = x.shape.slice(a + 1).reduce((n, d) => n * d, 1);
  const c = noGrad(() => contiguous(x));
  const view3 = c.viewOf([outer, x.shape[a], inner], [x.shape[a] * inner, inner, 1], c.offset);
  const out = empty(backend, dtype, x.shape);
  const out3 = out.viewOf(view3.shape, view3.strides, 0);
  if (out.size > 0) backend.cumsum(view3, out3);
  [c, view3, out3].forEach((t) => t.dispose());
  // d/dx_i sum_{j>=i} g_j = total - cumsum(g) + g
  return record('cumsum', out, [x], [], ([g]) => [g!.sum(a, true).sub(cumsum(g!, a)).add(g!)]);
}

export interface SortResult {
  values: Tensor;
  indices: Tensor;
}

/** Stable sort along axis; indices are int32 positions in the input. */
export function sort(x: Tensor, axis = -1, descending = false): SortResult {
  const backend = backendOf('sort', x);
  if (x.dtype === 'bool') throw new DTypeError(`sort: bool tensors cannot be sorted, got ${describe(x)}`);
  const [values, indices] = noGrad(() =>
    rowsAlong(x, axis, (rows) => {
      const v = empty(backend, x.dtype, rows.shape);
      const i = empty(backend, 'int32', rows.shape);
      if (rows.size > 0) backend.sort(rows, v, i, descending);
      return [v, i];
    }),
  );
  const a = normAxis('sort', axis, x.rank, x.shape);
  const xShape = x.shape;
  record('sort', values, [x], [indices], ([g], [idx]) => [
    scatterAddInto(full(xShape, 0, { backend, dtype: g!.dtype }), a, idx, noGrad(() => contiguous(g!)), 'sort backward'),
  ]);
  return { values, indices };
}

export function argsort(x: Tensor, axis = -1, descending = false): Tensor {
  const { values, indices } = noGrad(() => sort(x, axis, descending));
  values.dispose();
  return indices;
}

/** The k largest (or smallest) entries along axis, sorted, with their int32 indices. */
export function topk(x: Tensor, k: number, axis = -1, largest = true): SortResult {
  const a = normAxis('topk', axis, x.rank, x.shape);
  if (!Number.isInteger(k) || k < 0 || k > x.shape[a]) {
    throw new ShapeError(`topk: k=${k} is out of range for a dimension of size ${x.shape[a]} in ${fmtShape(x.shape)}`);
  }
  const { values, indices } = sort(x, a, largest);
  const v = slice(values, a, 0, k);
  const i = slice(indices, a, 0, k);
  values.dispose();
  indices.dispose();
  return { values: v, indices: i };
}

/** One-hot encoding of int32 class ids: [...ids.shape, numClasses]; ids outside [0, numClasses) are an IndexError. */
export function oneHot(ids: Tensor, numClasses: number, dtype: Tensor['dtype'] = 'int32'): Tensor {
  const backend = backendOf('oneHot', ids);
  requireIndex('oneHot', ids);
  // A scatter (rather than a comparison) so that out-of-range ids are reported, not silently dropped.
  const counts = full([...ids.shape, numClasses], 0, { backend });
  const index = ids.unsqueeze(-1);
  const ones = full(index.shape, 1, { backend });
  const c = noGrad(() => contiguous(index));
  if (c.size > 0) backend.scatterAdd(counts, c, ones, ids.rank, 'oneHot');
  const out = counts.cast(dtype);
  [counts, index, ones, c].forEach((t) => t.dispose());
  return out;
}
