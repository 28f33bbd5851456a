// layerNorm / rmsNorm forward over the last dim of contiguous rows (row statistics from ../common.ts).

import type { View } from '../../../backend.js';
import { arr, contiguousRows, converter, rowMean, rowRstd } from '../common.js';
import { layerNormRowsSimd } from '../simd/eltwise.js';

export function cpuLayerNorm(x: View, weight: View | null, bias: View | null, out: View, eps: number, rms: boolean): void {
  const { rows, inner, base } = contiguousRows(x);
  const xs = arr(x);
  const o = arr(out);
  const w = weight ? arr(weight) : null;
  const b = bias ? arr(bias) : null;
  const wo = weight?.offset ?? 0;
  const bo = bias?.offset ?? 0;
  const conv = converter(out.dtype);
  const f32 = (a: unknown): a is Float32Array => a instanceof Float32Array;
  // float32 rows of a SIMD-friendly length: statistics and the affine pass in WebAssembly SIMD
  if (!conv && f32(xs) && f32(o) && (!w || f32(w)) && (!b || f32(b)) && layerNormRowsSimd(xs, base, rows, inner, w, wo, b, bo, o, out.offset, eps, rms)) return;
  for (let r = 0; r < rows; r++) {
    const s = base + r * inner;
    const d = out.offset + r * inner;
    const mean = rms ? 0 : rowMean(xs, s, inner);
    const rstd = rowRstd(xs, s, inner, mean, eps);
    for (let j = 0; j < inner; j++) {
      let y = (xs[s + j] - mean) * rstd;
      if (w) y *= w[wo + j];
      if (b) y += b[bo + j];
      o[d + j] = conv ? conv(y) : y;
    }
  }
}
