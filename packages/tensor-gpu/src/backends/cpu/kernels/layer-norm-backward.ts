// layerNorm / rmsNorm input gradient (and gradOut * xhat for the weight's) per row; branch-free row loops.

import type { View } from '../../../backend.js';
import { arr, contiguousRows, converter, rowMean, rowRstd } from '../common.js';
import { constantRow } from '../simd/eltwise.js';
import { runRowTask, type RowOperand } from '../simd/rows.js';

export function cpuLayerNormBackward(x: View, weight: View | null, gradOut: View, gradIn: View, gradOutXhat: View | null, eps: number, rms: boolean): void {
  const { rows, inner, base } = contiguousRows(x);
  const xs = arr(x);
  const gs = arr(gradOut);
  const dx = arr(gradIn);
  const gx = gradOutXhat ? arr(gradOutXhat) : null;
  // float32 rows in the GEMM's shared memory: whole rows in WebAssembly SIMD, in place, on both threads
  const f32 = (a: unknown): a is Float32Array => a instanceof Float32Array;
  const wa = weight ? arr(weight) : null;
  const wContig = !weight || weight.strides[weight.strides.length - 1] === 1 || inner === 1;
  if (f32(xs) && f32(gs) && f32(dx) && (!gx || f32(gx)) && (!wa || f32(wa)) && wContig && !converter(gradIn.dtype) && !(gradOutXhat && converter(gradOutXhat.dtype))) {
    const rowOp = (data: Float32Array, offset: number, out = false): RowOperand => ({ data, offset, step: inner, out });
    const operands = [
      rowOp(xs, base),
      rowOp(gs, gradOut.offset),
      rowOp(dx, gradIn.offset, true),
      { data: wa ?? constantRow(inner, 1), offset: weight?.offset ?? 0, step: 0 },
      gx ? rowOp(gx, gradOutXhat!.offset, true) : null,
    ];
    if (runRowTask(rms ? 'rmsNormBackward' : 'layerNormBackward', rows, inner, operands, eps)) return;
  }
  // The weight as a contiguous [inner] array (ones when absent), so the row loops have no branches.
  const w = new Float64Array(inner).fill(1);
  if (weight) {
    const wa = arr(weight);
    const ws = weight.strides[weight.strides.length - 1];
    for (let j = 0; j < inner; j++) w[j] = wa[weight.offset + j * ws];
  }
  const xhat = new Float64Array(inner);
  const conv = converter(gradIn.dtype);
  const convX = gradOutXhat ? converter(gradOutXhat.dtype) : null;
  for (let r = 0; r < rows; r++) {
    const s = base + r * inner;
    const gb = gradOut.offset + r * inner;
    const mean = rms ? 0 : rowMean(xs, s, inner);
    const rstd = rowRstd(xs, s, inner, mean, eps);
    // mean(gw) and mean(gw * xhat) over the row
    let sumGw = 0;
    let sumGwXhat = 0;
    for (let j = 0; j < inner; j++) {
      const xh = (xs[s + j] - mean) * rstd;
      xhat[j] = xh;
      const gw = gs[gb + j] * w[j];
      sumGw += gw;
      sumGwXhat += gw * xh;
    }
    const meanGw = rms ? 0 : sumGw / inner;
    const meanGwXhat = sumGwXhat / inner;
    const d = gradIn.offset + r * inner;
    for (let j = 0; j < inner; j++) {
      const y = rstd * (gs[gb + j] * w[j] - meanGw - xhat[j] * meanGwXhat);
      dx[d + j] = conv ? conv(y) : y;
    }
    if (gx) {
      const e = gradOutXhat!.offset + r * inner;
      for (let j = 0; j < inner; j++) {
        const y = gs[gb + j] * xhat[j];
        gx[e + j] = convX ? convX(y) : y;
      }
    }
  }
}
