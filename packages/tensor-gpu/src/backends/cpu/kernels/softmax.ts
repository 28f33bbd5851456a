// softmax / log-softmax over the last dim of contiguous rows: max, sum of exp, scale (f64 accumulation).

import type { View } from '../../../backend.js';
import type { AnyHostArray } from '../../../dtype.js';
import { arr, contiguousRows, converter } from '../common.js';
import { expShiftedRow, softmaxRowsSimd } from '../simd/eltwise.js';

export function cpuSoftmax(x: View, out: View, log: boolean): void {
  const { rows, inner, base } = contiguousRows(x);
  const xs = arr(x);
  const o = arr(out);
  const conv = converter(out.dtype);
  // float32 rows of a SIMD-friendly length: both passes in WebAssembly SIMD over many rows at a time
  if (!conv && xs instanceof Float32Array && o instanceof Float32Array && softmaxRowsSimd(xs, base, rows, inner, o, out.offset, log)) return;
  for (let r = 0; r < rows; r++) {
    const s = base + r * inner;
    const d = out.offset + r * inner;
    let m = -Infinity;
    for (let j = 0; j < inner; j++) if (xs[s + j] > m) m = xs[s + j];
    if (m === -Infinity) m = 0; // fully -inf row: exp gives 0s, sum 0 -> NaN like PyTorch
    if (log) {
      // float32 rows: the exps in WebAssembly SIMD (written to out, then overwritten below)
      const simd = xs instanceof Float32Array && o instanceof Float32Array ? expShiftedRow(xs, s, inner, m, o, d) : null;
      let sum = simd ?? 0;
      if (simd === null) for (let j = 0; j < inner; j++) sum += Math.exp(xs[s + j] - m);
      const lse = Math.log(sum);
      for (let j = 0; j < inner; j++) o[d + j] = xs[s + j] - m - lse;
    } else expNormalizeRow(xs, s, inner, m, o, d);
    if (conv) for (let j = 0; j < inner; j++) o[d + j] = conv(o[d + j]);
  }
}

/**
 * dst[d + j] = exp(src[s + j] - m) / sum_k exp(src[s + k] - m) over n floats, m the row's max (shared by
 * softmax and the fused attention's score rows; src and dst may be the same row). The exps run in
 * WebAssembly SIMD for float32 rows.
 */
export function expNormalizeRow(src: AnyHostArray, s: number, n: number, m: number, dst: AnyHostArray, d: number): void {
  const simd = src instanceof Float32Array && dst instanceof Float32Array ? expShiftedRow(src, s, n, m, dst, d) : null;
  let sum = simd ?? 0;
  if (simd === null) {
    for (let j = 0; j < n; j++) {
      const e = Math.exp(src[s + j] - m);
      dst[d + j] = e;
      sum += e;
    }
  }
  const inv = 1 / sum;
  for (let j = 0; j < n; j++) dst[d + j] *= inv;
}
