/**
 * Generator for the GEMM micro-kernel WebAssembly modules.
 *
 * Emits WebAssembly text (WAT) for a register-blocked MR x NR f32x4 micro-kernel
 * and compiles it with the `wabt` devDependency. The resulting bytes are committed
 * as base64 in `wasm-bytes.ts`, so the runtime needs neither wabt nor this file.
 *
 * Regenerate:  npx tsx src/backends/cpu/gemm/gen-wasm.ts
 * Drift check: gemm.test.ts regenerates and compares with wasm-bytes.ts.
 *
 * `strip(a, lda, b, ldb, c, ldc, np, kc, acc)` computes a column strip of NR columns
 * over np*MR rows; all pointers/strides are byte addresses/strides into the memory:
 *  - a: row-major A block, A[i, k] at a + i*lda + 4*k   (i < np*MR, k < kc)
 *  - b: row-major B block, B[k, j] at b + k*ldb + 4*j   (j < NR)
 *  - c: C[i, j] at c + i*ldc + 4*j
 *  - acc: 0 -> C = A*B, otherwise C += A*B.
 * Per k step: NR/4 v128.load of a B row, MR v128.load32_splat of A, MR*NR/4 f32x4
 * multiply-adds (relaxed_madd = FMA, or mul+add) into MR*NR/4 v128 accumulators.
 * The caller memcpy's A as a row-major block and B into NR-wide micro-panels (`packb`, ldb = NR*4);
 * edge rows/columns are computed on whatever padding is there and simply not copied out.
 *
 * `transpose(s, lds, d, ldd, rows, cols)` (same module, run by the calling thread):
 * D[c, r] = S[r, c] with 4x4 SIMD shuffle tiles. A transposed operand (e.g. B = W^T
 * with W stored [N, K]) is memcpy'd line by line into a staging area and transposed
 * into the row-major block the strip kernel reads, instead of a strided JS gather.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The strip kernel's register block: MR rows x NR columns = MR * NR / 4 f32x4 accumulators, plus NR / 4
 * B vectors and one splat of A. 6 x 8 is 12 + 2 + 1 = 15 live v128 values: V8 allocates 15 of x64's
 * 16 XMM registers (xmm15 is its scratch), so the k loop runs without spills. Measured on one core
 * (`.scratch`-style timing of `strip` on packed blocks, cpu time): 6x8 53-55 GFLOPS, 4x12 (16 values,
 * one spills) 37-39, 4x12 unrolled x1 26, 8x8 / 4x16 (spilling) 33, 4x8 27, 5x8 unrolled x2 33.
 */
export const MR = 6;
export const NR = 8;
/** k-loop unroll factor of the generated kernel (2 adds a live pointer, and 6x8 then spills: 33 GFLOPS). */
export const KUNROLL = 1;
/** Rows of x per pass of the `dots` (x @ W^T, small M) kernel; 4 rows of W per pass. */
export const DOTS_MB = 2;

export interface KernelVariant {
  mr: number;
  nr: number;
  unroll: number;
  fma: boolean;
  /** Import a shared memory (threads) or a plain one (no SharedArrayBuffer available). */
  shared: boolean;
}

/** Emits the WAT text of a micro-kernel module. */
export function generateWat(v: KernelVariant): string {
  const { nr, fma, shared } = v;
  if (nr % 4 !== 0) throw new Error('nr must be a multiple of 4');
  const nv = nr / 4;
  const L: string[] = [];
  const e = (s: string) => L.push(s);
  e('(module');
  e(`  (import "env" "memory" (memory 1 65536${shared ? ' shared' : ''}))`);
  for (const pf of [false, true]) emitStrip(e, v, pf);
  emitTranspose(e);
  emitPackB(e, nv);
  emitDots(e, DOTS_MB, fma, 'dots');
  emitDots(e, 1, fma, 'dots1');
  e(')');
  return L.join('\n') + '\n';
}

/**
 * The strip kernel. `strip_pf` also reads one int `pfStep` bytes further along [pf, ...) per k step
 * (returning their sum): a prefetch of the operand the thread's next task will read (the next head's A
 * when it lies beyond L2), spread over this call's k steps so the loads overlap the FMAs (WebAssembly has
 * no prefetch instruction). The caller keeps pf + np * kc * pfStep inside the memory.
 */
function emitStrip(e: (s: string) => void, v: KernelVariant, pf: boolean): void {
  const { mr, nr, unroll, fma } = v;
  const nv = nr / 4;
  const acc = (r: number, j: number) => `$c${r}_${j}`;
  const sig = '(param $a i32) (param $lda i32) (param $b i32) (param $ldb i32) (param $c i32) (param $ldc i32) (param $np i32) (param $kc i32) (param $acc i32)';
  e(pf ? `  (func (export "strip_pf") ${sig} (param $pf i32) (param $pfStep i32) (result i32)` : `  (func (export "strip") ${sig}`);
  e('    (local $bp i32) (local $k i32) (local $cp i32) (local $av v128)');
  if (pf) e('    (local $pfs i32)');
  for (let r = 0; r < mr; r++) e(`    (local $a${r} i32)`);
  for (let u = 1; u < unroll; u++) e(`    (local $bq${u} i32)`);
  for (let j = 0; j < nv; j++) e(`    (local $b${j} v128)`);
  for (let r = 0; r < mr; r++) for (let j = 0; j < nv; j++) e(`    (local ${acc(r, j)} v128)`);
  e('    (block $pdone');
  e('    (br_if $pdone (i32.eqz (local.get $np)))');
  e('    (loop $panel');
  for (let r = 0; r < mr; r++) for (let j = 0; j < nv; j++) e(`      (local.set ${acc(r, j)} (v128.const i32x4 0 0 0 0))`);
  e('      (local.set $a0 (local.get $a))');
  for (let r = 1; r < mr; r++) e(`      (local.set $a${r} (i32.add (local.get $a${r - 1}) (local.get $lda)))`);
  e('      (local.set $bp (local.get $b))');
  e('      (local.set $k (local.get $kc))');
  // one k step: B row at pointer `bptr`, A element k+u of each row at byte offset 4*u
  const step = (u: number, bptr: string) => {
    for (let j = 0; j < nv; j++) e(`        (local.set $b${j} (v128.load offset=${16 * j} (local.get ${bptr})))`);
    for (let r = 0; r < mr; r++) {
      e(`        (local.set $av (v128.load32_splat offset=${4 * u} (local.get $a${r})))`);
      for (let j = 0; j < nv; j++) {
        if (fma) e(`        (local.set ${acc(r, j)} (f32x4.relaxed_madd (local.get $av) (local.get $b${j}) (local.get ${acc(r, j)})))`);
        else e(`        (local.set ${acc(r, j)} (f32x4.add (local.get ${acc(r, j)}) (f32x4.mul (local.get $av) (local.get $b${j}))))`);
      }
    }
    // strip_pf: one read ahead per k step, in the unrolled loop too
    if (pf) {
      e('        (local.set $pfs (i32.add (local.get $pfs) (i32.load (local.get $pf))))');
      e('        (local.set $pf (i32.add (local.get $pf) (local.get $pfStep)))');
    }
  };
  const advance = (n: number) => {
    for (let r = 0; r < mr; r++) e(`        (local.set $a${r} (i32.add (local.get $a${r}) (i32.const ${4 * n})))`);
    e(`        (local.set $bp (i32.add (local.get $bp) (i32.mul (local.get $ldb) (i32.const ${n}))))`);
    e(`        (local.set $k (i32.sub (local.get $k) (i32.const ${n})))`);
  };
  if (unroll > 1) {
    e('      (block $udone');
    e(`      (br_if $udone (i32.lt_u (local.get $k) (i32.const ${unroll})))`);
    e('      (loop $kloopU');
    step(0, '$bp');
    for (let u = 1; u < unroll; u++) {
      e(`        (local.set $bq${u} (i32.add (local.get ${u === 1 ? '$bp' : `$bq${u - 1}`}) (local.get $ldb)))`);
      step(u, `$bq${u}`);
    }
    advance(unroll);
    e(`        (br_if $kloopU (i32.ge_u (local.get $k) (i32.const ${unroll})))`);
    e('      )');
    e('      )');
  }
  e('      (block $kdone');
  e('      (br_if $kdone (i32.eqz (local.get $k)))');
  e('      (loop $kloop');
  step(0, '$bp');
  advance(1);
  e('        (br_if $kloop (local.get $k))');
  e('      )');
  e('      )');
  // write back
  e('      (local.set $cp (local.get $c))');
  e('      (if (local.get $acc)');
  e('        (then');
  for (let r = 0; r < mr; r++) {
    for (let j = 0; j < nv; j++) {
      e(`          (v128.store offset=${16 * j} (local.get $cp) (f32x4.add (v128.load offset=${16 * j} (local.get $cp)) (local.get ${acc(r, j)})))`);
    }
    e('          (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))');
  }
  e('        )');
  e('        (else');
  for (let r = 0; r < mr; r++) {
    for (let j = 0; j < nv; j++) e(`          (v128.store offset=${16 * j} (local.get $cp) (local.get ${acc(r, j)}))`);
    e('          (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))');
  }
  e('        )');
  e('      )');
  e(`      (local.set $c (i32.add (local.get $c) (i32.mul (local.get $ldc) (i32.const ${mr}))))`);
  e(`      (local.set $a (i32.add (local.get $a) (i32.mul (local.get $lda) (i32.const ${mr}))))`);
  e('      (local.set $np (i32.sub (local.get $np) (i32.const 1)))');
  e('      (br_if $panel (local.get $np))');
  e('    )');
  e('    )');
  if (pf) e('    (local.get $pfs)');
  e('  )');
}

/** i8x16.shuffle byte pattern selecting f32 lanes (0-3 from the first operand, 4-7 from the second). */
function lanes(...l: number[]): string {
  return l.flatMap((x) => [4 * x, 4 * x + 1, 4 * x + 2, 4 * x + 3]).join(' ');
}

/**
 * `transpose(s, lds, d, ldd, rows, cols)`: D[c, r] = S[r, c] for r < rows, c < cols
 * (f32 elements; byte addresses and byte row strides). Full 4x4 tiles: 4 v128 loads
 * of 4 consecutive S rows, 8 lane shuffles (unpack lo/hi, then move lo/hi halves), 4
 * v128 stores into 4 consecutive D rows; the partial tiles at the right/bottom edges
 * are copied element by element. Used by the calling thread to turn a memcpy'd block of
 * a transposed operand (rows contiguous along the other axis) into the row-major
 * layout the strip kernel reads.
 */
function emitTranspose(e: (s: string) => void): void {
  e('  (func (export "transpose") (param $s i32) (param $lds i32) (param $d i32) (param $ldd i32) (param $rows i32) (param $cols i32)');
  e('    (local $r i32) (local $c i32) (local $r4 i32) (local $c4 i32)');
  e('    (local $s0 i32) (local $s1 i32) (local $s2 i32) (local $s3 i32) (local $dp i32)');
  e('    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128)');
  e('    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)');
  e('    (local.set $r4 (i32.and (local.get $rows) (i32.const -4)))');
  e('    (local.set $c4 (i32.and (local.get $cols) (i32.const -4)))');
  e('    (local.set $r (i32.const 0))');
  e('    (block $rdone');
  e('    (loop $rloop');
  e('      (br_if $rdone (i32.ge_u (local.get $r) (local.get $r4)))');
  e('      (local.set $s0 (i32.add (local.get $s) (i32.mul (local.get $r) (local.get $lds))))');
  e('      (local.set $s1 (i32.add (local.get $s0) (local.get $lds)))');
  e('      (local.set $s2 (i32.add (local.get $s1) (local.get $lds)))');
  e('      (local.set $s3 (i32.add (local.get $s2) (local.get $lds)))');
  e('      (local.set $dp (i32.add (local.get $d) (i32.shl (local.get $r) (i32.const 2))))');
  e('      (local.set $c (i32.const 0))');
  e('      (block $cdone');
  e('      (loop $cloop');
  e('        (br_if $cdone (i32.ge_u (local.get $c) (local.get $c4)))');
  e('        (local.set $x0 (v128.load (local.get $s0)))');
  e('        (local.set $x1 (v128.load (local.get $s1)))');
  e('        (local.set $x2 (v128.load (local.get $s2)))');
  e('        (local.set $x3 (v128.load (local.get $s3)))');
  // t0 = a0 b0 a1 b1, t1 = c0 d0 c1 d1, t2 = a2 b2 a3 b3, t3 = c2 d2 c3 d3
  e(`        (local.set $t0 (i8x16.shuffle ${lanes(0, 4, 1, 5)} (local.get $x0) (local.get $x1)))`);
  e(`        (local.set $t1 (i8x16.shuffle ${lanes(0, 4, 1, 5)} (local.get $x2) (local.get $x3)))`);
  e(`        (local.set $t2 (i8x16.shuffle ${lanes(2, 6, 3, 7)} (local.get $x0) (local.get $x1)))`);
  e(`        (local.set $t3 (i8x16.shuffle ${lanes(2, 6, 3, 7)} (local.get $x2) (local.get $x3)))`);
  e(`        (v128.store (local.get $dp) (i8x16.shuffle ${lanes(0, 1, 4, 5)} (local.get $t0) (local.get $t1)))`);
  e(`        (v128.store (i32.add (local.get $dp) (local.get $ldd)) (i8x16.shuffle ${lanes(2, 3, 6, 7)} (local.get $t0) (local.get $t1)))`);
  e('        (local.set $dp (i32.add (local.get $dp) (i32.shl (local.get $ldd) (i32.const 1))))');
  e(`        (v128.store (local.get $dp) (i8x16.shuffle ${lanes(0, 1, 4, 5)} (local.get $t2) (local.get $t3)))`);
  e(`        (v128.store (i32.add (local.get $dp) (local.get $ldd)) (i8x16.shuffle ${lanes(2, 3, 6, 7)} (local.get $t2) (local.get $t3)))`);
  e('        (local.set $dp (i32.add (local.get $dp) (i32.shl (local.get $ldd) (i32.const 1))))');
  e('        (local.set $s0 (i32.add (local.get $s0) (i32.const 16)))');
  e('        (local.set $s1 (i32.add (local.get $s1) (i32.const 16)))');
  e('        (local.set $s2 (i32.add (local.get $s2) (i32.const 16)))');
  e('        (local.set $s3 (i32.add (local.get $s3) (i32.const 16)))');
  e('        (local.set $c (i32.add (local.get $c) (i32.const 4)))');
  e('        (br $cloop)');
  e('      )');
  e('      )');
  e('      (local.set $r (i32.add (local.get $r) (i32.const 4)))');
  e('      (br $rloop)');
  e('    )');
  e('    )');
  // edges, element by element: columns [c4, cols) of rows [0, r4), then all of rows [r4, rows)
  e('    (local.set $r (i32.const 0))');
  e('    (block $edone');
  e('    (loop $eloop');
  e('      (br_if $edone (i32.ge_u (local.get $r) (local.get $rows)))');
  e('      (local.set $c (select (local.get $c4) (i32.const 0) (i32.lt_u (local.get $r) (local.get $r4))))');
  e('      (local.set $s0 (i32.add (local.get $s) (i32.add (i32.mul (local.get $r) (local.get $lds)) (i32.shl (local.get $c) (i32.const 2)))))');
  e('      (local.set $dp (i32.add (local.get $d) (i32.add (i32.mul (local.get $c) (local.get $ldd)) (i32.shl (local.get $r) (i32.const 2)))))');
  e('      (block $fdone');
  e('      (loop $floop');
  e('        (br_if $fdone (i32.ge_u (local.get $c) (local.get $cols)))');
  e('        (f32.store (local.get $dp) (f32.load (local.get $s0)))');
  e('        (local.set $s0 (i32.add (local.get $s0) (i32.const 4)))');
  e('        (local.set $dp (i32.add (local.get $dp) (local.get $ldd)))');
  e('        (local.set $c (i32.add (local.get $c) (i32.const 1)))');
  e('        (br $floop)');
  e('      )');
  e('      )');
  e('      (local.set $r (i32.add (local.get $r) (i32.const 1)))');
  e('      (br $eloop)');
  e('    )');
  e('    )');
  e('  )');
}

/**
 * `packb(s, lds, d, kc, panels)`: B's row-major block (kc rows at byte stride lds, in the staging area)
 * into `panels` micro-panels of NR columns, each kc x NR contiguous: panel p, row k at
 * d + (p*kc + k) * NR*4. The strip kernel then reads one panel as a single forward stream (NR*4 bytes
 * per k step) instead of one line per k spread over kc pages.
 */
function emitPackB(e: (s: string) => void, nv: number): void {
  e('  (func (export "packb") (param $s i32) (param $lds i32) (param $d i32) (param $kc i32) (param $panels i32)');
  e('    (local $k i32) (local $p i32) (local $sp i32) (local $dp i32) (local $pstep i32)');
  e(`    (local.set $pstep (i32.mul (local.get $kc) (i32.const ${nv * 16})))`);
  e('    (block $kdone');
  e('    (loop $kloop');
  e('      (br_if $kdone (i32.ge_u (local.get $k) (local.get $kc)))');
  e('      (local.set $sp (i32.add (local.get $s) (i32.mul (local.get $k) (local.get $lds))))');
  e(`      (local.set $dp (i32.add (local.get $d) (i32.mul (local.get $k) (i32.const ${nv * 16}))))`);
  e('      (local.set $p (local.get $panels))');
  e('      (block $pdone');
  e('      (loop $ploop');
  e('        (br_if $pdone (i32.eqz (local.get $p)))');
  for (let j = 0; j < nv; j++) e(`        (v128.store offset=${16 * j} (local.get $dp) (v128.load offset=${16 * j} (local.get $sp)))`);
  e(`        (local.set $sp (i32.add (local.get $sp) (i32.const ${nv * 16})))`);
  e('        (local.set $dp (i32.add (local.get $dp) (local.get $pstep)))');
  e('        (local.set $p (i32.sub (local.get $p) (i32.const 1)))');
  e('        (br $ploop)');
  e('      )');
  e('      )');
  e('      (local.set $k (i32.add (local.get $k) (i32.const 1)))');
  e('      (br $kloop)');
  e('    )');
  e('    )');
  e('  )');
}

/**
 * `dots(x, ldx, mrows, w, ldw, nrows, k, c, ldc, acc)`: C[m, n] (+)= dot(X[m, :k], W[n, :k]) for
 * m < mrows (a multiple of mb), n < nrows (a multiple of 4); X, W and C row-major
 * (byte addresses/strides). Both operands are contiguous along k, so a transposed weight
 * (`x @ W^T`, W stored [N, K]) is used as memcpy'd, with no transpose. Register block:
 * mb rows of X x 4 rows of W = 4*mb f32x4 accumulators over 4 k-lanes each, reduced
 * with a 4x4 shuffle transpose + adds into one v128 of 4 outputs per X row. The k % 4
 * tail uses `v128.load32_zero` (lanes 1-3 are 0 * 0), so nothing past k is ever read
 * into a sum. acc: 0 -> C = X W^T, otherwise C += X W^T.
 * Measured (1 thread, relaxed FMA): ~50 GFLOPS at M = 128 with W streamed from L2, vs
 * ~30-37 for the old 4x12 strip kernel. Against the 6x8 strip kernel it stays ahead below a few
 * hundred rows; from PANEL_T_MIN_ROWS the strip kernel on transposed panels wins (decision 0029).
 * `dots1` is the same with mb = 1: the in-place GEMV of a single row (decoding one token), which
 * would otherwise also multiply the padding row.
 */
function emitDots(e: (s: string) => void, mb: number, fma: boolean, name: string): void {
  const madd = (x: string, y: string, acc: string) =>
    fma
      ? `(f32x4.relaxed_madd (local.get ${x}) (local.get ${y}) (local.get ${acc}))`
      : `(f32x4.add (local.get ${acc}) (f32x4.mul (local.get ${x}) (local.get ${y})))`;
  e(`  (func (export "${name}") (param $x i32) (param $ldx i32) (param $mrows i32) (param $w i32) (param $ldw i32) (param $nrows i32) (param $k i32) (param $c i32) (param $ldc i32) (param $acc i32)`);
  e('    (local $m i32) (local $n i32) (local $cp i32) (local $kk i32) (local $k4 i32) (local $xr i32) (local $cr i32) (local $wv v128) (local $t0 v128) (local $t1 v128)');
  for (let i = 0; i < mb; i++) e(`    (local $xp${i} i32) (local $xv${i} v128)`);
  for (let j = 0; j < 4; j++) e(`    (local $w${j} i32)`);
  for (let i = 0; i < mb; i++) for (let j = 0; j < 4; j++) e(`    (local $a${i}_${j} v128)`);
  e('    (local.set $k4 (i32.and (local.get $k) (i32.const -4)))');
  e('    (local.set $m (i32.const 0))');
  e('    (block $mdone');
  e('    (loop $mloop');
  e('      (br_if $mdone (i32.ge_u (local.get $m) (local.get $mrows)))');
  e('      (local.set $xr (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $ldx))))');
  e('      (local.set $cr (i32.add (local.get $c) (i32.mul (local.get $m) (local.get $ldc))))');
  e('      (local.set $n (i32.const 0))');
  e('      (block $ndone');
  e('      (loop $nloop');
  e('        (br_if $ndone (i32.ge_u (local.get $n) (local.get $nrows)))');
  e('        (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $ldw))))');
  for (let j = 1; j < 4; j++) e(`        (local.set $w${j} (i32.add (local.get $w${j - 1}) (local.get $ldw)))`);
  e('        (local.set $xp0 (local.get $xr))');
  for (let i = 1; i < mb; i++) e(`        (local.set $xp${i} (i32.add (local.get $xp${i - 1}) (local.get $ldx)))`);
  for (let i = 0; i < mb; i++) for (let j = 0; j < 4; j++) e(`        (local.set $a${i}_${j} (v128.const i32x4 0 0 0 0))`);
  // one k step of 4 lanes (load = v128.load) or of 1 lane (load = v128.load32_zero), then advance
  const kstep = (load: string, bytes: number) => {
    for (let i = 0; i < mb; i++) e(`          (local.set $xv${i} (${load} (local.get $xp${i})))`);
    for (let j = 0; j < 4; j++) {
      e(`          (local.set $wv (${load} (local.get $w${j})))`);
      for (let i = 0; i < mb; i++) e(`          (local.set $a${i}_${j} ${madd(`$xv${i}`, '$wv', `$a${i}_${j}`)})`);
    }
    for (let i = 0; i < mb; i++) e(`          (local.set $xp${i} (i32.add (local.get $xp${i}) (i32.const ${bytes})))`);
    for (let j = 0; j < 4; j++) e(`          (local.set $w${j} (i32.add (local.get $w${j}) (i32.const ${bytes})))`);
    e(`          (local.set $kk (i32.add (local.get $kk) (i32.const ${bytes / 4})))`);
  };
  e('        (local.set $kk (i32.const 0))');
  e('        (block $kdone');
  e('        (loop $kloop');
  e('          (br_if $kdone (i32.ge_u (local.get $kk) (local.get $k4)))');
  kstep('v128.load', 16);
  e('          (br $kloop)');
  e('        )');
  e('        )');
  e('        (block $tdone');
  e('        (loop $tloop');
  e('          (br_if $tdone (i32.ge_u (local.get $kk) (local.get $k)))');
  kstep('v128.load32_zero', 4);
  e('          (br $tloop)');
  e('        )');
  e('        )');
  // reduce: out_i = [sum(a_i_0), sum(a_i_1), sum(a_i_2), sum(a_i_3)]
  for (let i = 0; i < mb; i++) {
    const g = (j: number) => `(local.get $a${i}_${j})`;
    e(`        (local.set $t0 (f32x4.add (i8x16.shuffle ${lanes(0, 4, 1, 5)} ${g(0)} ${g(1)}) (i8x16.shuffle ${lanes(2, 6, 3, 7)} ${g(0)} ${g(1)})))`);
    e(`        (local.set $t1 (f32x4.add (i8x16.shuffle ${lanes(0, 4, 1, 5)} ${g(2)} ${g(3)}) (i8x16.shuffle ${lanes(2, 6, 3, 7)} ${g(2)} ${g(3)})))`);
    e(`        (local.set $cp (i32.add (local.get $cr) (i32.add (i32.mul (local.get $ldc) (i32.const ${i})) (i32.shl (local.get $n) (i32.const 2)))))`);
    e(`        (local.set $t0 (f32x4.add (i8x16.shuffle ${lanes(0, 1, 4, 5)} (local.get $t0) (local.get $t1)) (i8x16.shuffle ${lanes(2, 3, 6, 7)} (local.get $t0) (local.get $t1))))`);
    e('        (if (local.get $acc)');
    e('          (then (v128.store (local.get $cp) (f32x4.add (v128.load (local.get $cp)) (local.get $t0))))');
    e('          (else (v128.store (local.get $cp) (local.get $t0))))');
  }
  e('        (local.set $n (i32.add (local.get $n) (i32.const 4)))');
  e('        (br $nloop)');
  e('      )');
  e('      )');
  e(`      (local.set $m (i32.add (local.get $m) (i32.const ${mb})))`);
  e('      (br $mloop)');
  e('    )');
  e('    )');
  e('  )');
}

/** Compiles WAT to wasm bytes with wabt (devDependency; generator/test time only). */
export async function compileWat(wat: string, relaxed: boolean): Promise<Uint8Array> {
  const wabtFactory = (await import('wabt')).default;
  const wabt = await wabtFactory();
  const features = { simd: true, threads: true, relaxed_simd: relaxed };
  const mod = wabt.parseWat('gemm.wat', wat, features);
  try {
    // wabt's typings omit validate()'s features argument; without it shared memory is rejected.
    (mod as unknown as { validate(f: typeof features): void }).validate(features);
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/** Produces the full text of `wasm-bytes.ts`. */
export async function generateWasmBytesSource(): Promise<string> {
  const base = { mr: MR, nr: NR, unroll: KUNROLL };
  const wrap = (s: string) => s.replace(/.{1,100}/g, (m) => `  '${m}' +\n`).replace(/ \+\n$/, '');
  const b64 = async (fma: boolean, shared: boolean) =>
    wrap(toBase64(await compileWat(generateWat({ ...base, fma, shared }), fma)));
  return [
    '// GENERATED by gen-wasm.ts (npx tsx src/backends/cpu/gemm/gen-wasm.ts). Do not edit.',
    '// The drift check in gemm.test.ts regenerates this file and compares.',
    `export const KERNEL_MR = ${MR};`,
    `export const KERNEL_NR = ${NR};`,
    `export const DOTS_MB = ${DOTS_MB};`,
    '/** f32x4.relaxed_madd (FMA) variant, shared memory import. */',
    `export const GEMM_WASM_RELAXED_SHARED_B64 =\n${await b64(true, true)};`,
    '/** Plain simd128 (mul + add) variant, shared memory import. */',
    `export const GEMM_WASM_SIMD_SHARED_B64 =\n${await b64(false, true)};`,
    '/** f32x4.relaxed_madd variant, non-shared memory (no SharedArrayBuffer). */',
    `export const GEMM_WASM_RELAXED_B64 =\n${await b64(true, false)};`,
    '/** Plain simd128 variant, non-shared memory (no SharedArrayBuffer). */',
    `export const GEMM_WASM_SIMD_B64 =\n${await b64(false, false)};`,
    '',
  ].join('\n');
}

export const WASM_BYTES_PATH = fileURLToPath(new URL('./wasm-bytes.ts', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const src = await generateWasmBytesSource();
  writeFileSync(WASM_BYTES_PATH, src);
  console.log(`wrote ${WASM_BYTES_PATH}`);
}
