// softmax / log-softmax over the last dim of contiguous rows: max, sum of exp, scale (f64 accumulation).

import type { View } from '../../../backend.js';
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
    // float32 rows: the exps in WebAssembly SIMD (written to out, then overwritten or scaled below)
    const simd = xs instanceof Float32Array && o instanceof Float32Array ? expShiftedRow(xs, s, inner, m, o, d) : null;
    let sum = simd ?? 0;
    if (log) {
      if (simd === null) for (let j = 0; j < inner; j++) sum += Math.exp(xs[s + j] - m);
      const lse = Math.log(sum);
      for (let j = 0; j < inner; j++) o[d + j] = xs[s + j] - m - lse;
    } else {
      if (simd === null) {
        for (let j = 0; j < inner; j++) {
          const e = Math.exp(xs[s + j] - m);
          o[d + j] = e;
          sum += e;
        }
      }
      const inv = 1 / sum;
      for (let j = 0; j < inner; j++) o[d + j] *= inv;
    }
    if (conv) for (let j = 0; j < inner; j++) o[d + j] = conv(o[d + j]);
  }
}
