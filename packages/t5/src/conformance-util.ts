// Helpers the T5 conformance runners share: case.json inputs as tensors, model outputs under the
// reference's flattened names, and `grad.*` outputs.

import { Tensor, tensor, zeros, type Backend } from '@lm/tensor-gpu';

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Inputs that are float even when every value in case.json happens to be an integer. */
const FLOAT_INPUTS = new Set(['head_mask', 'decoder_head_mask', 'cross_attn_head_mask', 'inputs_embeds', 'decoder_inputs_embeds']);

export type Nested = number | boolean | Nested[];

function flatValues(v: Nested, out: number[] = []): number[] {
  if (Array.isArray(v)) for (const x of v) flatValues(x, out);
  else out.push(Number(v));
  return out;
}

function toNumbers(v: Nested): Nested {
  return Array.isArray(v) ? v.map(toNumbers) : Number(v);
}

/** A case.json input as a tensor: int32 ids, masks and labels; float32 for float inputs. */
export function inputTensor(name: string, value: Nested, backend: Backend): Tensor {
  const isFloat = FLOAT_INPUTS.has(name) || flatValues(value).some((x) => !Number.isInteger(x));
  return tensor(toNumbers(value), { dtype: isFloat ? 'float32' : 'int32', backend });
}

/** Model outputs (nested objects and arrays of tensors) under the reference's flattened names. */
export function flattenOutputs(value: unknown, name: string, out: Map<string, Tensor>): void {
  if (value instanceof Tensor) out.set(name, value);
  else if (Array.isArray(value)) value.forEach((v, i) => flattenOutputs(v, `${name}.${i}`, out));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) flattenOutputs(v, name ? `${name}.${snake(k)}` : snake(k), out);
  }
}

/** `grad.<name>` for every requested parameter: tied parameters carry their summed gradient under every name. */
export function gradients(model: { namedParameters(): Iterable<[string, Tensor]>; stateDict(): Map<string, Tensor> }, requested: readonly string[], out: Map<string, Tensor>): void {
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

