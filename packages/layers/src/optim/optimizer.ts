// The optimizer base: parameter groups with per-group hyperparameters, lazily created per-parameter
// state, a synchronous step() that updates parameters in place (Tensor.copy_ under noGrad, so a
// parameter keeps its identity), and state dicts that let a run resume exactly.
// Mirrors torch/optim/optimizer.py (param_groups, state, state_dict, load_state_dict).

import { Tensor, fromHost, full, keep, noGrad, scope } from '@lm/tensor-gpu';

/** Hyperparameters every optimizer has; subclasses add their own (betas, momentum, ...). */
export interface Hyperparams {
  lr: number;
}

/** A group of parameters sharing hyperparameters (torch's param_groups entries). */
export type ParamGroup<H extends Hyperparams> = H & { params: Tensor[] };

/** A group as given to a constructor: params plus any hyperparameters that override the defaults. */
export type ParamGroupInput<H extends Hyperparams> = Partial<H> & { params: Tensor | Iterable<Tensor> };

/** What optimizer constructors take: parameters (one group) or a list of groups. */
export type ParamsInput<H extends Hyperparams> = Iterable<Tensor> | readonly ParamGroupInput<H>[];

/** One parameter's state: tensors shaped like the parameter, and numbers such as `step`. */
export type OptimizerState = Record<string, Tensor | number>;

/**
 * An optimizer's state dict. Params are named by their index in order of appearance across groups
 * (as torch does), so the dict does not depend on tensor identity and loads into a fresh optimizer.
 */
export interface OptimizerStateDict<H extends Hyperparams = Hyperparams> {
  state: Map<number, OptimizerState>;
  paramGroups: (H & { params: number[] })[];
}

/** Invalid hyperparameters, parameters, or a state dict that does not fit the optimizer. */
export class OptimizerError extends Error {
  override name = 'OptimizerError';
}

function copyValue<T>(v: T): T {
  return (Array.isArray(v) ? [...v] : v) as T;
}

function copyHyperparams<H extends Hyperparams>(h: H): H {
  const out: Record<string, unknown> = {};
  // undefined means "not set" (an optional field spread into a group), so the default applies.
  for (const [k, v] of Object.entries(h)) if (k !== 'params' && v !== undefined) out[k] = copyValue(v);
  return out as H;
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * Base class of AdamW, Adam and SGD (torch.optim.Optimizer). Subclasses implement `updateParam`,
 * which runs under noGrad inside a scope per parameter, so its temporaries never leak; state tensors
 * it creates are kept alive by the optimizer until `dispose()`.
 */
export abstract class Optimizer<H extends Hyperparams> {
  /** Hyperparameters a group gets when it does not set them. */
  readonly defaults: H;
  /** The groups; change `lr` (or any hyperparameter) here between steps, as LRScheduler does. */
  readonly paramGroups: ParamGroup<H>[] = [];
  /** Per-parameter state, created on a parameter's first update. */
  readonly state = new Map<Tensor, OptimizerState>();

  constructor(params: ParamsInput<H>, defaults: H) {
    this.defaults = copyHyperparams(defaults);
    const list = [...(params as Iterable<Tensor | ParamGroupInput<H>>)];
    if (list.length === 0) throw new OptimizerError(`${this.constructor.name}: got an empty parameter list`);
    const groups = list[0] instanceof Tensor ? [{ params: list as Tensor[] } as unknown as ParamGroupInput<H>] : (list as ParamGroupInput<H>[]);
    for (const g of groups) this.addParamGroup(g);
  }

  /** Adds a group (torch's add_param_group): missing hyperparameters come from the defaults. */
  addParamGroup(group: ParamGroupInput<H>): void {
    const name = this.constructor.name;
    const index = this.paramGroups.length;
    if (group instanceof Tensor || !group || typeof group !== 'object' || !('params' in group)) {
      throw new OptimizerError(`${name}: param group ${index} must be an object with a 'params' list`);
    }
    const params = group.params instanceof Tensor ? [group.params] : [...group.params];
    const seen = new Set<Tensor>();
    for (const g of this.paramGroups) for (const p of g.params) seen.add(p);
    params.forEach((p, i) => {
      if (!(p instanceof Tensor)) throw new OptimizerError(`${name}: param group ${index}, entry ${i} is not a Tensor`);
      if (!p.isLeaf) throw new OptimizerError(`${name}: param group ${index}, entry ${i} [${p.shape.join(',')}] is not a leaf tensor (detach() it first)`);
      if (p.disposed) throw new OptimizerError(`${name}: param group ${index}, entry ${i} [${p.shape.join(',')}] was disposed`);
      if (seen.has(p)) throw new OptimizerError(`${name}: some parameters appear more than once (param group ${index}, entry ${i})`);
      seen.add(p);
    });
    const filled = { ...copyHyperparams(this.defaults), ...copyHyperparams(group as unknown as H), params } as ParamGroup<H>;
    this.validateHyperparams(filled, `param group ${index}`);
    this.paramGroups.push(filled);
  }

  /** Throws an OptimizerError if a group's hyperparameters are out of range. */
  protected abstract validateHyperparams(group: H, where: string): void;

  /** State keys a parameter's state must have once it exists (checked by loadStateDict). */
  protected abstract requiredStateKeys(group: H): readonly string[];

  /**
   * Updates one parameter from its gradient. Runs under noGrad inside a scope; must write the new
   * values with `param.copy_()` and keep tensor state current in `state` (creating it when empty).
   */
  protected abstract updateParam(param: Tensor, grad: Tensor, state: OptimizerState, group: ParamGroup<H>): void;

  /** One optimization step over every parameter whose `.grad` is set; others are skipped. */
  step(): void {
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        const grad = p.grad;
        if (grad === null) continue;
        const s = this.state.get(p) ?? {};
        scope(() =>
          noGrad(() => {
            this.updateParam(p, grad, s, group);
            for (const v of Object.values(s)) if (v instanceof Tensor) keep(v);
          }),
        );
        // Optimizers without state (SGD without momentum) leave no entry, as in torch.
        if (!this.state.has(p) && Object.keys(s).length > 0) this.state.set(p, s);
      }
    }
  }

  /** Disposes every parameter's `.grad` and sets it to null (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.zeroGrad();
  }

  /**
   * The state dict. Its tensors are the optimizer's live state (no copies, as in torch): step()
   * updates them in place, so serialize them (or load them elsewhere) before the next step, and do not
   * dispose them.
   */
  stateDict(): OptimizerStateDict<H> {
    const index = new Map<Tensor, number>();
    const paramGroups = this.paramGroups.map((g) => ({
      ...copyHyperparams(g as H),
      params: g.params.map((p) => {
        if (!index.has(p)) index.set(p, index.size);
        return index.get(p)!;
      }),
    }));
    const state = new Map<number, OptimizerState>();
    for (const [p, i] of index) {
      const s = this.state.get(p);
      if (s) state.set(i, { ...s });
    }
    return { state, paramGroups };
  }

  /**
   * Loads a state dict (from stateDict(), here or in another process). Hyperparameters come from the
   * dict; tensors are copied (cast to the parameter's dtype; cpu tensors are uploaded to the
   * parameter's backend), so the caller keeps ownership of the dict. Everything is validated before
   * anything changes.
   */
  loadStateDict(sd: OptimizerStateDict<H>): void {
    const name = `${this.constructor.name}.loadStateDict`;
    if (!sd || !(sd.state instanceof Map) || !Array.isArray(sd.paramGroups)) {
      throw new OptimizerError(`${name}: expected { state: Map<number, ...>, paramGroups: [...] }`);
    }
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new OptimizerError(`${name}: the state dict has ${sd.paramGroups.length} param groups, the optimizer has ${this.paramGroups.length}`);
    }
    const byIndex = new Map<number, { param: Tensor; hyper: H }>();
    const newHyper = sd.paramGroups.map((saved, gi) => {
      const own = this.paramGroups[gi];
      if (!Array.isArray(saved.params) || saved.params.length !== own.params.length) {
        throw new OptimizerError(
          `${name}: param group ${gi} has ${Array.isArray(saved.params) ? saved.params.length : 'no'} params in the state dict, ${own.params.length} in the optimizer`,
        );
      }
      const hyper = { ...copyHyperparams(own as H), ...copyHyperparams(saved as unknown as H) };
      this.validateHyperparams(hyper, `loadStateDict: param group ${gi}`);
      saved.params.forEach((id, k) => {
        if (!Number.isInteger(id) || byIndex.has(id)) throw new OptimizerError(`${name}: param group ${gi} lists param index ${id} twice or not as an integer`);
        byIndex.set(id, { param: own.params[k], hyper });
      });
      return hyper;
    });

    for (const [id, rec] of sd.state) {
      const entry = byIndex.get(id);
      if (!entry) throw new OptimizerError(`${name}: the state dict has state for param ${id}, which no param group lists`);
      const { param, hyper } = entry;
      for (const key of this.requiredStateKeys(hyper)) {
        if (!(key in rec)) throw new OptimizerError(`${name}: state of param ${id} [${param.shape.join(',')}] lacks '${key}'`);
      }
      for (const [key, v] of Object.entries(rec)) {
        if (typeof v === 'number') {
          if (!Number.isFinite(v)) throw new OptimizerError(`${name}: state of param ${id}: '${key}' is ${v}`);
          continue;
        }
        if (!(v instanceof Tensor)) throw new OptimizerError(`${name}: state of param ${id}: '${key}' is neither a Tensor nor a number`);
        if (v.disposed) throw new OptimizerError(`${name}: state of param ${id}: '${key}' was disposed`);
        if (v.shape.length !== param.shape.length || v.shape.some((d, i) => d !== param.shape[i])) {
          throw new OptimizerError(`${name}: state of param ${id} ('${key}'): expected shape ${fmt(param.shape)} (the param's), got ${fmt(v.shape)}`);
        }
        if (v.backend !== param.backend && !v.backend.readSync) {
          throw new OptimizerError(
            `${name}: state of param ${id} ('${key}') lives on ${v.backend.name}, the param on ${param.backend.name}; move it first (await t.to(backend))`,
          );
        }
      }
    }

    // Validated: copy the new state, then release the old (the dict may hold the old tensors).
    const newState = new Map<Tensor, OptimizerState>();
    noGrad(() => {
      for (const [id, rec] of sd.state) {
        const { param } = byIndex.get(id)!;
        const out: OptimizerState = {};
        for (const [key, v] of Object.entries(rec)) {
          if (typeof v === 'number') {
            out[key] = v;
            continue;
          }
          const dest = keep(full(param.shape, 0, { dtype: param.dtype, backend: param.backend }));
          if (v.backend === param.backend) dest.copy_(v);
          else {
            const tmp = fromHost(v.dataSync(), v.shape, v.dtype, param.backend);
            dest.copy_(tmp);
            tmp.dispose();
          }
          out[key] = dest;
        }
        newState.set(param, out);
      }
    });
    this.disposeState();
    for (const [p, s] of newState) this.state.set(p, s);
    this.paramGroups.forEach((g, gi) => {
      for (const k of Object.keys(g)) if (k !== 'params') delete (g as unknown as Record<string, unknown>)[k];
      Object.assign(g, newHyper[gi]);
    });
  }

  /** Frees every state tensor; the optimizer can still step (state starts over). */
  dispose(): void {
    this.disposeState();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private disposeState(): void {
    for (const s of this.state.values()) for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
    this.state.clear();
  }
}

/** A new tensor with t's values on t's backend (never a view of t). */
export function cloneTensor(t: Tensor): Tensor {
  return full(t.shape, 0, { dtype: t.dtype, backend: t.backend }).copy_(t);
}

/** Checks that a hyperparameter is a number >= min (and < max when given). */
export function checkRange(optimizer: string, where: string, name: string, value: unknown, min: number, max = Infinity, maxInclusive = false): void {
  const ok = typeof value === 'number' && value >= min && (maxInclusive ? value <= max : value < max);
  if (!ok) {
    const range = max === Infinity ? `>= ${min}` : `in [${min}, ${max}${maxInclusive ? ']' : ')'}`;
    throw new OptimizerError(`${optimizer}: ${where}: ${name} must be a number ${range}, got ${String(value)}`);
  }
}
