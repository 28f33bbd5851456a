// Joining and splitting: concat, stack, split, chunk, pad, and the triangular masks tril/triu.

import { noGrad, record } from '../autograd.js';
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { normAxis } from '../layout.js';
import type { Tensor } from '../tensor.js';
import { arange } from './creation.js';
import { where } from './elementwise.js';
import { backendOf, empty } from './util.js';
import { slice, unsqueeze } from './views.js';

/** Joins tensors along an existing axis. */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new ShapeError('concat: needs at least one tensor');
  const backend = backendOf('concat', ...tensors);
  const first = tensors[0];
  const a = normAxis('concat', axis, first.rank, first.shape);
  for (const t of tensors) {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new ShapeError(`concat: shapes ${tensors.map((x) => fmtShape(x.shape)).join(', ')} differ outside axis ${a}`);
    }
    if (t.dtype !== first.dtype) throw new DTypeError(`concat: dtypes differ (${first.dtype} and ${t.dtype})`);
  }
  const shape = [...first.shape];
  shape[a] = tensors.reduce((n, t) => n + t.shape[a], 0);
  const out = empty(backend, first.dtype, shape);
  let start = 0;
  const starts: number[] = [];
  for (const t of tensors) {
    starts.push(start);
    if (t.size > 0) {
      const dst = out.viewOf(t.shape, out.strides, start * out.strides[a]);
      backend.copy(t, dst);
      dst.dispose();
    }
    start += t.shape[a];
  }
  return record('concat', out, tensors, [], ([g]) => tensors.map((t, i) => (t.requiresGrad ? slice(g!, a, starts[i], starts[i] + t.shape[a]) : null)));
}

/** Joins tensors along a new axis. */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new ShapeError('stack: needs at least one tensor');
  const a = normAxis('stack', axis, tensors[0].rank + 1);
  const expanded = tensors.map((t) => unsqueeze(t, a));
  const out = concat(expanded, a);
  expanded.forEach((t) => t.dispose());
  return out;
}

/** Views of consecutive pieces along axis: of `size` each (last may be smaller) or of the given sizes. */
export function split(x: Tensor, sizeOrSizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normAxis('split', axis, x.rank, x.shape);
  const n = x.shape[a];
  let sizes: number[];
  if (typeof sizeOrSizes === 'number') {
    if (!Number.isInteger(sizeOrSizes) || sizeOrSizes <= 0) throw new ShapeError(`split: size must be a positive integer, got ${sizeOrSizes}`);
    sizes = [];
    for (let s = 0; s < n; s += sizeOrSizes) sizes.push(Math.min(sizeOrSizes, n - s));
  } else {
    sizes = [...sizeOrSizes];
    if (sizes.reduce((p, s) => p + s, 0) !== n) {
      throw new ShapeError(`split: sizes [${sizes.join(',')}] do not add up to ${n} (axis ${a} of ${fmtShape(x.shape)})`);
    }
  }
  let start = 0;
  return sizes.map((s) => {
    const piece = slice(x, a, start, start + s);
    start += s;
    return piece;
  });
}

/** Splits into `chunks` pieces of ceil(n / chunks) (torch.chunk). */
export function chunk(x: Tensor, chunks: number, axis = 0): Tensor[] {
  const a = normAxis('chunk', axis, x.rank, x.shape);
  if (!Number.isInteger(chunks) || chunks <= 0) throw new ShapeError(`chunk: chunks must be a positive integer, got ${chunks}`);
  return split(x, Math.max(1, Math.ceil(x.shape[a] / chunks)), a);
}

/**
 * Pads the last dims: pads = [left, right] for the last dim, then [left, right] for the one before, ...
 * (torch.nn.functional.pad, constant mode).
 */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  const backend = backendOf('pad', x);
  if (pads.length % 2 !== 0 || pads.length / 2 > x.rank || pads.some((p) => !Number.isInteger(p) || p < 0)) {
    throw new ShapeError(`pad: pads [${pads.join(',')}] must be non-negative (left, right) pairs for at most ${x.rank} dims`);
  }
  const shape = [...x.shape];
  let offset = 0;
  for (let i = 0; i < pads.length / 2; i++) shape[x.rank - 1 - i] += pads[2 * i] + pads[2 * i + 1];
  const out = empty(backend, x.dtype, shape);
  backend.fill(out, value);
  for (let i = 0; i < pads.length / 2; i++) offset += pads[2 * i] * out.strides[x.rank - 1 - i];
  if (x.size > 0) {
    const dst = out.viewOf(x.shape, out.strides, offset);
    backend.copy(x, dst);
    dst.dispose();
  }
  return record('pad', out, [x], [], ([g]) => {
    let cur = g!;
    for (let i = 0; i < pads.length / 2; i++) {
      const d = x.rank - 1 - i;
      const next = slice(cur, d, pads[2 * i], pads[2 * i] + x.shape[d]);
      if (cur !== g) cur.dispose();
      cur = next;
    }
    return [cur === g ? g!.mulScalar(1) : cur];
  });
}

function triangle(op: 'tril' | 'triu', x: Tensor, diagonal: number): Tensor {
  if (x.rank < 2) throw new ShapeError(`${op}: needs at least 2 dims, got ${fmtShape(x.shape)}`);
  const [r, c] = x.shape.slice(-2);
  const keep = noGrad(() => {
    const rows = arange(0, r, 1, { backend: x.backend }).reshape(r, 1);
    const cols = arange(0, c, 1, { backend: x.backend }).reshape(1, c);
    const diff = cols.sub(rows);
    const m = op === 'tril' ? diff.leScalar(diagonal) : diff.geScalar(diagonal);
    [rows, cols, diff].forEach((t) => t.dispose());
    return m;
  });
  const out = x.dtype === 'bool' ? keep.logicalAnd(x) : where(keep, x, 0);
  keep.dispose();
  return out;
}

/** Keeps elements on and below the `diagonal`-th diagonal of the last two dims. */
export function tril(x: Tensor, diagonal = 0): Tensor {
  return triangle('tril', x, diagonal);
}

/** Keeps elements on and above the `diagonal`-th diagonal of the last two dims. */
export function triu(x: Tensor, diagonal = 0): Tensor {
  return triangle('triu', x, diagonal);
}
