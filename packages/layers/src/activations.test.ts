import { beforeAll, describe, expect, it } from 'vitest';
import { init, tensor } from '@lm/tensor-gpu';
import { ACTIVATION_NAMES, getActivation, UnknownActivationError } from './activations.js';

const xs = [-2, -1, 0, 0.5, 1, 2];
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
// Exact GELU x * Phi(x), Phi from erf, computed in float64 (scipy.special.erf).
const GELU: Record<number, number> = {
  [-2]: -0.04550026389635842,
  [-1]: -0.15865525393145707,
  0: 0,
  0.5: 0.34573123063700656,
  1: 0.8413447460685429,
  2: 1.9544997361036416,
};

const expected: Record<string, (v: number) => number> = {
  gelu: (v) => GELU[v],
  gelu_new: geluTanh,
  gelu_fast: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  quick_gelu: (v) => v * sigmoid(1.702 * v),
  relu: (v) => Math.max(0, v),
  silu: (v) => v * sigmoid(v),
  swish: (v) => v * sigmoid(v),
  sigmoid,
  tanh: Math.tanh,
};

describe('getActivation', () => {
  beforeAll(async () => {
    await init('cpu');
  });

  it('covers exactly the reference names it documents', () => {
    expect([...ACTIVATION_NAMES]).toEqual(Object.keys(expected).sort());
  });

  for (const name of Object.keys(expected)) {
    it(`${name} matches hand-computed values`, async () => {
      const x = tensor(xs, [xs.length]);
      const y = getActivation(name)(x);
      const got = Array.from(await y.data());
      got.forEach((v, i) => expect(v).toBeCloseTo(expected[name](xs[i]), 5));
      x.dispose();
      y.dispose();
    });
  }

  it('names the unknown activation and lists the known ones', () => {
    expect(() => getActivation('gelu_10')).toThrow(UnknownActivationError);
    expect(() => getActivation('gelu_10')).toThrow(/unknown activation "gelu_10"; known: gelu, gelu_fast, .*tanh/);
    expect(() => getActivation('toString')).toThrow(UnknownActivationError);
  });
});
