// Stochastic gradient descent with momentum, dampening, Nesterov momentum (Sutskever et al., 2013)
// and L2 weight decay. Mirrors torch/optim/sgd.py `_single_tensor_sgd`: the first momentum buffer is
// a copy of the gradient, later ones are buf = momentum * buf + (1 - dampening) * g. State key
// `momentum_buffer` matches torch's.

import type { Tensor } from '@lm/tensor-gpu';
import { Optimizer, OptimizerError, checkRange, cloneTensor, type OptimizerState, type ParamGroup, type ParamsInput } from './optimizer.js';

/** SGD hyperparameters (torch names in camelCase). */
export interface SGDHyperparams {
  lr: number;
  momentum: number;
  /** Scales the gradient's contribution to the momentum buffer by (1 - dampening). */
  dampening: number;
  /** L2 penalty added to the gradient. */
  weightDecay: number;
  /** Nesterov momentum: step along g + momentum * buf. Needs momentum > 0 and dampening 0. */
  nesterov: boolean;
  /** Maximize the objective instead of minimizing it. */
  maximize: boolean;
}

export type SGDOptions = Partial<SGDHyperparams>;

/** torch.optim.SGD defaults. */
export const SGD_DEFAULTS: Readonly<SGDHyperparams> = Object.freeze({
  lr: 1e-3,
  momentum: 0,
  dampening: 0,
  weightDecay: 0,
  nesterov: false,
  maximize: false,
});

/** SGD with optional momentum, dampening, Nesterov momentum and weight decay (torch.optim.SGD). */
export class SGD extends Optimizer<SGDHyperparams> {
  constructor(params: ParamsInput<SGDHyperparams>, options: SGDOptions = {}) {
    super(params, { ...SGD_DEFAULTS, ...options });
  }

  protected override validateHyperparams(g: SGDHyperparams, where: string): void {
    checkRange('SGD', where, 'lr', g.lr, 0);
    checkRange('SGD', where, 'momentum', g.momentum, 0);
    checkRange('SGD', where, 'dampening', g.dampening, -Infinity);
    checkRange('SGD', where, 'weightDecay', g.weightDecay, 0);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) {
      throw new OptimizerError(`SGD: ${where}: Nesterov momentum needs momentum > 0 and dampening 0, got momentum ${g.momentum}, dampening ${g.dampening}`);
    }
  }

  protected override requiredStateKeys(g: SGDHyperparams): readonly string[] {
    return g.momentum !== 0 ? ['momentum_buffer'] : [];
  }

  protected override updateParam(param: Tensor, grad: Tensor, state: OptimizerState, group: ParamGroup<SGDHyperparams>): void {
    const { lr, momentum, dampening, weightDecay, nesterov, maximize } = group;
    let g = maximize ? grad.neg() : grad;
    if (weightDecay !== 0) g = g.add(param.mulScalar(weightDecay));
    if (momentum !== 0) {
      let buf = state.momentum_buffer as Tensor | undefined;
      if (buf === undefined) {
        buf = cloneTensor(g);
        state.momentum_buffer = buf;
      } else {
        buf.copy_(buf.mulScalar(momentum).add(g.mulScalar(1 - dampening)));
      }
      g = nesterov ? g.add(buf.mulScalar(momentum)) : buf;
    }
    param.copy_(param.sub(g.mulScalar(lr)));
  }
}
