// Fused scaled-dot-product attention on the GEMM engine, in query blocks (see the function's comment).

import type { View } from '../../../backend.js';
import { roundToFloat16 } from '../../../dtype.js';
import { arr } from '../common.js';
import { matmulKernel, releaseStorage } from '../matmul.js';
import { expNormalizeRow } from './softmax.js';

/**
 * Attention in query blocks: S = Q_blk K^T and O_blk = P V run on the GEMM engine; masking and the
 * softmax run per row in between. Memory beyond the inputs is one [block, Lk] score tile, allocated in
 * the GEMM's memory where it can be (its threads then read and write it in place). `out`'s rows must
 * be contiguous; its batch and row strides are free (the op writes a head split's context straight into
 * [B, L, H, Dv] storage, so merging the heads afterwards is a view).
 */
export function cpuAttention(q: View, k: View, v: View, mask: View | null, out: View, scale: number, causal: boolean): void {
  const [B, Lq, D] = q.shape;
  const Lk = k.shape[1];
  const Dv = v.shape[2];
  const ms = mask ? arr(mask) : null;
  const o = arr(out) as Float32Array;
  const boolMask = mask?.dtype === 'bool';
  // Work in tiles of (batch group) x (query block) whose scores fit a fixed budget: short sequences
  // batch many heads into one GEMM call, long ones split the queries.
  const budget = 1 << 22;
  const block = Math.max(1, Math.min(Lq, Math.floor(budget / Math.max(Lk, 1))));
  const group = block === Lq ? Math.max(1, Math.min(B, Math.floor(budget / Math.max(Lq * Lk, 1)))) : 1;
  const nScores = group * block * Lk;
  const scores = matmulKernel.alloc(nScores) ?? new Float32Array(nScores);
  const [ob, om] = out.strides;
  const shift = Lk - Lq;
  const NEG = -3.4028234663852886e38;
  const view = (base: View, shape: number[], strides: number[], offset: number): View => ({ storage: base.storage, dtype: 'float32', shape, strides, offset });
  try {
    for (let b0 = 0; b0 < B; b0 += group) {
      const g = Math.min(group, B - b0);
      // K^T: [g, D, Lk] by swapping k's strides.
      const kT = view(k, [g, D, Lk], [k.strides[0], k.strides[2], k.strides[1]], k.offset + b0 * k.strides[0]);
      const vb = view(v, [g, Lk, Dv], [v.strides[0], v.strides[1], v.strides[2]], v.offset + b0 * v.strides[0]);
      for (let i0 = 0; i0 < Lq; i0 += block) {
        const rows = Math.min(block, Lq - i0);
        const qBlk = view(q, [g, rows, D], [q.strides[0], q.strides[1], q.strides[2]], q.offset + b0 * q.strides[0] + i0 * q.strides[1]);
        matmulKernel.run(qBlk, arr(q) as Float32Array, kT, arr(k) as Float32Array, scores, 0);
        for (let bi = 0; bi < g; bi++) {
          const bt = b0 + bi;
          for (let r = 0; r < rows; r++) {
            const i = i0 + r;
            const srow = (bi * rows + r) * Lk;
            let m = -Infinity;
            const mBase = mask ? mask.offset + bt * mask.strides[0] + i * mask.strides[1] : 0;
            const ms2 = mask ? mask.strides[2] : 0;
            for (let j = 0; j < Lk; j++) {
              let sc = scores[srow + j] * scale;
              if (ms) {
                const mv = ms[mBase + j * ms2];
                if (boolMask) {
                  if (mv === 0) sc = NEG;
                } else sc += mv;
              }
              if (causal && j > i + shift) sc = NEG;
              sc = Math.fround(sc);
              scores[srow + j] = sc;
              if (sc > m) m = sc;
            }
            expNormalizeRow(scores, srow, Lk, m, scores, srow);
          }
        }
        const p = { storage: out.storage, dtype: 'float32' as const, shape: [g, rows, Lk], strides: [rows * Lk, Lk, 1], offset: 0 };
        matmulKernel.run(p, scores, vb, arr(v) as Float32Array, o, out.offset + b0 * ob + i0 * om, [ob, om]);
      }
    }
  } finally {
    // the tile lives in the GEMM's shared memory: give it back even when a product throws
    releaseStorage(scores);
  }
  if (out.dtype === 'float16') {
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < Lq; i++) {
        const r = out.offset + b * ob + i * om;
        for (let j = 0; j < Dv; j++) o[r + j] = roundToFloat16(o[r + j]);
      }
    }
  }
}
