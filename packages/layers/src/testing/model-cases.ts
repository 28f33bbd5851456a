// Model cases for the conformance runner: the pieces every model family's class runner needs to turn a
// case (../shared/fixtures/README.md) into forward options and the model's outputs into the reference's
// flattened names. Inputs from case.json become int32 tensors (ids, masks, labels, positions) unless a
// value is fractional; outputs are walked through objects (camelCase keys -> snake_case) and arrays
// (-> `.0`, `.1`, ...); `grad.<name>` reads a parameter's gradient (zeros when it got none).

import { tensor, Tensor, zeros, type Backend } from '@lm/tensor-gpu';
import type { Module } from '../module.js';

export type NestedNumbers = number | boolean | NestedNumbers[];

/** snake_case -> camelCase (`input_ids` -> `inputIds`, `past_key_values` -> `pastKeyValues`). */
export const camelCase = (s: string): string => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
/** camelCase -> snake_case (`lastHiddenState` -> `last_hidden_state`). */
export const snakeCase = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function flatValues(v: NestedNumbers, out: number[] = []): number[] {
  if (Array.isArray(v)) for (const x of v) flatValues(x, out);
  else out.push(Number(v));
  return out;
}

/** A case.json input as a tensor: int32 unless `float` is set or a value is fractional. */
export function caseInputTensor(value: NestedNumbers, backend: Backend, options: { float?: boolean } = {}): Tensor {
  const isFloat = options.float === true || flatValues(value).some((x) => !Number.isInteger(x));
  const toNumbers = (v: NestedNumbers): NestedNumbers => (Array.isArray(v) ? v.map(toNumbers) : Number(v));
  return tensor(toNumbers(value), { dtype: isFloat ? 'float32' : 'int32', backend });
}

/** Model outputs (plain objects and arrays of tensors) under the reference's flattened names; nulls are skipped. */
export function flattenModelOutputs(value: unknown, name: string, out: Map<string, Tensor> = new Map()): Map<string, Tensor> {
  if (value instanceof Tensor) out.set(name, value);
  else if (Array.isArray(value)) value.forEach((v, i) => flattenModelOutputs(v, name ? `${name}.${i}` : String(i), out));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) flattenModelOutputs(v, name ? `${name}.${snakeCase(k)}` : snakeCase(k), out);
  }
  return out;
}

/** `grad.<name>` for every requested output of that form: the parameter's gradient (tied ones under any of their names), zeros when it got none. */
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
