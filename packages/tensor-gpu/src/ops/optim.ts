// Optimizer updates in place: the backend's fused kernel (FusedKernels.adamStep) replaces a dozen
// elementwise ops and their temporaries per parameter; a backend without it runs the composite below.

import type { AdamStepParams } from '../backend.js';
import { isGradEnabled, noGrad } from '../autograd.js';
import { scope } from '../memory.js';
import { DTypeError, ShapeError, TensorError } from '../errors.js';
import { isContiguous, shapesEqual } from '../layout.js';
import type { Tensor } from '../tensor.js';
import { backendOf, describe } from './util.js';

/**
 * One Adam/AdamW step in place (see FusedKernels.adamStep for the formula): updates param, expAvg,
 * expAvgSq (and maxExpAvgSq for amsgrad). All float32, contiguous, of param's shape; call under noGrad.
 */
export function adamStep_(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, maxExpAvgSq: Tensor | null, h: AdamStepParams): void {
  const backend = backendOf('adamStep', param, grad, expAvg, expAvgSq, maxExpAvgSq);
  if (param.requiresGrad && isGradEnabled()) throw new TensorError('adamStep: in-place update of a parameter that requires grad; wrap it in noGrad()');
  for (const [name, t] of [['param', param], ['grad', grad], ['exp_avg', expAvg], ['exp_avg_sq', expAvgSq], ['max_exp_avg_sq', maxExpAvgSq]] as const) {
    if (!t) continue;
    if (t.dtype !== 'float32') throw new DTypeError(`adamStep: ${name} must be float32, got ${describe(t)}`);
    if (!shapesEqual(t.shape, param.shape)) throw new ShapeError(`adamStep: ${name} ${describe(t)} does not match param ${describe(param)}`);
    if (!isContiguous(t.shape, t.strides)) throw new ShapeError(`adamStep: ${name} must be contiguous`);
  }
  if (backend.fused.adamStep) backend.fused.adamStep(param, grad, expAvg, expAvgSq, maxExpAvgSq, h);
  else adamStepComposite(param, grad, expAvg, expAvgSq, maxExpAvgSq, h);
}

/** FusedKernels.adamStep from elementwise ops (each rounded to float32), written back with copy_. */
function adamStepComposite(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, maxExpAvgSq: Tensor | null, h: AdamStepParams): void {
  noGrad(() =>
    scope(() => {
      let g = h.maximize ? grad.neg() : grad;
      let base = param;
      if (h.weightDecay !== 0) {
        if (h.decoupled) base = param.mulScalar(1 - h.lr * h.weightDecay);
        else g = g.add(param.mulScalar(h.weightDecay));
      }
      const m = expAvg.mulScalar(h.beta1).add(g.mulScalar(1 - h.beta1));
      const v = expAvgSq.mulScalar(h.beta2).add(g.square().mulScalar(1 - h.beta2));
      expAvg.copy_(m);
      expAvgSq.copy_(v);
      let second = v;
      if (maxExpAvgSq) {
        second = maxExpAvgSq.maximum(v);
        maxExpAvgSq.copy_(second);
      }
      const denom = second.sqrt().mulScalar(1 / Math.sqrt(h.biasCorrection2)).addScalar(h.eps);
      param.copy_(base.sub(m.div(denom).mulScalar(h.lr / h.biasCorrection1)));
    }),
  );
}
