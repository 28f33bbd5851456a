// The elementwise op table: one row per op with its math for the CPU backend, its WGSL expression for
// the WebGPU backend, and its gradient. Adding an elementwise op is one row here plus one method on
// Tensor (ops/elementwise.ts exposes it). WGSL expressions see `x` (or `a`, `b`) as f32 and params
// `p0`, `p1`; helper functions they call (erf_f32, ...) live in backends/webgpu/kernels/wgsl-math.ts.

import type { Tensor } from '../tensor.js';
// Only called inside gradient rules (never while this module loads), so the import cycle is harmless.
import { binary } from './elementwise.js';

/** A fused gradient row applied to (incoming gradient, input); typed by name so the table's type does not refer to itself. */
function fusedGrad(op: 'geluBackward' | 'geluTanhBackward', g: Tensor, x: Tensor): Tensor {
  return binary(op, g, x);
}

const SQRT_2_OVER_PI = 0.7978845608028654;
const INV_SQRT_2 = 0.7071067811865476;
const INV_SQRT_2PI = 0.3989422804014327;
const GELU_TANH_K = 0.044715;

/** Abramowitz & Stegun 7.1.26 for |x| = ax >= 0: erf(ax) = 1 - erfPoly(ax) * exp(-ax^2). */
function erfPoly(ax: number): number {
  const t = 1 / (1 + 0.3275911 * ax);
  return ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
}

/** erf via Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7); the WGSL side uses the same formula. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  const y = 1 - erfPoly(ax) * Math.exp(-ax * ax);
  return x < 0 ? -y : y;
}

/**
 * gelu'(x) = Phi(x) + x phi(x). The erf above evaluated at x / sqrt(2) needs exp(-x^2 / 2), which is
 * phi(x) up to a constant, so one exp serves both (exp dominates the cost of this row).
 */
function geluGrad(x: number): number {
  const ax = Math.abs(x) * INV_SQRT_2;
  const e = Math.exp(-ax * ax);
  const erfAbs = 1 - erfPoly(ax) * e;
  return 0.5 * (1 + (x < 0 ? -erfAbs : erfAbs)) + x * e * INV_SQRT_2PI;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export type OutKind = 'same' | 'bool' | 'float';

export interface UnaryRow {
  cpu: (x: number, p0: number, p1: number) => number;
  wgsl: string;
  /** Output dtype: same as input, bool, or float (ints are promoted to float32). */
  out: OutKind;
  /** d(loss)/dx given g = d(loss)/dy; null for non-differentiable ops. */
  grad: ((g: Tensor, x: Tensor, y: Tensor, p0: number, p1: number) => Tensor) | null;
}

export const UNARY = {
  neg: { cpu: (x) => -x, wgsl: '-x', out: 'same', grad: (g) => g.neg() },
  abs: { cpu: Math.abs, wgsl: 'abs(x)', out: 'same', grad: (g, x) => g.mul(x.sign()) },
  sign: { cpu: Math.sign, wgsl: 'sign(x)', out: 'same', grad: null },
  exp: { cpu: Math.exp, wgsl: 'exp(x)', out: 'float', grad: (g, _x, y) => g.mul(y) },
  log: { cpu: Math.log, wgsl: 'log(x)', out: 'float', grad: (g, x) => g.div(x) },
  log1p: { cpu: Math.log1p, wgsl: 'log1p_f32(x)', out: 'float', grad: (g, x) => g.div(x.addScalar(1)) },
  expm1: { cpu: Math.expm1, wgsl: 'expm1_f32(x)', out: 'float', grad: (g, _x, y) => g.mul(y.addScalar(1)) },
  sqrt: { cpu: Math.sqrt, wgsl: 'sqrt(x)', out: 'float', grad: (g, _x, y) => g.div(y.mulScalar(2)) },
  rsqrt: { cpu: (x) => 1 / Math.sqrt(x), wgsl: 'inverseSqrt(x)', out: 'float', grad: (g, _x, y) => g.mul(y.pow(3)).mulScalar(-0.5) },
  square: { cpu: (x) => x * x, wgsl: 'x * x', out: 'same', grad: (g, x) => g.mul(x).mulScalar(2) },
  reciprocal: { cpu: (x) => 1 / x, wgsl: '1.0 / x', out: 'float', grad: (g, _x, y) => g.mul(y.square()).neg() },
  sin: { cpu: Math.sin, wgsl: 'sin(x)', out: 'float', grad: (g, x) => g.mul(x.cos()) },
  cos: { cpu: Math.cos, wgsl: 'cos(x)', out: 'float', grad: (g, x) => g.mul(x.sin()).neg() },
  tanh: { cpu: Math.tanh, wgsl: 'tanh_f32(x)', out: 'float', grad: (g, _x, y) => g.mul(y.square().neg().addScalar(1)) },
  sigmoid: { cpu: sigmoid, wgsl: 'sigmoid_f32(x)', out: 'float', grad: (g, _x, y) => g.mul(y.mul(y.neg().addScalar(1))) },
  relu: { cpu: (x) => (x > 0 ? x : 0), wgsl: 'max(x, 0.0)', out: 'same', grad: (g, x) => g.mul(x.gtScalar(0)) },
  erf: {
    cpu: erf,
    wgsl: 'erf_f32(x)',
    out: 'float',
    grad: (g, x) => g.mul(x.square().neg().exp().mulScalar(2 / Math.sqrt(Math.PI))),
  },
  /** Exact GELU: x * Phi(x) (Hugging Face `gelu`). Its gradient is one kernel (`geluBackward`). */
  gelu: {
    cpu: (x) => 0.5 * x * (1 + erf(x * INV_SQRT_2)),
    wgsl: '0.5 * x * (1.0 + erf_f32(x * 0.7071067811865476))',
    out: 'float',
    grad: (g, x) => fusedGrad('geluBackward', g, x),
  },
  /** Tanh-approximated GELU (`gelu_new`, `gelu_fast`, `gelu_pytorch_tanh`, ChatGLM's gelu). */
  geluTanh: {
    cpu: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_K * x * x * x))),
    wgsl: '0.5 * x * (1.0 + tanh_f32(0.7978845608028654 * (x + 0.044715 * x * x * x)))',
    out: 'float',
    grad: (g, x) => fusedGrad('geluTanhBackward', g, x),
  },
  silu: {
    cpu: (x) => x * sigmoid(x),
    wgsl: 'x * sigmoid_f32(x)',
    out: 'float',
    grad: (g, x) => {
      const s = x.sigmoid();
      return g.mul(s.mul(x.mul(s.neg().addScalar(1)).addScalar(1)));
    },
  },
  softplus: {
    cpu: (x) => (x > 20 ? x : Math.log1p(Math.exp(x))),
    wgsl: 'select(log1p_f32(exp(x)), x, x > 20.0)',
    out: 'float',
    grad: (g, x) => g.mul(x.sigmoid()),
  },
  floor: { cpu: Math.floor, wgsl: 'floor(x)', out: 'same', grad: null },
  ceil: { cpu: Math.ceil, wgsl: 'ceil(x)', out: 'same', grad: null },
  /** Round half to even, as torch.round. */
  round: {
    cpu: (x) => {
      const r = Math.round(x);
      return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
    },
    wgsl: 'round(x)',
    out: 'same',
    grad: null,
  },
  /** x * p0 + p1 (scalar add/mul/affine). */
  affine: { cpu: (x, p0, p1) => x * p0 + p1, wgsl: 'x * p0 + p1', out: 'same', grad: (g, _x, _y, p0) => g.mulScalar(p0) },
  /** x ** p0 with a scalar exponent. */
  powScalar: {
    cpu: (x, p0) => Math.pow(x, p0),
    wgsl: 'pow_f32(x, p0)',
    out: 'float',
    grad: (g, x, _y, p0) => g.mul(x.pow(p0 - 1)).mulScalar(p0),
  },
  /** p0 ** x with a scalar base. */
  rpowScalar: {
    cpu: (x, p0) => Math.pow(p0, x),
    wgsl: 'pow_f32(p0, x)',
    out: 'float',
    grad: (g, _x, y, p0) => g.mul(y).mulScalar(Math.log(p0)),
  },
  clamp: {
    cpu: (x, p0, p1) => Math.min(Math.max(x, p0), p1),
    wgsl: 'min(max(x, p0), p1)',
    out: 'same',
    grad: (g, x, _y, p0, p1) => g.mul(x.geScalar(p0).logicalAnd(x.leScalar(p1))),
  },
  leakyRelu: {
    cpu: (x, p0) => (x > 0 ? x : x * p0),
    wgsl: 'select(x * p0, x, x > 0.0)',
    out: 'same',
    grad: (g, x, _y, p0) => g.mul(x.gtScalar(0).toFloat().mulScalar(1 - p0).addScalar(p0)),
  },
  eqScalar: { cpu: (x, p0) => +(x === p0), wgsl: 'f32(x == p0)', out: 'bool', grad: null },
  neScalar: { cpu: (x, p0) => +(x !== p0), wgsl: 'f32(x != p0)', out: 'bool', grad: null },
  ltScalar: { cpu: (x, p0) => +(x < p0), wgsl: 'f32(x < p0)', out: 'bool', grad: null },
  leScalar: { cpu: (x, p0) => +(x <= p0), wgsl: 'f32(x <= p0)', out: 'bool', grad: null },
  gtScalar: { cpu: (x, p0) => +(x > p0), wgsl: 'f32(x > p0)', out: 'bool', grad: null },
  geScalar: { cpu: (x, p0) => +(x >= p0), wgsl: 'f32(x >= p0)', out: 'bool', grad: null },
  logicalNot: { cpu: (x) => +(x === 0), wgsl: 'f32(x == 0.0)', out: 'bool', grad: null },
  // `x != x` is folded to false by some shader compilers (SwiftShader): test the bits instead.
  isNan: { cpu: (x) => +Number.isNaN(x), wgsl: 'f32(is_nan_f32(x))', out: 'bool', grad: null },
} satisfies Record<string, UnaryRow>;

export type UnaryOpName = keyof typeof UNARY;

export interface BinaryRow {
  cpu: (a: number, b: number) => number;
  wgsl: string;
  /** Output dtype: the promoted input type, bool, or float. */
  out: 'promote' | 'bool' | 'float';
  /** Gradients w.r.t. a and b at the broadcast shape; the ops layer sums them back to each input's shape. */
  grad: ((g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor | null, Tensor | null]) | null;
}

const BASE_BINARY = {
  add: { cpu: (a, b) => a + b, wgsl: 'a + b', out: 'promote', grad: (g) => [g, g] },
  sub: { cpu: (a, b) => a - b, wgsl: 'a - b', out: 'promote', grad: (g) => [g, g.neg()] },
  mul: { cpu: (a, b) => a * b, wgsl: 'a * b', out: 'promote', grad: (g, a, b) => [g.mul(b), g.mul(a)] },
  div: {
    cpu: (a, b) => a / b,
    wgsl: 'a / b',
    out: 'float',
    grad: (g, a, b) => [g.div(b), g.mul(a).div(b.square()).neg()],
  },
  pow: {
    cpu: Math.pow,
    wgsl: 'pow_f32(a, b)',
    out: 'float',
    grad: (g, a, b, y) => [g.mul(b).mul(a.pow(b.subScalar(1))), g.mul(y).mul(a.log())],
  },
  maximum: {
    cpu: Math.max,
    wgsl: 'max(a, b)',
    out: 'promote',
    grad: (g, a, b) => {
      const pick = a.ge(b);
      return [g.mul(pick), g.mul(pick.logicalNot())];
    },
  },
  minimum: {
    cpu: Math.min,
    wgsl: 'min(a, b)',
    out: 'promote',
    grad: (g, a, b) => {
      const pick = a.le(b);
      return [g.mul(pick), g.mul(pick.logicalNot())];
    },
  },
  eq: { cpu: (a, b) => +(a === b), wgsl: 'f32(a == b)', out: 'bool', grad: null },
  ne: { cpu: (a, b) => +(a !== b), wgsl: 'f32(a != b)', out: 'bool', grad: null },
  lt: { cpu: (a, b) => +(a < b), wgsl: 'f32(a < b)', out: 'bool', grad: null },
  le: { cpu: (a, b) => +(a <= b), wgsl: 'f32(a <= b)', out: 'bool', grad: null },
  gt: { cpu: (a, b) => +(a > b), wgsl: 'f32(a > b)', out: 'bool', grad: null },
  ge: { cpu: (a, b) => +(a >= b), wgsl: 'f32(a >= b)', out: 'bool', grad: null },
  logicalAnd: { cpu: (a, b) => +(a !== 0 && b !== 0), wgsl: 'f32(a != 0.0 && b != 0.0)', out: 'bool', grad: null },
  logicalOr: { cpu: (a, b) => +(a !== 0 || b !== 0), wgsl: 'f32(a != 0.0 || b != 0.0)', out: 'bool', grad: null },
  // The GELU gradients as one pass each (a = the incoming gradient, b = the activation's input): the
  // composites they replace are 6-8 elementwise kernels over the [batch, seq, 4 * hidden] MLP activations.
  // gelu'(x) = Phi(x) + x phi(x); gelu''(x) = phi(x) (2 - x^2).
  geluBackward: {
    cpu: (g, x) => g * geluGrad(x),
    wgsl: 'a * gelu_grad_f32(b)',
    out: 'float',
    grad: (gg, g, x) => {
      const x2 = x.square();
      const pdf = x2.mulScalar(-0.5).exp().mulScalar(INV_SQRT_2PI);
      return [fusedGrad('geluBackward', gg, x), gg.mul(g).mul(pdf.mul(x2.neg().addScalar(2)))];
    },
  },
  // With u = c (x + k x^3), t = tanh(u): y' = (1 + t) / 2 + x (1 - t^2) u' / 2, u' = c (1 + 3k x^2).
  geluTanhBackward: {
    cpu: (g, x) => {
      const t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_K * x * x * x));
      return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_K * x * x));
    },
    wgsl: 'a * gelu_tanh_grad_f32(b)',
    out: 'float',
    grad: (gg, g, x) => {
      // y'' = (1 - t^2) (u' - x t u'^2 + x u'' / 2), u'' = 6 c k x.
      const t = x.add(x.pow(3).mulScalar(GELU_TANH_K)).mulScalar(SQRT_2_OVER_PI).tanh();
      const du = x.square().mulScalar(3 * GELU_TANH_K).addScalar(1).mulScalar(SQRT_2_OVER_PI);
      const sech2 = t.square().neg().addScalar(1);
      const second = sech2.mul(du.sub(x.mul(t).mul(du.square())).add(x.square().mulScalar(3 * SQRT_2_OVER_PI * GELU_TANH_K)));
      return [fusedGrad('geluTanhBackward', gg, x), gg.mul(g).mul(second)];
    },
  },
} satisfies Record<string, BinaryRow>;

/** Activations fused with a bias add (`addGelu` = gelu(a + b)): one kernel for Linear + activation. */
export const FUSED_BIAS_ACTIVATIONS = ['gelu', 'geluTanh', 'relu', 'silu', 'tanh', 'sigmoid'] as const;
export type FusedBiasActivation = (typeof FUSED_BIAS_ACTIVATIONS)[number];
type FusedName = `add${Capitalize<FusedBiasActivation>}`;

function fusedBiasRow(act: FusedBiasActivation): BinaryRow {
  const row: UnaryRow = UNARY[act];
  const grad = row.grad!;
  return {
    cpu: (a, b) => row.cpu(a + b, 0, 0),
    // The activation's expression with its input x replaced by (a + b).
    wgsl: row.wgsl.replace(/\bx\b/g, '(a + b)'),
    out: 'float',
    grad: (g, a, b, y) => {
      const z = a.add(b);
      const gz = grad(g, z, y, 0, 0);
      return [gz, gz];
    },
  };
}

export const BINARY = {
  ...BASE_BINARY,
  ...(Object.fromEntries(
    FUSED_BIAS_ACTIVATIONS.map((act) => [`add${act[0].toUpperCase()}${act.slice(1)}`, fusedBiasRow(act)]),
  ) as Record<FusedName, BinaryRow>),
};

export type BinaryOpName = keyof typeof BINARY;
