// Position-wise feed-forward blocks and chunked application:
// - `MLP`: fc2(dropout(act(fc1(x)))): T5 `T5DenseActDense` (wi, wo; relu), ChatGLM-6B `GLU` (which,
//   despite its name, is this plain MLP: dense_h_to_4h, gelu (tanh form), dense_4h_to_h), Megatron
//   `MLP` (linear_fc1, linear_fc2);
// - `GatedMLP`: wo(dropout(act(wi_0 x) * wi_1 x)): T5 v1.1 `T5DenseGatedActDense` (gated-gelu = GEGLU
//   with gelu_new); `geglu(x)` is ChatGLM-6B's (unused) `GEGLU`: x1 * gelu(x2) over the two halves;
// - `applyChunkingToForward`: transformers `apply_chunking_to_forward` (pytorch_utils.py).

import { concat, dropout, type Backend, type FusedBiasActivation, type Tensor } from '@lm/tensor-gpu';
import { getActivation, type Activation } from '../activations.js';
import { Module } from '../module.js';
import { Linear } from '../nn/linear.js';

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

/** linear(x) followed by the activation, fused into the bias add when possible. */
function linearAct(linear: Linear, x: Tensor, act: { fn: Activation; fused: FusedBiasActivation | null }): Tensor {
  if (act.fused) return linear.forward(x, act.fused);
  const y = linear.forward(x);
  const out = act.fn(y);
  if (out !== y) y.dispose();
  return out;
}

export interface MLPOptions {
  /** Default 'gelu' (exact). */
  activation?: ActivationSpec;
  /** Biases on both projections; default true (T5: false). */
  bias?: boolean;
  /** Dropout between the activation and the second projection while training (T5's `dropout`). */
  dropout?: number;
  /** Output width; default inFeatures. */
  outFeatures?: number;
  /** Submodule names (T5: wi/wo; ChatGLM: dense_h_to_4h/dense_4h_to_h; Megatron: linear_fc1/linear_fc2). */
  names?: { fc1?: string; fc2?: string };
  backend?: Backend;
}

export class MLP extends Module {
  fc1: Linear;
  fc2: Linear;
  readonly dropoutP: number;
  readonly activation: { fn: Activation; fused: FusedBiasActivation | null };

  constructor(inFeatures: number, hiddenFeatures: number, options: MLPOptions = {}) {
    super();
    const bias = options.bias ?? true;
    const names = { fc1: 'fc1', fc2: 'fc2', ...options.names };
    this.activation = resolveActivation(options.activation ?? 'gelu');
    this.dropoutP = options.dropout ?? 0;
    this.fc1 = this.registerModule(names.fc1, new Linear(inFeatures, hiddenFeatures, { bias, backend: options.backend }));
    this.fc2 = this.registerModule(names.fc2, new Linear(hiddenFeatures, options.outFeatures ?? inFeatures, { bias, backend: options.backend }));
  }

  /** [..., in] -> [..., out] */
  forward(x: Tensor): Tensor {
    const h = linearAct(this.fc1, x, this.activation); // [..., hidden]
    const d = this.dropoutP > 0 && this.training ? dropout(h, this.dropoutP, true) : h;
    const out = this.fc2.forward(d);
    if (d !== h) d.dispose();
    h.dispose();
    return out;
  }
}

export interface GatedMLPOptions extends Omit<MLPOptions, 'names'> {
  /** Submodule names; default T5's wi_0 (gate, activated), wi_1 (linear), wo. */
  names?: { gate?: string; up?: string; down?: string };
}

/** wo(dropout(act(wi_0 x) * wi_1 x)): T5 v1.1 gated-gelu (activation 'gelu_new'), GEGLU/SwiGLU in general. */
export class GatedMLP extends Module {
  gate: Linear;
  up: Linear;
  down: Linear;
  readonly dropoutP: number;
  readonly activation: { fn: Activation; fused: FusedBiasActivation | null };

  constructor(inFeatures: number, hiddenFeatures: number, options: GatedMLPOptions = {}) {
    super();
    const bias = options.bias ?? true;
    const names = { gate: 'wi_0', up: 'wi_1', down: 'wo', ...options.names };
    this.activation = resolveActivation(options.activation ?? 'gelu_new');
    this.dropoutP = options.dropout ?? 0;
    this.gate = this.registerModule(names.gate, new Linear(inFeatures, hiddenFeatures, { bias, backend: options.backend }));
    this.up = this.registerModule(names.up, new Linear(inFeatures, hiddenFeatures, { bias, backend: options.backend }));
    this.down = this.registerModule(names.down, new Linear(hiddenFeatures, options.outFeatures ?? inFeatures, { bias, backend: options.backend }));
  }

  /** [..., in] -> [..., out] */
  forward(x: Tensor): Tensor {
    const g = linearAct(this.gate, x, this.activation); // [..., hidden]
    const u = this.up.forward(x); // [..., hidden]
    const h = g.mul(u);
    const d = this.dropoutP > 0 && this.training ? dropout(h, this.dropoutP, true) : h;
    const out = this.down.forward(d);
    if (d !== h) d.dispose();
    [g, u, h].forEach((t) => t.dispose());
    return out;
  }
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
