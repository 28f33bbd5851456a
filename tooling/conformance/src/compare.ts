// Comparing one output with its expected value. A float value passes when
// abs(actual - expected) <= atol + rtol * abs(expected); NaN expected matches NaN only; equal values
// (infinities included) always pass. Integer and bool outputs must match exactly. Shapes must match.

export interface Tolerance {
  atol: number;
  rtol: number;
}

export interface OutputCheck {
  name: string;
  ok: boolean;
  /** Largest abs(actual - expected); Infinity when a NaN or infinity is off; 0 for an empty tensor. */
  maxAbs: number;
  /** Why it failed, with the worst element; absent when ok. */
  reason?: string;
}

export interface CompareInput {
  name: string;
  actualShape: readonly number[];
  actual: ArrayLike<number>;
  expectedShape: readonly number[];
  expected: ArrayLike<number>;
  /** Exact comparison (integer and bool outputs). */
  exact: boolean;
  tol: Tolerance;
}

const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;

/** `1.2e-5`, `0`, `NaN`, `inf` */
export function fmtNum(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e4 ? String(Number(x.toPrecision(6))) : x.toExponential(2);
}

/** The row-major multi-index of flat position `i` in `shape`. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

export function compareOutput(c: CompareInput): OutputCheck {
  const { name, actual, expected, tol, exact } = c;
  if (c.actualShape.length !== c.expectedShape.length || c.actualShape.some((d, i) => d !== c.expectedShape[i])) {
    return { name, ok: false, maxAbs: Infinity, reason: `shape ${fmtShape(c.actualShape)} != expected ${fmtShape(c.expectedShape)}` };
  }
  if (actual.length !== expected.length) {
    return { name, ok: false, maxAbs: Infinity, reason: `${actual.length} values, expected ${expected.length}` };
  }
  let maxAbs = 0;
  let worst = -1; // index of the largest error
  let bad = 0;
  let worstBad = -1; // the failing element with the largest error relative to its tolerance
  let worstBadRatio = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    const a = actual[i];
    if (a === e || (Number.isNaN(e) && Number.isNaN(a))) continue;
    let err = Math.abs(a - e);
    if (Number.isNaN(err)) err = Infinity; // a NaN on one side only, or infinities of opposite sign
    if (err > maxAbs || worst < 0) {
      maxAbs = err;
      worst = i;
    }
    const allowed = exact || !Number.isFinite(e) ? 0 : tol.atol + tol.rtol * Math.abs(e);
    if (err <= allowed) continue;
    bad++;
    const ratio = allowed > 0 ? err / allowed : Infinity;
    if (ratio > worstBadRatio) {
      worstBadRatio = ratio;
      worstBad = i;
    }
  }
  if (bad === 0) return { name, ok: true, maxAbs };
  const at = (i: number) => `${fmtShape(unravel(i, c.expectedShape))} (actual ${fmtNum(actual[i])}, expected ${fmtNum(expected[i])})`;
  const what = exact
    ? `${bad} of ${expected.length} values differ (exact match required)`
    : `${bad} of ${expected.length} values out of tolerance (atol ${fmtNum(tol.atol)}, rtol ${fmtNum(tol.rtol)})`;
  let reason = `${what}, max abs err ${fmtNum(maxAbs)} at ${at(worst)}`;
  if (worstBad !== worst) reason += `; furthest out of tolerance at ${at(worstBad)}`;
  return { name, ok: false, maxAbs, reason };
}

/**
 * The tolerance for an output: case.json `output_tolerances[name]` when given (per-output overrides,
 * e.g. exact integers beside a float matmul), else grad_atol/grad_rtol for `grad.*` (also
 * `step1.grad.*`), else atol/rtol.
 */
export function toleranceFor(
  name: string,
  spec: { atol: number; rtol: number; grad_atol?: number; grad_rtol?: number; output_tolerances?: unknown },
): Tolerance {
  const own = (spec.output_tolerances as Record<string, Partial<Tolerance>> | undefined)?.[name];
  if (own && typeof own === 'object') return { atol: Number(own.atol ?? spec.atol), rtol: Number(own.rtol ?? spec.rtol) };
  if (/(^|\.)grad\./.test(name)) return { atol: spec.grad_atol ?? spec.atol, rtol: spec.grad_rtol ?? spec.rtol };
  return { atol: spec.atol, rtol: spec.rtol };
}

export interface ValueCheck {
  name: string;
  ok: boolean;
  /** The first difference, by path (`expected_ids[3].tokens[2]: "Hello" != expected "hello"`), and how many there are. */
  reason?: string;
}

const show = (v: unknown) => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

/**
 * A JSON expectation (case.json `expected_ids`, `decode_expected`) against what the class runner
 * built in its layout: same structure, same keys, equal strings and booleans, integers exactly and
 * other numbers within the tolerance. Reports the first difference by path and the number of them.
 */
export function compareValue(name: string, actual: unknown, expected: unknown, tol: Tolerance): ValueCheck {
  const diffs: string[] = [];
  const walk = (a: unknown, e: unknown, path: string): void => {
    if (Array.isArray(e)) {
      if (!Array.isArray(a)) return void diffs.push(`${path}: ${show(a)} != expected a list of ${e.length}`);
      if (a.length !== e.length) return void diffs.push(`${path}: ${a.length} items != expected ${e.length} (actual ${show(a)}, expected ${show(e)})`);
      e.forEach((x, i) => walk(a[i], x, `${path}[${i}]`));
    } else if (typeof e === 'object' && e !== null) {
      if (typeof a !== 'object' || a === null || Array.isArray(a)) return void diffs.push(`${path}: ${show(a)} != expected an object`);
      const ak = Object.keys(a);
      const missing = Object.keys(e).filter((k) => !Object.hasOwn(a, k));
      const extra = ak.filter((k) => !Object.hasOwn(e, k));
      if (missing.length) diffs.push(`${path}: missing ${missing.map((k) => `"${k}"`).join(', ')}`);
      if (extra.length) diffs.push(`${path}: unexpected ${extra.map((k) => `"${k}"`).join(', ')}`);
      for (const [k, x] of Object.entries(e)) if (Object.hasOwn(a, k)) walk((a as Record<string, unknown>)[k], x, `${path}.${k}`);
    } else if (typeof e === 'number' && typeof a === 'number') {
      const allowed = Number.isInteger(e) ? 0 : tol.atol + tol.rtol * Math.abs(e);
      if (!(Math.abs(a - e) <= allowed || a === e)) diffs.push(`${path}: ${fmtNum(a)} != expected ${fmtNum(e)}`);
    } else if (a !== e) {
      diffs.push(`${path}: ${show(a)} != expected ${show(e)}`);
    }
  };
  walk(actual, expected, name);
  if (diffs.length === 0) return { name, ok: true };
  return { name, ok: false, reason: diffs.length === 1 ? diffs[0] : `${diffs[0]} (${diffs.length} differences)` };
}
