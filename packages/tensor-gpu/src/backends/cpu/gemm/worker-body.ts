/**
 * Worker side of the GEMM thread pool.
 *
 * Both functions here are SELF-CONTAINED: they are turned into source text with
 * `Function.prototype.toString` and evaluated inside an inline worker, so they must
 * not reference anything from module scope (no imports, no module constants).
 * Everything they need arrives as arguments / in the init message.
 */

/** Indices into the Int32 control block at byte 0 of the shared memory. */
export interface ControlLayout {
  readonly CTL_INTS: number;
  readonly SEQ: number; // seqlock over the round descriptor: odd while the main thread writes it, even once published
  readonly CMD: number; // 1 = run, 2 = exit
  readonly NEXT: number; // monotonically increasing task-claim counter
  readonly DONE: number; // monotonically increasing completed-task counter
  readonly BASE: number; // value of NEXT/DONE at the start of the current round
  readonly NTASKS: number;
  readonly ABASE: number;
  readonly BBASE: number;
  readonly CBASE: number;
  readonly NP: number;
  readonly KC: number;
  readonly LDC: number;
  readonly ACC: number;
  readonly STRIPS: number;
  readonly AGS: number;
  readonly BGS: number;
  readonly CGS: number;
  readonly LDA: number; // row stride of the A copy, bytes
  readonly LDB: number; // row stride of the B copy, bytes
  readonly SS: number; // byte step between tasks in B (strip: NR * 4; dots: NRT * LDB)
  readonly READY: number; // number of workers that have instantiated the module
  readonly KIND: number; // 0 = strip kernel (B row-major), 1 = dots kernel (B given as rows of W = B^T)
  readonly CSS: number; // byte step between tasks in C (NR * 4 or NRT * 4)
  readonly NRT: number; // dots: rows of W (columns of C) per task
  readonly WBASE: number; // in-place GEMV (KIND 2): byte address of W's first row of this round, in the memory
  readonly NCOLS: number; // in-place GEMV: rows of W (columns of C) in this round, a multiple of 4
  readonly SLEEPERS: number; // workers in (or about to enter) Atomics.wait on SEQ
  readonly MAIN_SLEEPS: number; // 1 while the caller is in (or about to enter) Atomics.wait on DONE
  // row tasks (KIND 3, simd/rows.ts): a row-task function of the eltwise module over rows of operands in the memory
  readonly ROW_OP: number; // index of the function (ROW_OPS order)
  readonly ROW_ROWS: number; // rows in the round
  readonly ROW_PER: number; // rows per task
  readonly ROW_LEN: number; // floats per row
  readonly ROW_P: number; // first of 5: byte address of each operand's first row
  readonly ROW_S: number; // first of 5: byte step per row of each operand (0: one row read again)
  readonly ROW_F: number; // first of 2 (8-byte aligned): the float64 parameter
  // strip rounds (KIND 0) whose B lies in the memory: each task packs its own kc x NR micro-panel from
  // there (`packb`) just before computing with it (no panel is read by two tasks of a round)
  readonly BSRC: number; // byte address of panel 0's source (B[p0, j0] of the first batch item); 0: B already packed
  readonly BSRC_LDS: number; // the source's byte stride between k rows
  readonly BSRC_GS: number; // the source's byte step per batch item
  // strip rounds writing C in place with a partial last row block: each task also runs that block (one MR-row
  // panel) for its columns, into the C buffer
  readonly TAIL_A: number; // byte address of the tail rows of A (first batch item); 0: none
  readonly TAIL_C: number; // byte address of the tail block in the C buffer
  readonly TAIL_CGS: number; // its byte step per batch item
  readonly TAIL_LDC: number; // its row stride, bytes
  readonly SPT: number; // strip rounds: NR-wide strips per task (STRIPS counts tasks per batch item)
  readonly NSTRIPS: number; // strip rounds: NR-wide strips per batch item
  // strip rounds of several batch items reading A in place: each task's first strip also reads the next item's A
  // block ahead (`strip_pf`), at PF_STEP bytes per k step from that block's start (AGS further); 0: none
  readonly PF_STEP: number;
  readonly BSRC_T: number; // 1: B is W^T (W's rows at BSRC_LDS bytes, BSRC = W[j0, p0]): a task transposes NR rows of W into its panel
  // a transpose job (KIND 0 and 1): after the round's NTASKS compute tasks, JOB_N tasks that stage the NEXT
  // round's transposed A block from where it lies in the memory (wasm `transpose`), claimed like the compute
  // tasks so both threads stage it. Task u: JOB_PER rows of the block (columns of the source) of batch item
  // u / JOB_ITEM: transpose(S + gi*GS + 4*c0, LDS, D + gi*GD + c0*LDD, LDD, ROWS, min(JOB_PER, JOB_TOTAL - c0)),
  // c0 = (u % JOB_ITEM) * JOB_PER.
  readonly JOB_N: number;
  readonly JOB_PER: number;
  readonly JOB_ITEM: number;
  readonly JOB_TOTAL: number;
  readonly JOB_S: number;
  readonly JOB_LDS: number;
  readonly JOB_D: number;
  readonly JOB_LDD: number;
  readonly JOB_ROWS: number;
  readonly JOB_GS: number;
  readonly JOB_GD: number;
}

/** A row-task function of the eltwise module's shared variant (gen-eltwise.ts, ROW_OPS). */
export type RowFn = (p0: number, p1: number, p2: number, p3: number, p4: number, rows: number, len: number, f: number) => void;

/** The wasm micro-kernel driver: C[np*MR x NR] (+)= A[np*MR x kc] * B[kc x NR], row-major blocks. */
export type StripFn = (
  a: number,
  lda: number,
  b: number,
  ldb: number,
  c: number,
  ldc: number,
  np: number,
  kc: number,
  acc: number,
) => void;

/** The wasm `dots` kernel: C[mrows x nrows] (+)= X[mrows x k] * W[nrows x k]^T, row-major blocks. */
export type DotsFn = (
  x: number,
  ldx: number,
  mrows: number,
  w: number,
  ldw: number,
  nrows: number,
  k: number,
  c: number,
  ldc: number,
  acc: number,
) => void;

/** The wasm `transpose(s, lds, d, ldd, rows, cols)`: D[c, r] = S[r, c] (byte addresses and strides). */
export type TransposeFn = (s: number, lds: number, d: number, ldd: number, rows: number, cols: number) => void;
/** The wasm `packb(s, lds, d, kc, panels)`: a row-major B block into NR-wide micro-panels (byte addresses). */
export type PackBFn = (s: number, lds: number, d: number, kc: number, panels: number) => void;
/** The wasm `strip_pf`: `strip`, reading one int pfStep bytes further along from pf per k step (a prefetch). */
export type StripPfFn = (a: number, lda: number, b: number, ldb: number, c: number, ldc: number, np: number, kc: number, acc: number, pf: number, pfStep: number) => number;

/**
 * Claims tasks of the currently published round (lock-free, compare-exchange on a
 * monotonic counter, so a thread holding a stale round can never run a task of a newer
 * one) and runs them. Returns the number of tasks this thread completed.
 * Self-contained (serialized into the worker).
 */
export function claimAndRun(
  ctl: Int32Array,
  strip: StripFn,
  dots: DotsFn,
  L: ControlLayout,
  dots1: DotsFn,
  rowFns?: RowFn[] | null,
  transpose?: TransposeFn,
  packb?: PackBFn,
  stripPf?: StripPfFn,
): number {
  let seq: number;
  let base: number, n: number, aBase: number, bBase: number, cBase: number, np: number, kc: number;
  let lda: number, ldb: number, ldc: number, acc: number, strips: number, ags: number, bgs: number, cgs: number;
  let ss: number, kind: number, css: number, nrt: number, wBase: number, ncols: number;
  let rOp = 0, rRows = 0, rPer = 0, rLen = 0, rf = 0;
  const rp = [0, 0, 0, 0, 0];
  const rs = [0, 0, 0, 0, 0];
  let bSrc = 0, bSrcLds = 0, bSrcGs = 0, tailA = 0, tailC = 0, tailCgs = 0, tailLdc = 0, spt = 1, nStrips = 0, pfStep = 0, bSrcT = 0;
  let jN = 0, jPer = 0, jItem = 0, jTotal = 0, jS = 0, jLds = 0, jD = 0, jLdd = 0, jRows = 0, jGs = 0, jGd = 0;
  // consistent snapshot of the round descriptor
  // Seqlock read: an odd SEQ means the main thread is rewriting the descriptor.
  for (;;) {
    seq = Atomics.load(ctl, L.SEQ);
    if (seq & 1) continue;
    base = ctl[L.BASE];
    n = ctl[L.NTASKS];
    aBase = ctl[L.ABASE];
    bBase = ctl[L.BBASE];
    cBase = ctl[L.CBASE];
    np = ctl[L.NP];
    kc = ctl[L.KC];
    lda = ctl[L.LDA];
    ldb = ctl[L.LDB];
    ldc = ctl[L.LDC];
    acc = ctl[L.ACC];
    strips = ctl[L.STRIPS];
    ags = ctl[L.AGS];
    bgs = ctl[L.BGS];
    cgs = ctl[L.CGS];
    ss = ctl[L.SS];
    kind = ctl[L.KIND];
    css = ctl[L.CSS];
    nrt = ctl[L.NRT];
    wBase = ctl[L.WBASE];
    ncols = ctl[L.NCOLS];
    if (kind === 3) {
      rOp = ctl[L.ROW_OP];
      rRows = ctl[L.ROW_ROWS];
      rPer = ctl[L.ROW_PER];
      rLen = ctl[L.ROW_LEN];
      for (let i = 0; i < 5; i++) {
        rp[i] = ctl[L.ROW_P + i];
        rs[i] = ctl[L.ROW_S + i];
      }
      rf = new Float64Array(ctl.buffer, ctl.byteOffset + L.ROW_F * 4, 1)[0];
    }
    jN = 0;
    bSrc = 0;
    tailA = 0;
    if (kind < 2) {
      jN = ctl[L.JOB_N];
      jPer = ctl[L.JOB_PER];
      jItem = ctl[L.JOB_ITEM];
      jTotal = ctl[L.JOB_TOTAL];
      jS = ctl[L.JOB_S];
      jLds = ctl[L.JOB_LDS];
      jD = ctl[L.JOB_D];
      jLdd = ctl[L.JOB_LDD];
      jRows = ctl[L.JOB_ROWS];
      jGs = ctl[L.JOB_GS];
      jGd = ctl[L.JOB_GD];
    }
    if (kind === 0) {
      bSrc = ctl[L.BSRC];
      bSrcLds = ctl[L.BSRC_LDS];
      bSrcGs = ctl[L.BSRC_GS];
      tailA = ctl[L.TAIL_A];
      tailC = ctl[L.TAIL_C];
      tailCgs = ctl[L.TAIL_CGS];
      tailLdc = ctl[L.TAIL_LDC];
      spt = ctl[L.SPT];
      nStrips = ctl[L.NSTRIPS];
      pfStep = ctl[L.PF_STEP];
      bSrcT = ctl[L.BSRC_T];
    }
    if (Atomics.load(ctl, L.SEQ) === seq) break;
  }
  const total = n + jN;
  let done = 0;
  for (;;) {
    const cur = Atomics.load(ctl, L.NEXT);
    const t = (cur - base) | 0;
    if (t < 0 || t >= total) break;
    if (Atomics.compareExchange(ctl, L.NEXT, cur, (cur + 1) | 0) !== cur) continue;
    const g = (t / strips) | 0;
    const s = t - g * strips;
    if (t >= n) {
      // staging the next round's transposed A: rows [c0, c0 + cnt) of batch item gi's block
      const u = t - n;
      const gi = (u / jItem) | 0;
      const c0 = (u - gi * jItem) * jPer;
      transpose!((jS + gi * jGs + c0 * 4) | 0, jLds, (jD + gi * jGd + c0 * jLdd) | 0, jLdd, jRows, jTotal - c0 < jPer ? jTotal - c0 : jPer);
    } else if (kind === 3) {
      // rows [r0, r0 + per) of every operand, in place (a thread without the row module never sees kind 3:
      // the pool publishes it only when every worker was given the module)
      const r0 = t * rPer;
      const f = rowFns![rOp];
      f((rp[0] + r0 * rs[0]) | 0, (rp[1] + r0 * rs[1]) | 0, (rp[2] + r0 * rs[2]) | 0, (rp[3] + r0 * rs[3]) | 0, (rp[4] + r0 * rs[4]) | 0,
        rRows - r0 < rPer ? rRows - r0 : rPer, rLen, rf);
    } else if (kind === 2) {
      // in-place GEMV: rows [n0, n0 + nrt) of W read where the tensor lies (ldb = W's row stride)
      const n0 = t * nrt;
      (np === 1 ? dots1 : dots)(aBase, lda, np, wBase + n0 * ldb, ldb, ncols - n0 < nrt ? ncols - n0 : nrt, kc, cBase + n0 * 4, ldc, 0);
    } else if (kind === 1) dots(aBase + g * ags, lda, np, bBase + g * bgs + s * ss, ldb, nrt, kc, cBase + g * cgs + s * css, ldc, acc);
    else {
      // `spt` adjacent strips: a task's columns of C fill whole cache lines, so the two threads do not write
      // the same lines of C at the same time
      const s0 = s * spt;
      const s1 = (s + 1) * spt < nStrips ? (s + 1) * spt : nStrips;
      // the task's micro-panels, packed here from where B lies (css = NR * 4: a panel's columns in B's rows), all
      // in one pass over B's rows: each row's 64-byte line is read once (rows a multiple of 4 KiB apart share an
      // L1 set, and a second pass for the second strip missed again)
      if (bSrc !== 0 && bSrcT === 0) packb!((bSrc + g * bSrcGs + s0 * css) | 0, bSrcLds, bBase + g * bgs + s0 * ss, kc, s1 - s0);
      for (let si = s0; si < s1; si++) {
        const bp = bBase + g * bgs + si * ss;
        // x @ W^T: the strip's NR rows of W (kc floats each) transposed into its kc x NR panel
        if (bSrcT !== 0) transpose!((bSrc + g * bSrcGs + si * nrt * bSrcLds) | 0, bSrcLds, bp, css, nrt, kc);
        if (np > 0) {
          // the task's first strip also reads the next batch item's A block ahead: a thread's next tasks are there,
          // and A read in place is six short row streams the hardware prefetcher barely follows
          if (pfStep !== 0 && si === s0 && (g + 1) * strips < n) {
            stripPf!(aBase + g * ags, lda, bp, ldb, cBase + g * cgs + si * css, ldc, np, kc, acc, (aBase + (g + 1) * ags) | 0, pfStep);
          } else strip(aBase + g * ags, lda, bp, ldb, cBase + g * cgs + si * css, ldc, np, kc, acc);
        }
        if (tailA !== 0) strip((tailA + g * ags) | 0, lda, bp, ldb, (tailC + g * tailCgs + si * css) | 0, tailLdc, 1, kc, acc);
      }
    }
    done++;
  }
  if (done > 0) {
    const prev = Atomics.add(ctl, L.DONE, done);
    // the round's last task: wake the caller if it sleeps on DONE (it announces that first, as workers do)
    if (((prev + done - base) | 0) >= total && Atomics.load(ctl, L.MAIN_SLEEPS) > 0) Atomics.notify(ctl, L.DONE);
  }
  return done;
}

export interface WorkerInit {
  module: WebAssembly.Module;
  /** The row-task module (simd/rows.ts), instantiated over the same memory; null where it does not validate. */
  rows: WebAssembly.Module | null;
  /** Its function names in descriptor order. */
  rowOps: readonly string[];
  memory: WebAssembly.Memory;
  layout: ControlLayout;
  spin: number;
}

/**
 * Worker entry point. Self-contained (serialized into the worker); receives
 * `claimAndRun` as an argument. Waits for the init message, then loops forever:
 * wait for a new round (short spin, then Atomics.wait), run tasks, repeat; exits on CMD 2.
 */
export function gemmWorkerMain(
  run: typeof claimAndRun,
  nodePort: { once(ev: 'message', fn: (msg: WorkerInit) => void): void } | null,
): void {
  const start = (msg: WorkerInit) => {
    const L = msg.layout;
    const inst = new WebAssembly.Instance(msg.module, { env: { memory: msg.memory } });
    const strip = inst.exports.strip as StripFn;
    const dots = inst.exports.dots as DotsFn;
    const dots1 = inst.exports.dots1 as DotsFn;
    const transpose = inst.exports.transpose as TransposeFn;
    const packb = inst.exports.packb as PackBFn;
    const stripPf = inst.exports.strip_pf as StripPfFn;
    const rowsEx = msg.rows ? new WebAssembly.Instance(msg.rows, { env: { memory: msg.memory } }).exports : null;
    const rowFns = rowsEx ? msg.rowOps.map((op) => rowsEx[op] as RowFn) : null;
    const ctl = new Int32Array(msg.memory.buffer, 0, L.CTL_INTS);
    Atomics.add(ctl, L.READY, 1);
    let seen = -1;
    for (;;) {
      let s = Atomics.load(ctl, L.SEQ);
      for (let i = 0; s === seen && i < msg.spin; i++) s = Atomics.load(ctl, L.SEQ);
      if (s === seen) {
        // announce the sleep first: the caller wakes only sleepers (a futex wake costs a system call),
        // and a round published after this add is seen by the wait's own compare
        Atomics.add(ctl, L.SLEEPERS, 1);
        Atomics.wait(ctl, L.SEQ, seen);
        Atomics.sub(ctl, L.SLEEPERS, 1);
        continue;
      }
      if (s & 1) continue; // a descriptor is being written: look again
      seen = s;
      if (Atomics.load(ctl, L.CMD) === 2) break;
      run(ctl, strip, dots, L, dots1, rowFns, transpose, packb, stripPf);
    }
    const g = globalThis as { close?: () => void };
    if (!nodePort && typeof g.close === 'function') g.close();
  };
  // Node eval worker (parentPort) or a browser worker (onmessage).
  if (nodePort) {
    nodePort.once('message', start);
  } else {
    (globalThis as unknown as { onmessage: ((e: MessageEvent<WorkerInit>) => void) | null }).onmessage = (e) =>
      start(e.data);
  }
}

/**
 * Source text of the inline worker. The `require` call lives in this string literal on
 * purpose: bundlers rewrite `require` inside real code, but never inside strings.
 */
export function gemmWorkerSource(): string {
  // `__name` shim: esbuild with keepNames (tsx, some bundler configs) wraps functions
  // in __name(fn, "name"), a helper that does not exist inside the worker.
  return (
    'var __name = function (f) { return f; };\n' +
    `(${gemmWorkerMain.toString()})(${claimAndRun.toString()}, ` +
    `typeof require === 'function' ? require('node:worker_threads').parentPort : null);\n`
  );
}
