// Views for kernels that take one batch dim ([B, r, c]: matmul, the fused attention) of operands
// whose batch dims do not merge into one stride, such as attention's head split: [B, L, H, D] permuted
// to [B, H, L, D] has batch strides (L H D, D), and a mask [B, 1, 1, Lk] broadcast over the heads has
// (Lk, 0). Merging those dims needs a contiguous copy; on a backend that reads strided batches the
// kernel runs once per index of the outer batch dims instead, on [H, r, c] views with no copy.

import { noGrad } from '../autograd.js';
import type { Backend, View } from '../backend.js';
import { broadcastStrides, viewStrides } from '../layout.js';
import type { Tensor } from '../tensor.js';
import { broadcastTo } from './broadcast.js';
import { reshape } from './views.js';

/** An operand: the tensor (or null, passed through) and its two matrix dims. */
export type BatchOperand = readonly [Tensor | null, number, number];

/**
 * For operands broadcast to [...batch, r, c]: null when every one merges to [B, r, c] without a copy
 * or the backend cannot read strided batches (the caller's single-call path, which copies if it must);
 * else, per index of batch's leading dims, each operand as an [inner, r, c] view (inner = batch's last
 * dim, at the operand's own stride, 0 when broadcast): plain views for the kernel, valid while the
 * operands are alive.
 */
export function outerBatchViews(backend: Backend, batch: readonly number[], operands: readonly BatchOperand[]): (View | null)[][] | null {
  if (!backend.readsStridedBatches || batch.length < 2) return null;
  const B = batch.reduce((n, d) => n * d, 1);
  const full = operands.map(([t, r, c]) => (t ? broadcastStrides(t.shape, t.strides, [...batch, r, c]) : null));
  if (operands.every(([t, r, c], i) => !t || viewStrides([...batch, r, c], full[i]!, [B, r, c]))) return null;
  const last = batch.length - 1;
  const inner = batch[last];
  const views: (View | null)[][] = [];
  const coord = new Array<number>(last).fill(0);
  for (let o = 0; o < B / inner; o++) {
    views.push(
      operands.map(([t, r, c], i) => {
        if (!t) return null;
        const s = full[i]!;
        let offset = t.offset;
        for (let d = 0; d < last; d++) offset += coord[d] * s[d];
        return { storage: t.storage, dtype: t.dtype, shape: [inner, r, c], strides: [s[last], s[last + 1], s[last + 2]], offset };
      }),
    );
    // next outer index, row-major
    for (let d = last - 1; d >= 0; d--) {
      if (++coord[d] < batch[d]) break;
      coord[d] = 0;
    }
  }
  return views;
}

/** `t` broadcast to [...batch, r, c] and merged to [B, r, c] for a one-batch-dim kernel (a view where the dims merge, else a copy); no gradient. */
export function flatBatch(t: Tensor, batch: readonly number[], r: number, c: number): Tensor {
  return noGrad(() => {
    const e = broadcastTo(t, [...batch, r, c]);
    const out = reshape(e, [batch.reduce((n, d) => n * d, 1), r, c]);
    if (e !== t) e.dispose();
    return out;
  });
}
