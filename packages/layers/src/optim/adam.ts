// Adam (Kingma & Ba, 2015, https://arxiv.org/abs/1412.6980) and AdamW (Loshchilov & Hutter, 2019,
// https://arxiv.org/abs/1711.05101): decoupled weight decay, bias correction, optional AMSGrad.
// Mirrors torch/optim/adam.py `_single_tensor_adam` (the non-foreach path), including the order of
// operations of the bias correction; state keys match torch's (`step`, `exp_avg`, `exp_avg_sq`,
// `max_exp_avg_sq`).

import { adamStep_, full, unary, type Tensor } from '@lm/tensor-gpu';
import { Optimizer, checkRange, type OptimizerState, type ParamGroup, type ParamsInput } from './optimizer.js';

/** Adam/AdamW hyperparameters (torch names in camelCase). */
export interface AdamHyperparams {
  lr: number;
  /** Decay rates of the first and second moment estimates. */
  betas: [number, number];
  /** Added to the denominator for numerical stability. */
  eps: number;
  /** AdamW: decoupled decay (p *= 1 - lr * wd); Adam: L2 penalty added to the gradient. */
  weightDecay: number;
  /** Use the maximum of past second moments (Reddi et al., 2018). */
  amsgrad: boolean;
  /** Maximize the objective instead of minimizing it. */
  maximize: boolean;
}

export type AdamOptions = Partial<AdamHyperparams>;

/** torch.optim.Adam defaults. */
export const ADAM_DEFAULTS: Readonly<AdamHyperparams> = Object.freeze({
  lr: 1e-3,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  weightDecay: 0,
  amsgrad: false,
  maximize: false,
});

/** torch.optim.AdamW defaults (as Adam, with weightDecay 1e-2). */
export const ADAMW_DEFAULTS: Readonly<AdamHyperparams> = Object.freeze({ ...ADAM_DEFAULTS, weightDecay: 1e-2 });

/**
 * Adam with L2 weight decay folded into the gradient (torch.optim.Adam). For transformer training
 * prefer AdamW.
 */
export class Adam extends Optimizer<AdamHyperparams> {
  constructor(params: ParamsInput<AdamHyperparams>, options: AdamOptions = {}) {
    super(params, { ...ADAM_DEFAULTS, betas: [...ADAM_DEFAULTS.betas], ...options });
  }

  /** True for AdamW: weight decay scales the parameter instead of adding to the gradient. */
  protected get decoupledWeightDecay(): boolean {
    return false;
  }

  protected override validateHyperparams(g: AdamHyperparams, where: string): void {
    const name = this.constructor.name;
    checkRange(name, where, 'lr', g.lr, 0);
    checkRange(name, where, 'eps', g.eps, 0);
    if (!Array.isArray(g.betas) || g.betas.length !== 2) {
      throw new TypeError(`${name}: ${where}: betas must be [beta1, beta2], got ${JSON.stringify(g.betas)}`);
    }
    checkRange(name, where, 'betas[0]', g.betas[0], 0, 1);
    checkRange(name, where, 'betas[1]', g.betas[1], 0, 1);
    checkRange(name, where, 'weightDecay', g.weightDecay, 0);
  }

  protected override requiredStateKeys(g: AdamHyperparams): readonly string[] {
    return g.amsgrad ? ['step', 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'] : ['step', 'exp_avg', 'exp_avg_sq'];
  }

  protected override updateParam(param: Tensor, grad: Tensor, state: OptimizerState, group: ParamGroup<AdamHyperparams>): void {
    const { lr, eps, weightDecay, amsgrad, maximize } = group;
    const [beta1, beta2] = group.betas;
    if (state.step === undefined) {
      const zeros = () => full(param.shape, 0, { dtype: param.dtype, backend: param.backend });
      state.step = 0;
      state.exp_avg = zeros();
      state.exp_avg_sq = zeros();
      if (amsgrad) state.max_exp_avg_sq = zeros();
    }
    const step = (state.step as number) + 1;
    state.step = step;
    const expAvg = state.exp_avg as Tensor;
    const expAvgSq = state.exp_avg_sq as Tensor;
    if (amsgrad) state.max_exp_avg_sq ??= full(param.shape, 0, { dtype: param.dtype, backend: param.backend });

    // One fused kernel per parameter when the layouts allow (the composite below is its oracle).
    const fusable = [param, grad, expAvg, expAvgSq, ...(amsgrad ? [state.max_exp_avg_sq as Tensor] : [])].every(
      (t) => t.dtype === 'float32' && t.isContiguous,
    );
    if (fusable) {
      adamStep_(param, grad, expAvg, expAvgSq, amsgrad ? (state.max_exp_avg_sq as Tensor) : null, {
        lr,
        beta1,
        beta2,
        eps,
        weightDecay,
        decoupled: this.decoupledWeightDecay,
        maximize,
        biasCorrection1: 1 - beta1 ** step,
        biasCorrection2: 1 - beta2 ** step,
      });
      return;
    }

    let g = maximize ? grad.neg() : grad;
    let base = param; // the parameter value the update starts from
    if (weightDecay !== 0) {
      if (this.decoupledWeightDecay) base = param.mulScalar(1 - lr * weightDecay);
      else g = g.add(param.mulScalar(weightDecay));
    }
    // m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
    expAvg.copy_(expAvg.mulScalar(beta1).add(g.mulScalar(1 - beta1)));
    expAvgSq.copy_(expAvgSq.mulScalar(beta2).add(g.square().mulScalar(1 - beta2)));

    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const stepSize = lr / biasCorrection1;
    const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);
    let second = expAvgSq;
    if (amsgrad) {
      const maxSq = state.max_exp_avg_sq as Tensor;
      maxSq.copy_(maxSq.maximum(expAvgSq));
      second = maxSq;
    }
    // denom = sqrt(v) / sqrt(bc2) + eps;  p = p - step_size * m / denom
    const denom = unary('affine', second.sqrt(), 1 / biasCorrection2Sqrt, eps);
    param.copy_(base.sub(expAvg.div(denom).mulScalar(stepSize)));
  }
}

/**
 * AdamW (torch.optim.AdamW): Adam with decoupled weight decay, p *= 1 - lr * weightDecay before the
 * Adam update. Defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 1e-2, amsgrad false.
 */
export class AdamW extends Adam {
  constructor(params: ParamsInput<AdamHyperparams>, options: AdamOptions = {}) {
    super(params, { ...ADAMW_DEFAULTS, betas: [...ADAMW_DEFAULTS.betas], ...options });
  }

  protected override get decoupledWeightDecay(): boolean {
    return true;
  }
}
