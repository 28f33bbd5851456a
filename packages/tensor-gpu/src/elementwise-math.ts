// The elementwise math: one row per op with its CPU function and its WGSL expression, the single
// source both backends compile their elementwise kernels from. Gradients are not here: they live with
// the ops (ops/elementwise-grad.ts), so a backend loads this file and nothing above it. WGSL expressions
// see `x` (or `a`, `b`) as f32 and params `p0`, `p1`; the helpers they call (erf_f32, ...) live in
// backends/webgpu/kernels/wgsl-math.ts.

export const SQRT_2_OVER_PI = 0.7978845608028654;
export const INV_SQRT_2 = 0.7071067811865476;
export const INV_SQRT_2PI = 0.3989422804014327;
export const GELU_TANH_K = 0.044715;

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
}

export const UNARY = {
  neg: { cpu: (x) => -x, wgsl: '-x', out: 'same' },
  abs: { cpu: Math.abs, wgsl: 'abs(x)', out: 'same' },
  sign: { cpu: Math.sign, wgsl: 'sign(x)', out: 'same' },
  exp: { cpu: Math.exp, wgsl: 'exp(x)', out: 'float' },
  log: { cpu: Math.log, wgsl: 'log(x)', out: 'float' },
  log1p: { cpu: Math.log1p, wgsl: 'log1p_f32(x)', out: 'float' },
  expm1: { cpu: Math.expm1, wgsl: 'expm1_f32(x)', out: 'float' },
  sqrt: { cpu: Math.sqrt, wgsl: 'sqrt(x)', out: 'float' },
  rsqrt: { cpu: (x) => 1 / Math.sqrt(x), wgsl: 'inverseSqrt(x)', out: 'float' },
  square: { cpu: (x) => x * x, wgsl: 'x * x', out: 'same' },
  reciprocal: { cpu: (x) => 1 / x, wgsl: '1.0 / x', out: 'float' },
  sin: { cpu: Math.sin, wgsl: 'sin(x)', out: 'float' },
  cos: { cpu: Math.cos, wgsl: 'cos(x)', out: 'float' },
  tanh: { cpu: Math.tanh, wgsl: 'tanh_f32(x)', out: 'float' },
  sigmoid: { cpu: sigmoid, wgsl: 'sigmoid_f32(x)', out: 'float' },
  relu: { cpu: (x) => (x > 0 ? x : 0), wgsl: 'max(x, 0.0)', out: 'same' },
  erf: { cpu: erf, wgsl: 'erf_f32(x)', out: 'float' },
  /** Exact GELU: x * Phi(x) (Hugging Face `gelu`). Its gradient has a fused row (`geluBackward`). */
  gelu: { cpu: (x) => 0.5 * x * (1 + erf(x * INV_SQRT_2)), wgsl: '0.5 * x * (1.0 + erf_f32(x * 0.7071067811865476))', out: 'float' },
  /** Tanh-approximated GELU (`gelu_new`, `gelu_fast`, `gelu_pytorch_tanh`, ChatGLM's gelu). */
  geluTanh: {
    cpu: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_K * x * x * x))),
    wgsl: '0.5 * x * (1.0 + tanh_f32(0.7978845608028654 * (x + 0.044715 * x * x * x)))',
    out: 'float',
  },
  silu: { cpu: (x) => x * sigmoid(x), wgsl: 'x * sigmoid_f32(x)', out: 'float' },
  softplus: { cpu: (x) => (x > 20 ? x : Math.log1p(Math.exp(x))), wgsl: 'select(log1p_f32(exp(x)), x, x > 20.0)', out: 'float' },
  floor: { cpu: Math.floor, wgsl: 'floor(x)', out: 'same' },
  ceil: { cpu: Math.ceil, wgsl: 'ceil(x)', out: 'same' },
  /** Round half to even, as torch.round. */
  round: {
    cpu: (x) => {
      const r = Math.round(x);
      return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
    },
    wgsl: 'round(x)',
    out: 'same',
  },
  /** x * p0 + p1 (scalar add/mul/affine). */
  affine: { cpu: (x, p0, p1) => x * p0 + p1, wgsl: 'x * p0 + p1', out: 'same' },
  /** x ** p0 with a scalar exponent. */
  powScalar: { cpu: (x, p0) => Math.pow(x, p0), wgsl: 'pow_f32(x, p0)', out: 'float' },
  /** p0 ** x with a scalar base. */
  rpowScalar: { cpu: (x, p0) => Math.pow(p0, x), wgsl: 'pow_f32(p0, x)', out: 'float' },
  clamp: { cpu: (x, p0, p1) => Math.min(Math.max(x, p0), p1), wgsl: 'min(max(x, p0), p1)', out: 'same' },
  leakyRelu: { cpu: (x, p0) => (x > 0 ? x : x * p0), wgsl: 'select(x * p0, x, x > 0.0)', out: 'same' },
  eqScalar: { cpu: (x, p0) => +(x === p0), wgsl: 'f32(x == p0)', out: 'bool' },
  neScalar: { cpu: (x, p0) => +(x !== p0), wgsl: 'f32(x != p0)', out: 'bool' },
  ltScalar: { cpu: (x, p0) => +(x < p0), wgsl: 'f32(x < p0)', out: 'bool' },
  leScalar: { cpu: (x, p0) => +(x <= p0), wgsl: 'f32(x <= p0)', out: 'bool' },
  gtScalar: { cpu: (x, p0) => +(x > p0), wgsl: 'f32(x > p0)', out: 'bool' },
  geScalar: { cpu: (x, p0) => +(x >= p0), wgsl: 'f32(x >= p0)', out: 'bool' },
  logicalNot: { cpu: (x) => +(x === 0), wgsl: 'f32(x == 0.0)', out: 'bool' },
  // `x != x` is folded to false by some shader compilers (SwiftShader): test the bits instead.
  isNan: { cpu: (x) => +Number.isNaN(x), wgsl: 'f32(is_nan_f32(x))', out: 'bool' },
} satisfies Record<string, UnaryRow>;

export type UnaryOpName = keyof typeof UNARY;

export interface BinaryRow {
  cpu: (a: number, b: number) => number;
  wgsl: string;
  /** Output dtype: the promoted input type, bool, or float. */
  out: 'promote' | 'bool' | 'float';
}

export const BINARY = {
  add: { cpu: (a, b) => a + b, wgsl: 'a + b', out: 'promote' },
  sub: { cpu: (a, b) => a - b, wgsl: 'a - b', out: 'promote' },
  mul: { cpu: (a, b) => a * b, wgsl: 'a * b', out: 'promote' },
  div: { cpu: (a, b) => a / b, wgsl: 'a / b', out: 'float' },
  pow: { cpu: Math.pow, wgsl: 'pow_f32(a, b)', out: 'float' },
  maximum: { cpu: Math.max, wgsl: 'max(a, b)', out: 'promote' },
  minimum: { cpu: Math.min, wgsl: 'min(a, b)', out: 'promote' },
  eq: { cpu: (a, b) => +(a === b), wgsl: 'f32(a == b)', out: 'bool' },
  ne: { cpu: (a, b) => +(a !== b), wgsl: 'f32(a != b)', out: 'bool' },
  lt: { cpu: (a, b) => +(a < b), wgsl: 'f32(a < b)', out: 'bool' },
  le: { cpu: (a, b) => +(a <= b), wgsl: 'f32(a <= b)', out: 'bool' },
  gt: { cpu: (a, b) => +(a > b), wgsl: 'f32(a > b)', out: 'bool' },
  ge: { cpu: (a, b) => +(a >= b), wgsl: 'f32(a >= b)', out: 'bool' },
  logicalAnd: { cpu: (a, b) => +(a !== 0 && b !== 0), wgsl: 'f32(a != 0.0 && b != 0.0)', out: 'bool' },
  logicalOr: { cpu: (a, b) => +(a !== 0 || b !== 0), wgsl: 'f32(a != 0.0 || b != 0.0)', out: 'bool' },
} satisfies Record<string, BinaryRow>;

export type BinaryOpName = keyof typeof BINARY;

/** Activations fused with a bias add (`addGelu` = gelu(a + b)): one kernel for Linear + activation. */
export const FUSED_BIAS_ACTIVATIONS = ['gelu', 'geluTanh', 'relu', 'silu', 'tanh', 'sigmoid'] as const;
export type FusedBiasActivation = (typeof FUSED_BIAS_ACTIVATIONS)[number];
type BiasActivationOp = `add${Capitalize<FusedBiasActivation>}`;

/** The fused row of act(a + b): `addGelu` for 'gelu'. */
export function biasActivationOp(act: FusedBiasActivation): BiasActivationOp {
  return `add${act[0].toUpperCase()}${act.slice(1)}` as BiasActivationOp;
}

function biasActivationRow(act: FusedBiasActivation): BinaryRow {
  const row: UnaryRow = UNARY[act];
  return {
    cpu: (a, b) => row.cpu(a + b, 0, 0),
    // The activation's expression with its input x replaced by (a + b).
    wgsl: row.wgsl.replace(/\bx\b/g, '(a + b)'),
    out: 'float',
  };
}

/**
 * Rows of the optional fused elementwise kernels (Backend.fused.geluBackward and .biasActivation): a
 * backend that has them compiles these like BINARY rows; one that lacks them never sees them, since
 * the ops then run the composite.
 */
export const FUSED_BINARY = {
  // The GELU gradients as one pass each (a = the incoming gradient, b = the activation's input): the
  // composites they replace are 6-8 elementwise kernels over the [batch, seq, 4 * hidden] MLP activations.
  // gelu'(x) = Phi(x) + x phi(x); gelu''(x) = phi(x) (2 - x^2).
  geluBackward: { cpu: (g, x) => g * geluGrad(x), wgsl: 'a * gelu_grad_f32(b)', out: 'float' },
  // With u = c (x + k x^3), t = tanh(u): y' = (1 + t) / 2 + x (1 - t^2) u' / 2, u' = c (1 + 3k x^2).
  geluTanhBackward: {
    cpu: (g, x) => {
      const t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_K * x * x * x));
      return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_K * x * x));
    },
    wgsl: 'a * gelu_tanh_grad_f32(b)',
    out: 'float',
  },
  // silu'(x) = s (1 + x (1 - s)), s = sigmoid(x): one pass instead of the composite's 7 kernels
  siluBackward: {
    cpu: (g, x) => {
      const s = 1 / (1 + Math.exp(-x));
      return g * s * (1 + x * (1 - s));
    },
    wgsl: 'a * (1.0 / (1.0 + exp(-b))) * (1.0 + b * (1.0 - 1.0 / (1.0 + exp(-b))))',
    out: 'float',
  },
  ...(Object.fromEntries(FUSED_BIAS_ACTIVATIONS.map((act) => [biasActivationOp(act), biasActivationRow(act)])) as Record<BiasActivationOp, BinaryRow>),
} satisfies Record<string, BinaryRow>;

export type FusedBinaryOpName = keyof typeof FUSED_BINARY;
