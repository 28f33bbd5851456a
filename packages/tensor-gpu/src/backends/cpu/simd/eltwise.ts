// The cpu backend's WebAssembly SIMD elementwise rows (see gen-eltwise.ts): exact GELU with its bias
// add, and its gradient, at ~1 ns per element instead of 10-80 ns for the JS loop (Math.exp and the
// erf polynomial per element). The module has its own small memory: operands are staged through it in
// chunks (typed-array copies, ~0.25 ns per element each way) and the results copied back.
//
// `trySimdRow` takes the fused kernels' views and returns false when the case is not one it serves
// (not float32, not contiguous, bias not a whole row, no WebAssembly SIMD): the JS loop runs then.

import type { View } from '../../../backend.js';
import { isContiguous } from '../../../layout.js';
import { ELTWISE_PAGES, ELTWISE_WASM_B64 } from './eltwise-bytes.js';

export type SimdRowName = 'addGelu' | 'geluBackward';

type RowFn = (pa: number, pb: number, po: number, count: number) => void;
interface EltwiseModule {
  f32: Float32Array;
  rows: Record<SimdRowName, RowFn>;
  expSum: (pa: number, po: number, count: number, m: number) => number;
}

/** Floats per staged operand: three regions (a, b, out) fill the module's memory less 16 KiB. */
const CHUNK = ((ELTWISE_PAGES * 65536 - 16384) / 12) & ~15;
/** Below this many elements the JS loop is as fast (measured: the wasm call and copies cost ~1 us). */
export const SIMD_ROW_MIN = 256;

let loaded: EltwiseModule | null | undefined;

function decode(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The instantiated module, or null where WebAssembly SIMD is unavailable (then the JS loops run). */
export function eltwiseModule(): EltwiseModule | null {
  if (loaded !== undefined) return loaded;
  try {
    const bytes = decode(ELTWISE_WASM_B64);
    if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(bytes)) throw new Error('no wasm simd');
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
    const ex = inst.exports as unknown as { memory: WebAssembly.Memory; expSum: EltwiseModule['expSum'] } & Record<SimdRowName, RowFn>;
    loaded = { f32: new Float32Array(ex.memory.buffer), rows: { addGelu: ex.addGelu, geluBackward: ex.geluBackward }, expSum: ex.expSum };
  } catch {
    loaded = null;
  }
  return loaded;
}

function f32Contiguous(v: View): Float32Array | null {
  const data = (v.storage as { data?: unknown }).data;
  return v.dtype === 'float32' && data instanceof Float32Array && isContiguous(v.shape, v.strides) ? data : null;
}

/** The length of b's repeated row when b is a broadcast of its last dim (a bias), else 0. */
function rowLength(b: View): number {
  const r = b.shape.length;
  if (r === 0 || b.strides[r - 1] !== 1) return 0;
  for (let i = 0; i < r - 1; i++) if (b.strides[i] !== 0 && b.shape[i] !== 1) return 0;
  return b.shape[r - 1];
}

/**
 * out = row(a, b) elementwise in WebAssembly SIMD, for float32 a and out contiguous and b either
 * contiguous or a broadcast row; false (nothing written) otherwise.
 */
export function trySimdRow(op: SimdRowName, a: View, b: View, out: View): boolean {
  const count = out.shape.reduce((n, d) => n * d, 1);
  if (count < SIMD_ROW_MIN) return false;
  const as = f32Contiguous(a);
  const os = f32Contiguous(out);
  const bData = (b.storage as { data?: unknown }).data;
  if (!as || !os || b.dtype !== 'float32' || !(bData instanceof Float32Array)) return false;
  const bs = bData;
  const bFull = isContiguous(b.shape, b.strides);
  const n = bFull ? 0 : rowLength(b);
  if (!bFull && (n === 0 || n > CHUNK)) return false;
  const m = eltwiseModule();
  if (!m) return false;
  const { f32 } = m;
  const fn = m.rows[op];
  const [pa, pb, po] = [0, CHUNK, 2 * CHUNK];
  // a row-broadcast b is laid out once as whole rows repeated over the chunk, which then holds whole rows only
  const step = bFull ? CHUNK : Math.floor(CHUNK / n) * n;
  if (!bFull) {
    const row = bs.subarray(b.offset, b.offset + n);
    for (let i = 0; i < step; i += n) f32.set(row, pb + i);
  }
  for (let i = 0; i < count; i += step) {
    const len = Math.min(step, count - i);
    f32.set(as.subarray(a.offset + i, a.offset + i + len), pa);
    if (bFull) f32.set(bs.subarray(b.offset + i, b.offset + i + len), pb);
    fn(pa * 4, pb * 4, po * 4, (len + 3) & ~3);
    os.set(f32.subarray(po, po + len), out.offset + i);
  }
  return true;
}

/** Below this row length the JS exp loop is as fast as staging the row through the module. */
export const SIMD_EXP_MIN = 32;

/**
 * dst[j] = exp(src[j] - m) for j < n, returns the sum of those (float32 lanes summed in float64 per
 * chunk); null when the module is unavailable or the row too short (the caller's JS loop runs then).
 * src and dst may be the same array at the same offset.
 */
export function expShiftedRow(src: Float32Array, srcOffset: number, n: number, m: number, dst: Float32Array, dstOffset: number): number | null {
  if (n < SIMD_EXP_MIN) return null;
  const mod = eltwiseModule();
  if (!mod) return null;
  const { f32 } = mod;
  const step = CHUNK;
  const po = CHUNK;
  let sum = 0;
  for (let i = 0; i < n; i += step) {
    const len = Math.min(step, n - i);
    const len4 = (len + 3) & ~3;
    f32.set(src.subarray(srcOffset + i, srcOffset + i + len), 0);
    // padding lanes: exp(-inf) = 0 adds nothing to the sum
    for (let j = len; j < len4; j++) f32[j] = -Infinity;
    sum += mod.expSum(0, po * 4, len4, m);
    dst.set(f32.subarray(po, po + len), dstOffset + i);
  }
  return sum;
}
