// What every model family's conformance runner does with a forward's result: flatten the nested
// outputs to the reference's names (`hidden_states.1`, `past_key_values.0.1`) and collect `grad.<name>`
// for the parameters a case asks about.

import { Tensor, zeros } from '@lm/tensor-gpu';
import type { Module } from '../module.js';

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Model outputs (nested objects and arrays of tensors) under the reference's flattened, snake_case names. */
export function flattenOutputs(value: unknown, name: string, out: Map<string, Tensor>): void {
  if (value instanceof Tensor) out.set(name, value);
  else if (Array.isArray(value)) value.forEach((v, i) => flattenOutputs(v, `${name}.${i}`, out));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) flattenOutputs(v, name ? `${name}.${snake(k)}` : snake(k), out);
  }
}

/**
 * `grad.<name>` for every requested parameter (zeros where the parameter has no gradient: frozen, or
 * unused by the loss, which the reference reports as None or zeros); tied parameters carry their summed
 * gradient under the first name. Outputs not starting with `grad.` are skipped.
 */
export function parameterGradients(model: Module, requested: readonly string[], out: Map<string, Tensor>): void {
  const byName = new Map(model.namedParameters());
  const stateDict = model.stateDict();
  for (const output of requested) {
    if (!output.startsWith('grad.')) continue;
    const name = output.slice('grad.'.length);
    const param = byName.get(name) ?? stateDict.get(name);
    if (!param) throw new Error(`conformance: the model has no parameter '${name}'`);
    out.set(output, param.grad ? param.grad.clone() : zeros(param.shape, { backend: param.backend }));
  }
}
