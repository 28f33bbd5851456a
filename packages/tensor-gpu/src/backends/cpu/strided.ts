// Strided iteration for the cpu kernels: collapse dims that are contiguous in every operand, then
// walk "rows" (all dims but the innermost) and hand each row to a tight inner loop.

import { isContiguous } from '../../layout.js';

export interface Operand {
  strides: readonly number[];
  offset: number;
}

/** Merges adjacent dims where every operand's strides allow, dropping size-1 dims. */
export function collapse(shape: readonly number[], operands: readonly Operand[]): { shape: number[]; strides: number[][] } {
  const dims: number[] = [];
  const strides: number[][] = operands.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (
      last >= 0 &&
      operands.every((op, k) => strides[k][last] === op.strides[d] * shape[d])
    ) {
      dims[last] *= shape[d];
      operands.forEach((op, k) => (strides[k][last] = op.strides[d]));
    } else {
      dims.push(shape[d]);
      operands.forEach((op, k) => strides[k].push(op.strides[d]));
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    operands.forEach((_, k) => strides[k].push(1));
  }
  return { shape: dims, strides };
}

/**
 * Calls row(bases, n, innerStrides) for every innermost row; bases[k] is operand k's element offset
 * at the row start. `bases` is one array updated in place between calls (no allocation per row): read
 * it, do not keep it.
 */
export function forEachRow(
  shape: readonly number[],
  operands: readonly Operand[],
  row: (bases: number[], n: number, innerStrides: number[]) => void,
): void {
  let size = 1;
  for (const d of shape) size *= d;
  if (size === 0) return;
  // every operand contiguous over the whole shape (the common case): one row, without collapse's arrays
  if (operands.every((op) => isContiguous(shape, op.strides))) {
    row(operands.map((op) => op.offset), size, operands.map(() => 1));
    return;
  }
  const c = collapse(shape, operands);
  const rank = c.shape.length;
  const n = c.shape[rank - 1];
  const inner = c.strides.map((s) => s[rank - 1]);
  const bases = operands.map((op) => op.offset);
  if (rank === 1) {
    row(bases, n, inner);
    return;
  }
  const counter = new Array<number>(rank - 1).fill(0);
  const outerShape = c.shape.slice(0, rank - 1);
  for (;;) {
    row(bases, n, inner);
    // Advance the odometer over the outer dims.
    let d = rank - 2;
    for (; d >= 0; d--) {
      counter[d]++;
      for (let k = 0; k < bases.length; k++) bases[k] += c.strides[k][d];
      if (counter[d] < outerShape[d]) break;
      for (let k = 0; k < bases.length; k++) bases[k] -= c.strides[k][d] * outerShape[d];
      counter[d] = 0;
    }
    if (d < 0) return;
  }
}

/** Element offsets of every element of a view, in row-major order (for kernels that need random access). */
export function offsetsOf(shape: readonly number[], op: Operand): Int32Array | Float64Array {
  let size = 1;
  for (const d of shape) size *= d;
  const out = size < 2 ** 31 ? new Int32Array(size) : new Float64Array(size);
  let i = 0;
  forEachRow(shape, [op], ([base], n, [s]) => {
    for (let j = 0; j < n; j++) out[i++] = base + j * s;
  });
  return out;
}
