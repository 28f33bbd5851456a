// Helpers for the WebGPU backend tests: views over storages, seeded random data, strided host gathers
// and tolerant comparisons. Test-only; not exported from the package.

import type { Storage, View } from '../../backend.js';
import type { AnyHostArray } from '../../dtype.js';
import { contiguousStrides } from '../../layout.js';

export function view(storage: Storage, shape: number[], strides?: number[], offset = 0): View {
  return { storage, dtype: storage.dtype, shape, strides: strides ?? contiguousStrides(shape), offset };
}

/** Deterministic uniform numbers in [lo, hi). */
export function rand(n: number, lo = -1, hi = 1, seed = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = lo + (s / 4294967296) * (hi - lo);
  }
  return out;
}

export function randInt(n: number, lo: number, hi: number, seed = 1): Int32Array {
  return Int32Array.from(rand(n, 0, 1, seed), (u) => lo + Math.floor(u * (hi - lo)));
}

export function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Row-major coordinates of element i of `shape`. */
export function coords(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return c;
}

export function at(v: { shape: readonly number[]; strides: readonly number[]; offset: number }, c: readonly number[]): number {
  let o = v.offset;
  for (let d = 0; d < c.length; d++) o += c[d] * v.strides[d];
  return o;
}

/** Contiguous host copy of a strided view over a host array. */
export function gatherHost(host: ArrayLike<number>, v: { shape: readonly number[]; strides: readonly number[]; offset: number }): number[] {
  const n = size(v.shape);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = host[at(v, coords(i, v.shape))];
  return out;
}

export function maxAbsDiff(got: AnyHostArray | number[], want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (w === g) continue;
    const d = Math.abs(g - w);
    m = Math.max(m, Number.isNaN(d) ? Infinity : d);
  }
  return m;
}

/** Asserts |got - want| <= atol + rtol * |want| elementwise (NaN matches NaN, inf matches inf). */
export function expectClose(got: AnyHostArray | number[], want: ArrayLike<number>, atol = 1e-5, rtol = 1e-5, what = ''): void {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length} != ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (w === g) continue;
    if (!(Math.abs(g - w) <= atol + rtol * Math.abs(w))) {
      throw new Error(`${what}: element ${i}: got ${g}, want ${w} (atol ${atol}, rtol ${rtol})`);
    }
  }
}
