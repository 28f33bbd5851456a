/**
 * Generator of the cpu backend's WebAssembly SIMD elementwise module (`eltwise-bytes.ts`): the
 * transcendental rows that cost 10-80 ns per element as JS loops (Math.exp is a libm call in V8) and
 * ~1 ns as f32x4 code: exact GELU fused with the bias add (`addGelu`) and its gradient (`geluBackward`),
 * and the shifted exp with its sum that softmax, log-softmax and attention rows need (`expSum`).
 *
 * Each export is `op(a, b, out, count)` over `count` float32 (byte pointers into the module's own
 * memory, 16-byte aligned): out[i] = row(a[i], b[i]). It reads and writes whole f32x4 lanes, so the
 * caller pads to a multiple of 4 (eltwise.ts stages chunks through the memory and copies back only
 * the real elements).
 *
 * The math in float32 lanes, the same formulas as elementwise-math.ts (which computes in float64 and
 * rounds once): erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), exp by 2^n * p(r) with
 * n = round(x log2 e), r = x - n ln 2 (ln 2 split in two for exactness), p the degree-6 Taylor
 * polynomial (|r| <= 0.347: relative error < 2e-7), arguments clamped to [-87, 88] (exp(-87) ~ 1.6e-38,
 * which the erf tail multiplies by < 1, so the clamp changes nothing a float32 can hold).
 *
 * Regenerate: `npx tsx src/backends/cpu/simd/gen-eltwise.ts`; eltwise.test.ts fails when the committed
 * bytes drift from this file.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const f4 = (x: number) => `(f32x4.splat (f32.const ${x}))`;

/** (local.set $dst exp($src)) for f32x4 locals; uses $n (i32x4) and $r, $p (v128) as scratch. */
function expInto(dst: string, src: string): string {
  return `
    (local.set $r (f32x4.max (f32x4.min (local.get ${src}) ${f4(88)}) ${f4(-87)}))
    (local.set $p (f32x4.nearest (f32x4.mul (local.get $r) ${f4(1.4426950408889634)})))
    (local.set $n (i32x4.trunc_sat_f32x4_s (local.get $p)))
    (local.set $r (f32x4.sub (f32x4.sub (local.get $r) (f32x4.mul (local.get $p) ${f4(0.693145751953125)})) (f32x4.mul (local.get $p) ${f4(1.428606765330187e-6)})))
    (local.set $p ${f4(1 / 720)})
    ${[1 / 120, 1 / 24, 1 / 6, 0.5, 1, 1].map((c) => `(local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${f4(c)}))`).join('\n    ')}
    (local.set ${dst} (f32x4.mul (local.get $p) (i32x4.shl (i32x4.add (local.get $n) (i32x4.splat (i32.const 127))) (i32.const 23))))`;
}

/**
 * (local.set $dst 1 + erf($src)), leaving exp(-$src^2) in $e. 1 + erf(s) is erfc(|s|) = poly * exp(-s^2)
 * for s < 0, taken as is rather than as 1 - (1 - erfc): in float32 that difference would lose every
 * digit in the tail (gelu'(-5) ~ 1e-5 came out 1e-3 off).
 */
function onePlusErfInto(dst: string, src: string): string {
  const poly = [1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592];
  return `
    (local.set $ax (f32x4.abs (local.get ${src})))
    (local.set $e (f32x4.neg (f32x4.mul (local.get $ax) (local.get $ax))))
    ${expInto('$e', '$e')}
    (local.set $t (f32x4.div ${f4(1)} (f32x4.add ${f4(1)} (f32x4.mul (local.get $ax) ${f4(0.3275911)}))))
    (local.set $q ${f4(poly[0])})
    ${poly.slice(1).map((c) => `(local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $t)) ${f4(c)}))`).join('\n    ')}
    (local.set $q (f32x4.mul (f32x4.mul (local.get $q) (local.get $t)) (local.get $e)))
    (local.set ${dst} (v128.bitselect (local.get $q) (f32x4.sub ${f4(2)} (local.get $q)) (f32x4.lt (local.get ${src}) ${f4(0)})))`;
}

/** A function looping over count / 4 lanes: loads $a, $b, runs body (which sets $y), stores $y. */
function elementwise(name: string, body: string): string {
  return `
  (func (export "${name}") (param $pa i32) (param $pb i32) (param $po i32) (param $count i32)
    (local $end i32) (local $a v128) (local $b v128) (local $y v128) (local $x v128)
    (local $ax v128) (local $e v128) (local $t v128) (local $q v128) (local $r v128) (local $p v128) (local $n v128)
    (local.set $end (i32.add (local.get $pa) (i32.shl (local.get $count) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $pa) (local.get $end)))
        (local.set $a (v128.load (local.get $pa)))
        (local.set $b (v128.load (local.get $pb)))
        ${body}
        (v128.store (local.get $po) (local.get $y))
        (local.set $pa (i32.add (local.get $pa) (i32.const 16)))
        (local.set $pb (i32.add (local.get $pb) (i32.const 16)))
        (local.set $po (i32.add (local.get $po) (i32.const 16)))
        (br $next)))
  )`;
}

/**
 * expSum(pa, po, count, m) -> sum: out[i] = exp(a[i] - m) over count (a multiple of 4) floats, and
 * their sum (four float32 lane sums, added at the end). Arguments below -87 give exactly 0, so padding
 * lanes set to -inf add nothing; NaN stays NaN.
 */
function expSum(): string {
  return `
  (func (export "expSum") (param $pa i32) (param $po i32) (param $count i32) (param $m f32) (result f32)
    (local $end i32) (local $x v128) (local $y v128) (local $acc v128) (local $mv v128) (local $r v128) (local $p v128) (local $n v128)
    (local.set $mv (f32x4.splat (local.get $m)))
    (local.set $end (i32.add (local.get $pa) (i32.shl (local.get $count) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $pa) (local.get $end)))
        (local.set $x (f32x4.sub (v128.load (local.get $pa)) (local.get $mv)))
        ${expInto('$y', '$x')}
        (local.set $y (v128.andnot (local.get $y) (f32x4.lt (local.get $x) ${f4(-87)})))
        (v128.store (local.get $po) (local.get $y))
        (local.set $acc (f32x4.add (local.get $acc) (local.get $y)))
        (local.set $pa (i32.add (local.get $pa) (i32.const 16)))
        (local.set $po (i32.add (local.get $po) (i32.const 16)))
        (br $next)))
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
      (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc))))
  )`;
}

export const ELTWISE_PAGES = 4;

export function generateEltwiseWat(): string {
  const INV_SQRT_2 = 0.7071067811865476;
  const INV_SQRT_2PI = 0.3989422804014327;
  // addGelu: v = a + b, y = v / 2 (1 + erf(v / sqrt 2))
  const addGelu = `
        (local.set $x (f32x4.add (local.get $a) (local.get $b)))
        (local.set $y (f32x4.mul (local.get $x) ${f4(INV_SQRT_2)}))
        ${onePlusErfInto('$y', '$y')}
        (local.set $y (f32x4.mul (f32x4.mul (local.get $x) ${f4(0.5)}) (local.get $y)))`;
  // geluBackward: a = incoming gradient, b = x; y = a (Phi(x) + x phi(x)); exp(-x^2 / 2) is left in $e
  const geluBackward = `
        (local.set $y (f32x4.mul (local.get $b) ${f4(INV_SQRT_2)}))
        ${onePlusErfInto('$y', '$y')}
        (local.set $y (f32x4.add (f32x4.mul ${f4(0.5)} (local.get $y)) (f32x4.mul (f32x4.mul (local.get $b) (local.get $e)) ${f4(INV_SQRT_2PI)})))
        (local.set $y (f32x4.mul (local.get $a) (local.get $y)))`;
  return `(module
  (memory (export "memory") ${ELTWISE_PAGES} ${ELTWISE_PAGES})
  ${elementwise('addGelu', addGelu)}
  ${elementwise('geluBackward', geluBackward)}
  ${expSum()}
)
`;
}

/** Compiles the WAT with wabt (a devDependency: generator and test time only). */
export async function compileEltwise(): Promise<Uint8Array> {
  const wabt = await (await import('wabt')).default();
  const mod = wabt.parseWat('eltwise.wat', generateEltwiseWat(), { simd: true });
  try {
    mod.validate();
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

export async function generateEltwiseBytesSource(): Promise<string> {
  const b64 = Buffer.from(await compileEltwise()).toString('base64');
  const lines = b64.match(/.{1,100}/g) ?? [];
  return `// GENERATED by gen-eltwise.ts (npx tsx src/backends/cpu/simd/gen-eltwise.ts). Do not edit.
// The drift check in eltwise.test.ts regenerates this file and compares.
export const ELTWISE_PAGES = ${ELTWISE_PAGES};
/** The SIMD elementwise module (exports memory, addGelu, geluBackward, expSum). */
export const ELTWISE_WASM_B64 =
${lines.map((l) => `  '${l}'`).join(' +\n')};
`;
}

export const ELTWISE_BYTES_PATH = fileURLToPath(new URL('./eltwise-bytes.ts', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(ELTWISE_BYTES_PATH, await generateEltwiseBytesSource());
}
