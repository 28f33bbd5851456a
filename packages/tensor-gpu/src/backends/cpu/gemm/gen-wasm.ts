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
 * No packing: the caller memcpy's row-major blocks into the memory; edge rows/columns
 * are computed on whatever padding is there and simply not copied out.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const MR = 4;
export const NR = 12;
/** k-loop unroll factor of the generated kernel. */
export const KUNROLL = 2;

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
  const { mr, nr, unroll, fma, shared } = v;
  if (nr % 4 !== 0) throw new Error('nr must be a multiple of 4');
  const nv = nr / 4;
  const acc = (r: number, j: number) => `$c${r}_${j}`;
  const L: string[] = [];
  const e = (s: string) => L.push(s);
  e('(module');
  e(`  (import "env" "memory" (memory 1 65536${shared ? ' shared' : ''}))`);
  e('  (func (export "strip") (param $a i32) (param $lda i32) (param $b i32) (param $ldb i32) (param $c i32) (param $ldc i32) (param $np i32) (param $kc i32) (param $acc i32)');
  e('    (local $bp i32) (local $k i32) (local $cp i32) (local $av v128)');
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
  e('  )');
  e(')');
  return L.join('\n') + '\n';
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
