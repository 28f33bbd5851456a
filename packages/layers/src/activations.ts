// The activation registry: the reference's `ACT2FN` names (transformers/activations.py) mapped to
// @lm/tensor-gpu Tensor ops, so a config's `hidden_act` string picks the same function here.

import type { Tensor } from '@lm/tensor-gpu';

export type Activation = (x: Tensor) => Tensor;

const ACTIVATIONS: Readonly<Record<string, Activation>> = {
  /** Exact GELU, x * Phi(x) with erf (torch `nn.GELU()`). */
  gelu: (x) => x.gelu(),
  /** The tanh approximation of GELU: GPT-2/BERT "gelu_new", "gelu_fast", torch `approximate="tanh"`. */
  gelu_new: (x) => x.geluTanh(),
  gelu_fast: (x) => x.geluTanh(),
  gelu_pytorch_tanh: (x) => x.geluTanh(),
  /** x * sigmoid(1.702 x) (CLIP's QuickGELU). */
  quick_gelu: (x) => x.mul(x.mulScalar(1.702).sigmoid()),
  relu: (x) => x.relu(),
  silu: (x) => x.silu(),
  swish: (x) => x.silu(),
  sigmoid: (x) => x.sigmoid(),
  tanh: (x) => x.tanh(),
};

/** Names `getActivation` accepts, sorted. */
export const ACTIVATION_NAMES: readonly string[] = Object.keys(ACTIVATIONS).sort();

export class UnknownActivationError extends Error {
  override name = 'UnknownActivationError';
  constructor(readonly activation: string) {
    super(`getActivation: unknown activation "${activation}"; known: ${ACTIVATION_NAMES.join(', ')}`);
  }
}

/** The function for a reference activation name (`hidden_act`, `dense_act_fn`, ...). */
export function getActivation(name: string): Activation {
  const fn = Object.prototype.hasOwnProperty.call(ACTIVATIONS, name) ? ACTIVATIONS[name] : undefined;
  if (!fn) throw new UnknownActivationError(name);
  return fn;
}
