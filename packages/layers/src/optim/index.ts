// Optimizers and training helpers: AdamW/Adam/SGD, global-norm gradient clipping, LR schedules.

export {
  Optimizer,
  OptimizerError,
  type Hyperparams,
  type OptimizerState,
  type OptimizerStateDict,
  type ParamGroup,
  type ParamGroupInput,
  type ParamsInput,
} from './optimizer.js';
export { Adam, AdamW, ADAM_DEFAULTS, ADAMW_DEFAULTS, type AdamHyperparams, type AdamOptions } from './adam.js';
export { SGD, SGD_DEFAULTS, type SGDHyperparams, type SGDOptions } from './sgd.js';
export { clipGradNorm } from './clip-grad-norm.js';
export {
  LRScheduler,
  linearWarmupConstant,
  linearWarmupLinearDecay,
  linearWarmupCosineDecay,
  type LrLambda,
  type LRSchedulerStateDict,
} from './lr-scheduler.js';
export { DynamicLossScaler, Float16MainParams, type LossScalerOptions, type LossScalerState } from './mixed-precision.js';
