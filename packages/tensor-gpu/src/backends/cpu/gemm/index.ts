/**
 * Synchronous float32 GEMM for the CPU backend: WebAssembly SIMD micro-kernel
 * (relaxed-simd FMA when available, else simd128, else plain JS) + shared-memory
 * worker threads driven with Atomics.
 *
 * Design (see tooling-notes/gemm.md):
 *  - One shared WebAssembly.Memory of FIXED size (~7 MiB) holds a control block, two
 *    packed-A buffers, two packed-B buffers and two C buffers. The problem is blocked
 *    over M (MC_MAX), N (NC_MAX) and K (KC_MAX) so this scratch never grows.
 *  - The calling thread packs A/B blocks from the caller's (strided) arrays into the
 *    shared memory and publishes a "round" (one MC x NC x KC block, or a group of whole
 *    small batch items); all threads, the caller included, claim column strips of the
 *    round with a compare-exchange on a counter and run the wasm micro-kernel on them.
 *    While the workers compute round r, the caller packs round r+1 (double buffering)
 *    and copies the previous finished C block to `out`, then joins the computation.
 *  - The caller blocks with Atomics.wait until the round is complete, so `matmul` is
 *    synchronous. Where blocking is not allowed (browser main thread) or shared memory
 *    is unavailable, it runs single-threaded wasm on the calling thread.
 *  - `x @ W^T` (B's rows contiguous along k, e.g. W stored [N, K]) runs the `dots`
 *    kernel on memcpy'd rows of W (no transpose; one memcpy per block when W is dense), or,
 *    from PANEL_T_MIN_ROWS rows with W in the shared memory, the strip kernel on panels the
 *    tasks transpose from W's rows.
 *    A transposed A is memcpy'd line by line and transposed by the wasm `transpose`.
 *  - Operands and outputs allocated in the shared memory (`alloc`: the cpu backend's storages from
 *    256 KiB) are read and written where they lie when the layout allows (`inPlace`): then nothing is
 *    packed or copied out, and a batch of small products (attention's heads) is one round whose tasks
 *    stream through every head. C may be written with any row / batch stride (`GemmOutLayout`).
 *  - What must still be packed from an operand in the shared memory is packed by the tasks, on every
 *    thread (decision 0027): each strip task packs its own B micro-panel from where B lies just before
 *    using it, and a transposed A is staged by transpose tasks that follow the previous round's compute
 *    tasks. Only operands outside the shared memory are copied by the calling thread alone.
 *  - Tiny problems use a plain JS loop (no packing at all).
 */
import {
  canBlockHere,
  hardwareConcurrency,
  nodeBuiltin,
  sharedMemoryAvailable,
  spawnInlineWorker,
  type InlineWorker,
} from '../thread-pool.js';
import {
  DOTS_MB,
  GEMM_WASM_RELAXED_B64,
  GEMM_WASM_RELAXED_SHARED_B64,
  GEMM_WASM_SIMD_B64,
  GEMM_WASM_SIMD_SHARED_B64,
  KERNEL_MR,
  KERNEL_NR,
} from './wasm-bytes.js';
import {
  claimAndRun,
  gemmWorkerSource,
  type ControlLayout,
  type DotsFn,
  type PackBFn,
  type RowFn,
  type StripFn,
  type StripPfFn,
  type TransposeFn,
  type WorkerInit,
} from './worker-body.js';
import { HEAP_GUARD_BYTES, heapOf, SharedHeap } from './heap.js';
import { decodeBase64 } from '../common.js';
import { ROW_OPS, rowTaskModule } from '../simd/rows.js';

export interface GemmOperand {
  /** The whole backing array (may be large); elements read at offset + strides. */
  data: Float32Array;
  /** Element offset of [0,0,0]. */
  offset: number;
  /** Element strides for [batch, rows, cols]; batch stride may be 0 (broadcast). */
  strides: [number, number, number];
}

export type GemmSimd = 'relaxed-simd' | 'simd128' | 'scalar';

/** Where C goes: out[offset + bt*strides[0] + m*strides[1] + n] (rows contiguous, any row and batch stride). */
export interface GemmOutLayout {
  offset: number;
  strides: [number, number];
}

export interface Gemm {
  /**
   * out[bt, m, n] = sum_k a[bt, m, k] * b[bt, k, n], overwritten; `out` is contiguous (batch*M*N
   * from element 0) unless `layout` gives its offset and batch/row strides (e.g. heads written
   * straight into [B, L, H, D] storage). `out` must not alias the inputs. Operands and an output
   * allocated with `alloc` are read and written in place by the threads where the layout allows.
   */
  matmul(a: GemmOperand, b: GemmOperand, out: Float32Array, batch: number, M: number, N: number, K: number, layout?: GemmOutLayout): void;
  /** Threads actually used (calling thread included). */
  readonly threads: number;
  readonly simd: GemmSimd;
  /**
   * A Float32Array of `length` floats inside the memory the GEMM's threads share (contents
   * unspecified), or null where there is none or it cannot grow. `matmul` reads a weight allocated
   * here in place on every thread. The cpu backend gives it back through its heap (`heapOf(a).release`,
   * in `releaseStorage`), or drops it: it is returned when collected.
   */
  alloc(length: number): Float32Array | null;
  /** Terminates the workers. The engine cannot be used afterwards. */
  dispose(): void;
}

export interface GemmOptions {
  /** Total threads including the calling one. Default: hardware concurrency. */
  threads?: number;
  /** Force a kernel (tests / benchmarks). Falls back further down if unsupported. */
  simd?: GemmSimd;
}

const MR = KERNEL_MR;
const NR = KERNEL_NR;
/** Blocking: K per packed panel (B micro-panel KC*NR*4 = 8 KiB stays in L1). */
export const KC_MAX = 256;
/**
 * K per round of a strip product with A and C in place: one 16 KiB micro-panel per strip (a task's panels
 * are packed together, so up to 64 KiB per task), and C is accumulated over half as many rounds (p·v at
 * seq 512: K = 512 in one pass; measured 72.5 -> 75.6 and 78.3 -> 83.8 GFLOPS there, nothing lost elsewhere).
 */
export const KC_IN_PLACE = 512;
/** `x @ W^T` with at least this many rows and this K runs the strip kernel on panels transposed from W. */
export const PANEL_T_MIN_ROWS = 256;
export const PANEL_T_MIN_K = 256;
/** Strip rounds with at least this many rows (padded) pack B into micro-panels. */
export const PANEL_MIN_ROWS = 4 * MR;
/** Rows per block (packed A block MC*KC*4 ~ 512 KiB stays in L2); a multiple of MR and DOTS_MB. */
export const MC_MAX = 504;
/** Columns per block (multiple of NR and DOTS_NRT). */
export const NC_MAX = 1024;
/** Below this many multiply-adds (batch*M*N*K) a plain JS loop is used (measured: wasm wins from ~6^3). */
export const JS_MAX_WORK = 256;
/** Below this many multiply-adds the worker threads are not woken. */
export const PARALLEL_MIN_WORK = 64 * 64 * 64;
/** Rows of W (columns of C) per task of a `dots` round. */
export const DOTS_NRT = 16;
/** Largest K block of a `dots` round (K is not split below this when the A block fits). */
export const DOTS_KC_MAX = 4096;
/** In-place GEMV (W allocated in the shared memory, read by every thread): at most this many rows of x. */
export const GEMV_MAX_M = 8;
/** In-place GEMV: rows of W per task. */
export const GEMV_NRT = 16;

const LAYOUT: ControlLayout = {
  CTL_INTS: 128,
  SEQ: 0,
  CMD: 1,
  NEXT: 2,
  DONE: 3,
  BASE: 4,
  NTASKS: 5,
  ABASE: 6,
  BBASE: 7,
  CBASE: 8,
  NP: 9,
  KC: 10,
  LDC: 11,
  ACC: 12,
  STRIPS: 13,
  AGS: 14,
  BGS: 15,
  CGS: 16,
  LDA: 17,
  LDB: 18,
  SS: 20,
  READY: 19,
  KIND: 21,
  CSS: 22,
  NRT: 23,
  WBASE: 24,
  NCOLS: 25,
  SLEEPERS: 26,
  MAIN_SLEEPS: 27,
  ROW_OP: 32,
  ROW_ROWS: 33,
  ROW_PER: 34,
  ROW_LEN: 35,
  ROW_P: 36,
  ROW_S: 41,
  ROW_F: 46,
  BSRC: 48,
  BSRC_LDS: 49,
  BSRC_GS: 50,
  TAIL_A: 51,
  TAIL_C: 52,
  TAIL_CGS: 53,
  TAIL_LDC: 54,
  SPT: 66,
  NSTRIPS: 67,
  PF_STEP: 68,
  BSRC_T: 69,
  // the transpose job: JOB_SIZE consecutive ints in this order (`Job`)
  JOB_N: 55,
  JOB_PER: 56,
  JOB_ITEM: 57,
  JOB_TOTAL: 58,
  JOB_S: 59,
  JOB_LDS: 60,
  JOB_D: 61,
  JOB_LDD: 62,
  JOB_ROWS: 63,
  JOB_GS: 64,
  JOB_GD: 65,
};
const JOB_SIZE = 11;
/**
 * NR-wide strips per strip-round task where the round has at least STRIP_TASK_MIN such tasks: 16 columns of
 * C, one 64-byte line, so the two threads (claiming neighbouring tasks at the same time) do not write the
 * same lines of C (measured: the M = 128 backward products and p·v 5-10% faster than 1 strip; 4: mixed).
 */
const STRIP_TASK = 2;
const STRIP_TASK_MIN = 8;
/**
 * Four strips per task (two 64-byte lines of C, B's rows packed in one pass of 128 bytes, A swept from L1
 * more often) where that still leaves STRIP_TASK_WIDE_MIN tasks per thread: attention's heads (measured,
 * interleaved: q·kᵀ row-major [12 x 128 x 64 x 128] 62-64 -> 67-68, [12 x 512 x 64 x 512] 72 -> 77, p·v
 * [96 x 128 x 128 x 64] 67 -> 69); with fewer, larger tasks per thread the threads finish unevenly
 * ([1024 x 1024 x 256] 76 -> 72 with four).
 */
const STRIP_TASK_WIDE = 4;
const STRIP_TASK_WIDE_MIN = 8;
/** Transpose-job tasks: rows of the A block (columns of the transposed source) per task. */
const JOB_PER = 24;
const CMD_RUN = 1;
const CMD_EXIT = 2;
/** Iterations of the worker's polling loop before it sleeps in Atomics.wait. */
const WORKER_SPIN = 20_000;
/** Iterations of the caller's polling loop before it sleeps in Atomics.wait. */
const MAIN_SPIN = 20_000;

/** Extra floats per row of the A/B copies (keeps B's row stride off powers of two). */
const LD_PAD = 4;
const CAP_A = MC_MAX * (KC_MAX + LD_PAD); // floats per A buffer
const CAP_B = KC_MAX * (NC_MAX + LD_PAD);
const CAP_C = MC_MAX * NC_MAX;
const align = (x: number, a: number) => Math.ceil(x / a) * a;
/**
 * Staging area for transposed operands (used by the calling thread only): the lines of
 * the block that are contiguous in the source are memcpy'd here, then the wasm
 * `transpose` writes the row-major A/B block. A^T block: align4(kc) lines of mcPad
 * (+pad); a B^T block would be ncPad lines of kc (+pad), but transposed B runs the `dots`
 * kernel on rows of W instead, or strip tasks that transpose their own panels from W.
 */
const CAP_S = Math.max(NC_MAX * (KC_MAX + 2 * LD_PAD), KC_MAX * (MC_MAX + 2 * LD_PAD));
const CTL_BYTES = LAYOUT.CTL_INTS * 4;
const OFF_A = [CTL_BYTES, CTL_BYTES + CAP_A * 4];
const OFF_B = [OFF_A[1] + CAP_A * 4, OFF_A[1] + CAP_A * 4 + CAP_B * 4];
const OFF_C = [OFF_B[1] + CAP_B * 4, OFF_B[1] + CAP_B * 4 + CAP_C * 4];
const OFF_S = OFF_C[1] + CAP_C * 4;
const MEMORY_BYTES = align(OFF_S + CAP_S * 4, 65536);
const MEMORY_PAGES = MEMORY_BYTES / 65536;
/** A shared memory may grow to this (wasm32's 4 GiB): tensor storage lives above the scratch. */
const MEMORY_MAX_PAGES = 65536;


let relaxedFlagTried = false;
/** Validates a module, enabling V8's relaxed-SIMD flag in Node 20 if that is what is missing. */
function validateRelaxed(bytes: Uint8Array<ArrayBuffer>): boolean {
  if (WebAssembly.validate(bytes)) return true;
  if (!relaxedFlagTried) {
    relaxedFlagTried = true;
    const v8 = nodeBuiltin<{ setFlagsFromString(flags: string): void }>('node:v8');
    if (v8) {
      try {
        v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
      } catch {
        // ignore
      }
    }
  }
  return WebAssembly.validate(bytes);
}

/** Which operands the threads read (A, B) or write (C) where they lie in the shared memory: nothing copied. */
interface InPlace {
  a: boolean;
  b: boolean;
  c: boolean;
  /** packTasks: B is W^T (rows of W contiguous along k): each strip task transposes NR rows of W into its panel */
  bT?: boolean;
}

interface Round {
  dots: boolean; // dots kernel (B copied as rows of W = B^T) instead of the strip kernel
  panels: boolean; // strip kernel: B packed into NR-wide micro-panels (else row-major, ld ncPad + LD_PAD)
  lda: number; // floats per row of the A copy
  ldb: number; // floats per row of the B copy (strip: a k row; dots: a row of W)
  unit: number; // columns of C per task (NR or DOTS_NRT); ncPad is a multiple
  b0: number; // first batch item
  g: number; // batch items in this round (>1 only when each fits one block)
  i0: number;
  mc: number;
  mcPad: number;
  j0: number;
  nc: number;
  ncPad: number;
  p0: number;
  kc: number;
  first: boolean; // first K block of its C block (overwrite C)
  last: boolean; // last K block of its C block (copy C out afterwards)
  cBuf: number;
  /**
   * Rows [0, mIn) of the block written in place (C in place: mc rounded down to the kernel's rows, else 0);
   * the rows after them go through the C buffer (C in place: one padded row block per batch item, computed
   * by the strip tasks for their own columns, or for a dots round on the calling thread by `tail`) and are
   * copied out.
   */
  mIn: number;
  cIn: boolean; // C written in place (rows [0, mIn))
  cRows: number; // padded rows per batch item in the C buffer (mcPad, or mAlign for the tail block)
}

/** No copy runs as pack tasks. */
const NO_TASKS: InPlace = { a: false, b: false, c: false };

/** Below this row length a plain loop beats `set(subarray())`. */
const MEMCPY_MIN = 16;

/**
 * Copies a rows x cols block (element (i, j) at s0 + i*rs + j*cs) into the shared
 * memory as a row-major block with leading dimension ld. Rows are memcpy'd when the
 * source rows are contiguous. A transposed source (rs === 1: its columns are contiguous)
 * is memcpy'd column by column into the staging area and transposed there by the wasm
 * `transpose` (`tr`); `padRows` / `padCols` (>= rows / cols) are how many rows / columns
 * the transpose may write (the padding then holds stale staging data, which is harmless
 * exactly where the kernel's padding already is). Anything else is a strided JS gather.
 */
function copyBlock(
  src: Float32Array,
  s0: number,
  rs: number,
  cs: number,
  rows: number,
  cols: number,
  dst: Float32Array,
  d0: number,
  ld: number,
  tr: TransposeFn | null,
  padRows: number,
  padCols: number,
): void {
  const ls = align(rows, 4) + LD_PAD;
  if (tr && rs === 1 && cs !== 1 && rows >= MEMCPY_MIN && padRows <= ls && padCols * ls <= CAP_S) {
    // Staging: line j (column j of the block, contiguous in the source) at S + j*ls.
    const sBase = OFF_S / 4;
    for (let j = 0; j < cols; j++) {
      const s = s0 + j * cs;
      dst.set(src.subarray(s, s + rows), sBase + j * ls);
    }
    tr(OFF_S, ls * 4, d0 * 4, ld * 4, padCols, padRows);
    return;
  }
  if (cs === 1) {
    if (cols >= MEMCPY_MIN) {
      for (let i = 0; i < rows; i++) {
        const s = s0 + i * rs;
        dst.set(src.subarray(s, s + cols), d0 + i * ld);
      }
    } else {
      for (let i = 0; i < rows; i++) {
        const s = s0 + i * rs;
        const d = d0 + i * ld;
        for (let j = 0; j < cols; j++) dst[d + j] = src[s + j];
      }
    }
  } else {
    // Walk the source along its (likely contiguous) row index; tile columns for locality.
    for (let j0 = 0; j0 < cols; j0 += 64) {
      const j1 = Math.min(cols, j0 + 64);
      for (let i = 0; i < rows; i++) {
        const s = s0 + i * rs;
        const d = d0 + i * ld;
        for (let j = j0; j < j1; j++) dst[d + j] = src[s + j * cs];
      }
    }
  }
}

/**
 * Copies `lines` lines of `len` elements (line i at s0 + i*stride, contiguous) into the
 * shared memory at d0 + i*ld: one memcpy when source and destination are both dense.
 */
function copyLines(src: Float32Array, s0: number, stride: number, len: number, lines: number, dst: Float32Array, d0: number, ld: number): void {
  if (stride === len && ld === len) {
    dst.set(src.subarray(s0, s0 + lines * len), d0);
  } else if (len >= MEMCPY_MIN) {
    for (let i = 0; i < lines; i++) {
      const s = s0 + i * stride;
      dst.set(src.subarray(s, s + len), d0 + i * ld);
    }
  } else {
    for (let i = 0; i < lines; i++) {
      const s = s0 + i * stride;
      const d = d0 + i * ld;
      for (let j = 0; j < len; j++) dst[d + j] = src[s + j];
    }
  }
}

/** The output layout, contiguous [batch, M, N] when none is given. */
function outLayoutOf(layout: GemmOutLayout | undefined, M: number, N: number): GemmOutLayout {
  return layout ?? { offset: 0, strides: [M * N, N] };
}

/** Plain JS matmul for tiny problems and the no-SIMD fallback (f32 accumulation). */
function matmulJs(a: GemmOperand, b: GemmOperand, out: Float32Array, batch: number, M: number, N: number, K: number, layout: GemmOutLayout) {
  const A = a.data;
  const B = b.data;
  const [as0, as1, as2] = a.strides;
  const [bs0, bs1, bs2] = b.strides;
  const [os0, os1] = layout.strides;
  for (let bt = 0; bt < batch; bt++) {
    const aB = a.offset + bt * as0;
    const bB = b.offset + bt * bs0;
    const oB = layout.offset + bt * os0;
    for (let i = 0; i < M; i++) {
      const o = oB + i * os1;
      out.fill(0, o, o + N);
      const ai = aB + i * as1;
      for (let k = 0; k < K; k++) {
        const av = A[ai + k * as2];
        const bo = bB + k * bs1;
        if (bs2 === 1) {
          for (let j = 0; j < N; j++) out[o + j] += av * B[bo + j];
        } else {
          for (let j = 0; j < N; j++) out[o + j] += av * B[bo + j * bs2];
        }
      }
    }
  }
}

function checkDim(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`gemm: ${name} must be a non-negative integer, got ${v}`);
}

function checkOperand(name: string, op: GemmOperand, batch: number, rows: number, cols: number): void {
  const s = op.strides;
  let lo = op.offset;
  let hi = op.offset;
  const d0 = s[0] * (batch - 1);
  const d1 = s[1] * (rows - 1);
  const d2 = s[2] * (cols - 1);
  if (d0 < 0) lo += d0;
  else hi += d0;
  if (d1 < 0) lo += d1;
  else hi += d1;
  if (d2 < 0) lo += d2;
  else hi += d2;
  if (!(lo >= 0 && hi < op.data.length) || !Number.isInteger(lo) || !Number.isInteger(hi)) {
    throw new RangeError(`gemm: operand ${name} reads elements [${lo}, ${hi}] outside its array of ${op.data.length}`);
  }
}

function checkArgs(a: GemmOperand, b: GemmOperand, out: Float32Array, batch: number, M: number, N: number, K: number, o: GemmOutLayout) {
  checkDim('batch', batch);
  checkDim('M', M);
  checkDim('N', N);
  checkDim('K', K);
  const [osb, osm] = o.strides;
  if (![o.offset, osb, osm].every((v) => Number.isInteger(v) && v >= 0)) {
    throw new RangeError(`gemm: out layout needs a non-negative integer offset and strides, got offset ${o.offset}, strides [${osb}, ${osm}]`);
  }
  if (batch * M * N === 0) return;
  const last = o.offset + (batch - 1) * osb + (M - 1) * osm + N - 1;
  if (last >= out.length) throw new RangeError(`gemm: out has ${out.length} elements, the layout writes up to element ${last}`);
  if (K === 0) return;
  checkOperand('a', a, batch, M, K);
  checkOperand('b', b, batch, K, N);
}

class ScalarGemm implements Gemm {
  readonly threads = 1;
  readonly simd = 'scalar' as const;
  matmul(a: GemmOperand, b: GemmOperand, out: Float32Array, batch: number, M: number, N: number, K: number, layout?: GemmOutLayout): void {
    const o = outLayoutOf(layout, M, N);
    checkArgs(a, b, out, batch, M, N, K, o);
    if (batch * M * N === 0) return;
    matmulJs(a, b, out, batch, M, N, K, o);
  }
  alloc(): Float32Array | null {
    return null;
  }
  dispose(): void {}
}

class WasmGemm implements Gemm {
  readonly threads: number;
  readonly simd: GemmSimd;
  private readonly f32: Float32Array;
  private readonly ctl: Int32Array;
  private readonly strip: StripFn;
  private readonly transpose: TransposeFn;
  private readonly packb: PackBFn;
  private readonly stripPf: StripPfFn;
  private readonly dots: DotsFn;
  private readonly dots1: DotsFn;
  private readonly workers: InlineWorker[];
  /** Tensor storage above the scratch (shared memory only). */
  private readonly heap: SharedHeap | null;
  private disposed = false;

  /** The row-task functions on this thread (simd/rows.ts), or null without the row module. */
  private readonly rowFns: RowFn[] | null;

  /** `heap`: the memory is shared and growable, so tensor storage can live in it. */
  constructor(simd: GemmSimd, module: WebAssembly.Module, memory: WebAssembly.Memory, workers: InlineWorker[], heap: boolean, rows: WebAssembly.Module | null = null) {
    this.simd = simd;
    this.workers = workers;
    this.threads = workers.length + 1;
    this.heap = heap ? new SharedHeap(memory, MEMORY_BYTES) : null;
    this.f32 = new Float32Array(memory.buffer);
    this.ctl = new Int32Array(memory.buffer, 0, LAYOUT.CTL_INTS);
    const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
    this.strip = exports.strip as StripFn;
    this.transpose = exports.transpose as TransposeFn;
    this.packb = exports.packb as PackBFn;
    this.stripPf = exports.strip_pf as StripPfFn;
    this.dots = exports.dots as DotsFn;
    this.dots1 = exports.dots1 as DotsFn;
    const rowsEx = rows ? new WebAssembly.Instance(rows, { env: { memory } }).exports : null;
    this.rowFns = rowsEx ? ROW_OPS.map((op) => rowsEx[op] as RowFn) : null;
    if (this.heap && this.rowFns) this.heap.rows = this;
  }

  /**
   * A round of row tasks (KIND 3, simd/rows.ts): `rows` rows of row-task function `op` in tasks of
   * `per` rows; operands are byte addresses in this memory. On every thread when `parallel`.
   */
  runRows(op: number, rows: number, per: number, len: number, ptrs: readonly number[], steps: readonly number[], f: number, parallel: boolean): void {
    const ctl = this.ctl;
    const L = LAYOUT;
    const n = Math.ceil(rows / per);
    Atomics.add(ctl, L.SEQ, 1);
    const base = Atomics.load(ctl, L.NEXT);
    ctl[L.BASE] = base;
    ctl[L.NTASKS] = n;
    ctl[L.STRIPS] = n;
    ctl[L.KIND] = 3;
    ctl[L.ROW_OP] = op;
    ctl[L.ROW_ROWS] = rows;
    ctl[L.ROW_PER] = per;
    ctl[L.ROW_LEN] = len;
    for (let i = 0; i < 5; i++) {
      ctl[L.ROW_P + i] = ptrs[i] ?? 0;
      ctl[L.ROW_S + i] = steps[i] ?? 0;
    }
    new Float64Array(ctl.buffer, ctl.byteOffset + L.ROW_F * 4, 1)[0] = f;
    ctl[L.CMD] = CMD_RUN;
    Atomics.add(ctl, L.SEQ, 1);
    if (parallel) this.wake();
    claimAndRun(ctl, this.strip, this.dots, L, this.dots1, this.rowFns);
    this.waitDone((base + n) | 0);
  }

  matmul(a: GemmOperand, b: GemmOperand, out: Float32Array, batch: number, M: number, N: number, K: number, layout?: GemmOutLayout): void {
    if (this.disposed) throw new Error('gemm: engine was disposed');
    const o = outLayoutOf(layout, M, N);
    checkArgs(a, b, out, batch, M, N, K, o);
    if (batch * M * N === 0) return;
    if (K === 0) {
      for (let bt = 0; bt < batch; bt++) {
        for (let i = 0; i < M; i++) {
          const r = o.offset + bt * o.strides[0] + i * o.strides[1];
          out.fill(0, r, r + N);
        }
      }
      return;
    }
    const work = batch * M * N * K;
    if (work <= JS_MAX_WORK) {
      matmulJs(a, b, out, batch, M, N, K, o);
      return;
    }
    if (this.gemvInPlace(a, b, batch, M, K)) this.runGemv(a, b, out, M, N, K, o);
    else this.run(a, b, out, batch, M, N, K, this.workers.length > 0 && work >= PARALLEL_MIN_WORK, o);
  }

  alloc(length: number): Float32Array | null {
    return this.heap ? this.heap.alloc(length) : null;
  }

  /**
   * `x @ W^T` with a few rows of x (decoding) and W allocated in this memory: every thread reads its
   * rows of W where they lie, so each weight streams from memory once, on all threads, with no copy.
   */
  private gemvInPlace(a: GemmOperand, b: GemmOperand, batch: number, M: number, K: number): boolean {
    return (
      batch === 1 &&
      M <= GEMV_MAX_M &&
      align(M, DOTS_MB) * (K + LD_PAD) <= CAP_A &&
      b.strides[1] === 1 &&
      b.strides[2] !== 1 &&
      this.heap !== null &&
      heapOf(b.data) === this.heap
    );
  }

  /**
   * One round per C block: x (M rows of K) is copied to the A buffer; tasks of GEMV_NRT rows of W
   * (columns of C) run the `dots` kernel on W in place; the last N % 4 columns (the kernel works in
   * fours and must not read past W's end) are plain dot products on the calling thread.
   */
  private runGemv(a: GemmOperand, b: GemmOperand, out: Float32Array, M: number, N: number, K: number, o: GemmOutLayout): void {
    const f32 = this.f32;
    const ctl = this.ctl;
    const L = LAYOUT;
    const mcPad = align(M, DOTS_MB);
    const lda = K + LD_PAD;
    const aOff = OFF_A[0] / 4;
    copyBlock(a.data, a.offset, a.strides[1], a.strides[2], M, K, f32, aOff, lda, null, mcPad, K);
    const ldw = b.strides[2];
    const wAddr = b.data.byteOffset + 4 * b.offset; // byte address of W[0, 0] in the memory
    const n4 = N & ~3;
    const ncMax = Math.floor(CAP_C / mcPad / GEMV_NRT) * GEMV_NRT;
    const parallel = this.workers.length > 0 && M * N * K >= PARALLEL_MIN_WORK;
    for (let j0 = 0; j0 < n4; j0 += ncMax) {
      const nc = Math.min(ncMax, n4 - j0);
      const n = Math.ceil(nc / GEMV_NRT);
      Atomics.add(ctl, L.SEQ, 1);
      const base = Atomics.load(ctl, L.NEXT);
      ctl[L.BASE] = base;
      ctl[L.NTASKS] = n;
      ctl[L.ABASE] = OFF_A[0];
      ctl[L.CBASE] = OFF_C[0];
      ctl[L.NP] = M === 1 ? 1 : mcPad; // one row: the mb = 1 kernel
      ctl[L.KC] = K;
      ctl[L.LDA] = lda * 4;
      ctl[L.LDB] = ldw * 4;
      ctl[L.LDC] = nc * 4;
      ctl[L.STRIPS] = n;
      ctl[L.NRT] = GEMV_NRT;
      ctl[L.WBASE] = wAddr + j0 * ldw * 4;
      ctl[L.NCOLS] = nc;
      ctl[L.KIND] = 2;
      ctl[L.CMD] = CMD_RUN;
      Atomics.add(ctl, L.SEQ, 1);
      if (parallel) this.wake();
      claimAndRun(ctl, this.strip, this.dots, L, this.dots1);
      this.waitDone((base + n) | 0);
      const c0 = OFF_C[0] / 4;
      for (let i = 0; i < M; i++) out.set(f32.subarray(c0 + i * nc, c0 + (i + 1) * nc), o.offset + i * o.strides[1] + j0);
    }
    // the N % 4 last columns: float32 dot products, like the kernel's
    const W = b.data;
    for (let j = n4; j < N; j++) {
      for (let i = 0; i < M; i++) {
        const ai = aOff + i * lda;
        const wj = b.offset + j * ldw;
        let s = 0;
        for (let k = 0; k < K; k++) s = Math.fround(s + f32[ai + k] * W[wj + k]);
        out[o.offset + i * o.strides[1] + j] = s;
      }
    }
  }

  /**
   * Which operands the threads use where they lie: those allocated in this memory (`alloc`, where the
   * cpu backend keeps storages from 256 KiB). A kernel reads whole padded tasks, so A may be read up
   * to mAlign - 1 rows past M and W (dots) up to DOTS_NRT - 1 rows past N: the heap's guard keeps those
   * reads inside the memory, and their results land only in
   * C's padding. So C is written in place only where N is a multiple of the kernel's columns; when M is
   * not a multiple of its rows, the whole row blocks are written in place and the last partial one goes
   * through the C buffer and is copied out (`tail`): p @ v at M = 128 (132 padded rows) no longer copies
   * all of C out on the calling thread. Otherwise C is copied out of the C buffer as before.
   */
  private inPlace(a: GemmOperand, b: GemmOperand, out: Float32Array, M: number, N: number, dots: boolean, o: GemmOutLayout): InPlace {
    const heap = this.heap;
    if (heap === null) return { a: false, b: false, c: false };
    const mAlign = dots ? DOTS_MB : MR;
    const unit = dots ? DOTS_NRT : NR;
    const [sa0, sa1, sa2] = a.strides;
    const [sb0, , sb2] = b.strides;
    const aIn = heapOf(a.data) === heap && sa2 === 1 && sa0 >= 0 && sa1 >= 0 && sa1 * 4 * mAlign <= HEAP_GUARD_BYTES;
    // a row-major B (strip rounds) is still packed into micro-panels: read in place, a task's kc rows lie
    // a whole row apart (pages past the L1 TLB, and at strides like 1 or 3 KiB a handful of cache sets):
    // measured slower (1024^3 66 against 75 GFLOPS on cores, attention's p @ v 36-45 against 50-58)
    const bIn = dots && heapOf(b.data) === heap && sb0 >= 0 && sb2 * 4 * DOTS_NRT <= HEAP_GUARD_BYTES;
    // M need not be a multiple of mAlign: the last partial row block goes through the C buffer (`tail`)
    const cIn = heapOf(out) === heap && M >= mAlign && N % unit === 0 && o.strides[1] >= N;
    return { a: aIn, b: bIn, c: cIn };
  }

  /**
   * Blocks the problem into rounds. Strip mode: MC_MAX x NC_MAX x KC_MAX blocks, A rows
   * padded to MR, B columns to NR. Dots mode (`dots`: B[k, n] = W[n, k] with W's rows
   * contiguous along k, i.e. `x @ W^T`): K is kept whole up to DOTS_KC_MAX or as far as
   * the A block (mc x kc) fits its buffer, W is copied as nc rows of kc (one memcpy per
   * block when `wContig`: W's rows are adjacent and K is not split), A rows are padded
   * to DOTS_MB and C columns to DOTS_NRT.
   */
  private rounds(batch: number, M: number, N: number, K: number, dots: boolean, wStride: number, inPlace: InPlace): Round[] {
    let mAlign: number, unit: number, mStep: number, nStep: number, kStep: number, nM: number, nN: number, nK: number;
    let ldbOf = (kc: number) => kc + LD_PAD; // dots mode: floats per copied row of W
    if (!dots) {
      mAlign = MR;
      unit = NR;
      // A and C in place: no A or C block is copied, so K is split less (fewer passes over C)
      const kcMax = inPlace.a && inPlace.c ? KC_IN_PLACE : KC_MAX;
      // the B block (kc x nc, packed) must fit its buffer
      const ncMax = Math.min(NC_MAX, Math.floor((CAP_B / Math.min(K, kcMax) - LD_PAD) / NR) * NR);
      nM = Math.ceil(M / MC_MAX);
      nN = Math.ceil(N / ncMax);
      nK = Math.ceil(K / kcMax);
      mStep = align(Math.ceil(M / nM), MR);
      nStep = align(Math.ceil(N / nN), NR);
      kStep = Math.ceil(K / nK);
    } else {
      mAlign = DOTS_MB;
      unit = DOTS_NRT;
      nM = Math.ceil(M / MC_MAX);
      mStep = align(Math.ceil(M / nM), DOTS_MB);
      const kcMax = Math.min(DOTS_KC_MAX, Math.floor(CAP_A / mStep) - LD_PAD);
      nK = Math.ceil(K / kcMax);
      kStep = Math.ceil(K / nK);
      if (nK === 1 && wStride === K) ldbOf = (kc) => kc; // dense W block: a single memcpy
      const ldbMax = ldbOf(kStep);
      const ncMax = Math.floor(Math.min(CAP_B / ldbMax, CAP_C / mStep) / DOTS_NRT) * DOTS_NRT;
      nN = Math.ceil(N / ncMax);
      nStep = align(Math.ceil(N / nN), DOTS_NRT);
    }
    // A group of batch items shares each round (one block of rows, columns and k of every item): with the
    // operands in place, attention's heads at seq 512 (M split) are 2 rounds instead of 2 per head, and a task
    // can read the next head ahead (PF_STEP)
    let G = 1;
    if (nN === 1 && (nM === 1 || inPlace.a)) {
      const mcPad = align(mStep, mAlign);
      const ncPad = align(N, unit);
      const bFloats = dots ? ncPad * ldbOf(kStep) : kStep * (ncPad + LD_PAD);
      // only the operands that are copied bound the group: in place, a whole batch is one round
      G = Math.max(
        1,
        Math.min(
          batch,
          inPlace.a ? batch : Math.floor(CAP_A / (mcPad * (kStep + LD_PAD))),
          inPlace.b ? batch : Math.floor(CAP_B / bFloats),
          // in place, only a partial last row block per batch item goes through the C buffer
          inPlace.c ? (M % mAlign === 0 ? batch : Math.floor(CAP_C / (mAlign * ncPad))) : Math.floor(CAP_C / (mcPad * ncPad)),
        ),
      );
    }
    const rounds: Round[] = [];
    let blk = 0;
    for (let b0 = 0; b0 < batch; b0 += G) {
      const g = Math.min(G, batch - b0);
      for (let i0 = 0; i0 < M; i0 += mStep) {
        const mc = Math.min(mStep, M - i0);
        for (let j0 = 0; j0 < N; j0 += nStep) {
          const nc = Math.min(nStep, N - j0);
          const ncPad = align(nc, unit);
          for (let p0 = 0; p0 < K; p0 += kStep) {
            const kc = Math.min(kStep, K - p0);
            const mcPad = align(mc, mAlign);
            // packing B into panels costs a second pass over it: it pays when each panel is read by many
            // MR-row panels of A (a few rows of A, e.g. x @ W for one token, read the row-major copy)
            const panels = !dots && mcPad >= PANEL_MIN_ROWS;
            const mIn = inPlace.c ? mc - (mc % mAlign) : 0;
            rounds.push({
              dots,
              panels,
              lda: kc + LD_PAD,
              ldb: dots ? ldbOf(kc) : panels ? NR : ncPad + LD_PAD,
              unit,
              b0,
              g,
              i0,
              mc,
              mcPad,
              j0,
              nc,
              ncPad,
              p0,
              kc,
              first: p0 === 0,
              last: p0 + kc === K,
              cBuf: blk & 1,
              mIn,
              cIn: inPlace.c,
              cRows: inPlace.c ? mAlign : mcPad,
            });
          }
          blk++;
        }
      }
    }
    return rounds;
  }

  /**
   * Copies the round's A block (mc x kc, ld kc+LD_PAD) and B block: strip mode kc x nc as
   * ncPad/NR micro-panels of kc x NR (through the staging area); dots mode the rows of W = B^T,
   * nc x kc (ld r.ldb).
   * Transposed operands may write padding: A rows up to mcPad and columns up to
   * align4(kc) <= kc+LD_PAD (never read: the kernels stop at kc); B columns up to ncPad,
   * but exactly kc rows (the next batch item's block follows).
   */
  private pack(r: Round, buf: number, a: GemmOperand, b: GemmOperand, inPlace: InPlace, byTasks: InPlace = NO_TASKS): void {
    const f32 = this.f32;
    const tr = this.transpose;
    const aBcast = a.strides[0] === 0;
    const bBcast = b.strides[0] === 0;
    const lda = r.lda;
    const ldb = r.ldb;
    for (let gi = 0; gi < r.g; gi++) {
      const bt = r.b0 + gi;
      if (!inPlace.a && !byTasks.a && (gi === 0 || !aBcast)) {
        copyBlock(
          a.data,
          a.offset + bt * a.strides[0] + r.i0 * a.strides[1] + r.p0 * a.strides[2],
          a.strides[1],
          a.strides[2],
          r.mc,
          r.kc,
          f32,
          OFF_A[buf] / 4 + gi * r.mcPad * lda,
          lda,
          tr,
          r.mcPad,
          align(r.kc, 4),
        );
      }
      if (!inPlace.b && !byTasks.b && (gi === 0 || !bBcast)) {
        const s0 = b.offset + bt * b.strides[0] + r.p0 * b.strides[1] + r.j0 * b.strides[2];
        if (r.dots) {
          // W[n, k] = B[k, n]: nc rows of kc, contiguous in the source (b.strides[1] === 1)
          copyLines(b.data, s0, b.strides[2], r.kc, r.nc, f32, OFF_B[buf] / 4 + gi * r.ncPad * ldb, ldb);
        } else if (r.panels) {
          // row-major into the staging area (free again: A's transpose is done), then NR-wide micro-panels
          const lds = r.ncPad + LD_PAD;
          copyBlock(b.data, s0, b.strides[1], b.strides[2], r.kc, r.nc, f32, OFF_S / 4, lds, null, r.kc, r.ncPad);
          this.packb(OFF_S, lds * 4, OFF_B[buf] + gi * r.kc * r.ncPad * 4, r.kc, r.ncPad / NR);
        } else {
          copyBlock(b.data, s0, b.strides[1], b.strides[2], r.kc, r.nc, f32, OFF_B[buf] / 4 + gi * r.kc * ldb, ldb, tr, r.kc, r.ncPad);
        }
      }
    }
  }

  /**
   * Whether `x @ W^T` (B = W^T, W's rows contiguous along k) runs the strip kernel on micro-panels that each
   * task transposes from W where it lies (`BSRC_T`) instead of the `dots` kernel on W's rows: the 6 x 8
   * strip kernel does 12 FMAs per 8 loads where `dots` does 8 per 6 plus a reduction, which pays once a panel
   * serves enough rows of x (measured: BERT-base's down projection at batch 8, [1024 x 3072] x [3072 x 768],
   * 75 -> 91 GFLOPS; at M = 128 or attention's K = 64 `dots` stays ahead). W must lie in the shared memory
   * (one W for the batch, or one per item), and the up to NR - 1 rows a last partial strip reads past W
   * must stay inside the heap's guard.
   */
  private transposedPanels(b: GemmOperand, batch: number, M: number, K: number): boolean {
    const heap = this.heap;
    const [sb0, sb1, sb2] = b.strides;
    return (
      heap !== null &&
      heapOf(b.data) === heap &&
      M >= PANEL_T_MIN_ROWS &&
      K >= PANEL_T_MIN_K &&
      sb1 === 1 &&
      sb2 > 1 &&
      (sb0 > 0 || batch === 1) &&
      (NR - 1) * sb2 * 4 <= HEAP_GUARD_BYTES
    );
  }

  /**
   * Which of a round's copies the tasks do instead of the calling thread: those that read an operand
   * allocated in this memory where it lies, with no staging copy. A transposed A (its columns contiguous)
   * is staged by transpose tasks (`transposeJob`, claimed in the round before) straight into the A block;
   * a row-major B (unit column stride) is packed by each strip task into its own micro-panel (`BSRC`), not
   * for a broadcast B shared by several batch items (it would be packed once per item); a B = W^T (rows of W
   * contiguous along k, `transposedPanels`) is transposed into each task's panel from NR rows of W (`bT`).
   * Reads past the operand (the block's padding: at most MR - 1 floats of a k line of A^T, NR - 1 of a row
   * of B or rows of W) stay inside the heap's guard and land only in padding, as in `inPlace`.
   */
  private packTasks(r: Round, a: GemmOperand, b: GemmOperand, inPlace: InPlace): InPlace {
    const heap = this.heap;
    if (heap === null) return NO_TASKS;
    const [sa0, sa1, sa2] = a.strides;
    const [sb0, sb1, sb2] = b.strides;
    const ta = !inPlace.a && heapOf(a.data) === heap && sa1 === 1 && sa2 > 1 && sa0 >= 0;
    const tb = !inPlace.b && !r.dots && r.panels && heapOf(b.data) === heap && sb2 === 1 && sb1 >= 0 && sb0 >= 0 && (sb0 > 0 || r.g === 1);
    // a strip round over B = W^T: `run` chose it through `transposedPanels`, which checked W's place and strides
    const bT = !tb && !inPlace.b && !r.dots && r.panels && sb1 === 1 && sb2 > 1;
    return ta || tb || bT ? { a: ta, b: tb || bT, c: false, bT } : NO_TASKS;
  }

  /**
   * Fills `job` (JOB_SIZE ints in LAYOUT's JOB_N.. order) with the transpose job that stages round `r`'s
   * A^T block into A buffer `buf`, or zeros when the calling thread copies A (or it is read in place).
   */
  private transposeJob(r: Round, buf: number, a: GemmOperand, byTasks: InPlace, job: Int32Array): void {
    job.fill(0);
    if (!byTasks.a) return;
    // S[k, m] = A[m, k]: the block's kc lines at stride sa2; a task stages JOB_PER rows of the block
    const [sa0, , sa2] = a.strides;
    const item = Math.ceil(r.mcPad / JOB_PER);
    job.set([
      item * (sa0 === 0 ? 1 : r.g), // JOB_N (a broadcast A: one block for the whole batch group)
      JOB_PER,
      item,
      r.mcPad, // JOB_TOTAL: the padding rows read up to MR - 1 floats past a k line (guard; C's padding)
      a.data.byteOffset + 4 * (a.offset + r.b0 * sa0 + r.i0 + r.p0 * sa2),
      sa2 * 4,
      OFF_A[buf],
      r.lda * 4,
      r.kc,
      sa0 * 4,
      r.mcPad * r.lda * 4,
    ]);
  }

  /** Runs a transpose job alone on every thread that is free (the caller included) and waits for it. */
  private runJob(job: Int32Array, parallel: boolean): void {
    if (job[0] === 0) return;
    const ctl = this.ctl;
    const L = LAYOUT;
    Atomics.add(ctl, L.SEQ, 1);
    const base = Atomics.load(ctl, L.NEXT);
    ctl[L.BASE] = base;
    ctl[L.NTASKS] = 0;
    ctl[L.STRIPS] = 1;
    ctl[L.KIND] = 1;
    ctl.set(job, L.JOB_N);
    ctl[L.CMD] = CMD_RUN;
    Atomics.add(ctl, L.SEQ, 1);
    if (parallel) this.wake();
    this.claim();
    this.waitDone((base + job[0]) | 0);
  }

  private claim(): void {
    claimAndRun(this.ctl, this.strip, this.dots, LAYOUT, this.dots1, null, this.transpose, this.packb, this.stripPf);
  }

  /**
   * Writes the round descriptor, with `job` (staging the next round's transposed A, after this round's
   * compute tasks); returns the task-counter value at which the round ends. `byTasks.b`: each strip task
   * packs its own micro-panel from where B lies.
   */
  private describe(
    r: Round,
    buf: number,
    a: GemmOperand,
    b: GemmOperand,
    out: Float32Array,
    o: GemmOutLayout,
    inPlace: InPlace,
    byTasks: InPlace,
    job: Int32Array,
  ): number {
    const aBcast = a.strides[0] === 0;
    const bBcast = b.strides[0] === 0;
    const ctl = this.ctl;
    const L = LAYOUT;
    // Seqlock write: SEQ goes odd before the fields change and even after, so a worker can never take
    // a descriptor that mixes two rounds.
    Atomics.add(ctl, L.SEQ, 1);
    const base = Atomics.load(ctl, L.NEXT);
    // strip rounds: STRIP_TASK_WIDE strips per task where that leaves enough tasks per thread, else STRIP_TASK,
    // unless that leaves too few tasks to share
    const tasksOf = (w: number) => r.g * Math.ceil(r.ncPad / r.unit / w);
    const spt = r.dots
      ? 1
      : tasksOf(STRIP_TASK_WIDE) >= STRIP_TASK_WIDE_MIN * this.threads
        ? STRIP_TASK_WIDE
        : tasksOf(STRIP_TASK) >= STRIP_TASK_MIN
          ? STRIP_TASK
          : 1;
    const strips = Math.ceil(r.ncPad / r.unit / spt);
    // C in place: the tasks cover the block's whole row blocks (dots: none when mc < mAlign, `tail` does the
    // rest; strip: each task also runs the partial last row block of its columns)
    const n = inPlace.c && r.mIn === 0 && r.dots ? 0 : r.g * strips;
    ctl[L.BASE] = base;
    ctl[L.NTASKS] = n;
    ctl[L.ABASE] = OFF_A[buf];
    ctl[L.BBASE] = OFF_B[buf];
    ctl[L.CBASE] = OFF_C[r.cBuf];
    ctl[L.NP] = r.dots ? r.mcPad : r.mcPad / MR;
    ctl[L.KC] = r.kc;
    ctl[L.LDA] = r.lda * 4;
    ctl[L.LDB] = r.ldb * 4;
    ctl[L.LDC] = r.ncPad * 4;
    ctl[L.ACC] = r.first ? 0 : 1;
    ctl[L.STRIPS] = strips;
    ctl[L.AGS] = aBcast ? 0 : r.mcPad * r.lda * 4;
    ctl[L.BGS] = bBcast ? 0 : (r.dots ? r.ncPad * r.ldb : r.kc * (r.panels ? r.ncPad : r.ldb)) * 4;
    ctl[L.CGS] = r.mcPad * r.ncPad * 4;
    // a strip task's B: one kc x NR micro-panel, or NR columns of the row-major copy
    ctl[L.SS] = r.unit * (r.dots ? r.ldb : r.panels ? r.kc : 1) * 4;
    ctl[L.CSS] = r.unit * 4;
    ctl[L.NRT] = r.unit;
    ctl[L.KIND] = r.dots ? 1 : 0;
    if (inPlace.a) {
      // A's rows where the tensor lies (contiguous along k)
      const [sa0, sa1] = a.strides;
      ctl[L.ABASE] = a.data.byteOffset + 4 * (a.offset + r.b0 * sa0 + r.i0 * sa1 + r.p0);
      ctl[L.LDA] = sa1 * 4;
      ctl[L.AGS] = sa0 * 4;
    }
    if (inPlace.b) {
      // the rows of W where the tensor lies: W[n, k] = B[k, n] at b.offset + n*strides[2] + k
      const [sb0, , sb2] = b.strides;
      ctl[L.BBASE] = b.data.byteOffset + 4 * (b.offset + r.b0 * sb0 + r.p0 + r.j0 * sb2);
      ctl[L.LDB] = sb2 * 4;
      ctl[L.BGS] = sb0 * 4;
      ctl[L.SS] = r.unit * sb2 * 4;
    }
    if (inPlace.c) {
      // C written straight into out (no padding rows or columns to drop)
      const [os0, os1] = o.strides;
      ctl[L.CBASE] = out.byteOffset + 4 * (o.offset + r.b0 * os0 + r.i0 * os1 + r.j0);
      ctl[L.LDC] = os1 * 4;
      ctl[L.CGS] = os0 * 4;
      ctl[L.NP] = r.dots ? r.mIn : r.mIn / MR;
    }
    ctl[L.BSRC] = 0;
    ctl[L.BSRC_T] = byTasks.bT ? 1 : 0;
    if (byTasks.b) {
      // B[p0, j0] of the first batch item; a task's panel starts NR columns (CSS bytes) further per strip
      const [sb0, sb1, sb2] = b.strides;
      ctl[L.BSRC] = b.data.byteOffset + 4 * (b.offset + r.b0 * sb0 + r.p0 * sb1 + r.j0 * sb2);
      ctl[L.BSRC_LDS] = (byTasks.bT ? sb2 : sb1) * 4;
      ctl[L.BSRC_GS] = sb0 * 4;
    }
    ctl[L.SPT] = spt;
    ctl[L.NSTRIPS] = r.ncPad / r.unit;
    ctl[L.PF_STEP] = 0;
    if (!r.dots && inPlace.a && r.g > 1 && a.strides[0] > 0 && ctl[L.NP] > 0) {
      // each task's first strip reads the next item's A block ahead, spread over its NP * kc k steps; the last
      // read stays inside that block ((mc - 1) row strides + kc floats)
      const region = (r.mc - 1) * ctl[L.LDA] + r.kc * 4;
      ctl[L.PF_STEP] = Math.floor(region / (ctl[L.NP] * r.kc) / 4) * 4;
    }
    ctl[L.TAIL_A] = 0;
    if (!r.dots && r.cIn && r.mIn < r.mc) {
      ctl[L.TAIL_A] = ctl[L.ABASE] + r.mIn * ctl[L.LDA];
      ctl[L.TAIL_C] = OFF_C[r.cBuf];
      ctl[L.TAIL_LDC] = r.ncPad * 4;
      ctl[L.TAIL_CGS] = r.cRows * r.ncPad * 4;
    }
    ctl.set(job, L.JOB_N);
    ctl[L.CMD] = CMD_RUN;
    Atomics.add(ctl, L.SEQ, 1); // publish: even again (seq-cst, after the plain writes above)
    return (base + n + job[0]) | 0;
  }

  /**
   * A dots round writing C in place with a partial last row block (mc % mAlign rows after mIn): the
   * calling thread runs the kernel on that block, one padded row block per batch item and column strip,
   * into the C buffer (rows past M would land in the next rows or batch item of out); strip rounds do this
   * in their tasks (TAIL_A). Reads the round just described from `ctl`.
   */
  private tail(r: Round): void {
    if (!r.dots || !r.cIn || r.mIn === r.mc) return;
    const ctl = this.ctl;
    const L = LAYOUT;
    const aBase = ctl[L.ABASE] + r.mIn * ctl[L.LDA];
    const lda = ctl[L.LDA];
    const ags = ctl[L.AGS];
    const bBase = ctl[L.BBASE];
    const ldb = ctl[L.LDB];
    const bgs = ctl[L.BGS];
    const ss = ctl[L.SS];
    const acc = ctl[L.ACC];
    const cBase = OFF_C[r.cBuf];
    const ldc = r.ncPad * 4;
    const cgs = r.cRows * ldc;
    const css = r.unit * 4;
    const strips = r.ncPad / r.unit;
    for (let gi = 0; gi < r.g; gi++) {
      for (let s = 0; s < strips; s++) {
        const aAddr = aBase + gi * ags;
        const bAddr = bBase + gi * bgs + s * ss;
        const cAddr = cBase + gi * cgs + s * css;
        this.dots(aAddr, lda, r.cRows, bAddr, ldb, r.unit, r.kc, cAddr, ldc, acc);
      }
    }
  }

  /** Copies the block's rows [mIn, mc) from the C buffer to out. */
  private copyOut(r: Round, out: Float32Array, layout: GemmOutLayout): void {
    const f32 = this.f32;
    const cBase = OFF_C[r.cBuf] / 4;
    const nc = r.nc;
    const [os0, os1] = layout.strides;
    for (let gi = 0; gi < r.g; gi++) {
      const c0 = cBase + gi * r.cRows * r.ncPad;
      const o0 = layout.offset + (r.b0 + gi) * os0 + (r.i0 + r.mIn) * os1 + r.j0;
      for (let i = 0; i < r.mc - r.mIn; i++) {
        const c = c0 + i * r.ncPad;
        const o = o0 + i * os1;
        if (nc >= 32) out.set(f32.subarray(c, c + nc), o);
        else for (let j = 0; j < nc; j++) out[o + j] = f32[c + j];
      }
    }
  }

  /** Wakes the workers asleep on SEQ after a round was published (spinning ones see it by themselves). */
  private wake(): void {
    if (Atomics.load(this.ctl, LAYOUT.SLEEPERS) > 0) Atomics.notify(this.ctl, LAYOUT.SEQ);
  }

  private waitDone(end: number): void {
    const ctl = this.ctl;
    const L = LAYOUT;
    let d = Atomics.load(ctl, L.DONE);
    for (let i = 0; ((d - end) | 0) < 0 && i < MAIN_SPIN; i++) d = Atomics.load(ctl, L.DONE);
    if (((d - end) | 0) >= 0) return;
    Atomics.store(ctl, L.MAIN_SLEEPS, 1);
    d = Atomics.load(ctl, L.DONE);
    while (((d - end) | 0) < 0) {
      Atomics.wait(ctl, L.DONE, d);
      d = Atomics.load(ctl, L.DONE);
    }
    Atomics.store(ctl, L.MAIN_SLEEPS, 0);
  }

  private run(
    a: GemmOperand,
    b: GemmOperand,
    out: Float32Array,
    batch: number,
    M: number,
    N: number,
    K: number,
    parallel: boolean,
    layout: GemmOutLayout,
  ): void {
    // x @ W^T (B's rows are contiguous along k): dots kernel on rows of W, no transpose; from a few hundred rows
    // the strip kernel on panels the tasks transpose from W
    const dots = b.strides[1] === 1 && b.strides[2] !== 1 && !this.transposedPanels(b, batch, M, K);
    const inPlace = this.inPlace(a, b, out, M, N, dots, layout);
    const rounds = this.rounds(batch, M, N, K, dots, b.strides[2], inPlace);
    const none = new Int32Array(JOB_SIZE);
    const job = new Int32Array(JOB_SIZE);
    if (!parallel) {
      for (let i = 0; i < rounds.length; i++) {
        const r = rounds[i];
        const byTasks = this.packTasks(r, a, b, inPlace);
        this.pack(r, 0, a, b, inPlace, byTasks);
        this.transposeJob(r, 0, a, byTasks, job);
        this.runJob(job, false);
        const end = this.describe(r, 0, a, b, out, layout, inPlace, byTasks, none);
        this.tail(r);
        // Workers still spinning from an earlier parallel call see the new round and may claim
        // tasks of it too: wait for every task before reading C.
        this.claim();
        this.waitDone(end);
        if (r.last && r.mIn < r.mc) this.copyOut(r, out, layout);
      }
      return;
    }
    // Round i's tasks: its compute tasks, then the tasks staging round i + 1's transposed A (into the other
    // A buffer) where it is read in place; the rest of round i + 1's copies run on the calling thread meanwhile.
    let pending: Round | null = null;
    let byTasks = this.packTasks(rounds[0], a, b, inPlace);
    this.pack(rounds[0], 0, a, b, inPlace, byTasks);
    this.transposeJob(rounds[0], 0, a, byTasks, job);
    this.runJob(job, true);
    for (let i = 0; i < rounds.length; i++) {
      const r = rounds[i];
      const next = i + 1 < rounds.length ? rounds[i + 1] : null;
      const nextTasks = next ? this.packTasks(next, a, b, inPlace) : NO_TASKS;
      if (next) this.transposeJob(next, (i + 1) & 1, a, nextTasks, job);
      const end = this.describe(r, i & 1, a, b, out, layout, inPlace, byTasks, next ? job : none);
      this.wake();
      this.tail(r);
      // Overlap: pack the next round and copy out the previous block while workers compute.
      if (next) this.pack(next, (i + 1) & 1, a, b, inPlace, nextTasks);
      if (pending) {
        this.copyOut(pending, out, layout);
        pending = null;
      }
      this.claim();
      this.waitDone(end);
      if (r.last && r.mIn < r.mc) pending = r;
      byTasks = nextTasks;
    }
    if (pending) this.copyOut(pending, out, layout);
  }

  /** Workers that have started and instantiated the kernel (diagnostics / tests). */
  readyWorkers(): number {
    return Atomics.load(this.ctl, LAYOUT.READY);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.workers.length > 0) {
      Atomics.add(this.ctl, LAYOUT.SEQ, 1);
      Atomics.store(this.ctl, LAYOUT.CMD, CMD_EXIT);
      Atomics.add(this.ctl, LAYOUT.SEQ, 1);
      Atomics.notify(this.ctl, LAYOUT.SEQ);
      for (const w of this.workers) w.terminate();
      this.workers.length = 0;
    }
    this.heap?.dispose();
  }
}

/**
 * Number of worker threads that have started and are serving rounds (workers start
 * asynchronously; until then the calling thread simply computes every task itself).
 */
export function gemmReadyWorkers(g: Gemm): number {
  return g instanceof WasmGemm ? g.readyWorkers() : 0;
}

/** Creates the engine once (compiles the wasm, starts workers). Synchronous. */
export function createGemm(options: GemmOptions = {}): Gemm {
  const want = options.simd ?? 'relaxed-simd';
  if (want === 'scalar') return new ScalarGemm();
  const shared = sharedMemoryAvailable();
  let simd: GemmSimd = 'scalar';
  let bytes: Uint8Array<ArrayBuffer> | null = null;
  if (want === 'relaxed-simd') {
    const rb = decodeBase64(shared ? GEMM_WASM_RELAXED_SHARED_B64 : GEMM_WASM_RELAXED_B64);
    if (validateRelaxed(rb)) {
      simd = 'relaxed-simd';
      bytes = rb;
    }
  }
  if (!bytes) {
    const sb = decodeBase64(shared ? GEMM_WASM_SIMD_SHARED_B64 : GEMM_WASM_SIMD_B64);
    if (WebAssembly.validate(sb)) {
      simd = 'simd128';
      bytes = sb;
    }
  }
  if (!bytes) return new ScalarGemm();
  const module = new WebAssembly.Module(bytes);
  let memory: WebAssembly.Memory;
  let heap = shared;
  try {
    memory = new WebAssembly.Memory({ initial: MEMORY_PAGES, maximum: shared ? MEMORY_MAX_PAGES : MEMORY_PAGES, shared });
  } catch {
    // no room to reserve a growable shared memory (a 32-bit host): the fixed scratch only, no heap
    memory = new WebAssembly.Memory({ initial: MEMORY_PAGES, maximum: MEMORY_PAGES, shared });
    heap = false;
  }
  // the row kernels' module over the same memory (shared only: the row kernels need the heap)
  const rows = heap ? rowTaskModule() : null;
  let threads = Math.max(1, Math.floor(options.threads ?? hardwareConcurrency()));
  if (!shared || !canBlockHere()) threads = 1;
  const workers: InlineWorker[] = [];
  if (threads > 1) {
    const src = gemmWorkerSource();
    const init: WorkerInit = { module, memory, layout: LAYOUT, spin: WORKER_SPIN, rows, rowOps: ROW_OPS };
    for (let i = 1; i < threads; i++) {
      const w = spawnInlineWorker(src);
      if (!w) break;
      w.postMessage(init);
      workers.push(w);
    }
  }
  return new WasmGemm(simd, module, memory, workers, heap, rows);
}
