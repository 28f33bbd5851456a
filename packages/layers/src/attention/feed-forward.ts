// The building blocks of position-wise feed-forward layers, for the families' own MLP modules (BERT's
// Intermediate/Output, T5's `T5DenseActDense` / `T5DenseGatedActDense`, ChatGLM-6B's `GLU`), which
// keep their reference names and read top to bottom beside the reference:
// - `resolveActivation` + `linearAct`: dense + activation, fused into one kernel where it can be;
// - `geglu(x)`: ChatGLM-6B's `GEGLU`, x1 * gelu(x2) over the two halves (a gated MLP is
//   `linearAct(wi_0, x, act).mul(wi_1.forward(x))`);
// - `applyChunkingToForward`: transformers `apply_chunking_to_forward` (pytorch_utils.py).

import { concat, type FusedBiasActivation, type Tensor } from '@lm/tensor-gpu';
import { getActivation, type Activation } from '../activations.js';
import type { Linear } from '../nn/linear.js';

/** An activation: a reference name (`gelu`, `gelu_new`, `relu`, `silu`, ... or `geluTanh`) or a function. */
export type ActivationSpec = string | Activation;

/** Names whose bias + activation can run as one fused kernel in Linear. */
const FUSED: Readonly<Record<string, FusedBiasActivation>> = {
  gelu: 'gelu',
  gelu_new: 'geluTanh',
  gelu_fast: 'geluTanh',
  gelu_pytorch_tanh: 'geluTanh',
  geluTanh: 'geluTanh',
  relu: 'relu',
  silu: 'silu',
  swish: 'silu',
  tanh: 'tanh',
  sigmoid: 'sigmoid',
};

/** The function for an activation spec, and its fused Linear epilogue when there is one. */
export function resolveActivation(spec: ActivationSpec): { fn: Activation; fused: FusedBiasActivation | null } {
  if (typeof spec === 'function') return { fn: spec, fused: null };
  const fused = Object.prototype.hasOwnProperty.call(FUSED, spec) ? FUSED[spec] : null;
  if (spec === 'geluTanh') return { fn: (x) => x.geluTanh(), fused };
  return { fn: getActivation(spec), fused };
}

/**
 * linear(x) followed by the activation, fused into the bias add when the activation allows it (BERT's
 * `Intermediate`, T5's `wi` + act, the gate of a GLU): pair it with `resolveActivation(config.hiddenAct)`.
 */
export function linearAct(linear: Linear, x: Tensor, act: { fn: Activation; fused: FusedBiasActivation | null }): Tensor {
  if (act.fused) return linear.forward(x, act.fused);
  const y = linear.forward(x);
  const out = act.fn(y);
  if (out !== y) y.dispose();
  return out;
}

/** ChatGLM-6B `GEGLU`: x1 * act(x2) for the two halves of the last dim (default exact gelu). */
export function geglu(x: Tensor, activation: ActivationSpec = 'gelu'): Tensor {
  const [x1, x2] = x.chunk(2, -1); // [..., d/2] each
  const a = resolveActivation(activation).fn(x2);
  const out = x1.mul(a);
  [x1, x2, a].forEach((t) => t.dispose());
  return out;
}

export class ChunkingError extends Error {
  override name = 'ChunkingError';
}

/**
 * transformers `apply_chunking_to_forward`: with chunkSize > 0, splits every input along chunkDim into
 * chunks of chunkSize, runs forwardFn on each tuple of chunks and concatenates the outputs along
 * chunkDim (same values, less peak memory); chunkSize 0 runs forwardFn once. The inputs must agree on
 * the size of chunkDim and it must be divisible by chunkSize; forwardFn must take as many arguments
 * as there are inputs (unless it is variadic).
 */
export function applyChunkingToForward(forwardFn: (...chunks: Tensor[]) => Tensor, chunkSize: number, chunkDim: number, ...inputs: Tensor[]): Tensor {
  if (inputs.length === 0) throw new ChunkingError('applyChunkingToForward: no input tensors given');
  if (forwardFn.length !== 0 && forwardFn.length !== inputs.length) {
    throw new ChunkingError(`applyChunkingToForward: forward function takes ${forwardFn.length} arguments, but ${inputs.length} input tensors are given`);
  }
  if (!(chunkSize > 0)) return forwardFn(...inputs);
  const axis = chunkDim < 0 ? chunkDim + inputs[0].rank : chunkDim;
  const size = inputs[0].shape[axis];
  for (const t of inputs) {
    if (t.shape[axis] !== size) {
      throw new ChunkingError(`applyChunkingToForward: all inputs need the same size along dim ${chunkDim}: [${inputs[0].shape.join(',')}] vs [${t.shape.join(',')}]`);
    }
  }
  if (size % chunkSize !== 0) {
    throw new ChunkingError(`applyChunkingToForward: dim ${chunkDim} of [${inputs[0].shape.join(',')}] (${size}) has to be a multiple of the chunk size ${chunkSize}`);
  }
  const pieces = inputs.map((t) => t.split(chunkSize, axis));
  const outputs = pieces[0].map((_, c) => forwardFn(...pieces.map((p) => p[c])));
  const out = concat(outputs, axis);
  for (const p of pieces) p.forEach((t) => t.dispose());
  outputs.forEach((t) => t.dispose());
  return out;
}
