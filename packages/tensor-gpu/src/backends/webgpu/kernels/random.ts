// random: Philox4x32-10 counter-based draws, the WGSL twin of src/random.ts (keep them in step).
// Element i (row-major over out's shape) is n = offset + i (64-bit, (lo, hi) words with carry); it uses
// word n mod 4 of Philox at counter n / 4 under key (seed_lo, seed_hi) (normal: Box-Muller on the word
// pair (w0, w1) or (w2, w3), cos for even n, sin for odd). WGSL has no mulhi, so the 32x32->64 product is built from 16-bit halves
// exactly like `mulhi32`. The integer part is bit-identical to `philoxFill`; uniform/bernoulli values
// are bit-identical whenever p1 - p0 is a power of two (the affine step runs in f32 here, float64 on the
// CPU); normal draws agree within ~1e-6 (f32 log/cos). One thread per element via the map kernel.

import type { RandomKind, View } from '../../../backend.js';
import { seedKey } from '../../../random.js';
import type { Runtime } from '../runtime.js';
import { fromF32, runMap } from './common.js';
import { WGSL_MATH } from './wgsl-math.js';

export const PHILOX_WGSL = /* wgsl */ `
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
  let aLo = a & 0xffffu; let aHi = a >> 16u; let bLo = b & 0xffffu; let bHi = b >> 16u;
  let lolo = aLo * bLo; let hilo = aHi * bLo; let lohi = aLo * bHi; let hihi = aHi * bHi;
  let cross = (lolo >> 16u) + (hilo & 0xffffu) + (lohi & 0xffffu);
  return vec2<u32>(hihi + (hilo >> 16u) + (lohi >> 16u) + (cross >> 16u), a * b);
}
fn philox(c0: u32, c1: u32, k0: u32, k1: u32) -> vec4<u32> {
  var x = vec4<u32>(c0, c1, 0u, 0u);
  var key0 = k0; var key1 = k1;
  for (var r = 0; r < 10; r++) {
    let p0 = mulhilo(0xd2511f53u, x.x);
    let p1 = mulhilo(0xcd9e8d57u, x.z);
    x = vec4<u32>(p1.x ^ x.y ^ key0, p1.y, p0.x ^ x.w ^ key1, p0.y);
    key0 = key0 + 0x9e3779b9u;
    key1 = key1 + 0xbb67ae85u;
  }
  return x;
}
`;

const KIND_EXPR: Record<RandomKind, string> = {
  uniform: 'pf(SC + 4u) + u * pf(SC + 5u)',
  bernoulli: 'select(0.0, 1.0, u < pf(SC + 4u))',
  normal:
    'pf(SC + 4u) + pf(SC + 5u) * (sqrt(-2.0 * log_f32(f32((wa >> 8u) + 1u) * 5.9604644775390625e-8)) * cos_turns(f32(wb >> 8u) * 5.9604644775390625e-8 - select(0.0, 0.25, (r & 1u) == 1u)))',
};

export function runRandom(rt: Runtime, out: View, kind: RandomKind, seed: number, offset: number, p0: number, p1: number): void {
  const [k0, k1] = seedKey(seed);
  const body = `
  let lo = pu(SC) + idx;
  let hi = pu(SC + 1u) + select(0u, 1u, lo < idx);
  let r = lo & 3u;
  let w = philox((lo >> 2u) | (hi << 30u), hi >> 2u, pu(SC + 2u), pu(SC + 3u));
  let words = array<u32, 4>(w.x, w.y, w.z, w.w);
  let u = f32(words[r] >> 8u) * 5.9604644775390625e-8;
  let wa = words[r & 2u];
  let wb = words[(r & 2u) + 1u];
  Y[oy] = ${fromF32(out.dtype, `(${KIND_EXPR[kind]})`)};`;
  runMap(
    rt,
    'random',
    {
      key: `random-${kind}`,
      body,
      decl: WGSL_MATH + PHILOX_WGSL,
      scalars: (p) => {
        p.pushU(offset >>> 0).pushU(Math.floor(offset / 4294967296) >>> 0).pushU(k0).pushU(k1);
        if (kind === 'uniform') p.pushF(p0).pushF(p1 - p0);
        else p.pushF(p0).pushF(p1);
      },
    },
    [],
    out,
  );
}
