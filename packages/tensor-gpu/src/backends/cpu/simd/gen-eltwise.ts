/**
 * Generator of the cpu backend's WebAssembly SIMD elementwise module (`eltwise-bytes.ts`): the
 * transcendental rows that cost 10-80 ns per element as JS loops (Math.exp is a libm call in V8) and
 * ~1 ns as f32x4 code: exact GELU fused with the bias add (`addGelu`) and its gradient (`geluBackward`),
 * GELU and SiLU alone (`gelu`, `silu`: b is not read), and the shifted exp with its sum that softmax,
 * log-softmax and attention rows need (`expSum`). The memory-bound row kernels run here too (decision
 * 0023): softmax / log-softmax in two passes over staged rows (`rowsExpSum`, then `rowsAffine`), layer
 * and RMS norm (`rowsMoments`, then `rowsNorm`), and the Adam step (`adamDecoupled`, `adamL2`).
 *
 * Each export is `op(a, b, out, count)` over `count` float32 (byte pointers into the module's own
 * memory, 16-byte aligned): out[i] = row(a[i], b[i]). It reads and writes whole f32x4 lanes, so the
 * caller pads to a multiple of 4 (eltwise.ts stages chunks through the memory and copies back only
 * the real elements).
 *
 * The math in float32 lanes, the same formulas as elementwise-math.ts (which computes in float64 and
 * rounds once): erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), exp by 2^n * p(r) with
 * n = round(x log2 e), r = x - n ln 2 (ln 2 split in two for exactness), p the degree-6 Taylor
 * polynomial (|r| <= 0.347) evaluated in Estrin's form, (1 + r + r^2 (1/2 + r/6)) + r^4 (1/24 + r/120 +
 * r^2/720), whose short dependency chain runs ~8% faster than Horner's (relative error of exp after
 * float32 rounding measured < 2.9e-7 over [-87, 88], Horner's 2.4e-7), arguments clamped to [-87, 88] (exp(-87) ~ 1.6e-38,
 * which the erf tail multiplies by < 1, so the clamp changes nothing a float32 can hold).
 *
 * Regenerate: `npx tsx src/backends/cpu/simd/gen-eltwise.ts`; eltwise.test.ts fails when the committed
 * bytes drift from this file.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const f4 = (x: number) => `(f32x4.splat (f32.const ${x}))`;

/**
 * Splat constants held in v128 locals, set once per row instead of splatted inside the lane loop (V8
 * materializes each `f32x4.splat` of a constant every iteration): `k(x)` names the local holding x;
 * `decl()` and `init()` declare and set the ones used so far.
 */
function hoistedConstants(prefix: string): { k: (x: number) => string; decl: () => string; init: () => string } {
  const used = new Map<number, string>();
  const k = (x: number) => {
    if (!used.has(x)) used.set(x, `$${prefix}${used.size}`);
    return `(local.get ${used.get(x)})`;
  };
  const decl = () => [...used.values()].map((n) => `(local ${n} v128)`).join(' ');
  const init = () => [...used].map(([x, n]) => `(local.set ${n} ${f4(x)})`).join('\n        ');
  return { k, decl, init };
}

/**
 * (local.set $dst exp($src)) for f32x4 locals; uses $n and $r, $p (v128) as scratch. n = x log2 e
 * rounded to nearest (even) by adding 1.5 * 2^23, whose low mantissa bits then hold n: 2^n is those
 * bits plus the bias, shifted into the exponent, with no float-to-int conversion (each a multi-instruction
 * sequence on x86). The clamp is pmin/pmax (one instruction each; NaN passes through as the min/max did).
 */
function expInto(dst: string, src: string, k: (x: number) => string = f4): string {
  const MAGIC = 12582912; // 1.5 * 2^23
  return `
    (local.set $r (f32x4.pmax (f32x4.pmin (local.get ${src}) ${k(88)}) ${k(-87)}))
    (local.set $n (f32x4.add (f32x4.mul (local.get $r) ${k(1.4426950408889634)}) ${k(MAGIC)}))
    (local.set $p (f32x4.sub (local.get $n) ${k(MAGIC)}))
    (local.set $r (f32x4.sub (f32x4.sub (local.get $r) (f32x4.mul (local.get $p) ${k(0.693145751953125)})) (f32x4.mul (local.get $p) ${k(1.428606765330187e-6)})))
    (local.set $p (f32x4.mul (local.get $r) (local.get $r)))
    (local.set $p (f32x4.add
      (f32x4.add (f32x4.add ${k(1)} (local.get $r)) (f32x4.mul (local.get $p) (f32x4.add ${k(0.5)} (f32x4.mul (local.get $r) ${k(1 / 6)}))))
      (f32x4.mul (f32x4.mul (local.get $p) (local.get $p))
        (f32x4.add (f32x4.add ${k(1 / 24)} (f32x4.mul (local.get $r) ${k(1 / 120)})) (f32x4.mul (local.get $p) ${k(1 / 720)})))))
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

/** The four lanes of v128 $v reduced with the f32 op (f32.add, f32.max). */
function hreduce(op: string, v: string): string {
  return `(${op} (${op} (f32x4.extract_lane 0 (local.get ${v})) (f32x4.extract_lane 1 (local.get ${v})))
      (${op} (f32x4.extract_lane 2 (local.get ${v})) (f32x4.extract_lane 3 (local.get ${v}))))`;
}

/**
 * A function over `rows` staged rows of `n` floats (n a multiple of 4, rows back to back): header
 * declares params and locals, perRow runs with $row (byte offset of the row in a staged region) and
 * $st (byte offset of the row's two stats floats) set; $end is $row + 4 n.
 */
function rowsFunction(name: string, params: string, locals: string, perRow: string): string {
  return `
  (func (export "${name}") ${params} (param $ps i32) (param $rows i32) (param $n i32)
    (local $r i32) (local $row i32) (local $st i32) (local $i i32) (local $end i32) ${locals}
    (block $rdone
      (loop $rnext
        (br_if $rdone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $row (i32.shl (i32.mul (local.get $r) (local.get $n)) (i32.const 2)))
        (local.set $st (i32.add (local.get $ps) (i32.shl (local.get $r) (i32.const 3))))
        (local.set $end (i32.add (local.get $row) (i32.shl (local.get $n) (i32.const 2))))
        ${perRow}
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rnext)))
  )`;
}

/**
 * (loop over i = from .. end step 16, running body; $i is the byte offset within the region): by
 * default over the staged row at $row .. $end.
 */
function lanes(label: string, body: string, from = '(local.get $row)', end = '$end'): string {
  return `
        (local.set $i ${from})
        (block $${label}done
          (loop $${label}
            (br_if $${label}done (i32.ge_u (local.get $i) (local.get ${end})))
            ${body}
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $${label})))`;
}

/**
 * rowsExpSum(pa, po, ps, rows, n): per row, m = max (0 when the row is all -inf), out = exp(a - m),
 * stats = (m, sum of out). Arguments below -87 give exactly 0, as in expSum.
 */
function rowsExpSum(): string {
  return rowsFunction(
    'rowsExpSum',
    '(param $pa i32) (param $po i32)',
    '(local $x v128) (local $y v128) (local $acc v128) (local $mv v128) (local $r4 v128) (local $pp v128) (local $nn v128) (local $m f32)',
    `${maxExpSum(lanes, '(v128.load (i32.add (local.get $pa) (local.get $i)))', '(i32.add (local.get $po) (local.get $i))')}
        (f32.store (local.get $st) (local.get $m))
        (f32.store offset=4 (local.get $st) ${hreduce('f32.add', '$acc')})`,
  );
}

/** rowsAffine(pa, po, ps, rows, n): out = (a + stats[0]) * stats[1], row by row (softmax's scale, log-softmax's shift). */
function rowsAffine(): string {
  return rowsFunction(
    'rowsAffine',
    '(param $pa i32) (param $po i32)',
    '(local $sh v128) (local $sc v128)',
    `(local.set $sh (f32x4.splat (f32.load (local.get $st))))
        (local.set $sc (f32x4.splat (f32.load offset=4 (local.get $st))))
        ${lanes('aff', `(v128.store (i32.add (local.get $po) (local.get $i)) (f32x4.mul (f32x4.add (v128.load (i32.add (local.get $pa) (local.get $i))) (local.get $sh)) (local.get $sc)))`)}`,
  );
}

/**
 * rowsMoments(pa, ps, rows, n, rms): stats = (mean, sum of (a - mean)^2) per row, two passes; the
 * mean is summed shifted by the row's first element and the squares centred, so float32 sums keep
 * their precision when the mean is large next to the spread. With rms set the mean is taken as 0.
 */
function rowsMoments(): string {
  return rowsFunction(
    'rowsMoments',
    '(param $pa i32) (param $rms i32)',
    '(local $acc v128) (local $c v128) (local $mean f32) (local $shift f32)',
    `(local.set $mean (f32.const 0))
        (if (i32.eqz (local.get $rms))
          (then
            (local.set $acc (v128.const i32x4 0 0 0 0))
            (local.set $shift (f32.load (i32.add (local.get $pa) (local.get $row))))
            ${lanes('sum', `(local.set $acc (f32x4.add (local.get $acc) (f32x4.sub (v128.load (i32.add (local.get $pa) (local.get $i))) (f32x4.splat (local.get $shift)))))`)}
            (local.set $mean (f32.add (local.get $shift) (f32.div ${hreduce('f32.add', '$acc')} (f32.convert_i32_u (local.get $n)))))))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        ${lanes('sq', `(local.set $c (f32x4.sub (v128.load (i32.add (local.get $pa) (local.get $i))) (f32x4.splat (local.get $mean))))
            (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $c) (local.get $c))))`)}
        (f32.store (local.get $st) (local.get $mean))
        (f32.store offset=4 (local.get $st) ${hreduce('f32.add', '$acc')})`,
  );
}

/** rowsNorm(pa, po, pw, pb, ps, rows, n): out = (a - stats[0]) * stats[1] * w + b, w and b one row each. */
function rowsNorm(): string {
  return rowsFunction(
    'rowsNorm',
    '(param $pa i32) (param $po i32) (param $pw i32) (param $pb i32)',
    '(local $mean v128) (local $rstd v128) (local $j i32)',
    `(local.set $mean (f32x4.splat (f32.load (local.get $st))))
        (local.set $rstd (f32x4.splat (f32.load offset=4 (local.get $st))))
        ${lanes('nrm', `(local.set $j (i32.sub (local.get $i) (local.get $row)))
            (v128.store (i32.add (local.get $po) (local.get $i))
              (f32x4.add
                (f32x4.mul (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $pa) (local.get $i))) (local.get $mean)) (local.get $rstd))
                  (v128.load (i32.add (local.get $pw) (local.get $j))))
                (v128.load (i32.add (local.get $pb) (local.get $j)))))`)}`,
  );
}

/**
 * The Adam step over count floats (a multiple of 4) in place: p, g, m, v at pp, pg, pm, pv; each
 * operation rounded to float32 as kernels/adam.ts (and torch's single-tensor loop) does, so the result
 * is bitwise the JS loop's. decoupled: p *= decay first (AdamW; decay = 1 without weight decay);
 * otherwise g += p * wd (Adam's L2 term).
 */
function adam(name: string, decoupled: boolean): string {
  const c = (x: string) => `(f32x4.splat (local.get ${x}))`;
  return `
  (func (export "${name}") (param $pp i32) (param $pg i32) (param $pm i32) (param $pv i32) (param $count i32)
    (param $decay f32) (param $b1 f32) (param $b2 f32) (param $c1 f32) (param $c2 f32) (param $inv f32) (param $eps f32) (param $step f32)
    (local $i i32) (local $end i32) (local $p v128) (local $g v128) (local $m v128) (local $v v128)
    (local.set $end (i32.shl (local.get $count) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $p (v128.load (i32.add (local.get $pp) (local.get $i))))
        (local.set $g (v128.load (i32.add (local.get $pg) (local.get $i))))
        ${decoupled ? `(local.set $p (f32x4.mul (local.get $p) ${c('$decay')}))` : `(local.set $g (f32x4.add (local.get $g) (f32x4.mul (local.get $p) ${c('$decay')})))`}
        (local.set $m (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $pm) (local.get $i))) ${c('$b1')}) (f32x4.mul (local.get $g) ${c('$c1')})))
        (local.set $v (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $pv) (local.get $i))) ${c('$b2')}) (f32x4.mul (f32x4.mul (local.get $g) (local.get $g)) ${c('$c2')})))
        (v128.store (i32.add (local.get $pm) (local.get $i)) (local.get $m))
        (v128.store (i32.add (local.get $pv) (local.get $i)) (local.get $v))
        (local.set $v (f32x4.add (f32x4.mul (f32x4.sqrt (local.get $v)) ${c('$inv')}) ${c('$eps')}))
        (v128.store (i32.add (local.get $pp) (local.get $i)) (f32x4.sub (local.get $p) (f32x4.mul (f32x4.div (local.get $m) (local.get $v)) ${c('$step')})))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next)))
  )`;
}


// ---- Row tasks over the GEMM's shared memory (decision 0024) ----
//
// The second module (`ELTWISE_SHARED_WASM_B64`) imports the GEMM's shared memory, so every thread of its
// pool runs these on tensor storage where it lies (decision 0015), rows split between the threads. They
// share one signature, `op(p0, p1, p2, p3, p4, rows, len, f)`: up to five byte pointers to the first
// row of each operand, the number of rows, the row length in floats (a multiple of 4) and one float64
// parameter (eps). Each function knows which operands advance by a row (`len` floats) per row and which
// are one row read again (weight, bias). A whole row runs in wasm, with no JavaScript between passes.
// ROW_OPS lists them in the order the pool's descriptor names them (`rows.ts`).

/** The row-task functions, in descriptor order. */
export const ROW_OPS = [
  'softmax', 'logSoftmax', 'softmaxBackward', 'logSoftmaxBackward',
  'layerNorm', 'rmsNorm', 'layerNormBackward', 'rmsNormBackward',
  'gelu', 'silu', 'addGelu', 'geluBackward', 'siluBackward', 'add', 'transpose4',
  'crossEntropyStats', 'crossEntropyBackward', 'adamDecoupled', 'adamL2',
] as const;

const ld = (p: string) => `(v128.load (i32.add (local.get ${p}) (local.get $i)))`;
const st = (p: string, v: string) => `(v128.store (i32.add (local.get ${p}) (local.get $i)) ${v})`;
/** Code using expInto's scratch locals with the row functions' names for them ($r, $p, $n name other things there). */
const renameScratch = (code: string) =>
  code.replaceAll('$r)', '$r4)').replaceAll('$r ', '$r4 ').replaceAll('$p)', '$pp)').replaceAll('$p ', '$pp ').replaceAll('$n)', '$nn)').replaceAll('$n ', '$nn ');
const expRow = (dst: string, src: string, k?: (x: number) => string) => renameScratch(expInto(dst, src, k));

/** (loop over $i = 0 .. 4 len bytes step 16, running body). */
function rowLanes(label: string, body: string): string {
  return lanes(label, body, '(i32.const 0)', '$nb');
}

/**
 * A row-task function: perRow runs once per row with $p0..$p4 at that row's operands; `advance` names
 * the pointers that move by a row each time (the others are one row read again). $p3 may instead carry
 * a per-row byte step (`stepP3`: the elementwise rows' b, 0 for a broadcast bias row).
 */
function rowTask(name: string, advance: string[], locals: string, perRow: string, stepP1ByP3 = false): string {
  return `
  (func (export "${name}") (param $p0 i32) (param $p1 i32) (param $p2 i32) (param $p3 i32) (param $p4 i32) (param $rows i32) (param $len i32) (param $f f64)
    (local $k i32) (local $i i32) (local $nb i32)
    (local $x v128) (local $y v128) (local $acc v128) (local $acc2 v128) (local $r4 v128) (local $pp v128) (local $nn v128)
    (local $ax v128) (local $e v128) (local $t v128) (local $q v128) (local $a v128) (local $b v128) ${locals}
    (local.set $nb (i32.shl (local.get $len) (i32.const 2)))
    (block $rdone
      (loop $rnext
        (br_if $rdone (i32.ge_u (local.get $k) (local.get $rows)))
        ${perRow}
        ${advance.map((p) => `(local.set ${p} (i32.add (local.get ${p}) (local.get $nb)))`).join('\n        ')}
        ${stepP1ByP3 ? '(local.set $p1 (i32.add (local.get $p1) (local.get $p3)))' : ''}
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $rnext)))
  )`;
}

/**
 * $m = the row's max (0 when the row is all -inf), $mv its splat, the shifted exps (stored at `store`,
 * a byte address expression, unless null) summed into $acc. `loop` walks the row's lanes, `load` reads
 * one; `k` gives the constants (hoistedConstants' locals in a row task); `alsoInMax` runs in the max
 * pass with the lanes in $x (cross-entropy's row sum). Arguments below -87 give
 * exactly 0. The max is f32x4.pmax (one instruction; f32x4.max's NaN rule costs several on x86): a NaN
 * it drops still makes its exp, and so the sum, NaN, as in the fused cross-entropy row.
 */
function maxExpSum(loop: (label: string, body: string) => string, load: string, store: string | null, k: (x: number) => string = f4, alsoInMax = ''): string {
  const max = alsoInMax
    ? `(local.set $x ${load})
            (local.set $acc (f32x4.pmax (local.get $acc) (local.get $x)))
            ${alsoInMax}`
    : `(local.set $acc (f32x4.pmax (local.get $acc) ${load}))`;
  return `(local.set $acc (f32x4.splat (f32.const -inf)))
        ${loop('max', max)}
        (local.set $m ${hreduce('f32.max', '$acc')})
        (if (f32.eq (local.get $m) (f32.const -inf)) (then (local.set $m (f32.const 0))))
        (local.set $mv (f32x4.splat (local.get $m)))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        ${loop(
          'exp',
          `(local.set $x (f32x4.sub ${load} (local.get $mv)))
            ${expRow('$y', '$x', k)}
            (local.set $y (v128.andnot (local.get $y) (f32x4.lt (local.get $x) ${k(-87)})))
            ${store ? `(v128.store ${store} (local.get $y))` : ''}
            (local.set $acc (f32x4.add (local.get $acc) (local.get $y)))`,
        )}`;
}

/** maxExpSum over the row at $p0 (exps stored to $p1 when `store`), the sum into $s. */
function rowMaxExpSum(store: boolean, k: (x: number) => string): string {
  return `${maxExpSum(rowLanes, ld('$p0'), store ? '(i32.add (local.get $p1) (local.get $i))' : null, k)}
        (local.set $s ${hreduce('f32.add', '$acc')})`;
}

/**
 * log(x) in float64 for the log-softmax shift: x = m 2^e with m in [sqrt(1/2), sqrt 2), log m =
 * 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172, the series to s^17 (remainder < 1e-15). 0 gives
 * -inf, NaN and +inf themselves (the sum of a row's exps is >= 1, 0 or NaN).
 */
function log64(): string {
  const terms = [2 / 17, 2 / 15, 2 / 13, 2 / 11, 2 / 9, 2 / 7, 2 / 5, 2 / 3, 2];
  return `
  (func $log (param $x f64) (result f64)
    (local $bits i64) (local $e i64) (local $m f64) (local $s f64) (local $s2 f64) (local $q f64)
    (if (f64.eq (local.get $x) (f64.const 0)) (then (return (f64.const -inf))))
    (if (i32.or (f64.ne (local.get $x) (local.get $x)) (f64.eq (local.get $x) (f64.const inf))) (then (return (local.get $x))))
    (local.set $bits (i64.reinterpret_f64 (local.get $x)))
    (local.set $e (i64.sub (i64.and (i64.shr_u (local.get $bits) (i64.const 52)) (i64.const 0x7ff)) (i64.const 1023)))
    (local.set $m (f64.reinterpret_i64 (i64.or (i64.and (local.get $bits) (i64.const 0x000fffffffffffff)) (i64.const 0x3ff0000000000000))))
    (if (f64.gt (local.get $m) (f64.const ${Math.SQRT2}))
      (then
        (local.set $m (f64.mul (local.get $m) (f64.const 0.5)))
        (local.set $e (i64.add (local.get $e) (i64.const 1)))))
    (local.set $s (f64.div (f64.sub (local.get $m) (f64.const 1)) (f64.add (local.get $m) (f64.const 1))))
    (local.set $s2 (f64.mul (local.get $s) (local.get $s)))
    (local.set $q (f64.const ${terms[0]}))
    ${terms.slice(1).map((c) => `(local.set $q (f64.add (f64.mul (local.get $q) (local.get $s2)) (f64.const ${c})))`).join('\n    ')}
    (f64.add (f64.mul (local.get $q) (local.get $s)) (f64.mul (f64.convert_i64_s (local.get $e)) (f64.const ${Math.LN2})))
  )`;
}

/** softmax: p1 = exp(p0 - max) / sum; log-softmax: p1 = p0 - (max + log sum), the shift in float64. */
function rowSoftmax(log: boolean): string {
  const c = hoistedConstants('k');
  const body = rowMaxExpSum(!log, c.k);
  return rowTask(
    log ? 'logSoftmax' : 'softmax',
    ['$p0', '$p1'],
    `(local $m f32) (local $s f32) (local $mv v128) (local $sc v128) ${c.decl()}`,
    `${c.init()}
        ${body}
        ${
          log
            ? `(local.set $sc (f32x4.splat (f32.demote_f64 (f64.neg (f64.add (f64.promote_f32 (local.get $m)) (call $log (f64.promote_f32 (local.get $s))))))))
        ${rowLanes('aff', st('$p1', `(f32x4.add ${ld('$p0')} (local.get $sc))`))}`
            : `(local.set $sc (f32x4.splat (f32.demote_f64 (f64.div (f64.const 1) (f64.promote_f32 (local.get $s))))))
        ${rowLanes('aff', st('$p1', `(f32x4.mul ${ld('$p1')} (local.get $sc))`))}`
        }`,
  );
}

/**
 * The softmax input gradient from its output y = p0 and the incoming gradient g = p1 into p2:
 * softmax p2 = y (g - sum(g y)); log-softmax p2 = g - exp(y) sum(g).
 */
function rowSoftmaxBackward(log: boolean): string {
  return rowTask(
    log ? 'logSoftmaxBackward' : 'softmaxBackward',
    ['$p0', '$p1', '$p2'],
    '(local $dv v128)',
    `(local.set $acc (v128.const i32x4 0 0 0 0))
        ${rowLanes('dot', `(local.set $acc (f32x4.add (local.get $acc) ${log ? ld('$p1') : `(f32x4.mul ${ld('$p1')} ${ld('$p0')})`}))`)}
        (local.set $dv (f32x4.splat ${hreduce('f32.add', '$acc')}))
        ${rowLanes(
          'grad',
          log
            ? `(local.set $x ${ld('$p0')})
            ${expRow('$y', '$x')}
            (local.set $y (v128.andnot (local.get $y) (f32x4.lt (local.get $x) ${f4(-87)})))
            ${st('$p2', `(f32x4.sub ${ld('$p1')} (f32x4.mul (local.get $y) (local.get $dv)))`)}`
            : st('$p2', `(f32x4.mul ${ld('$p0')} (f32x4.sub ${ld('$p1')} (local.get $dv)))`),
        )}`,
  );
}

/**
 * The row's mean into $mean (0 for rms; summed shifted by the first element, as rowsMoments) and
 * 1 / sqrt(var + eps) into $rstd, the centred sum of squares in float32 lanes, the rest in float64.
 */
function rowStats(rms: boolean): string {
  return `(local.set $mean (f32.const 0))
        ${
          rms
            ? ''
            : `(local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $sh (f32x4.splat (f32.load (local.get $p0))))
        ${rowLanes('sum', `(local.set $acc (f32x4.add (local.get $acc) (f32x4.sub ${ld('$p0')} (local.get $sh))))`)}
        (local.set $mean (f32.add (f32.load (local.get $p0)) (f32.div ${hreduce('f32.add', '$acc')} (f32.convert_i32_u (local.get $len)))))`
        }
        (local.set $mv (f32x4.splat (local.get $mean)))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        ${rowLanes('sq', `(local.set $x (f32x4.sub ${ld('$p0')} (local.get $mv)))
            (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $x) (local.get $x))))`)}
        (local.set $rstd (f32.demote_f64 (f64.div (f64.const 1) (f64.sqrt (f64.add
          (f64.div (f64.promote_f32 ${hreduce('f32.add', '$acc')}) (f64.convert_i32_u (local.get $len))) (local.get $f))))))
        (local.set $rv (f32x4.splat (local.get $rstd)))`;
}

const STATS_LOCALS = '(local $mean f32) (local $rstd f32) (local $mv v128) (local $rv v128) (local $sh v128)';

/** layer / RMS norm: p1 = (p0 - mean) rstd p2 + p3 (p2, p3: the weight and bias rows), eps = f. */
function rowNorm(rms: boolean): string {
  return rowTask(
    rms ? 'rmsNorm' : 'layerNorm',
    ['$p0', '$p1'],
    STATS_LOCALS,
    `${rowStats(rms)}
        ${rowLanes('nrm', st('$p1', `(f32x4.add (f32x4.mul (f32x4.mul (f32x4.sub ${ld('$p0')} (local.get $mv)) (local.get $rv)) ${ld('$p2')}) ${ld('$p3')})`))}`,
  );
}

/**
 * The layer / RMS norm input gradient: x = p0, incoming gradient g = p1, dx into p2, weight row p3;
 * with p4 non-zero also g xhat into p4 (the weight's gradient before its row sum).
 * dx = rstd (g w - mean(g w) - xhat mean(g w xhat)), mean(g w) taken as 0 for RMS norm.
 */
function rowNormBackward(rms: boolean): string {
  return rowTask(
    rms ? 'rmsNormBackward' : 'layerNormBackward',
    ['$p0', '$p1', '$p2'],
    `${STATS_LOCALS} (local $gw v128) (local $xh v128) (local $c1 v128) (local $c2 v128)`,
    `${rowStats(rms)}
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $acc2 (v128.const i32x4 0 0 0 0))
        ${rowLanes('sums', `(local.set $gw (f32x4.mul ${ld('$p1')} ${ld('$p3')}))
            (local.set $acc (f32x4.add (local.get $acc) (local.get $gw)))
            (local.set $acc2 (f32x4.add (local.get $acc2) (f32x4.mul (local.get $gw) (f32x4.mul (f32x4.sub ${ld('$p0')} (local.get $mv)) (local.get $rv)))))`)}
        (local.set $c1 (f32x4.splat ${rms ? '(f32.const 0)' : `(f32.div ${hreduce('f32.add', '$acc')} (f32.convert_i32_u (local.get $len)))`}))
        (local.set $c2 (f32x4.splat (f32.div ${hreduce('f32.add', '$acc2')} (f32.convert_i32_u (local.get $len)))))
        ${rowLanes('dx', `(local.set $xh (f32x4.mul (f32x4.sub ${ld('$p0')} (local.get $mv)) (local.get $rv)))
            ${st('$p2', `(f32x4.mul (local.get $rv) (f32x4.sub (f32x4.sub (f32x4.mul ${ld('$p1')} ${ld('$p3')}) (local.get $c1)) (f32x4.mul (local.get $xh) (local.get $c2))))`)}
            (if (local.get $p4) (then ${st('$p4', `(f32x4.mul ${ld('$p1')} (local.get $xh))`)}))`)}
        (if (local.get $p4) (then (local.set $p4 (i32.add (local.get $p4) (local.get $nb)))))`,
  );
}

/**
 * An elementwise row: $a = p0, $b = p1 (advancing by p3 bytes per row: a row's length, or 0 for a
 * bias row read again), body sets $y, stored to p2.
 */
function rowElementwise(name: string, body: string): string {
  return rowTask(
    name,
    ['$p0', '$p2'],
    '',
    rowLanes('el', `(local.set $a ${ld('$p0')})
            (local.set $b (v128.load (i32.add (local.get $p1) (local.get $i))))
            ${renameScratch(body)}
            ${st('$p2', '(local.get $y)')}`),
    true,
  );
}

/**
 * The strided copy of a transpose, four output rows per task row: output rows 4k .. 4k + 3 (at p1,
 * `len` floats each, back to back) are source columns 4k .. 4k + 3, read as one f32x4 per source row
 * (p0 + j f bytes, f the source's row stride) and stored lane by lane; p0 moves 16 bytes per task row.
 */
function rowTranspose4(): string {
  return rowTask(
    'transpose4',
    [],
    '(local $src i32) (local $sb i32) (local $dst i32) (local $v v128)',
    `(local.set $sb (i32.trunc_f64_u (local.get $f)))
        (local.set $src (local.get $p0))
        (local.set $i (i32.const 0))
        (block $tdone
          (loop $t
            (br_if $tdone (i32.ge_u (local.get $i) (local.get $nb)))
            (local.set $v (v128.load (local.get $src)))
            (local.set $dst (i32.add (local.get $p1) (local.get $i)))
            ${[0, 1, 2, 3].map((l) => `(f32.store offset=0 (i32.add (local.get $dst) (i32.mul (local.get $nb) (i32.const ${l}))) (f32x4.extract_lane ${l} (local.get $v)))`).join(' ')}
            (local.set $src (i32.add (local.get $src) (local.get $sb)))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (br $t)))
        (local.set $p0 (i32.add (local.get $p0) (i32.const 16)))
        (local.set $p1 (i32.add (local.get $p1) (i32.shl (local.get $nb) (i32.const 2))))`,
  );
}

/**
 * The fused cross-entropy's forward row (ops/cross-entropy.ts): one read of the logits row at p0, and
 * per row three floats at p1 (which moves 16 bytes a row): the max m (0 when the row is all -inf), the
 * sum of exp(x - m) and the sum of x (label smoothing's term). The caller forms lse = m + log(sum) and
 * the loss in float64. The max is f32x4.pmax (one instruction; f32x4.max's NaN rule costs several on
 * x86 and halved the row's speed): a NaN it drops still makes the sums, and so lse, NaN.
 */
function rowCrossEntropyStats(): string {
  const c = hoistedConstants('k');
  const body = maxExpSum(rowLanes, ld('$p0'), null, c.k, '(local.set $acc2 (f32x4.add (local.get $acc2) (local.get $x)))');
  return rowTask(
    'crossEntropyStats',
    ['$p0'],
    `(local $m f32) (local $mv v128) ${c.decl()}`,
    `${c.init()}
        (local.set $acc2 (v128.const i32x4 0 0 0 0))
        ${body}
        (f32.store (local.get $p1) (local.get $m))
        (f32.store offset=4 (local.get $p1) ${hreduce('f32.add', '$acc')})
        (f32.store offset=8 (local.get $p1) ${hreduce('f32.add', '$acc2')})
        (local.set $p1 (i32.add (local.get $p1) (i32.const 16)))`,
  );
}

/**
 * The fused cross-entropy's input gradient without its target term: p1 = a exp(p0 - lse) - b, from
 * three floats per row at p2 (lse, a, b; p2 moves 16 bytes a row). The caller sets a = g (0 for an
 * ignored row), b = g eps / C, and subtracts g (1 - eps) at the target afterwards.
 */
function rowCrossEntropyBackward(): string {
  const c = hoistedConstants('k');
  const grads = rowLanes('ceg', `(local.set $x (f32x4.sub ${ld('$p0')} (local.get $mv)))
            ${expRow('$y', '$x', c.k)}
            (local.set $y (v128.andnot (local.get $y) (f32x4.lt (local.get $x) ${c.k(-87)})))
            ${st('$p1', '(f32x4.sub (f32x4.mul (local.get $y) (local.get $sc)) (local.get $sh))')}`);
  return rowTask(
    'crossEntropyBackward',
    ['$p0', '$p1'],
    `(local $mv v128) (local $sc v128) (local $sh v128) ${c.decl()}`,
    `${c.init()}
        (local.set $mv (f32x4.splat (f32.load (local.get $p2))))
        (local.set $sc (f32x4.splat (f32.load offset=4 (local.get $p2))))
        (local.set $sh (f32x4.splat (f32.load offset=8 (local.get $p2))))
        ${grads}
        (local.set $p2 (i32.add (local.get $p2) (i32.const 16)))`,
  );
}

/**
 * The Adam step in place over rows of p0 (param), p1 (grad), p2 (exp_avg), p3 (exp_avg_sq), the step's
 * eight float32 scalars at p4 (read again for every row: decay or wd, b1, b2, 1 - b1, 1 - b2,
 * 1 / sqrt(bias correction 2), eps, lr / bias correction 1): the same float32 operations as `adam` (and
 * kernels/adam.ts), so the result is bitwise the JS loop's, on the tensors where they lie.
 */
function rowAdam(decoupled: boolean): string {
  const names = ['$dc', '$b1', '$b2', '$c1', '$c2', '$inv', '$eps', '$lr'];
  return rowTask(
    decoupled ? 'adamDecoupled' : 'adamL2',
    ['$p0', '$p1', '$p2', '$p3'],
    names.map((n) => `(local ${n} v128)`).join(' ') + ' (local $m v128) (local $v v128)',
    `${names.map((n, i) => `(local.set ${n} (v128.load32_splat offset=${4 * i} (local.get $p4)))`).join('\n        ')}
        ${rowLanes(
          'adam',
          `(local.set $a ${ld('$p0')})
            (local.set $b ${ld('$p1')})
            ${decoupled ? '(local.set $a (f32x4.mul (local.get $a) (local.get $dc)))' : '(local.set $b (f32x4.add (local.get $b) (f32x4.mul (local.get $a) (local.get $dc))))'}
            (local.set $m (f32x4.add (f32x4.mul ${ld('$p2')} (local.get $b1)) (f32x4.mul (local.get $b) (local.get $c1))))
            (local.set $v (f32x4.add (f32x4.mul ${ld('$p3')} (local.get $b2)) (f32x4.mul (f32x4.mul (local.get $b) (local.get $b)) (local.get $c2))))
            ${st('$p2', '(local.get $m)')}
            ${st('$p3', '(local.get $v)')}
            (local.set $v (f32x4.add (f32x4.mul (f32x4.sqrt (local.get $v)) (local.get $inv)) (local.get $eps)))
            ${st('$p0', '(f32x4.sub (local.get $a) (f32x4.mul (f32x4.div (local.get $m) (local.get $v)) (local.get $lr)))')}`,
        )}`,
  );
}

function rowTaskFunctions(bodies: ActivationBodies): string {
  const fns: Record<(typeof ROW_OPS)[number], string> = {
    softmax: rowSoftmax(false),
    logSoftmax: rowSoftmax(true),
    softmaxBackward: rowSoftmaxBackward(false),
    logSoftmaxBackward: rowSoftmaxBackward(true),
    layerNorm: rowNorm(false),
    rmsNorm: rowNorm(true),
    layerNormBackward: rowNormBackward(false),
    rmsNormBackward: rowNormBackward(true),
    gelu: rowElementwise('gelu', bodies.gelu),
    silu: rowElementwise('silu', bodies.silu),
    addGelu: rowElementwise('addGelu', bodies.addGelu),
    geluBackward: rowElementwise('geluBackward', bodies.geluBackward),
    siluBackward: rowElementwise('siluBackward', bodies.siluBackward),
    add: rowElementwise('add', '(local.set $y (f32x4.add (local.get $a) (local.get $b)))'),
    transpose4: rowTranspose4(),
    crossEntropyStats: rowCrossEntropyStats(),
    crossEntropyBackward: rowCrossEntropyBackward(),
    adamDecoupled: rowAdam(true),
    adamL2: rowAdam(false),
  };
  return log64() + ROW_OPS.map((op) => fns[op]).join('\n');
}

export const ELTWISE_PAGES = 8;

interface ActivationBodies {
  gelu: string;
  silu: string;
  addGelu: string;
  geluBackward: string;
  siluBackward: string;
}

/** The GELU / SiLU row bodies both modules run (they set $y from $a, $b). */
function activationBodies(): ActivationBodies {
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
  // gelu, silu: unary rows (b is loaded but not used)
  const gelu = addGelu.replace('(f32x4.add (local.get $a) (local.get $b))', '(local.get $a)');
  const silu = `
        (local.set $x (f32x4.neg (local.get $a)))
        ${expInto('$y', '$x')}
        (local.set $y (f32x4.div (local.get $a) (f32x4.add ${f4(1)} (local.get $y))))`;
  // siluBackward: a = g, b = x; s = 1 / (1 + exp(-x)), y = g s (1 + x (1 - s))
  const siluBackward = `
        (local.set $x (f32x4.neg (local.get $b)))
        ${expInto('$y', '$x')}
        (local.set $t (f32x4.div ${f4(1)} (f32x4.add ${f4(1)} (local.get $y))))
        (local.set $y (f32x4.mul (f32x4.mul (local.get $a) (local.get $t))
          (f32x4.add ${f4(1)} (f32x4.mul (local.get $b) (f32x4.sub ${f4(1)} (local.get $t))))))`;
  return { gelu, silu, addGelu, geluBackward, siluBackward };
}

export function generateEltwiseWat(): string {
  const { gelu, silu, addGelu, geluBackward, siluBackward } = activationBodies();
  return `(module
  (memory (export "memory") ${ELTWISE_PAGES} ${ELTWISE_PAGES})
  ${elementwise('addGelu', addGelu)}
  ${elementwise('geluBackward', geluBackward)}
  ${elementwise('gelu', gelu)}
  ${elementwise('silu', silu)}
  ${elementwise('siluBackward', siluBackward)}
  ${expSum()}
  ${rowsExpSum()}
  ${rowsAffine()}
  ${rowsMoments()}
  ${rowsNorm()}
  ${adam('adamDecoupled', true)}
  ${adam('adamL2', false)}
)
`;
}

/** The row-task module: the GEMM's shared memory imported (limits as the GEMM declares them). */
export function generateEltwiseSharedWat(): string {
  return `(module
  (import "env" "memory" (memory 1 65536 shared))
  ${rowTaskFunctions(activationBodies())}
)
`;
}

/** Compiles the WAT with wabt (a devDependency: generator and test time only). */
export async function compileEltwise(wat = generateEltwiseWat()): Promise<Uint8Array> {
  const wabt = await (await import('wabt')).default();
  const features = { simd: true, threads: true };
  const mod = wabt.parseWat('eltwise.wat', wat, features);
  try {
    // wabt's typings omit validate()'s features argument; without it a shared memory is rejected
    (mod as unknown as { validate(f: typeof features): void }).validate(features);
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

export async function generateEltwiseBytesSource(): Promise<string> {
  const b64 = Buffer.from(await compileEltwise()).toString('base64');
  const lines = b64.match(/.{1,100}/g) ?? [];
  const shared = Buffer.from(await compileEltwise(generateEltwiseSharedWat())).toString('base64').match(/.{1,100}/g) ?? [];
  return `// GENERATED by gen-eltwise.ts (npx tsx src/backends/cpu/simd/gen-eltwise.ts). Do not edit.
// The drift check in eltwise.test.ts regenerates this file and compares.
export const ELTWISE_PAGES = ${ELTWISE_PAGES};
/** The SIMD elementwise module (exports memory, addGelu, geluBackward, gelu, silu, siluBackward, expSum, rowsExpSum, rowsAffine, rowsMoments, rowsNorm, adamDecoupled, adamL2). */
export const ELTWISE_WASM_B64 =
${lines.map((l) => `  '${l}'`).join(' +\n')};
/** The row tasks over the GEMM's shared memory, in this order (descriptor op codes, gemm/rows.ts). */
export const ROW_OPS = ${JSON.stringify(ROW_OPS)} as const;
/** The row-task module (imports env.memory, shared; exports the ROW_OPS functions). */
export const ELTWISE_SHARED_WASM_B64 =
${shared.map((l) => `  '${l}'`).join(' +\n')};
`;
}

export const ELTWISE_BYTES_PATH = fileURLToPath(new URL('./eltwise-bytes.ts', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(ELTWISE_BYTES_PATH, await generateEltwiseBytesSource());
}
