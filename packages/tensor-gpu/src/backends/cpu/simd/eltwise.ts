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
import { decodeBase64 } from '../common.js';
import { eltwiseInPlace, runRowTask, type RowOperand } from './rows.js';

export type SimdRowName = 'addGelu' | 'geluBackward' | 'siluBackward';
export type SimdUnaryName = 'gelu' | 'silu';

type RowFn = (pa: number, pb: number, po: number, count: number) => void;
type AdamFn = (pp: number, pg: number, pm: number, pv: number, count: number, decay: number, b1: number, b2: number, c1: number, c2: number, inv: number, eps: number, step: number) => void;
interface EltwiseModule {
  f32: Float32Array;
  rows: Record<SimdRowName | SimdUnaryName, RowFn>;
  expSum: (pa: number, po: number, count: number, m: number) => number;
  rowsExpSum: (pa: number, po: number, ps: number, rows: number, n: number) => void;
  rowsAffine: (pa: number, po: number, ps: number, rows: number, n: number) => void;
  rowsMoments: (pa: number, rms: number, ps: number, rows: number, n: number) => void;
  rowsNorm: (pa: number, po: number, pw: number, pb: number, ps: number, rows: number, n: number) => void;
  adamDecoupled: AdamFn;
  adamL2: AdamFn;
}

/** Floats per staged operand: three regions (a, b, out) fill the module's memory less 16 KiB. */
const CHUNK = ((ELTWISE_PAGES * 65536 - 16384) / 12) & ~15;
/** Below this many elements the JS loop is as fast (measured: the wasm call and copies cost ~1 us). */
export const SIMD_ROW_MIN = 256;

let loaded: EltwiseModule | null | undefined;

/** The instantiated module, or null where WebAssembly SIMD is unavailable (then the JS loops run). */
export function eltwiseModule(): EltwiseModule | null {
  if (loaded !== undefined) return loaded;
  try {
    const bytes = decodeBase64(ELTWISE_WASM_B64);
    if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(bytes)) throw new Error('no wasm simd');
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
    const ex = inst.exports as unknown as { memory: WebAssembly.Memory } & Omit<EltwiseModule, 'f32' | 'rows'> & Record<SimdRowName | SimdUnaryName, RowFn>;
    loaded = {
      f32: new Float32Array(ex.memory.buffer),
      rows: { addGelu: ex.addGelu, geluBackward: ex.geluBackward, siluBackward: ex.siluBackward, gelu: ex.gelu, silu: ex.silu },
      expSum: ex.expSum,
      rowsExpSum: ex.rowsExpSum,
      rowsAffine: ex.rowsAffine,
      rowsMoments: ex.rowsMoments,
      rowsNorm: ex.rowsNorm,
      adamDecoupled: ex.adamDecoupled,
      adamL2: ex.adamL2,
    };
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
interface RowOperands {
  as: Float32Array;
  bs: Float32Array;
  os: Float32Array;
  count: number;
  bFull: boolean;
  /** b's row length when it is a broadcast row, else 0. */
  n: number;
}

/** a, b, out as a row kernel takes them (float32; a, out contiguous; b contiguous or a row), or null. */
function rowOperands(a: View, b: View, out: View): RowOperands | null {
  const count = out.shape.reduce((n, d) => n * d, 1);
  if (count < SIMD_ROW_MIN) return null;
  const as = f32Contiguous(a);
  const os = f32Contiguous(out);
  const bs = (b.storage as { data?: unknown }).data;
  if (!as || !os || b.dtype !== 'float32' || !(bs instanceof Float32Array)) return null;
  const bFull = isContiguous(b.shape, b.strides);
  const n = bFull ? 0 : rowLength(b);
  return !bFull && (n === 0 || n > CHUNK) ? null : { as, bs, os, count, bFull, n };
}

/** out = a + b in place on the GEMM's shared memory, on both threads; false when it is not there. */
export function tryAddInPlace(a: View, b: View, out: View): boolean {
  const r = rowOperands(a, b, out);
  return r !== null && eltwiseInPlace('add', r.as, a.offset, r.bs, b.offset, r.n, r.os, out.offset, r.count);
}

export function trySimdRow(op: SimdRowName, a: View, b: View, out: View): boolean {
  const r = rowOperands(a, b, out);
  if (!r) return false;
  const { as, bs, os, count, n } = r;
  return eltwiseInPlace(op, as, a.offset, bs, b.offset, n, os, out.offset, count) || stagedElementwise(op, as, a.offset, bs, b.offset, n, os, out.offset, count);
}

/**
 * out = row(a, b) over count floats staged through the module's memory in chunks: b a whole operand
 * (bRow 0), a row of bRow floats repeated (laid out once as whole rows over the chunk, which then
 * holds whole rows only), or null (a unary row: b is not read). False when the module is unavailable.
 */
function stagedElementwise(
  op: SimdRowName | SimdUnaryName, as: Float32Array, ao: number, bs: Float32Array | null, bo: number, bRow: number, os: Float32Array, oo: number, count: number,
): boolean {
  const m = eltwiseModule();
  if (!m) return false;
  const { f32 } = m;
  const fn = m.rows[op];
  const [pa, pb, po] = [0, CHUNK, 2 * CHUNK];
  const step = bRow > 0 ? Math.floor(CHUNK / bRow) * bRow : CHUNK;
  if (bs && bRow > 0) {
    const row = bs.subarray(bo, bo + bRow);
    for (let i = 0; i < step; i += bRow) f32.set(row, pb + i);
  }
  for (let i = 0; i < count; i += step) {
    const len = Math.min(step, count - i);
    f32.set(as.subarray(ao + i, ao + i + len), pa);
    if (bs && bRow === 0) f32.set(bs.subarray(bo + i, bo + i + len), pb);
    fn(pa * 4, pb * 4, po * 4, (len + 3) & ~3);
    os.set(f32.subarray(po, po + len), oo + i);
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

/**
 * out = op(x) (GELU, SiLU) in WebAssembly SIMD for float32 x and out, both contiguous; false (nothing
 * written) otherwise, and the JS loop runs.
 */
export function trySimdUnary(op: SimdUnaryName, x: View, out: View): boolean {
  const count = out.shape.reduce((n, d) => n * d, 1);
  const xs = f32Contiguous(x);
  const os = f32Contiguous(out);
  if (count < SIMD_ROW_MIN || !xs || !os) return false;
  return eltwiseInPlace(op, xs, x.offset, null, 0, 0, os, out.offset, count) || stagedElementwise(op, xs, x.offset, null, 0, 0, os, out.offset, count);
}

/** Rows whose length is a multiple of 4 up to this many floats are staged whole for the row kernels. */
export const SIMD_ROWS_MAX = 8192;

/** How many whole rows of n floats fit one staging region, with room for their stats (and w, b) in region b. */
function rowsPerChunk(n: number): number {
  return Math.floor((CHUNK - 2 * n) / (n + 2));
}

/**
 * softmax (out = exp(x - max) / sum) or log-softmax (out = x - max - log(sum)) over `rows` contiguous
 * rows of n floats, in WebAssembly SIMD: the exps and row sums in one pass over the staged rows, the
 * scale (or shift, computed here in float64) in a second. False (nothing written) when the module is
 * unavailable or n is not a multiple of 4 up to SIMD_ROWS_MAX.
 */
export function softmaxRowsSimd(xs: Float32Array, xo: number, rows: number, n: number, o: Float32Array, oo: number, log: boolean): boolean {
  if (runRowTask(log ? 'logSoftmax' : 'softmax', rows, n, [{ data: xs, offset: xo, step: n }, { data: o, offset: oo, step: n, out: true }])) return true;
  return stagedRows(xs, xo, rows, n, o, oo, null, (m, f32, k, [pa, ps, po]) => {
    m.rowsExpSum(pa * 4, po * 4, ps * 4, k, n);
    for (let r = 0; r < k; r++) {
      const [max, sum] = [f32[ps + 2 * r], f32[ps + 2 * r + 1]];
      f32[ps + 2 * r] = log ? -(max + Math.log(sum)) : 0;
      f32[ps + 2 * r + 1] = log ? 1 : 1 / sum;
    }
    m.rowsAffine((log ? pa : po) * 4, po * 4, ps * 4, k, n);
  });
}

/** Region offsets (floats) of a staged chunk: the rows, their two stats floats each, the output. */
type StagedRegions = [pa: number, ps: number, po: number];

/**
 * Stages whole rows of n floats through the module's memory, a chunk at a time, and copies each chunk's
 * output back: `prepare` fills the start of region b before the first chunk (the weight and bias rows)
 * and returns how many floats it used (the stats follow); `run` computes k staged rows. False (nothing written) when the module is unavailable or n
 * is not a multiple of 4 from SIMD_EXP_MIN to SIMD_ROWS_MAX.
 */
function stagedRows(
  xs: Float32Array, xo: number, rows: number, n: number, o: Float32Array, oo: number,
  prepare: ((f32: Float32Array) => number) | null,
  run: (m: EltwiseModule, f32: Float32Array, k: number, regions: StagedRegions) => void,
): boolean {
  if (n % 4 !== 0 || n < SIMD_EXP_MIN || n > SIMD_ROWS_MAX) return false;
  const m = eltwiseModule();
  if (!m) return false;
  const { f32 } = m;
  const ps = CHUNK + (prepare ? prepare(f32) : 0);
  const regions: StagedRegions = [0, ps, 2 * CHUNK];
  const per = rowsPerChunk(n);
  for (let r0 = 0; r0 < rows; r0 += per) {
    const k = Math.min(per, rows - r0);
    const at = xo + r0 * n;
    f32.set(xs.subarray(at, at + k * n), 0);
    run(m, f32, k, regions);
    o.set(f32.subarray(2 * CHUNK, 2 * CHUNK + k * n), oo + r0 * n);
  }
  return true;
}

/**
 * Layer norm (or, with rms, RMS norm: mean taken as 0) over `rows` contiguous rows of n floats with
 * optional weight and bias rows, in WebAssembly SIMD; false under the same conditions as softmaxRowsSimd.
 */
export function layerNormRowsSimd(
  xs: Float32Array, xo: number, rows: number, n: number,
  w: Float32Array | null, wo: number, b: Float32Array | null, bo: number,
  o: Float32Array, oo: number, eps: number, rms: boolean,
): boolean {
  const row = (a: Float32Array | null, at: number, fill: number): RowOperand => ({ data: a ?? constantRow(n, fill), offset: a ? at : 0, step: 0 });
  const operands = [{ data: xs, offset: xo, step: n }, { data: o, offset: oo, step: n, out: true }, row(w, wo, 1), row(b, bo, 0)];
  if (runRowTask(rms ? 'rmsNorm' : 'layerNorm', rows, n, operands, eps)) return true;
  // region b holds the weight row, the bias row, then two stats floats per staged row
  const [pw, pb] = [CHUNK, CHUNK + n];
  const prepare = (f32: Float32Array) => {
    if (w) f32.set(w.subarray(wo, wo + n), pw);
    else f32.fill(1, pw, pw + n);
    if (b) f32.set(b.subarray(bo, bo + n), pb);
    else f32.fill(0, pb, pb + n);
    return 2 * n;
  };
  return stagedRows(xs, xo, rows, n, o, oo, prepare, (m, f32, k, [pa, ps, po]) => {
    m.rowsMoments(pa * 4, rms ? 1 : 0, ps * 4, k, n);
    // rstd in float64 from the float32 centred sum of squares
    for (let r = 0; r < k; r++) f32[ps + 2 * r + 1] = 1 / Math.sqrt(f32[ps + 2 * r + 1] / n + eps);
    m.rowsNorm(pa * 4, po * 4, pw * 4, pb * 4, ps * 4, k, n);
  });
}

const constantRows = new Map<string, Float32Array>();

/** A row of n copies of `fill` (a layer norm without weight or bias), kept per (n, fill). */
export function constantRow(n: number, fill: number): Float32Array {
  const key = `${n}:${fill}`;
  let r = constantRows.get(key);
  if (!r) constantRows.set(key, (r = new Float32Array(n).fill(fill)));
  return r;
}

/** Floats per operand when the Adam step stages its four arrays (p, g, m, v). */
const ADAM_CHUNK = ((ELTWISE_PAGES * 65536 - 16384) / 16) & ~15;

/**
 * The Adam step over n floats in place in WebAssembly SIMD (bitwise the JS loop's result: every
 * operation is a float32 one in both); false when the module is unavailable or n is small.
 * decoupled: p *= coef first; else g += p * coef.
 */
export function adamSimd(
  p: Float32Array, po: number, g: Float32Array, go: number, mm: Float32Array, mo: number, v: Float32Array, vo: number, n: number,
  decoupled: boolean, coef: number, b1: number, b2: number, c1: number, c2: number, inv: number, eps: number, step: number,
): boolean {
  if (n < SIMD_ROW_MIN) return false;
  const m = eltwiseModule();
  if (!m) return false;
  const { f32 } = m;
  const fn = decoupled ? m.adamDecoupled : m.adamL2;
  const [pp, pg, pm, pv] = [0, ADAM_CHUNK, 2 * ADAM_CHUNK, 3 * ADAM_CHUNK];
  for (let i = 0; i < n; i += ADAM_CHUNK) {
    const len = Math.min(ADAM_CHUNK, n - i);
    f32.set(p.subarray(po + i, po + i + len), pp);
    f32.set(g.subarray(go + i, go + i + len), pg);
    f32.set(mm.subarray(mo + i, mo + i + len), pm);
    f32.set(v.subarray(vo + i, vo + i + len), pv);
    fn(pp * 4, pg * 4, pm * 4, pv * 4, (len + 3) & ~3, coef, b1, b2, c1, c2, inv, eps, step);
    p.set(f32.subarray(pp, pp + len), po + i);
    mm.set(f32.subarray(pm, pm + len), mo + i);
    v.set(f32.subarray(pv, pv + len), vo + i);
  }
  return true;
}
