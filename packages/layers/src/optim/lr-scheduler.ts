// Learning-rate schedules: pure multiplier functions of the step (Hugging Face's
// transformers/optimization.py get_*_schedule_with_warmup lambdas) and LRScheduler, which applies one
// to an optimizer's groups with torch.optim.lr_scheduler.LambdaLR semantics: lr = baseLr * lambda(step).

import type { Hyperparams, Optimizer } from './optimizer.js';
import { OptimizerError } from './optimizer.js';

/** A learning-rate multiplier as a function of the number of scheduler steps taken. */
export type LrLambda = (step: number) => number;

function checkSteps(fn: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new OptimizerError(`${fn}: ${name} must be an integer >= 0, got ${v}`);
}

/** 0 → 1 linearly over `warmupSteps`, then 1 (HF get_constant_schedule_with_warmup). */
export function linearWarmupConstant(warmupSteps: number): LrLambda {
  checkSteps('linearWarmupConstant', 'warmupSteps', warmupSteps);
  return (step) => (step < warmupSteps ? step / Math.max(1, warmupSteps) : 1);
}

/**
 * 0 → 1 linearly over `warmupSteps`, then linearly down to 0 at `totalSteps`, and 0 after
 * (HF get_linear_schedule_with_warmup).
 */
export function linearWarmupLinearDecay(warmupSteps: number, totalSteps: number): LrLambda {
  checkSteps('linearWarmupLinearDecay', 'warmupSteps', warmupSteps);
  checkSteps('linearWarmupLinearDecay', 'totalSteps', totalSteps);
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  };
}

/**
 * 0 → 1 linearly over `warmupSteps`, then a cosine from 1 down to `minLrRatio` over `numCycles`
 * cycles by `totalSteps` (0.5: a half cosine, ending at the minimum). HF
 * get_cosine_schedule_with_warmup (minLrRatio 0) and get_cosine_with_min_lr_schedule_with_warmup
 * (min_lr_rate); as there, the cosine keeps going past `totalSteps`.
 */
export function linearWarmupCosineDecay(warmupSteps: number, totalSteps: number, numCycles = 0.5, minLrRatio = 0): LrLambda {
  checkSteps('linearWarmupCosineDecay', 'warmupSteps', warmupSteps);
  checkSteps('linearWarmupCosineDecay', 'totalSteps', totalSteps);
  if (!(minLrRatio >= 0 && minLrRatio <= 1)) throw new OptimizerError(`linearWarmupCosineDecay: minLrRatio must be in [0, 1], got ${minLrRatio}`);
  if (!Number.isFinite(numCycles)) throw new OptimizerError(`linearWarmupCosineDecay: numCycles must be finite, got ${numCycles}`);
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    const factor = 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress));
    return Math.max(0, factor * (1 - minLrRatio) + minLrRatio);
  };
}

/** What LRScheduler.stateDict() returns (the lambdas themselves are code, not state). */
export interface LRSchedulerStateDict {
  lastEpoch: number;
  baseLrs: number[];
  lastLr: number[];
}

/**
 * Sets each group's lr to baseLr * lambda(lastEpoch) (torch's LambdaLR). Construction applies
 * lambda(0) (so a warmup starts at 0); call step() after each optimizer.step(). Base lrs are the
 * groups' lrs at construction. One lambda for all groups, or one per group.
 */
export class LRScheduler {
  readonly optimizer: Optimizer<Hyperparams>;
  /** Each group's lr before scheduling. */
  baseLrs: number[];
  /** Scheduler steps taken (torch's last_epoch); the lr in use is baseLr * lambda(lastEpoch). */
  lastEpoch = 0;
  private readonly lambdas: LrLambda[];
  private lastLr: number[] = [];

  constructor(optimizer: Optimizer<Hyperparams>, lrLambda: LrLambda | readonly LrLambda[]) {
    const n = optimizer.paramGroups.length;
    if (Array.isArray(lrLambda)) {
      if (lrLambda.length !== n) throw new OptimizerError(`LRScheduler: got ${lrLambda.length} lambdas for ${n} param groups`);
      this.lambdas = [...(lrLambda as readonly LrLambda[])];
    } else {
      this.lambdas = Array.from({ length: n }, () => lrLambda as LrLambda);
    }
    this.optimizer = optimizer;
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.apply();
  }

  /** Advances one step and updates the groups' lrs. */
  step(): void {
    this.lastEpoch++;
    this.apply();
  }

  /** The lrs set by the last step (or construction). */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): LRSchedulerStateDict {
    return { lastEpoch: this.lastEpoch, baseLrs: [...this.baseLrs], lastLr: [...this.lastLr] };
  }

  /** Restores the step and base lrs, and sets the groups' lrs to match. */
  loadStateDict(sd: LRSchedulerStateDict): void {
    const n = this.optimizer.paramGroups.length;
    if (!sd || !Number.isInteger(sd.lastEpoch) || sd.lastEpoch < 0) {
      throw new OptimizerError(`LRScheduler.loadStateDict: lastEpoch must be an integer >= 0, got ${sd?.lastEpoch}`);
    }
    if (!Array.isArray(sd.baseLrs) || sd.baseLrs.length !== n) {
      throw new OptimizerError(`LRScheduler.loadStateDict: the state dict has ${sd.baseLrs?.length ?? 'no'} base lrs, the optimizer has ${n} param groups`);
    }
    this.lastEpoch = sd.lastEpoch;
    this.baseLrs = [...sd.baseLrs];
    this.apply();
  }

  private apply(): void {
    const groups = this.optimizer.paramGroups;
    if (groups.length !== this.lambdas.length) {
      throw new OptimizerError(`LRScheduler: the optimizer now has ${groups.length} param groups, the scheduler ${this.lambdas.length}`);
    }
    this.lastLr = groups.map((g, i) => {
      g.lr = this.baseLrs[i] * this.lambdas[i](this.lastEpoch);
      return g.lr;
    });
  }
}
