// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC'11). Element i of a draw uses the 64-bit counter n = offset + i as words (lo32(n), hi32(n), 0, 0) and key
// (seed_lo, seed_hi),
// so every backend computes the same values independently per element. From the first two output words:
//   uniform:   u = (r0 >>> 8) * 2^-24                          in [0, 1)
//   normal:    Box-Muller, u1 = ((r0 >>> 8) + 1) * 2^-24 in (0, 1], u2 = (r1 >>> 8) * 2^-24,
//              z = sqrt(-2 ln u1) * cos(2 pi u2)
//   bernoulli: 1 when u < p
// The WGSL twin lives in backends/webgpu/kernels/random.ts; keep them in step.

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32. */
export function mulhi32(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lolo = aLo * bLo;
  const hilo = aHi * bLo;
  const lohi = aLo * bHi;
  const hihi = aHi * bHi;
  const cross = (lolo >>> 16) + (hilo & 0xffff) + (lohi & 0xffff);
  return (hihi + (hilo >>> 16) + (lohi >>> 16) + (cross >>> 16)) >>> 0;
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
    const n0 = (hi1 ^ x1 ^ key0) >>> 0;
    const n1 = lo1;
    const n2 = (hi0 ^ x3 ^ key1) >>> 0;
    const n3 = lo0;
    x0 = n0;
    x1 = n1;
    x2 = n2;
    x3 = n3;
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
  for (let i = 0; i < out.length; i++) {
    const n = offset + i;
    philox(n >>> 0, Math.floor(n / 4294967296) >>> 0, k0, k1, words);
    const u = (words[0] >>> 8) * TWO_NEG_24;
    // The affine steps are float32 (fround), as on the GPU, so uniform draws match bit for bit.
    if (kind === 'uniform') out[i] = Math.fround(p0f + Math.fround(u * spanF));
    else if (kind === 'bernoulli') out[i] = u < pf ? 1 : 0;
    else {
      const u1 = ((words[0] >>> 8) + 1) * TWO_NEG_24;
      const u2 = (words[1] >>> 8) * TWO_NEG_24;
      const z = Math.fround(Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
      out[i] = Math.fround(p0f + Math.fround(Math.fround(p1) * z));
    }
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
