// Per-op elementwise loops. A loop shared by every op calls its math through one megamorphic call
// site (~10-20 ns per element); a loop compiled per op, each from its own source text (see
// `compile`), gets its own type feedback, so V8 inlines the math. Loops are also compiled per
// combination of array types (Float32Array, Int32Array, Uint8Array): one loop fed a bool mask once
// turns its element accesses polymorphic for every later call, which cost 2-3x on float32 in a
// training step. `new Function` is refused under a strict Content-Security-Policy: then the shared
// loop is used.

import type { AnyHostArray } from '../../dtype.js';

export type UnaryLoop = (x: AnyHostArray, bx: number, sx: number, out: AnyHostArray, bo: number, so: number, n: number, p0: number, p1: number) => void;
export type BinaryLoop = (a: AnyHostArray, ba: number, sa: number, b: AnyHostArray, bb: number, sb: number, out: AnyHostArray, bo: number, so: number, n: number) => void;

const UNARY_SRC = `return function unaryLoop(x, bx, sx, out, bo, so, n, p0, p1) {
  if (sx === 1 && so === 1) { for (let j = 0; j < n; j++) out[bo + j] = conv(f(x[bx + j], p0, p1)); return; }
  for (let j = 0; j < n; j++) out[bo + j * so] = conv(f(x[bx + j * sx], p0, p1));
};`;

const BINARY_SRC = `return function binaryLoop(a, ba, sa, b, bb, sb, out, bo, so, n) {
  if (sa === 1 && sb === 1 && so === 1) { for (let j = 0; j < n; j++) out[bo + j] = conv(f(a[ba + j], b[bb + j])); return; }
  if (sa === 1 && sb === 0 && so === 1) { const bv = b[bb]; for (let j = 0; j < n; j++) out[bo + j] = conv(f(a[ba + j], bv)); return; }
  for (let j = 0; j < n; j++) out[bo + j * so] = conv(f(a[ba + j * sa], b[bb + j * sb]));
};`;

let canCompile: boolean | null = null;
function compile<T>(key: string, src: string, f: unknown, conv: unknown): T | null {
  if (canCompile === false) return null;
  try {
    // The key makes each source unique: V8 caches `new Function` by source text, and closures from
    // one cached source share their type feedback, so every op's loop would call its math through
    // one megamorphic site again (measured: 3.3 -> 9.8 ns per element for mul once other ops ran).
    const made = new Function('f', 'conv', `/* ${key.replace(/\*\//g, '')} */ ${src}`)(f, conv) as T;
    canCompile = true;
    return made;
  } catch {
    canCompile = false;
    return null;
  }
}

const identity = (v: number) => v;
const unaryCache = new Map<string, UnaryLoop>();
const binaryCache = new Map<string, BinaryLoop>();

/** The array types of a call, part of the loop cache key. */
export function arrayKinds(...arrays: AnyHostArray[]): string {
  let k = '';
  for (const a of arrays) k += a instanceof Float32Array ? 'f' : a instanceof Int32Array ? 'i' : a instanceof Uint8Array ? 'u' : 'o';
  return k;
}

/** A loop specialised for (op, output conversion, array types). */
export function unaryLoop(key: string, f: (x: number, p0: number, p1: number) => number, conv: ((v: number) => number) | null, kinds = ''): UnaryLoop {
  const k = `${key}|${conv ? conv.name || 'conv' : ''}|${kinds}`;
  let loop = unaryCache.get(k);
  if (!loop) {
    const c = conv ?? identity;
    loop =
      compile<UnaryLoop>(`unary ${k}`, UNARY_SRC, f, c) ??
      ((x, bx, sx, out, bo, so, n, p0, p1) => {
        for (let j = 0; j < n; j++) out[bo + j * so] = c(f(x[bx + j * sx], p0, p1));
      });
    unaryCache.set(k, loop);
  }
  return loop;
}

export function binaryLoop(key: string, f: (a: number, b: number) => number, conv: ((v: number) => number) | null, kinds = ''): BinaryLoop {
  const k = `${key}|${conv ? conv.name || 'conv' : ''}|${kinds}`;
  let loop = binaryCache.get(k);
  if (!loop) {
    const c = conv ?? identity;
    loop =
      compile<BinaryLoop>(`binary ${k}`, BINARY_SRC, f, c) ??
      ((a, ba, sa, b, bb, sb, out, bo, so, n) => {
        for (let j = 0; j < n; j++) out[bo + j * so] = c(f(a[ba + j * sa], b[bb + j * sb]));
      });
    binaryCache.set(k, loop);
  }
  return loop;
}

/** dst[...] = src[...] over collapsed dims (see strided.ts `collapse`), the whole walk in one function. */
export type CopyLoop = (src: AnyHostArray, srcOffset: number, srcStrides: readonly number[], dst: AnyHostArray, dstOffset: number, dstStrides: readonly number[], shape: readonly number[]) => void;

// An odometer over the outer dims with the innermost row inlined: a callback per row (forEachRow) costs
// more than the row itself when rows are short, as in the [batch, seq, heads, headDim] -> [batch, heads,
// seq, headDim] copies of attention (rows of headDim elements).
const COPY_SRC = `return function copyLoop(s, so, ss, d, dO, ds, shape) {
  const rank = shape.length;
  const n = shape[rank - 1];
  const si = ss[rank - 1];
  const di = ds[rank - 1];
  let outer = 1;
  for (let k = 0; k < rank - 1; k++) outer *= shape[k];
  const idx = new Int32Array(rank);
  let sb = so;
  let db = dO;
  for (let o = 0; o < outer; o++) {
    if (si === 1 && di === 1) { for (let j = 0; j < n; j++) d[db + j] = conv(s[sb + j]); }
    else { for (let j = 0; j < n; j++) d[db + j * di] = conv(s[sb + j * si]); }
    for (let k = rank - 2; k >= 0; k--) {
      idx[k]++;
      sb += ss[k];
      db += ds[k];
      if (idx[k] < shape[k]) break;
      sb -= ss[k] * shape[k];
      db -= ds[k] * shape[k];
      idx[k] = 0;
    }
  }
};`;

const copyCache = new Map<string, CopyLoop>();

/** The copy walk without `new Function` (strict Content-Security-Policy): one element at a time. */
export function interpretedCopyLoop(conv: (v: number) => number): CopyLoop {
  return (s, so, ss, d, dO, ds, shape) => {
    const rank = shape.length;
    const total = shape.reduce((a, b) => a * b, 1);
    const idx = new Array<number>(rank).fill(0);
    for (let i = 0; i < total; i++) {
      let sOff = so;
      let dOff = dO;
      for (let q = 0; q < rank; q++) {
        sOff += idx[q] * ss[q];
        dOff += idx[q] * ds[q];
      }
      d[dOff] = conv(s[sOff]);
      for (let q = rank - 1; q >= 0 && ++idx[q] === shape[q]; q--) idx[q] = 0;
    }
  };
}

/** A strided copy specialised for (output conversion, array types). */
export function copyLoop(conv: ((v: number) => number) | null, kinds: string): CopyLoop {
  const k = `${conv ? conv.name || 'conv' : ''}|${kinds}`;
  let loop = copyCache.get(k);
  if (!loop) {
    const c = conv ?? identity;
    loop = compile<CopyLoop>(`copy ${k}`, COPY_SRC, null, c) ?? interpretedCopyLoop(c);
    copyCache.set(k, loop);
  }
  return loop;
}
