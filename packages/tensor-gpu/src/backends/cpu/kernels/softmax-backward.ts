// The softmax / log-softmax input gradient, one pass per row from the forward's output (see FusedKernels.softmaxBackward).

import type { View } from '../../../backend.js';
import { arr, contiguousRows, converter } from '../common.js';
import { expShiftedRow } from '../simd/eltwise.js';
import { runRowTask } from '../simd/rows.js';

export function cpuSoftmaxBackward(y: View, gradOut: View, gradIn: View, log: boolean): void {
  const { rows, inner, base } = contiguousRows(y);
  const ys = arr(y);
  const gs = arr(gradOut);
  const o = arr(gradIn);
  const conv = converter(gradIn.dtype);
  // float32 rows in the GEMM's shared memory: whole rows in WebAssembly SIMD, in place, on both threads
  const f32 = (a: unknown): a is Float32Array => a instanceof Float32Array;
  if (!conv && f32(ys) && f32(gs) && f32(o)) {
    const rowOp = (data: Float32Array, offset: number, out = false) => ({ data, offset, step: inner, out });
    if (runRowTask(log ? 'logSoftmaxBackward' : 'softmaxBackward', rows, inner, [rowOp(ys, base), rowOp(gs, gradOut.offset), rowOp(o, gradIn.offset, true)])) return;
  }
  for (let r = 0; r < rows; r++) {
    const s = base + r * inner;
    const g = gradOut.offset + r * inner;
    const d = gradIn.offset + r * inner;
    let dot = 0;
    if (log) for (let j = 0; j < inner; j++) dot += gs[g + j];
    else for (let j = 0; j < inner; j++) dot += gs[g + j] * ys[s + j];
    // log-softmax on float32: exp(y) in WebAssembly SIMD, staged in gradIn's row, then combined
    if (log && !conv && ys instanceof Float32Array && o instanceof Float32Array && expShiftedRow(ys, s, inner, 0, o, d) !== null) {
      for (let j = 0; j < inner; j++) o[d + j] = gs[g + j] - o[d + j] * dot;
      continue;
    }
    for (let j = 0; j < inner; j++) {
      const v = log ? gs[g + j] - Math.exp(ys[s + j]) * dot : ys[s + j] * (gs[g + j] - dot);
      o[d + j] = conv ? conv(v) : v;
    }
  }
}
