// WGSL helper functions called by the elementwise table's `wgsl` expressions (elementwise-math.ts).
// Each mirrors the CPU row: erf is Abramowitz-Stegun 7.1.26 like `erf` there; tanh/sigmoid never
// produce NaN for large |x|; log1p/expm1 stay accurate near 0; pow follows JS Math.pow for negative
// bases, zero bases and zero exponents. NaN/inf come from runtime bit patterns because WGSL rejects
// constant expressions that evaluate to them.
//
// SwiftShader (measured): builtin sin/cos have ~5e-5 absolute error, log of a negative number is not
// NaN, and `x != x` is folded to false. So `fixExpr` rewrites a table expression to call sin_f32 /
// cos_f32 / log_f32 (Cody-Waite reduction + short polynomials, ~1 ulp) and is_nan_f32 (a bit test).

/** Rewrites builtins that are inaccurate or NaN-blind on some drivers to the helpers below. */
export function fixExpr(expr: string): string {
  return expr
    .replace(/\b(sin|cos|log)\(/g, '$1_f32(')
    .replace(/\b([a-z]\w*) != \1\b/g, 'is_nan_f32($1)');
}

export const WGSL_MATH = /* wgsl */ `
var<private> NAN_BITS: u32 = 0x7fc00000u;
var<private> INF_BITS: u32 = 0x7f800000u;
fn nan_f32() -> f32 { return bitcast<f32>(NAN_BITS); }
fn inf_f32() -> f32 { return bitcast<f32>(INF_BITS); }
fn is_nan_f32(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn is_inf_f32(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }

// log for any f32: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), log(m) = 2 atanh(s), s = (m - 1) / (m + 1).
fn log_f32(x: f32) -> f32 {
  if (is_nan_f32(x) || x < 0.0) { return nan_f32(); }
  if (x == 0.0) { return -inf_f32(); }
  if (is_inf_f32(x)) { return x; }
  var bits = bitcast<u32>(x);
  var e = 0.0;
  if (bits < 0x00800000u) { bits = bitcast<u32>(x * 8388608.0); e = -23.0; } // subnormal: scale by 2^23
  e = e + f32(i32((bits >> 23u) & 0xffu) - 127);
  var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u);
  if (m > 1.4142135623730951) { m = m * 0.5; e = e + 1.0; }
  let s = (m - 1.0) / (m + 1.0);
  let s2 = s * s;
  let p = 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0))))));
  return e * 0.693145751953125 + (e * 1.4286068203094172e-6 + p);
}

// sin and cos of r in [-pi/4, pi/4] (Taylor, error < 2e-9).
fn sincos_poly(r: f32) -> vec2<f32> {
  let r2 = r * r;
  let s = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0)))));
  let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
  return vec2<f32>(s, c);
}
// sin/cos of r in [-pi/4, pi/4] rotated by q quarter turns: (sin, cos) of r + q pi/2.
fn sincos_quadrant(r: f32, q: i32) -> vec2<f32> {
  let sc = sincos_poly(r);
  switch (q & 3) {
    case 0: { return sc; }
    case 1: { return vec2<f32>(sc.y, -sc.x); }
    case 2: { return -sc; }
    default: { return vec2<f32>(-sc.y, sc.x); }
  }
}
// Cody-Waite reduction by pi/2 in three parts (accurate for |x| up to ~1e4; degrades gracefully beyond).
fn sincos_f32(x: f32) -> vec2<f32> {
  if (is_nan_f32(x) || is_inf_f32(x)) { return vec2<f32>(nan_f32()); }
  let k = round(x * 0.6366197723675814);
  let r = ((x - k * 1.5703125) - k * 4.837512969970703125e-4) - k * 7.54978995489188216e-8;
  return sincos_quadrant(r, i32(k));
}
fn sin_f32(x: f32) -> f32 { return sincos_f32(x).x; }
fn cos_f32(x: f32) -> f32 { return sincos_f32(x).y; }
// cos(2 pi t): the reduction happens in turns, exactly.
fn cos_turns(t: f32) -> f32 {
  let r = t - round(t);
  let k = round(r * 4.0);
  return sincos_quadrant((r - k * 0.25) * 6.283185307179586, i32(k)).y;
}

// Abramowitz & Stegun 7.1.26 for ax >= 0: erf(ax) = 1 - erf_poly_f32(ax) * exp(-ax * ax).
fn erf_poly_f32(ax: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * ax);
  return ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
}

fn erf_f32(x: f32) -> f32 {
  let ax = abs(x);
  let y = 1.0 - erf_poly_f32(ax) * exp(-ax * ax);
  return select(y, -y, x < 0.0);
}

fn expm1_f32(x: f32) -> f32 {
  if (abs(x) < 0.5) {
    // Taylor series to x^9: relative error < 3e-9 on |x| < 0.5.
    let p = 1.0 + x * (1.0 / 2.0 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0 + x * (1.0 / 720.0
      + x * (1.0 / 5040.0 + x * (1.0 / 40320.0 + x * (1.0 / 362880.0))))))));
    return x * p;
  }
  return exp(x) - 1.0;
}

fn log1p_f32(x: f32) -> f32 {
  // Kahan: log(u) * x / (u - 1) with u = 1 + x cancels the rounding of 1 + x.
  let u = 1.0 + x;
  if (u == 1.0) { return x; }
  if (is_inf_f32(u)) { return u; }
  return log_f32(u) * (x / (u - 1.0));
}

fn tanh_f32(x: f32) -> f32 {
  let ax = abs(x);
  if (ax > 10.0) { return sign(x); }
  let e = expm1_f32(-2.0 * ax);
  let t = -e / (2.0 + e);
  return select(t, -t, x < 0.0);
}

// d/dx of the exact GELU, Phi(x) + x phi(x), with one exp shared by erf and phi (as geluGrad on cpu).
fn gelu_grad_f32(x: f32) -> f32 {
  let ax = abs(x) * 0.7071067811865476;
  let e = exp(-ax * ax);
  let erf_abs = 1.0 - erf_poly_f32(ax) * e;
  return 0.5 * (1.0 + select(erf_abs, -erf_abs, x < 0.0)) + x * e * 0.3989422804014327;
}

// d/dx of the tanh-approximated GELU (the table's geluTanhBackward, without the incoming gradient).
fn gelu_tanh_grad_f32(x: f32) -> f32 {
  let t = tanh_f32(0.7978845608028654 * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * x * x);
}

fn sigmoid_f32(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

fn powi_f32(a: f32, n: u32) -> f32 {
  var r = 1.0;
  var b = a;
  var k = n;
  loop {
    if ((k & 1u) != 0u) { r = r * b; }
    k = k >> 1u;
    if (k == 0u) { break; }
    b = b * b;
  }
  return r;
}

fn pow_f32(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (is_nan_f32(a) || is_nan_f32(b)) { return nan_f32(); }
  let isInt = !is_inf_f32(b) && floor(b) == b;
  if (isInt && abs(b) <= 64.0) {
    let r = powi_f32(a, u32(abs(b)));
    return select(r, 1.0 / r, b < 0.0);
  }
  if (a == 0.0) {
    // |b| > 64 here (or non-integer): +0 for b > 0, +inf for b < 0 (the sign needs an odd integer b).
    let odd = isInt && abs(b) < 16777216.0 && (u32(abs(b)) & 1u) == 1u && (bitcast<u32>(a) & 0x80000000u) != 0u;
    let r = select(inf_f32(), 0.0, b > 0.0);
    return select(r, -r, odd);
  }
  // Negative finite base with a finite non-integer exponent: NaN (JS gives inf/0 for a = -inf).
  if (a < 0.0 && !is_inf_f32(a) && !is_inf_f32(b) && !isInt) { return nan_f32(); }
  let m = exp2(b * log2(abs(a)));
  let odd = isInt && abs(b) < 16777216.0 && (u32(abs(b)) & 1u) == 1u;
  return select(m, -m, a < 0.0 && odd);
}
`;
