// Running cases: for each case folder, read it, hand it to the runner of its `class`, and compare
// every output in `outputs` with expected.safetensors, and every JSON expectation of case.json
// (`expected_*` / `*_expected` fields: tokenizer ids, tokens, decoded strings) with the runner's
// `values`. Cases run one after another on one backend; every tensor the runner uploads or receives
// is disposed when its case ends.

import { fromHost } from '@lm/tensor-gpu';
import type { Backend, Tensor } from '@lm/tensor-gpu';
import { isExpectationField } from '@lm/layers/testing';
import type { ConformanceFamily, ConformanceOutput } from '@lm/layers/testing';
import { compareOutput, compareValue, fmtNum, toleranceFor, type OutputCheck } from './compare.js';
import {
  CaseReadError,
  discoverCases,
  readCaseConfig,
  readCaseSpec,
  readExpected,
  readTensorInputs,
  uploadDType,
  type CaseRef,
} from './cases.js';
import { classTable } from './registry.js';
import { isFloatDType } from '@lm/dist-ckpt';

export type CaseStatus = 'pass' | 'mismatch' | 'unknown-class' | 'unreadable' | 'error';

export interface CaseResult {
  /** `<family>/<case>`, or the path as given for a folder that could not be searched. */
  label: string;
  dir: string;
  ok: boolean;
  status: CaseStatus;
  /** The line the CLI prints: `PASS <label> worst=<output> maxabs=<x>` or `FAIL <label> ...`. */
  line: string;
  /** One entry per name in `outputs`, then one per JSON expectation of case.json (empty when the case did not get as far as comparing). */
  outputs: OutputCheck[];
  /** What a runner threw, for --verbose. */
  error?: unknown;
}

export interface RunOptions {
  families: readonly ConformanceFamily[];
  backend: Backend;
  /** Family folders or case folders, at any path. */
  dirs: readonly string[];
  /** Only cases whose `<family>/<case>` name contains this. */
  filter?: string;
  /** Called as each case finishes (the CLI prints the line here). */
  onResult?: (result: CaseResult) => void;
}

export interface RunSummary {
  results: CaseResult[];
  passed: number;
  failed: number;
  /** Exactly `N passed, M failed`. */
  summary: string;
  /** 0 only when every case passed and at least one ran. */
  exitCode: 0 | 1;
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' | ');
const messageOf = (e: unknown) => oneLine(e instanceof Error ? e.message : String(e));

function fail(ref: CaseRef, status: Exclude<CaseStatus, 'pass'>, what: string, extra: Partial<CaseResult> = {}): CaseResult {
  return { label: ref.label, dir: ref.dir, ok: false, status, line: `FAIL ${ref.label} ${what}`, outputs: [], ...extra };
}

function isTensorLike(t: unknown): t is Tensor {
  return typeof t === 'object' && t !== null && Array.isArray((t as Tensor).shape) && typeof (t as Tensor).data === 'function';
}

/** Host values (`{ shape, data }`) of a returned output, as opposed to a tensor to read back. */
function isHostOutput(t: unknown): t is { shape: readonly number[]; data: ArrayLike<number> } {
  if (typeof t !== 'object' || t === null || isTensorLike(t)) return false;
  const { shape, data } = t as { shape?: unknown; data?: { length?: unknown } };
  return Array.isArray(shape) && shape.every(Number.isInteger) && typeof data === 'object' && data !== null && typeof data.length === 'number';
}

/** A class runner's result split into its outputs and its JSON values (a bare Map has none). */
function splitReturned(returned: unknown): { outputs: Map<string, unknown>; values: Record<string, unknown> } | null {
  if (returned instanceof Map) return { outputs: returned, values: {} };
  const r = returned as { outputs?: unknown; values?: unknown } | null;
  if (typeof r === 'object' && r !== null && r.outputs instanceof Map && typeof r.values === 'object' && r.values !== null && !Array.isArray(r.values)) {
    return { outputs: r.outputs, values: r.values as Record<string, unknown> };
  }
  return null;
}

function disposeAll(tensors: Iterable<unknown>): void {
  for (const t of tensors) {
    if (isTensorLike(t) && typeof t.dispose === 'function') t.dispose();
  }
}

type ClassTable = ReturnType<typeof classTable>;

async function runCase(ref: CaseRef, table: ClassTable, backend: Backend): Promise<CaseResult> {
  let spec;
  try {
    spec = await readCaseSpec(ref.dir);
  } catch (e) {
    return fail(ref, 'unreadable', `unreadable case: ${messageOf(e)}`);
  }
  const entry = table.get(spec.class);
  if (!entry) return fail(ref, 'unknown-class', `class ${spec.class} is not implemented (no registered family has it)`);

  let config, expected, hostInputs;
  try {
    config = await readCaseConfig(ref.dir);
    expected = await readExpected(ref.dir, spec);
    hostInputs = await readTensorInputs(ref.dir, spec);
  } catch (e) {
    return fail(ref, 'unreadable', `unreadable case: ${e instanceof CaseReadError ? e.message : messageOf(e)}`);
  }

  const tensorInputs = new Map<string, Tensor>();
  let returned: unknown;
  try {
    try {
      for (const [name, t] of hostInputs) tensorInputs.set(name, fromHost(t.data, t.shape, uploadDType(t.dtype), backend));
      returned = await entry.run({ dir: ref.dir, spec, config, tensorInputs, backend });
    } catch (e) {
      return fail(ref, 'error', `${spec.class} threw: ${messageOf(e)}`, { error: e });
    }
    const split = splitReturned(returned);
    if (!split) {
      return fail(
        ref,
        'error',
        `${spec.class}: the class runner returned ${Object.prototype.toString.call(returned)}, not a Map of outputs or { outputs: Map, values: object }`,
      );
    }
    const { outputs, values } = split;
    const checks: OutputCheck[] = [];
    for (const name of spec.outputs) {
      const want = expected.get(name)!;
      const got = outputs.get(name) as ConformanceOutput | undefined;
      if (got === undefined) {
        checks.push({ name, ok: false, maxAbs: Infinity, reason: 'missing: the class runner did not return it' });
        continue;
      }
      if (!isTensorLike(got) && !isHostOutput(got)) {
        checks.push({ name, ok: false, maxAbs: Infinity, reason: `not a Tensor or { shape, data } (${Object.prototype.toString.call(got)})` });
        continue;
      }
      let actual;
      try {
        actual = isTensorLike(got) ? await got.data() : got.data;
      } catch (e) {
        return fail(ref, 'error', `${name}: reading it back threw: ${messageOf(e)}`, { error: e, outputs: checks });
      }
      checks.push(
        compareOutput({
          name,
          actualShape: got.shape,
          actual,
          expectedShape: want.shape,
          expected: want.data,
          exact: !isFloatDType(want.dtype),
          tol: toleranceFor(name, spec),
        }),
      );
    }
    // JSON expectations: every expected_* / *_expected field of case.json, against `values`.
    const valueNames = Object.keys(spec).filter(isExpectationField);
    for (const name of valueNames) {
      if (!Object.hasOwn(values, name)) {
        checks.push({ name, ok: false, maxAbs: Infinity, reason: 'missing: the class runner returned no value for this case.json field' });
        continue;
      }
      const v = compareValue(name, values[name], spec[name], { atol: spec.atol, rtol: spec.rtol });
      checks.push({ name, ok: v.ok, maxAbs: v.ok ? 0 : Infinity, ...(v.ok ? {} : { reason: v.reason }) });
    }
    const unasked = Object.keys(values).filter((k) => !valueNames.includes(k));
    if (unasked.length) {
      return fail(ref, 'error', `${spec.class}: the class runner returned values for ${unasked.join(', ')}, which case.json does not have`, { outputs: checks });
    }
    const failed = checks.filter((c) => !c.ok);
    if (failed.length) {
      const [first, ...rest] = failed;
      const more = rest.length
        ? ` (also failing: ${rest.slice(0, 5).map((c) => c.name).join(', ')}${rest.length > 5 ? `, +${rest.length - 5} more` : ''})`
        : '';
      // A JSON expectation's reason starts with its path (`expected_ids[3].tokens`), which names it.
      const what = first.reason?.startsWith(first.name) ? first.reason : `${first.name}: ${first.reason}`;
      return fail(ref, 'mismatch', `${what}${more}`, { outputs: checks });
    }
    const tensorChecks = checks.filter((c) => !valueNames.includes(c.name));
    const worst = tensorChecks.reduce((w, c) => (c.maxAbs > w.maxAbs ? c : w), tensorChecks[0]);
    const matched = valueNames.length ? ` values=${valueNames.join(',')}` : '';
    return {
      label: ref.label,
      dir: ref.dir,
      ok: true,
      status: 'pass',
      line: `PASS ${ref.label} worst=${worst.name} maxabs=${fmtNum(worst.maxAbs)}${matched}`,
      outputs: checks,
    };
  } finally {
    disposeAll(tensorInputs.values());
    const split = splitReturned(returned);
    if (split) disposeAll(split.outputs.values());
  }
}

/** Runs every case below `dirs` on `backend` with the classes of `families`. */
export async function runConformance(options: RunOptions): Promise<RunSummary> {
  const table = classTable(options.families);
  const results: CaseResult[] = [];
  const emit = (r: CaseResult) => {
    results.push(r);
    options.onResult?.(r);
  };
  const seen = new Set<string>();
  for (const arg of options.dirs) {
    const { cases, problem } = await discoverCases(arg);
    if (problem) {
      emit(fail({ label: problem.label, dir: problem.dir }, 'unreadable', problem.message));
      continue;
    }
    for (const ref of cases) {
      if (seen.has(ref.dir)) continue;
      seen.add(ref.dir);
      if (options.filter !== undefined && !ref.label.includes(options.filter)) continue;
      emit(await runCase(ref, table, options.backend));
    }
  }
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  return { results, passed, failed, summary: `${passed} passed, ${failed} failed`, exitCode: failed === 0 && passed > 0 ? 0 : 1 };
}
