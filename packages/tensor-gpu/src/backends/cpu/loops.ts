// Per-op elementwise loops. A loop shared by every op calls its math through one megamorphic call
// site (~10-20 ns per element); a loop compiled per op gets its own type feedback, so V8 inlines the
// math. Loops are also compiled per combination of array types (Float32Array, Int32Array, Uint8Array):
// one loop fed a bool mask once turns its element accesses polymorphic for every later call, which
// cost 2-3x on float32 in a training step. `new Function` is refused under a strict
// Content-Security-Policy: then the shared loop is used.

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
function compile<T>(src: string, f: unknown, conv: unknown): T | null {
  if (canCompile === false) return null;
  try {
    const made = new Function('f', 'conv', src)(f, conv) as T;
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
      compile<UnaryLoop>(UNARY_SRC, f, c) ??
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
      compile<BinaryLoop>(BINARY_SRC, f, c) ??
      ((a, ba, sa, b, bb, sb, out, bo, so, n) => {
        for (let j = 0; j < n; j++) out[bo + j * so] = c(f(a[ba + j * sa], b[bb + j * sb]));
      });
    binaryCache.set(k, loop);
  }
  return loop;
}
