// The gradient rules of the elementwise math rows (../elementwise-math.ts), one per op, keyed by the
// same names: the typed tables make a new math row without a rule here a compile error. They live in
// the ops layer because they are written in ops; the backends never load them.
// At a kink each rule takes PyTorch's value (tools/autograd/derivatives.yaml and its kernels):
// abs'(0) = sgn(0) = 0; relu'(0) = 0 (threshold_backward); clamp passes the gradient on
// min <= x <= max inclusive (clamp_backward); leaky_relu'(0) = slope (x > 0 ? g : g * slope);
// maximum/minimum split a tie's gradient evenly between the two inputs.

import { record } from '../autograd.js';
import { GELU_TANH_K, INV_SQRT_2, INV_SQRT_2PI, SQRT_2_OVER_PI, type BinaryOpName, type UnaryOpName } from '../elementwise-math.js';
import { promoteTypes } from '../dtype.js';
import { shapesEqual } from '../layout.js';
import type { Tensor } from '../tensor.js';
import { empty } from './util.js';

/** d(loss)/dx given g = d(loss)/dy, the input x, the output y and the row's scalar params. */
export type UnaryGrad = (g: Tensor, x: Tensor, y: Tensor, p0: number, p1: number) => Tensor;
/** Gradients w.r.t. a and b at the broadcast shape; the ops layer sums them back to each input's shape. */
export type BinaryGrad = (g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor | null, Tensor | null];

export const UNARY_GRAD: { readonly [K in UnaryOpName]: UnaryGrad | null } = {
  neg: (g) => g.neg(),
  abs: (g, x) => g.mul(x.sign()),
  sign: null,
  exp: (g, _x, y) => g.mul(y),
  log: (g, x) => g.div(x),
  log1p: (g, x) => g.div(x.addScalar(1)),
  expm1: (g, _x, y) => g.mul(y.addScalar(1)),
  sqrt: (g, _x, y) => g.div(y.mulScalar(2)),
  rsqrt: (g, _x, y) => g.mul(y.pow(3)).mulScalar(-0.5),
  square: (g, x) => g.mul(x).mulScalar(2),
  reciprocal: (g, _x, y) => g.mul(y.square()).neg(),
  sin: (g, x) => g.mul(x.cos()),
  cos: (g, x) => g.mul(x.sin()).neg(),
  tanh: (g, _x, y) => g.mul(y.square().neg().addScalar(1)),
  sigmoid: (g, _x, y) => g.mul(y.mul(y.neg().addScalar(1))),
  relu: (g, x) => g.mul(x.gtScalar(0)),
  erf: (g, x) => g.mul(x.square().neg().exp().mulScalar(2 / Math.sqrt(Math.PI))),
  gelu: (g, x) => geluBackward(g, x, 'none'),
  geluTanh: (g, x) => geluBackward(g, x, 'tanh'),
  silu: (g, x) => siluBackward(g, x),
  softplus: (g, x) => g.mul(x.sigmoid()),
  floor: null,
  ceil: null,
  round: null,
  affine: (g, _x, _y, p0) => g.mulScalar(p0),
  powScalar: (g, x, _y, p0) => g.mul(x.pow(p0 - 1)).mulScalar(p0),
  rpowScalar: (g, _x, y, p0) => g.mul(y).mulScalar(Math.log(p0)),
  clamp: (g, x, _y, p0, p1) => g.mul(x.geScalar(p0).logicalAnd(x.leScalar(p1))),
  leakyRelu: (g, x, _y, p0) => g.mul(x.gtScalar(0).toFloat().mulScalar(1 - p0).addScalar(p0)),
  eqScalar: null,
  neScalar: null,
  ltScalar: null,
  leScalar: null,
  gtScalar: null,
  geScalar: null,
  logicalNot: null,
  isNan: null,
};

export const BINARY_GRAD: { readonly [K in BinaryOpName]: BinaryGrad | null } = {
  add: (g) => [g, g],
  sub: (g) => [g, g.neg()],
  mul: (g, a, b) => [g.mul(b), g.mul(a)],
  div: (g, a, b) => [g.div(b), g.mul(a).div(b.square()).neg()],
  pow: (g, a, b, y) => [g.mul(b).mul(a.pow(b.subScalar(1))), g.mul(y).mul(a.log())],
  maximum: (g, a, b) => splitBetween(g, a.gt(b), a.eq(b)),
  minimum: (g, a, b) => splitBetween(g, a.lt(b), a.eq(b)),
  eq: null,
  ne: null,
  lt: null,
  le: null,
  gt: null,
  ge: null,
  logicalAnd: null,
  logicalOr: null,
};

/** g to the first input where it was picked, to the second where not, half to each on a tie. */
function splitBetween(g: Tensor, firstPicked: Tensor, tie: Tensor): [Tensor, Tensor] {
  const share = firstPicked.cast(g.dtype).add(tie.cast(g.dtype).mulScalar(0.5));
  return [g.mul(share), g.mul(share.neg().addScalar(1))];
}

/** gelu'(x) for the exact GELU: Phi(x) + x phi(x), composed from ops (the oracle of the fused row). */
function geluDerivative(x: Tensor): Tensor {
  const cdf = x.mulScalar(INV_SQRT_2).erf().addScalar(1).mulScalar(0.5);
  const pdf = x.square().mulScalar(-0.5).exp().mulScalar(INV_SQRT_2PI);
  return cdf.add(x.mul(pdf));
}

/** gelu'(x) for the tanh GELU: with u = c (x + k x^3), t = tanh(u): (1 + t) / 2 + x (1 - t^2) u' / 2. */
function geluTanhDerivative(x: Tensor): Tensor {
  const t = x.add(x.pow(3).mulScalar(GELU_TANH_K)).mulScalar(SQRT_2_OVER_PI).tanh();
  const du = x.square().mulScalar(3 * GELU_TANH_K).addScalar(1).mulScalar(SQRT_2_OVER_PI);
  return t.addScalar(1).mulScalar(0.5).add(x.mul(t.square().neg().addScalar(1)).mul(du).mulScalar(0.5));
}

/** gelu''(x): phi(x) (2 - x^2) exactly; for tanh, (1 - t^2) (u' - x t u'^2 + x u'' / 2), u'' = 6 c k x. */
function geluSecondDerivative(x: Tensor, approximate: 'none' | 'tanh'): Tensor {
  if (approximate === 'none') {
    const x2 = x.square();
    return x2.mulScalar(-0.5).exp().mulScalar(INV_SQRT_2PI).mul(x2.neg().addScalar(2));
  }
  const t = x.add(x.pow(3).mulScalar(GELU_TANH_K)).mulScalar(SQRT_2_OVER_PI).tanh();
  const du = x.square().mulScalar(3 * GELU_TANH_K).addScalar(1).mulScalar(SQRT_2_OVER_PI);
  const sech2 = t.square().neg().addScalar(1);
  return sech2.mul(du.sub(x.mul(t).mul(du.square())).add(x.square().mulScalar(3 * SQRT_2_OVER_PI * GELU_TANH_K)));
}

/** silu'(x) = s (1 + x (1 - s)), s = sigmoid(x), as a composite. */
function siluDerivative(x: Tensor): Tensor {
  const s = x.sigmoid();
  return s.mul(x.mul(s.neg().addScalar(1)).addScalar(1));
}

/** silu''(x) = s (1 - s) (2 + x (1 - 2 s)). */
function siluSecondDerivative(x: Tensor): Tensor {
  const s = x.sigmoid();
  return s.mul(s.neg().addScalar(1)).mul(x.mul(s.mulScalar(-2).addScalar(1)).addScalar(2));
}

/**
 * g * silu'(x): one pass through the backend's fused kernel when it has one (the composite is 7
 * elementwise kernels), else the composite; differentiable either way.
 */
export function siluBackward(g: Tensor, x: Tensor): Tensor {
  const kernel = x.backend.fused.siluBackward;
  if (!kernel || !shapesEqual(g.shape, x.shape)) return g.mul(siluDerivative(x));
  const promoted = promoteTypes(g.dtype, x.dtype);
  const out = empty(x.backend, promoted === 'float16' ? 'float16' : 'float32', x.shape);
  kernel(g, x, out);
  return record('siluBackward', out, [g, x], [g, x], ([gg], [gs, xs]) => [siluBackward(gg!, xs), gg!.mul(gs).mul(siluSecondDerivative(xs))]);
}

/**
 * g * gelu'(x): one pass through the backend's fused kernel when it has one (the composite is 6-8
 * elementwise kernels over the [batch, seq, 4 * hidden] MLP activations), else the composite. Both are
 * differentiable, so double backward works either way.
 */
export function geluBackward(g: Tensor, x: Tensor, approximate: 'none' | 'tanh'): Tensor {
  const kernel = x.backend.fused.geluBackward;
  if (!kernel || !shapesEqual(g.shape, x.shape)) return g.mul(approximate === 'none' ? geluDerivative(x) : geluTanhDerivative(x));
  const promoted = promoteTypes(g.dtype, x.dtype);
  const out = empty(x.backend, promoted === 'float16' ? 'float16' : 'float32', x.shape);
  kernel(g, x, out, approximate);
  return record('geluBackward', out, [g, x], [g, x], ([gg], [gs, xs]) => [geluBackward(gg!, xs, approximate), gg!.mul(gs).mul(geluSecondDerivative(xs, approximate))]);
}
