// Mixed-precision training, as Megatron's Float16OptimizerWithFloat16Params and torch's GradScaler.
//
// The model computes in float16 (`model.cast('float16')`); float32 "main" copies of its weights are
// what the optimizer updates, so small updates are not lost to float16 rounding. Before backward the
// loss is multiplied by a scale, so gradients too small for float16 do not flush to zero; they are
// divided by it again in float32. A step whose gradients overflowed (inf or NaN anywhere) is skipped
// and the scale is halved; after `growthInterval` clean steps in a row it doubles.
//
//   const main = new Float16MainParams(model.parameters());     // before model.cast('float16')
//   model.cast('float16'); main.bindModel(model.parameters());
//   const optimizer = new AdamW(main.params, ...);
//   const scaler = new DynamicLossScaler();
//   loss.mulScalar(scaler.scale).backward();
//   const foundInf = await main.unscaleGrads(scaler.scale).item();   // model grads -> main grads / scale
//   if (!foundInf) { optimizer.step(); main.copyToModel(); }
//   scaler.update(Boolean(foundInf)); optimizer.zeroGrad();

import { full, keep, noGrad, scope, stack, type Tensor } from '@lm/tensor-gpu';
import { OptimizerError } from './optimizer.js';

export interface LossScalerOptions {
  /** Scale of the first step (torch: 2^16). */
  initScale?: number;
  /** Multiplies the scale after `growthInterval` steps without overflow (2). */
  growthFactor?: number;
  /** Multiplies the scale after a step that overflowed (0.5). */
  backoffFactor?: number;
  /** Clean steps in a row before the scale grows (torch: 2000; Megatron: 1000). */
  growthInterval?: number;
  /** The scale never drops below this (Megatron's min_loss_scale; default 1). */
  minScale?: number;
}

export interface LossScalerState {
  scale: number;
  growthTracker: number;
}

/** Dynamic loss scaling: the scale backs off on overflow and grows after a run of clean steps. */
export class DynamicLossScaler {
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  readonly minScale: number;
  scale: number;
  /** Clean steps since the last overflow or growth. */
  growthTracker = 0;

  constructor(options: LossScalerOptions = {}) {
    this.scale = options.initScale ?? 2 ** 16;
    this.growthFactor = options.growthFactor ?? 2;
    this.backoffFactor = options.backoffFactor ?? 0.5;
    this.growthInterval = options.growthInterval ?? 2000;
    this.minScale = options.minScale ?? 1;
    const bad: string[] = [];
    if (!(this.scale > 0 && Number.isFinite(this.scale))) bad.push(`initScale must be a finite number > 0, got ${this.scale}`);
    if (!(this.growthFactor > 1)) bad.push(`growthFactor must be > 1, got ${this.growthFactor}`);
    if (!(this.backoffFactor > 0 && this.backoffFactor < 1)) bad.push(`backoffFactor must be in (0, 1), got ${this.backoffFactor}`);
    if (!(Number.isInteger(this.growthInterval) && this.growthInterval >= 1)) bad.push(`growthInterval must be an integer >= 1, got ${this.growthInterval}`);
    if (!(this.minScale > 0)) bad.push(`minScale must be > 0, got ${this.minScale}`);
    if (bad.length) throw new OptimizerError(`DynamicLossScaler: ${bad.join('; ')}`);
  }

  /** After each step: `foundInf` true means the step was skipped because the gradients overflowed. */
  update(foundInf: boolean): void {
    if (foundInf) {
      this.scale = Math.max(this.minScale, this.scale * this.backoffFactor);
      this.growthTracker = 0;
      return;
    }
    this.growthTracker++;
    if (this.growthTracker === this.growthInterval) {
      this.scale *= this.growthFactor;
      this.growthTracker = 0;
    }
  }

  stateDict(): LossScalerState {
    return { scale: this.scale, growthTracker: this.growthTracker };
  }

  loadStateDict(state: LossScalerState): void {
    if (!(typeof state?.scale === 'number' && state.scale > 0) || !(Number.isInteger(state.growthTracker) && state.growthTracker >= 0)) {
      throw new OptimizerError(`DynamicLossScaler.loadStateDict: expected { scale > 0, growthTracker >= 0 integer }, got ${JSON.stringify(state)}`);
    }
    this.scale = state.scale;
    this.growthTracker = state.growthTracker;
  }
}

/**
 * float32 main copies of a model's weights. Made from the float32 model (so the main weights are the
 * exact initial or loaded values), then bound to the same parameters after `model.cast('float16')`.
 */
export class Float16MainParams {
  /** The float32 weights the optimizer updates, in the order of the model's parameters. */
  readonly params: Tensor[];
  #modelParams: Tensor[] = [];

  constructor(modelParams: Iterable<Tensor>) {
    const list = [...modelParams];
    for (const [i, p] of list.entries()) {
      if (p.dtype !== 'float32') throw new OptimizerError(`Float16MainParams: parameter ${i} [${p.shape.join(',')}] is ${p.dtype}; make the main copies before model.cast('float16')`);
    }
    this.params = list.map((p) => {
      const main = keep(noGrad(() => p.clone()));
      main.requiresGrad = true;
      return main;
    });
  }

  /** Binds the model's parameters (after the cast): the tensors whose gradients are read and whose values are refreshed. */
  bindModel(modelParams: Iterable<Tensor>): this {
    const list = [...modelParams];
    if (list.length !== this.params.length) {
      throw new OptimizerError(`Float16MainParams.bindModel: the model has ${list.length} parameters, the main copies ${this.params.length}`);
    }
    for (const [i, p] of list.entries()) {
      const main = this.params[i];
      if (p.shape.length !== main.shape.length || p.shape.some((d, k) => d !== main.shape[k])) {
        throw new OptimizerError(`Float16MainParams.bindModel: parameter ${i} is [${p.shape.join(',')}], its main copy [${main.shape.join(',')}]`);
      }
    }
    this.#modelParams = list;
    return this;
  }

  get modelParams(): readonly Tensor[] {
    return this.#modelParams;
  }

  /**
   * Moves the model's (scaled, float16) gradients into the main weights' `.grad` as float32 divided
   * by `scale`, clearing the model's. Returns a bool scalar: true when any gradient is inf or NaN
   * (the step must then be skipped). One reduction over all gradients; nothing is read back here.
   */
  unscaleGrads(scale: number): Tensor {
    this.#checkBound('unscaleGrads');
    if (!(scale > 0)) throw new OptimizerError(`Float16MainParams.unscaleGrads: scale must be > 0, got ${scale}`);
    return scope(() =>
      noGrad(() => {
        const probes: Tensor[] = [];
        for (const [i, p] of this.#modelParams.entries()) {
          const main = this.params[i];
          main.grad?.dispose();
          main.grad = null;
          if (!p.grad) continue;
          const g = keep(p.grad.cast('float32').mulScalar(1 / scale));
          main.grad = g;
          p.grad.dispose();
          p.grad = null;
          // x * 0 is 0 for every finite x and NaN for inf/NaN, so one sum finds any of them.
          probes.push(g.mulScalar(0).sum());
        }
        if (probes.length === 0) return full([], 0, { dtype: 'bool', backend: this.params[0]?.backend });
        return (probes.length === 1 ? probes[0] : stack(probes).sum()).isNan();
      }),
    );
  }

  /** Writes the main weights into the float16 model (rounded to nearest), after an optimizer step. */
  copyToModel(): void {
    this.#checkBound('copyToModel');
    noGrad(() => {
      for (const [i, p] of this.#modelParams.entries()) scope(() => p.copy_(this.params[i].cast(p.dtype)));
    });
  }

  /** Drops the model's gradients (a skipped step). */
  zeroModelGrads(): void {
    for (const p of this.#modelParams) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  dispose(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
      p.dispose();
    }
  }

  #checkBound(op: string): void {
    if (this.#modelParams.length !== this.params.length) throw new OptimizerError(`Float16MainParams.${op}: call bindModel(model.parameters()) after model.cast('float16') first`);
  }
}
