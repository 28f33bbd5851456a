/**
 * Generator of the cpu backend's WebAssembly SIMD weight-only matmul module (`quant-bytes.ts`): the
 * linear layers of int8 / int4 checkpoints (ChatGLM-6B's `quantization.py` layout, see
 * ops/quantized-matmul.ts) and float16 weight tables (a tied embedding / output head held in 16 bits).
 *
 * Weights are decoded in registers, 16 packed bytes at a time, into float32 lanes in column order:
 *  - q8: 16 bytes = 16 columns, each byte sign-extended (i8 -> i16 -> i32 -> f32);
 *  - q4: 16 bytes = 32 columns; byte j holds column 2j in its high nibble and 2j+1 in its low one.
 *        The gemv sign-extends each nibble of a 32-bit lane with two lane shifts (native on x86 and
 *        ARM, unlike 8-bit lane shifts) and reads x staged in the matching order (Q4_GEMV_ORDER);
 *        dequantize needs column order: arithmetic byte shifts and an interleaving shuffle, widened as q8;
 *  - h16: 16 bytes = 8 float16 columns, widened by moving the exponent/mantissa bits into float32
 *        position and multiplying by 2^112 (exact for normals and subnormals; Inf/NaN are kept).
 * The row's scale (every format has one; a float16 table's is usually 1) multiplies the finished dot product, as the JS kernel does: float32
 * accumulation, one f32x4 accumulator per row of x, the eight (or four, two) products of a block summed
 * as a tree so the loop-carried chain is one add per block.
 *
 * Exports (byte pointers into the module's own growable memory, every region 16-byte aligned):
 *  - `{fmt}m{1..4}(px, ldx, pw, ldw, nrows, kb, ps, po, ldo)`: out[r][n] = dot(x[r], w[n]) * s[n] for
 *    r < 1..4 rows of x (row stride ldx bytes) and nrows rows of w (row stride ldw bytes), kb blocks
 *    of 16 weight bytes per row; out row stride ldo bytes. x rows are zero past the real columns.
 *  - `{fmt}deq(pw, ldw, nrows, kb, ps, pd, ldd)`: the float32 rows w[n] * s[n] (prefill: the rows are
 *    then multiplied by the GEMM engine).
 *
 * Regenerate: `npx tsx src/backends/cpu/quant/gen-quant.ts`; quant.test.ts fails when the committed bytes
 * drift from this file.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { COLS_PER_BLOCK, GEMV_MAX_ROWS, type QuantFormat } from './gen-quant-shared.js';

/**
 * Sets $w0.. from the 16-byte block in $v, in column order (or, for the q4 gemv, in Q4_GEMV_ORDER);
 * returns the number of f32x4 vectors.
 */
function decode(fmt: QuantFormat, forGemv: boolean): { code: string; vectors: number } {
  const widen16 = (src: string, first: number) => `
      (local.set $t (i16x8.extend_low_i8x16_s ${src}))
      (local.set $w${first} (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $t))))
      (local.set $w${first + 1} (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $t))))
      (local.set $t (i16x8.extend_high_i8x16_s ${src}))
      (local.set $w${first + 2} (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $t))))
      (local.set $w${first + 3} (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $t))))`;
  if (fmt === 'q8') return { code: widen16('(local.get $v)', 0), vectors: 4 };
  if (fmt === 'q4' && forGemv) {
    // Nibble j of each 32-bit lane (bits 4j..4j+3) sign-extended in place by two native lane shifts:
    // vector j holds, in lane i, column 8i + (j ^ 1) of the block (the high nibble of a byte is the
    // even column); the gemv's x is staged in that order (Q4_GEMV_ORDER), so no shuffle is needed.
    return {
      code: Array.from({ length: 8 }, (_, j) => {
        const up = j === 7 ? '(local.get $v)' : `(i32x4.shl (local.get $v) (i32.const ${28 - 4 * j}))`;
        return `
      (local.set $w${j} (f32x4.convert_i32x4_s (i32x4.shr_s ${up} (i32.const 28))))`;
      }).join(''),
      vectors: 8,
    };
  }
  if (fmt === 'q4') {
    const lo = Array.from({ length: 8 }, (_, j) => `${j} ${j + 16}`).join(' ');
    const hi = Array.from({ length: 8 }, (_, j) => `${j + 8} ${j + 24}`).join(' ');
    return {
      code: `
      (local.set $e (i8x16.shr_s (local.get $v) (i32.const 4)))
      (local.set $o (i8x16.shr_s (i8x16.shl (local.get $v) (i32.const 4)) (i32.const 4)))
      ${widen16(`(i8x16.shuffle ${lo} (local.get $e) (local.get $o))`, 0)}
      ${widen16(`(i8x16.shuffle ${hi} (local.get $e) (local.get $o))`, 4)}`,
      vectors: 8,
    };
  }
  // float16 -> float32: sign to bit 31, exponent+mantissa shifted to bit 13, times 2^112 (rebias 15 -> 127,
  // subnormals come out right as float32 denormals); an all-ones exponent (Inf/NaN) gets exponent 255.
  const half = (ext: string, w: string) => `
      (local.set $t (${ext} (local.get $v)))
      (local.set $e (i32x4.shl (v128.and (local.get $t) (i32x4.splat (i32.const 0x7fff))) (i32.const 13)))
      (local.set $o (f32x4.mul (local.get $e) (f32x4.splat (f32.const 0x1p112))))
      (local.set $o (v128.bitselect
        (v128.or (local.get $e) (i32x4.splat (i32.const 0x70000000)))
        (local.get $o)
        (i32x4.ge_u (local.get $e) (i32x4.splat (i32.const 0x0f800000)))))
      (local.set ${w} (v128.or (local.get $o) (i32x4.shl (v128.and (local.get $t) (i32x4.splat (i32.const 0x8000))) (i32.const 16))))`;
  return { code: half('i32x4.extend_low_i16x8_u', '$w0') + half('i32x4.extend_high_i16x8_u', '$w1'), vectors: 2 };
}

/** Sum of products as a balanced tree (short dependency chains). */
function tree(terms: string[]): string {
  if (terms.length === 1) return terms[0];
  const h = terms.length >> 1;
  return `(f32x4.add ${tree(terms.slice(0, h))} ${tree(terms.slice(h))})`;
}

const scratchLocals = (vectors: number) =>
  `(local $v v128) (local $t v128) (local $e v128) (local $o v128) ${Array.from({ length: vectors }, (_, i) => `(local $w${i} v128)`).join(' ')}`;

function gemv(fmt: QuantFormat, rows: number): string {
  const { code, vectors } = decode(fmt, true);
  const xBytes = COLS_PER_BLOCK[fmt] * 4;
  const rs = Array.from({ length: rows }, (_, r) => r);
  const hsum = (a: string) =>
    `(f32.add (f32.add (f32x4.extract_lane 0 (local.get ${a})) (f32x4.extract_lane 1 (local.get ${a}))) (f32.add (f32x4.extract_lane 2 (local.get ${a})) (f32x4.extract_lane 3 (local.get ${a}))))`;
  return `
  (func (export "${fmt}m${rows}") (param $px i32) (param $ldx i32) (param $pw i32) (param $ldw i32) (param $nrows i32) (param $kb i32) (param $ps i32) (param $po i32) (param $ldo i32)
    (local $n i32) (local $b i32) (local $wp i32) (local $sc f32)
    ${rs.map((r) => `(local $x${r} i32) (local $a${r} v128)`).join(' ')}
    ${scratchLocals(vectors)}
    (block $rowsDone (loop $rowLoop
      (br_if $rowsDone (i32.ge_u (local.get $n) (local.get $nrows)))
      (local.set $wp (i32.add (local.get $pw) (i32.mul (local.get $n) (local.get $ldw))))
      ${rs.map((r) => `(local.set $x${r} (i32.add (local.get $px) (i32.mul (i32.const ${r}) (local.get $ldx))))
      (local.set $a${r} (v128.const i32x4 0 0 0 0))`).join('\n      ')}
      (local.set $b (i32.const 0))
      (block $blocksDone (loop $blockLoop
        (br_if $blocksDone (i32.ge_u (local.get $b) (local.get $kb)))
        (local.set $v (v128.load (local.get $wp)))
        ${code}
        ${rs.map((r) => `(local.set $a${r} (f32x4.add (local.get $a${r}) ${tree(Array.from({ length: vectors }, (_, i) => `(f32x4.mul (v128.load offset=${i * 16} (local.get $x${r})) (local.get $w${i}))`))}))
        (local.set $x${r} (i32.add (local.get $x${r}) (i32.const ${xBytes})))`).join('\n        ')}
        (local.set $wp (i32.add (local.get $wp) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $blockLoop)))
      (local.set $sc (f32.load (i32.add (local.get $ps) (i32.shl (local.get $n) (i32.const 2)))))
      ${rs.map((r) => `(f32.store (i32.add (i32.add (local.get $po) (i32.mul (i32.const ${r}) (local.get $ldo))) (i32.shl (local.get $n) (i32.const 2))) (f32.mul ${hsum(`$a${r}`)} (local.get $sc)))`).join('\n      ')}
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $rowLoop)))
  )`;
}

function dequantize(fmt: QuantFormat): string {
  const { code, vectors } = decode(fmt, false);
  const xBytes = COLS_PER_BLOCK[fmt] * 4;
  return `
  (func (export "${fmt}deq") (param $pw i32) (param $ldw i32) (param $nrows i32) (param $kb i32) (param $ps i32) (param $pd i32) (param $ldd i32)
    (local $n i32) (local $b i32) (local $wp i32) (local $dp i32) (local $s v128)
    ${scratchLocals(vectors)}
    (block $rowsDone (loop $rowLoop
      (br_if $rowsDone (i32.ge_u (local.get $n) (local.get $nrows)))
      (local.set $wp (i32.add (local.get $pw) (i32.mul (local.get $n) (local.get $ldw))))
      (local.set $dp (i32.add (local.get $pd) (i32.mul (local.get $n) (local.get $ldd))))
      (local.set $s (v128.load32_splat (i32.add (local.get $ps) (i32.shl (local.get $n) (i32.const 2)))))
      (local.set $b (i32.const 0))
      (block $blocksDone (loop $blockLoop
        (br_if $blocksDone (i32.ge_u (local.get $b) (local.get $kb)))
        (local.set $v (v128.load (local.get $wp)))
        ${code}
        ${Array.from({ length: vectors }, (_, i) => `(v128.store offset=${i * 16} (local.get $dp) (f32x4.mul (local.get $w${i}) (local.get $s)))`).join('\n        ')}
        (local.set $dp (i32.add (local.get $dp) (i32.const ${xBytes})))
        (local.set $wp (i32.add (local.get $wp) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $blockLoop)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $rowLoop)))
  )`;
}

export const QUANT_FORMATS: QuantFormat[] = ['q8', 'q4', 'h16'];

export function generateQuantWat(): string {
  const fns = QUANT_FORMATS.flatMap((f) => [...Array.from({ length: GEMV_MAX_ROWS }, (_, r) => gemv(f, r + 1)), dequantize(f)]);
  return `(module
  (memory (export "memory") 1)
  ${fns.join('\n')}
)
`;
}

/** Compiles the WAT with wabt (a devDependency: generator and test time only). */
export async function compileQuant(): Promise<Uint8Array> {
  const wabt = await (await import('wabt')).default();
  const mod = wabt.parseWat('quant.wat', generateQuantWat(), { simd: true });
  try {
    mod.validate();
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

export async function generateQuantBytesSource(): Promise<string> {
  const b64 = Buffer.from(await compileQuant()).toString('base64');
  const lines = b64.match(/.{1,100}/g) ?? [];
  return `// GENERATED by gen-quant.ts (npx tsx src/backends/cpu/quant/gen-quant.ts). Do not edit.
// The drift check in quant.test.ts regenerates this file and compares.
/** The SIMD weight-only matmul module (exports memory, {q8,q4,h16}m{1..${GEMV_MAX_ROWS}}, {q8,q4,h16}deq). */
export const QUANT_WASM_B64 =
${lines.map((l) => `  '${l}'`).join(' +\n')};
`;
}

export const QUANT_BYTES_PATH = fileURLToPath(new URL('./quant-bytes.ts', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(QUANT_BYTES_PATH, await generateQuantBytesSource());
}
