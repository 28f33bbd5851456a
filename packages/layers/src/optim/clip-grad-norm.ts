// Gradient clipping by the global norm over all parameters' gradients (Pascanu et al., 2013).
// Mirrors torch.nn.utils.clip_grad_norm_: total = norm of the per-gradient norms, and every gradient
// is multiplied by min(1, maxNorm / (total + 1e-6)), computed with tensor ops so nothing is read back.

import { Tensor, div, full, getBackend, keep, noGrad, scope, stack } from '@lm/tensor-gpu';
import { OptimizerError } from './optimizer.js';

function vectorNorm(x: Tensor, normType: number): Tensor {
  if (normType === Infinity) return x.abs().max();
  if (normType === 2) return x.square().sum().sqrt();
  if (normType === 1) return x.abs().sum();
  return x.abs().pow(normType).sum().pow(1 / normType);
}

/**
 * Clips the gradients of `params` so their global `normType`-norm is at most `maxNorm` (p-norms with
 * p > 0, and `Infinity` for the max-abs norm). Parameters without a gradient are ignored. Each clipped
 * `.grad` is replaced by a new tensor (the old one is disposed), which is safe even when autograd left
 * gradients sharing storage. Returns the total norm before clipping as a scalar tensor owned by the
 * caller: read it with `await norm.item()`; clipping itself never waits on a read.
 */
export function clipGradNorm(params: Iterable<Tensor> | Tensor, maxNorm: number, normType = 2): Tensor {
  if (typeof maxNorm !== 'number' || Number.isNaN(maxNorm)) throw new OptimizerError(`clipGradNorm: maxNorm must be a number, got ${String(maxNorm)}`);
  if (typeof normType !== 'number' || !(normType > 0)) {
    throw new OptimizerError(`clipGradNorm: normType must be a number > 0 or Infinity, got ${String(normType)}`);
  }
  const list = [...new Set(params instanceof Tensor ? [params] : params)];
  const withGrad = list.filter((p) => p.grad !== null);
  if (withGrad.length === 0) return full([], 0, { backend: list[0]?.backend ?? getBackend() });
  const backend = withGrad[0].grad!.backend;
  for (const p of withGrad) {
    if (p.grad!.backend !== backend) {
      throw new OptimizerError(`clipGradNorm: gradients live on different backends (${backend.name} and ${p.grad!.backend.name})`);
    }
  }
  return scope(() =>
    noGrad(() => {
      const norms = withGrad.map((p) => vectorNorm(p.grad!, normType));
      const total = norms.length === 1 ? norms[0] : vectorNorm(stack(norms), normType);
      // coef = min(1, maxNorm / (total + 1e-6)); multiplying by exactly 1 leaves a gradient unchanged.
      const coef = div(maxNorm, total.addScalar(1e-6)).clamp(-Infinity, 1);
      for (const p of withGrad) {
        const old = p.grad!;
        p.grad = keep(old.mul(coef));
        old.dispose();
      }
      return total;
    }),
  );
}
