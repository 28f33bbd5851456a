// Deterministic host-side test inputs, so every backend sees the same values.

import type { Backend } from '../backend.js';
import { hostArrayFor, type AnyHostArray, type DType } from '../dtype.js';
import { fromHost } from '../ops/creation.js';
import type { Tensor } from '../tensor.js';

/** mulberry32: a tiny seeded PRNG for test data (not the library's Philox generator). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface InputSpec {
  shape: number[];
  dtype?: DType;
  /** normal (default), positive (0.5..2), unit (-0.9..0.9), int [0, high), bool, or fixed values. */
  kind?: 'normal' | 'positive' | 'unit' | 'int' | 'bool' | 'distinct';
  high?: number;
  values?: number[];
  requiresGrad?: boolean;
}

export function hostInput(spec: InputSpec, seed: number): AnyHostArray {
  const size = spec.shape.reduce((n, d) => n * d, 1);
  const dtype = spec.dtype ?? (spec.kind === 'int' ? 'int32' : spec.kind === 'bool' ? 'bool' : 'float32');
  const out = hostArrayFor(dtype, size);
  if (spec.values) {
    out.set(spec.values);
    return out;
  }
  const rnd = seededRandom(seed);
  for (let i = 0; i < size; i++) {
    switch (spec.kind ?? 'normal') {
      case 'positive':
        out[i] = 0.5 + 1.5 * rnd();
        break;
      case 'unit':
        out[i] = -0.9 + 1.8 * rnd();
        break;
      case 'int':
        out[i] = Math.floor(rnd() * (spec.high ?? 10));
        break;
      case 'bool':
        out[i] = rnd() < 0.5 ? 1 : 0;
        break;
      case 'distinct':
        out[i] = i;
        break;
      default: {
        // Box-Muller from two uniforms
        const u1 = Math.max(rnd(), 1e-7);
        const u2 = rnd();
        out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      }
    }
  }
  if (spec.kind === 'distinct') {
    // a seeded shuffle of 0..n-1 scaled, so sorts and argmaxes have no ties
    for (let i = size - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      const t = out[i];
      out[i] = out[j];
      out[j] = t;
    }
    for (let i = 0; i < size; i++) out[i] = out[i] * 0.37 - size * 0.1;
  }
  return out;
}

export function makeInput(spec: InputSpec, seed: number, backend: Backend): Tensor {
  const dtype = spec.dtype ?? (spec.kind === 'int' ? 'int32' : spec.kind === 'bool' ? 'bool' : 'float32');
  const t = fromHost(hostInput(spec, seed), spec.shape, dtype, backend);
  if (spec.requiresGrad ?? (dtype === 'float32' || dtype === 'float16')) t.requiresGrad = true;
  return t;
}
