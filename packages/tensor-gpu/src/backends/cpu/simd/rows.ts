// Row kernels in place on the GEMM's shared memory, on both threads (decision 0024).
//
// Storages of 256 KiB and more live in the GEMM's shared WebAssembly memory (decision 0015). The row-task
// module (gen-eltwise.ts, `ELTWISE_SHARED_WASM_B64`) imports that memory on the calling thread and in the
// GEMM's workers, so a kernel reads and writes its operands where they lie: no staging copies. Rows are
// split over the threads (a round of KIND 3 in the GEMM's pool) above ROWS_PARALLEL_MIN floats. A small
// read-only operand read once per row (a weight, a bias row) is copied into a scratch block of the heap.
// Anything else (storage outside the memory, a row length that is not a multiple of 4, no shared memory
// in a browser page without cross-origin isolation) returns false, and the callers' staged path runs.

import { decodeBase64 } from '../common.js';
import { heapOf, type SharedHeap } from '../gemm/heap.js';
import { ELTWISE_SHARED_WASM_B64, ROW_OPS } from './eltwise-bytes.js';

export { ROW_OPS };
export type RowOp = (typeof ROW_OPS)[number];


let compiled: WebAssembly.Module | null | undefined;

/** The compiled row-task module, or null where it does not validate (no SIMD or no shared memory). */
export function rowTaskModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  try {
    const bytes = decodeBase64(ELTWISE_SHARED_WASM_B64);
    compiled = typeof WebAssembly !== 'undefined' && WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  } catch {
    compiled = null;
  }
  return compiled;
}

/**
 * Below this many floats per round the rows stay on the calling thread: waking the worker and the
 * round's handshake cost about what the second thread saves (measured, decision 0024).
 */
export const ROWS_PARALLEL_MIN = 32768;
/** Tasks per thread in a parallel round: small enough that the faster thread takes the slack. */
const TASKS_PER_THREAD = 4;
/** Row length the elementwise kernels use over a flat tensor. */
const FLAT_LEN = 2048;

/** One operand of a row task: element `offset` of `data` starts its first row. */
export interface RowOperand {
  data: Float32Array;
  offset: number;
  /** Floats from one row to the next: the row length, or 0 for one row read again (weight, bias). */
  step: number;
  /** Written by the kernel (must lie in the memory). */
  out?: boolean;
  /** Floats the kernel touches per row when that is not the row length (a few per-row stats floats). */
  width?: number;
}

const scratches = new WeakMap<SharedHeap, Float32Array>();
const statsBlocks = new WeakMap<SharedHeap, Float32Array>();

/** The block of `blocks` for this heap, of at least `n` floats (kept and grown per heap), or null. */
function heapBlock(blocks: WeakMap<SharedHeap, Float32Array>, heap: SharedHeap, n: number): Float32Array | null {
  let s = blocks.get(heap);
  if (!s || s.length < n) {
    if (s) heap.release(s);
    blocks.delete(heap);
    const next = heap.alloc(Math.max(n, 4096));
    if (!next) return null;
    blocks.set(heap, (s = next));
  }
  return s;
}

/** A scratch block of at least `n` floats in the heap (staged operands), or null. */
function scratch(heap: SharedHeap, n: number): Float32Array | null {
  return heapBlock(scratches, heap, n);
}

/**
 * A block of at least `n` floats in the memory holding `near` (apart from the staging scratch), for
 * per-row stats a row task writes or reads; null where `near` is not in the memory. The caller uses it
 * until its next call (every row task runs to completion on the calling thread).
 */
export function rowStatsBlock(near: Float32Array, n: number): Float32Array | null {
  const heap = heapOf(near);
  return heap?.rows ? heapBlock(statsBlocks, heap, n) : null;
}

/**
 * Runs row-task `op` over `rows` rows of `len` floats in place (operands as the function expects them,
 * null for an unused pointer, which the function sees as 0), split over the threads when large. False
 * (nothing written) when an operand is not where the kernel can reach it.
 */
export function runRowTask(op: RowOp, rows: number, len: number, operands: readonly (RowOperand | null)[], f = 0): boolean {
  if (len % 4 !== 0 || len === 0) return false;
  const outOp = operands.find((o) => o?.out);
  const heap = outOp ? heapOf(outOp.data) : undefined;
  const runner = heap?.rows;
  if (!heap || !runner) return false;
  const staged = operands.reduce((n, o) => n + (o && heapOf(o.data) !== heap ? len : 0), 0);
  if (operands.some((o) => o && heapOf(o.data) !== heap && (o.out || o.step !== 0 || o.offset + len > o.data.length))) return false;
  const sc = staged > 0 ? scratch(heap, staged) : null;
  if (staged > 0 && !sc) return false;
  if (rows === 0) return true;
  // wasm has no bounds per tensor: an operand in the memory whose rows overrun its view would read or write
  // its neighbours silently (transpose4's source is read by columns: its extent is the caller's view)
  if (op !== 'transpose4') {
    for (const o of operands) {
      const width = o?.width ?? len;
      if (o && heapOf(o.data) === heap && o.offset + (rows - 1) * o.step + width > o.data.length) {
        throw new RangeError(`cpu row kernel '${op}': ${rows} rows of ${width} floats (step ${o.step}) from element ${o.offset} overrun an operand of ${o.data.length} floats`);
      }
    }
  }
  const ptrs: number[] = [];
  const steps: number[] = [];
  let at = 0;
  for (const o of operands) {
    if (!o) {
      ptrs.push(0);
      steps.push(0);
    } else if (heapOf(o.data) === heap) {
      ptrs.push(o.data.byteOffset + 4 * o.offset);
      steps.push(4 * o.step);
    } else {
      sc!.set(o.data.subarray(o.offset, o.offset + len), at);
      ptrs.push(sc!.byteOffset + 4 * at);
      steps.push(0);
      at += len;
    }
  }
  const parallel = runner.threads > 1 && rows > 1 && rows * len >= ROWS_PARALLEL_MIN;
  const per = parallel ? Math.max(1, Math.ceil(rows / (runner.threads * TASKS_PER_THREAD))) : rows;
  runner.runRows(ROW_OPS.indexOf(op), rows, per, len, ptrs, steps, f, parallel);
  return true;
}

/**
 * out = op(a, b) over `count` floats in place: b is a whole operand (`bRow` 0), a row of `bRow` floats
 * repeated (a bias), or absent (unary; the function then reads a twice). The flat case runs rows of
 * FLAT_LEN and stages the last partial row through the scratch block. False as runRowTask.
 */
export function eltwiseInPlace(
  op: 'gelu' | 'silu' | 'addGelu' | 'geluBackward' | 'siluBackward' | 'add',
  a: Float32Array, ao: number, b: Float32Array | null, bo: number, bRow: number, out: Float32Array, oo: number, count: number,
): boolean {
  const heap = heapOf(out);
  if (!heap?.rows || heapOf(a) !== heap) return false;
  if (b && bRow > 0) {
    // a bias row: the tensor's own rows, the bias read again for each (staged when small)
    if (count % bRow !== 0) return false;
    return runRowTask(op, count / bRow, bRow, [{ data: a, offset: ao, step: bRow }, { data: b, offset: bo, step: 0 }, { data: out, offset: oo, step: bRow, out: true }]);
  }
  if (b && heapOf(b) !== heap) return false;
  const [bd, bOff] = b ? [b, bo] : [a, ao];
  const rows = Math.floor(count / FLAT_LEN);
  const ops = (ra: number, rb: number, ro: number, len: number): RowOperand[] => [
    { data: a, offset: ra, step: len },
    { data: bd, offset: rb, step: len },
    { data: out, offset: ro, step: len, out: true },
  ];
  // p3 carries b's step in bytes for the elementwise functions: ptrs[3] is read as a step, set by hand below
  if (rows > 0 && !runFlat(heap, op, rows, FLAT_LEN, ops(ao, bOff, oo, FLAT_LEN))) return false;
  const done = rows * FLAT_LEN;
  const tail = count - done;
  if (tail === 0) return true;
  // the last partial row: staged padded to whole lanes, on the calling thread
  const len4 = (tail + 3) & ~3;
  const sc = scratch(heap, 3 * len4);
  if (!sc) return false;
  sc.fill(0, 0, 3 * len4);
  sc.set(a.subarray(ao + done, ao + count), 0);
  sc.set(bd.subarray(bOff + done, bOff + count), len4);
  const base = sc.byteOffset;
  heap.rows.runRows(ROW_OPS.indexOf(op), 1, 1, len4, [base, base + 4 * len4, base + 8 * len4, 0, 0], [0, 0, 0, 0, 0], 0, false);
  out.set(sc.subarray(2 * len4, 2 * len4 + tail), oo + done);
  return true;
}

/**
 * The Adam step in place over the whole FLAT_LEN rows of p, g, m, v (all float32 in the memory) on both
 * threads; `scalars` are the row task's eight (gen-eltwise.ts, `rowAdam`). Returns how many floats it
 * did from the start (0 when the tensors are not where the kernel reaches them); the caller does the rest.
 */
export function adamInPlace(
  decoupled: boolean,
  p: Float32Array, po: number, g: Float32Array, go: number, m: Float32Array, mo: number, v: Float32Array, vo: number, n: number,
  scalars: readonly number[],
): number {
  const heap = heapOf(p);
  const rows = Math.floor(n / FLAT_LEN);
  if (!heap?.rows || rows === 0 || [g, m, v].some((a) => heapOf(a) !== heap)) return 0;
  const params = rowStatsBlock(p, scalars.length);
  if (!params) return 0;
  params.set(scalars);
  const row = (data: Float32Array, offset: number, out: boolean): RowOperand => ({ data, offset, step: FLAT_LEN, out });
  const ok = runRowTask(decoupled ? 'adamDecoupled' : 'adamL2', rows, FLAT_LEN, [
    row(p, po, true),
    row(g, go, false),
    row(m, mo, true),
    row(v, vo, true),
    { data: params, offset: 0, step: 0, width: scalars.length },
  ]);
  return ok ? rows * FLAT_LEN : 0;
}

/** An elementwise round over whole rows in the memory: p3 is b's byte step per row. */
function runFlat(heap: SharedHeap, op: RowOp, rows: number, len: number, o: RowOperand[]): boolean {
  const runner = heap.rows!;
  const addr = (r: RowOperand) => r.data.byteOffset + 4 * r.offset;
  const parallel = runner.threads > 1 && rows > 1 && rows * len >= ROWS_PARALLEL_MIN;
  const per = parallel ? Math.max(1, Math.ceil(rows / (runner.threads * TASKS_PER_THREAD))) : rows;
  const step = 4 * len;
  runner.runRows(ROW_OPS.indexOf(op), rows, per, len, [addr(o[0]), addr(o[1]), addr(o[2]), step, 0], [step, step, step, 0, 0], 0, parallel);
  return true;
}
