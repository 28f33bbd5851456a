// The fused attention backward (FusedKernels.attentionBackward, e.g. WebGPU's flash kernels), used by
// scaledDotProductAttention's backward when the backend has one for these shapes: it recomputes the
// weights tile by tile instead of materialising [..., Lq, Lk] as the composite backward does.

import { noGrad } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import { sumToShape } from './broadcast.js';
import { flatBatch } from './batch-views.js';
import { empty } from './util.js';
import { reshape } from './views.js';

/**
 * [gradQ, gradK, gradV] shaped like q, k, v (summed over broadcast batch dims), or null when the backend
 * has no fused attention backward for these shapes. `batch` is the broadcast batch shape of q, k, v.
 */
export function fusedAttentionGrads(
  q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, gradOut: Tensor, batch: readonly number[], scale: number, causal: boolean,
): [Tensor, Tensor, Tensor] | null {
  const kernel = q.backend.fused.attentionBackward;
  if (!kernel) return null;
  const B = batch.reduce((n, d) => n * d, 1);
  const [Lq, D] = q.shape.slice(-2);
  const [Lk, Dv] = v.shape.slice(-2);
  return noGrad(() => {
    const flat = (t: Tensor, r: number, c: number) => flatBatch(t, batch, r, c);
    const ins = [flat(q, Lq, D), flat(k, Lk, D), flat(v, Lk, Dv), mask ? flat(mask, Lq, Lk) : null, flat(gradOut, Lq, Dv)] as const;
    const grads = [empty(q.backend, q.dtype, [B, Lq, D]), empty(q.backend, k.dtype, [B, Lk, D]), empty(q.backend, v.dtype, [B, Lk, Dv])];
    const done = kernel(ins[0], ins[1], ins[2], ins[3], ins[4], grads[0], grads[1], grads[2], scale, causal);
    ins.forEach((t) => t?.dispose());
    if (!done) {
      grads.forEach((t) => t.dispose());
      return null;
    }
    return grads.map((g, n) => {
      const target = [q, k, v][n];
      const full = reshape(g, [...batch, ...target.shape.slice(-2)]);
      g.dispose();
      const summed = sumToShape(full, target.shape);
      if (summed !== full) full.dispose();
      return summed;
    }) as [Tensor, Tensor, Tensor];
  });
}
