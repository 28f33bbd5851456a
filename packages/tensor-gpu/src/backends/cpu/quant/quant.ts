// The cpu backend's WebAssembly SIMD weight-only matmul (see gen-quant.ts): int8 / int4 / float16 rows
// with a scale per row, decoded in registers.
//
// The module has its own growable memory. Decode-sized inputs (M <= DECODE_MAX_ROWS rows of x) run the
// `gemv` kernels: x is staged once, then the packed weight is streamed through the memory in chunks of
// rows small enough to stay in L2 (one memcpy each, read once more from cache by the kernel), so each
// weight byte comes from main memory once whatever M is. Larger inputs (prefill) dequantize a block of
// rows at a time into float32 in the module's memory and hand it to the float GEMM engine
// (`matmulKernel`: WebAssembly SIMD on every core), which beats decoding inside a dot product once the
// decoded block is reused by many rows of x.
//
// Returns false (nothing written) where WebAssembly SIMD is unavailable: the JS kernels run then.

import type { View } from '../../../backend.js';
import { decodeBase64 } from '../common.js';
import { matmulKernel } from '../matmul.js';
import { COLS_PER_BLOCK, GEMV_MAX_ROWS, Q4_GEMV_ORDER, type QuantFormat } from './gen-quant-shared.js';
import { QUANT_WASM_B64 } from './quant-bytes.js';

type GemvFn = (px: number, ldx: number, pw: number, ldw: number, nrows: number, kb: number, ps: number, po: number, ldo: number) => void;
type DeqFn = (pw: number, ldw: number, nrows: number, kb: number, ps: number, pd: number, ldd: number) => void;

interface QuantModule {
  memory: WebAssembly.Memory;
  gemv: Record<QuantFormat, GemvFn[]>;
  deq: Record<QuantFormat, DeqFn>;
  /** Views of `memory.buffer`, made again only when the memory grew (growing detaches the old buffer). */
  views: MemoryViews | null;
}

interface MemoryViews {
  buffer: ArrayBuffer;
  f32: Float32Array;
  u8: Uint8Array;
}

/** Packed weight rows as the kernels read them: `rows` rows of `rowWords` int32 words from `offset`. */
export interface PackedRows {
  fmt: QuantFormat;
  data: Int32Array;
  /** Word offset of row 0. */
  offset: number;
  rows: number;
  rowWords: number;
  /** Columns of a row (the layer's input features). */
  cols: number;
  /** One float32 per row. */
  scale: Float32Array;
  scaleOffset: number;
}

/** Rows of x up to which the gemv kernels run (above: dequantize a block, float GEMM). */
export const DECODE_MAX_ROWS = 8;
/** Bytes of packed weight staged per gemv chunk (fits L2 with room for x and the output). */
const CHUNK_BYTES = 64 * 1024;
/** Bytes of float32 rows dequantized per GEMM block (prefill). */
const DEQ_BLOCK_BYTES = 2 * 1024 * 1024;

let loaded: QuantModule | null | undefined;


/** The instantiated module, or null where WebAssembly SIMD is unavailable. */
export function quantModule(): QuantModule | null {
  if (loaded !== undefined) return loaded;
  try {
    const bytes = decodeBase64(QUANT_WASM_B64);
    if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(bytes)) throw new Error('no wasm simd');
    const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as Record<string, unknown>;
    const formats: QuantFormat[] = ['q8', 'q4', 'h16'];
    const gemv = {} as Record<QuantFormat, GemvFn[]>;
    const deq = {} as Record<QuantFormat, DeqFn>;
    for (const f of formats) {
      gemv[f] = Array.from({ length: GEMV_MAX_ROWS }, (_, r) => ex[`${f}m${r + 1}`] as GemvFn);
      deq[f] = ex[`${f}deq`] as DeqFn;
    }
    loaded = { memory: ex.memory as WebAssembly.Memory, gemv, deq, views: null };
  } catch {
    loaded = null;
  }
  return loaded;
}

/** Grows the module's memory to at least `bytes` and returns views of it (the cached ones unless it grew). */
function memoryOf(m: QuantModule, bytes: number): MemoryViews {
  const have = m.memory.buffer.byteLength;
  if (have < bytes) m.memory.grow(Math.ceil((bytes - have) / 65536));
  const buffer = m.memory.buffer;
  if (m.views?.buffer !== buffer) m.views = { buffer, f32: new Float32Array(buffer), u8: new Uint8Array(buffer) };
  return m.views;
}

/** Float32 scratch of at least `length` elements, kept between calls (grown when a call needs more). */
let scratch = new Float32Array(0);
function scratchOf(length: number): Float32Array {
  if (scratch.length < length) scratch = new Float32Array(length);
  return scratch;
}

const align16 = (n: number) => (n + 15) & ~15;

/** Geometry of one format's rows in the module: padded columns, 16-byte blocks per row, row stride. */
function geometry(w: PackedRows): { kp: number; kb: number; ldw: number } {
  const cols = COLS_PER_BLOCK[w.fmt];
  const kb = Math.ceil(w.cols / cols);
  return { kp: kb * cols, kb, ldw: kb * 16 };
}

/**
 * Copies rows [n0, n0 + count) of w to byte `dst` at stride ldw (pads zeroed), and their scales to
 * byte `ps`.
 */
function stageRows(u8: Uint8Array, f32: Float32Array, w: PackedRows, n0: number, count: number, dst: number, ldw: number, ps: number): void {
  const src = new Uint8Array(w.data.buffer, w.data.byteOffset + (w.offset + n0 * w.rowWords) * 4, count * w.rowWords * 4);
  const rowBytes = w.rowWords * 4;
  if (rowBytes === ldw) u8.set(src, dst);
  else {
    for (let n = 0; n < count; n++) {
      u8.set(src.subarray(n * rowBytes, (n + 1) * rowBytes), dst + n * ldw);
      u8.fill(0, dst + n * ldw + rowBytes, dst + (n + 1) * ldw);
    }
  }
  f32.set(w.scale.subarray(w.scaleOffset + n0, w.scaleOffset + n0 + count), ps >> 2);
}

/**
 * One row of x (K floats) to float `dst` of the module, zero-padded to kp columns (padding columns
 * multiply 0); for the q4 gemv each 32-column block in Q4_GEMV_ORDER.
 */
function stageX(f32: Float32Array, x: Float32Array, src: number, K: number, kp: number, dst: number, q4: boolean): void {
  if (!q4) {
    f32.set(x.subarray(src, src + K), dst);
    f32.fill(0, dst + K, dst + kp);
    return;
  }
  for (let b = 0; b < kp; b += 32) {
    for (let p = 0; p < 32; p++) {
      const c = b + Q4_GEMV_ORDER[p];
      f32[dst + b + p] = c < K ? x[src + c] : 0;
    }
  }
}

/**
 * out[m][n] = sum_k x[m][k] * w[n][k] (* scale[n]) for m < M: x contiguous [M, cols] from xOffset, out
 * contiguous [M, rows] from outOffset. False (nothing written) without WebAssembly SIMD.
 */
export function simdWeightMatmul(x: Float32Array, xOffset: number, M: number, w: PackedRows, out: Float32Array, outOffset: number): boolean {
  const m = quantModule();
  if (!m) return false;
  if (M > DECODE_MAX_ROWS) return prefill(m, x, xOffset, M, w, out, outOffset);
  const { kp, kb, ldw } = geometry(w);
  const K = w.cols;
  const N = w.rows;
  const R = Math.max(1, Math.min(N, Math.floor(CHUNK_BYTES / ldw)));
  const ldx = kp * 4;
  const px = 0;
  const ps = align16(px + M * ldx);
  const pw = align16(ps + R * 4);
  const po = pw + R * ldw;
  const ldo = align16(R * 4);
  const { f32, u8 } = memoryOf(m, po + M * ldo);
  for (let r = 0; r < M; r++) stageX(f32, x, xOffset + r * K, K, kp, (px + r * ldx) >> 2, w.fmt === 'q4');
  const gemv = m.gemv[w.fmt];
  for (let n0 = 0; n0 < N; n0 += R) {
    const count = Math.min(R, N - n0);
    stageRows(u8, f32, w, n0, count, pw, ldw, ps);
    for (let r0 = 0; r0 < M; r0 += GEMV_MAX_ROWS) {
      const rows = Math.min(GEMV_MAX_ROWS, M - r0);
      gemv[rows - 1](px + r0 * ldx, ldx, pw, ldw, count, kb, ps, po + r0 * ldo, ldo);
    }
    for (let r = 0; r < M; r++) out.set(f32.subarray((po + r * ldo) >> 2, ((po + r * ldo) >> 2) + count), outOffset + r * N + n0);
  }
  return true;
}

/** Float32 rows of w (times their scales) into `out` [rows, cols] from outOffset. */
export function simdDequantize(w: PackedRows, out: Float32Array, outOffset: number): boolean {
  const m = quantModule();
  if (!m) return false;
  const { kp, kb, ldw } = geometry(w);
  const K = w.cols;
  const R = Math.max(1, Math.min(w.rows, Math.floor(CHUNK_BYTES / ldw)));
  const ps = 0;
  const pw = align16(R * 4);
  const pd = pw + R * ldw;
  const { f32, u8 } = memoryOf(m, pd + R * kp * 4);
  for (let n0 = 0; n0 < w.rows; n0 += R) {
    const count = Math.min(R, w.rows - n0);
    stageRows(u8, f32, w, n0, count, pw, ldw, ps);
    m.deq[w.fmt](pw, ldw, count, kb, ps, pd, kp * 4);
    for (let n = 0; n < count; n++) out.set(f32.subarray((pd >> 2) + n * kp, (pd >> 2) + n * kp + K), outOffset + (n0 + n) * K);
  }
  return true;
}

/** A [batch, rows, cols] operand description for the GEMM engine (only shape, strides and offset are read). */
function gemmView(shape: [number, number, number], strides: [number, number, number], offset: number): View {
  return { shape, strides, offset } as unknown as View;
}

/** Prefill: blocks of rows dequantized into float32 in the module's memory, each multiplied by the GEMM engine. */
function prefill(m: QuantModule, x: Float32Array, xOffset: number, M: number, w: PackedRows, out: Float32Array, outOffset: number): boolean {
  const { kp, kb, ldw } = geometry(w);
  const K = w.cols;
  const N = w.rows;
  const NB = Math.max(1, Math.min(N, Math.floor(DEQ_BLOCK_BYTES / (kp * 4))));
  const ps = 0;
  const pw = align16(NB * 4);
  const pd = pw + NB * ldw;
  memoryOf(m, pd + NB * kp * 4);
  const a = gemmView([1, M, K], [0, K, 1], xOffset); // x [M, K]
  const tmp = NB === N ? null : scratchOf(M * NB);
  for (let n0 = 0; n0 < N; n0 += NB) {
    const count = Math.min(NB, N - n0);
    const { f32, u8 } = memoryOf(m, 0);
    stageRows(u8, f32, w, n0, count, pw, ldw, ps);
    m.deq[w.fmt](pw, ldw, count, kb, ps, pd, kp * 4);
    const b = gemmView([1, K, count], [0, 1, kp], pd >> 2); // the block's rows as W^T [K, count]
    if (!tmp) {
      matmulKernel.run(a, x, b, f32, out, outOffset);
      continue;
    }
    matmulKernel.run(a, x, b, f32, tmp, 0);
    for (let r = 0; r < M; r++) out.set(tmp.subarray(r * count, (r + 1) * count), outOffset + r * N + n0);
  }
  return true;
}
