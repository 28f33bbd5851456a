// Fused optimizer updates: in-place kernels that replace a dozen elementwise ops (and their
// temporaries) per parameter. The composite formulas in @lm/layers' optimizers are the oracle.

import type { AdamStepParams } from '../backend.js';
import { isGradEnabled } from '../autograd.js';
import { DTypeError, ShapeError, TensorError } from '../errors.js';
import { isContiguous, shapesEqual } from '../layout.js';
import type { Tensor } from '../tensor.js';
import { backendOf, describe } from './util.js';

/**
 * One Adam/AdamW step in place (see Backend.adamStep for the formula): updates param, expAvg,
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
  backend.adamStep(param, grad, expAvg, expAvgSq, maxExpAvgSq, h);
}
