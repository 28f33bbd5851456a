// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC'11) under key (seed_lo, seed_hi). One Philox call yields four 32-bit words; element n of
// a draw (n = offset + i, a 64-bit count) uses counter q = floor(n / 4) as words (lo32(q), hi32(q), 0, 0)
// and word r = n mod 4 of the result, so every backend computes any element independently:
//   uniform:   u = (w[r] >>> 8) * 2^-24                        in [0, 1), then p0 + u * (p1 - p0) in f32
//   bernoulli: 1 when u < p
//   normal:    Box-Muller on the word pair (w0, w1) for r < 2, (w2, w3) otherwise:
//              u1 = ((wa >>> 8) + 1) * 2^-24 in (0, 1], u2 = (wb >>> 8) * 2^-24,
//              z = sqrt(-2 ln u1) * (r even ? cos(2 pi u2) : sin(2 pi u2))
// The WGSL twin lives in backends/webgpu/kernels/random.ts; keep them in step.

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

const INV_2_16 = 1 / 65536;

/**
 * High 32 bits of the 64-bit product of two uint32: a * b = (a * bHi) * 2^16 + a * bLo, both partial
 * products exact in float64 (< 2^48).
 */
export function mulhi32(a: number, b: number): number {
  const lo = a * (b & 0xffff);
  const hi = a * (b >>> 16);
  return Math.floor((hi + Math.floor(lo * INV_2_16)) * INV_2_16);
}

/** Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1): writes four uint32 words to `out`. */
export function philox(c0: number, c1: number, k0: number, k1: number, out: Uint32Array, c2 = 0, c3 = 0): void {
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let x2 = c2 >>> 0;
  let x3 = c3 >>> 0;
  let key0 = k0 >>> 0;
  let key1 = k1 >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulhi32(M0, x0);
    const lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulhi32(M1, x2);
    const lo1 = Math.imul(M1, x2) >>> 0;
    x0 = (hi1 ^ x1 ^ key0) >>> 0;
    x1 = lo1;
    x2 = (hi0 ^ x3 ^ key1) >>> 0;
    x3 = lo0;
    key0 = (key0 + W0) >>> 0;
    key1 = (key1 + W1) >>> 0;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}

const TWO_NEG_24 = 1 / 16777216;

/** Splits a seed (a non-negative integer below 2^53) into the two key words. */
export function seedKey(seed: number): [number, number] {
  return [seed >>> 0, Math.floor(seed / 4294967296) >>> 0];
}

/** Fills `out` with the draw described in the header, for elements offset .. offset + out.length - 1. */
export function philoxFill(
  out: Float32Array,
  kind: 'uniform' | 'normal' | 'bernoulli',
  seed: number,
  offset: number,
  p0: number,
  p1: number,
): void {
  const [k0, k1] = seedKey(seed);
  const words = new Uint32Array(4);
  const pf = Math.fround(p0);
  const p0f = Math.fround(p0);
  const spanF = Math.fround(Math.fround(p1) - p0f);
  const stdF = Math.fround(p1);
  const end = offset + out.length;
  let n = offset;
  while (n < end) {
    const q = Math.floor(n / 4);
    philox(q >>> 0, Math.floor(q / 4294967296) >>> 0, k0, k1, words);
    // The elements of this counter that fall inside the draw.
    const last = Math.min(end, (q + 1) * 4);
    if (kind === 'normal') {
      for (let pair = 0; pair < 2; pair++) {
        const e0 = q * 4 + pair * 2;
        if (e0 + 1 < n || e0 >= last) continue;
        const u1 = ((words[pair * 2] >>> 8) + 1) * TWO_NEG_24;
        const u2 = (words[pair * 2 + 1] >>> 8) * TWO_NEG_24;
        const rad = Math.sqrt(-2 * Math.log(u1));
        const theta = 2 * Math.PI * u2;
        // The affine step is float32 (fround), as on the GPU.
        if (e0 >= n) out[e0 - offset] = Math.fround(p0f + Math.fround(stdF * Math.fround(rad * Math.cos(theta))));
        if (e0 + 1 >= n && e0 + 1 < last) out[e0 + 1 - offset] = Math.fround(p0f + Math.fround(stdF * Math.fround(rad * Math.sin(theta))));
      }
    } else {
      for (let e = n; e < last; e++) {
        const u = (words[e - q * 4] >>> 8) * TWO_NEG_24;
        out[e - offset] = kind === 'uniform' ? Math.fround(p0f + Math.fround(u * spanF)) : u < pf ? 1 : 0;
      }
    }
    n = last;
  }
}

/** The global generator: a seed and a running counter offset, advanced by every draw. */
export class Generator {
  seed: number;
  offset = 0;
  constructor(seed = 0) {
    this.seed = seed;
  }
  manualSeed(seed: number): void {
    if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
      throw new RangeError(`manualSeed: seed must be a non-negative integer, got ${seed}`);
    }
    this.seed = seed;
    this.offset = 0;
  }
  /** Reserves `n` counters and returns the first. */
  take(n: number): number {
    const first = this.offset;
    this.offset += n;
    return first;
  }
  getState(): { seed: number; offset: number } {
    return { seed: this.seed, offset: this.offset };
  }
  setState(state: { seed: number; offset: number }): void {
    this.seed = state.seed;
    this.offset = state.offset;
  }
}

export const defaultGenerator = new Generator(0);

export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}
