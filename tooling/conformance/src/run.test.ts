// The runner on synthetic case folders written to a temp dir, with the fake family of
// test/fake-family.mjs injected (in process), and the built CLI run as a child process.

import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { writeSafetensors } from '@lm/dist-ckpt';
import type { DType as FileDType } from '@lm/dist-ckpt';
import { cpu, memory } from '@lm/tensor-gpu';
import type { ConformanceFamily } from '@lm/layers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conformance as fake } from '../test/fake-family.mjs';
import { runConformance, type RunSummary } from './run.js';
import { discoverCases } from './cases.js';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cliPath = join(pkgDir, 'dist', 'cli.js');
const families: ConformanceFamily[] = [fake];

interface T {
  dtype: FileDType;
  shape: number[];
  data: ArrayLike<number>;
}

interface CaseFiles {
  spec?: Record<string, unknown>;
  /** Raw case.json text instead of `spec`. */
  caseJson?: string;
  config?: Record<string, unknown>;
  expected?: Record<string, T>;
  inputs?: Record<string, T>;
}

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'lm-conformance-test-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function writeCase(rel: string, files: CaseFiles): Promise<string> {
  const dir = join(root, rel);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'case.json'), files.caseJson ?? JSON.stringify(files.spec, null, 1));
  if (files.config) writeFileSync(join(dir, 'config.json'), JSON.stringify(files.config));
  if (files.expected) await writeSafetensors(join(dir, 'expected.safetensors'), files.expected);
  if (files.inputs) await writeSafetensors(join(dir, 'inputs.safetensors'), files.inputs);
  return dir;
}

const f32 = (shape: number[], data: number[]): T => ({ dtype: 'F32', shape, data: new Float32Array(data) });
const ids = [
  [1, 2, 3],
  [4, 5, 6],
];
const doubled = [2, 4, 6, 8, 10, 12];

/** A FakeDoubler case: logits = input_ids * 2, loss/grad.w with x = [0.5, -1, 2], w = [1, 2, 3]. */
function doublerCase(over: Partial<Record<string, unknown>> = {}, expected: Record<string, T> = {}): CaseFiles {
  return {
    spec: {
      class: 'FakeDoubler',
      inputs: { input_ids: ids },
      tensor_inputs: ['x'],
      outputs: ['logits', 'ids', 'loss', 'grad.w'],
      atol: 1e-4,
      rtol: 1e-4,
      ...over,
    },
    config: { w: [1, 2, 3] },
    inputs: { x: f32([3], [0.5, -1, 2]) },
    expected: {
      logits: f32([2, 3], doubled),
      ids: { dtype: 'I64', shape: [2, 3], data: ids.flat() },
      loss: f32([], [0.5 - 2 + 6]),
      'grad.w': f32([3], [0.5, -1, 2]),
      ...expected,
    },
  };
}

const run = (dirs: string[], filter?: string): Promise<RunSummary> => runConformance({ families, backend: cpu(), dirs, filter });
const one = async (dir: string) => {
  const r = await run([dir]);
  expect(r.results).toHaveLength(1);
  return r.results[0];
};

describe('runConformance', () => {
  it('passes a case whose outputs all match, and frees every tensor', async () => {
    const dir = await writeCase('pass/doubler', doublerCase({}, { logits: f32([2, 3], [2, 4, 6, 8, 10, 12.0005]) }));
    const before = memory().tensors;
    const r = await run([dir]);
    expect(memory().tensors).toBe(before);
    expect(r.exitCode).toBe(0);
    expect(r.summary).toBe('1 passed, 0 failed');
    expect(r.results[0].line).toMatch(/^PASS pass\/doubler worst=logits maxabs=\S+$/);
    expect(r.results[0].outputs.map((o) => o.name)).toEqual(['logits', 'ids', 'loss', 'grad.w']);
  });

  it('fails an output out of tolerance, naming it, its error and where', async () => {
    const dir = await writeCase('tol/doubler', doublerCase({}, { logits: f32([2, 3], [2, 4, 6, 8, 10.01, 12]) }));
    const before = memory().tensors;
    const res = await one(dir);
    expect(memory().tensors).toBe(before);
    expect(res.status).toBe('mismatch');
    expect(res.line).toMatch(/^FAIL tol\/doubler logits: 1 of 6 values out of tolerance \(atol 1\.00e-4, rtol 1\.00e-4\), max abs err 0\.01\d* at \[1, 1\]/);
    expect(res.line).toContain('expected 10.01');
  });

  it('uses grad_atol / grad_rtol for grad.* outputs', async () => {
    const off = { 'grad.w': f32([3], [0.5, -1, 2.005]) };
    const loose = await one(await writeCase('grad/loose', doublerCase({ grad_atol: 1e-2, grad_rtol: 0 }, off)));
    expect(loose.ok).toBe(true);
    expect(loose.line).toMatch(/worst=grad\.w maxabs=0\.005/);
    const strict = await one(await writeCase('grad/strict', doublerCase({}, off)));
    expect(strict.line).toMatch(/^FAIL grad\/strict grad\.w: 1 of 3 values out of tolerance/);
    // grad tolerances do not loosen ordinary outputs
    const notGrad = await one(
      await writeCase('grad/not-grad', doublerCase({ grad_atol: 1 }, { logits: f32([2, 3], [2, 4, 6, 8, 10, 12.5]) })),
    );
    expect(notGrad.line).toMatch(/^FAIL grad\/not-grad logits:/);
  });

  it('requires integer outputs to match exactly, whatever the tolerance', async () => {
    const exact = await one(await writeCase('int/exact', doublerCase({ atol: 100 })));
    expect(exact.ok).toBe(true);
    const wrongIds = { ids: { dtype: 'I32' as const, shape: [2, 3], data: new Int32Array([1, 2, 3, 4, 5, 7]) } };
    const off = await one(await writeCase('int/off', doublerCase({ atol: 100, rtol: 1 }, wrongIds)));
    expect(off.line).toBe(
      'FAIL int/off ids: 1 of 6 values differ (exact match required), max abs err 1 at [1, 2] (actual 6, expected 7)',
    );
  });

  it('fails on a shape mismatch even when the values agree', async () => {
    const res = await one(await writeCase('shape/flat', doublerCase({}, { logits: f32([6], doubled) })));
    expect(res.line).toBe('FAIL shape/flat logits: shape [2, 3] != expected [6]');
  });

  it('fails a case whose runner does not return an asked-for output, naming it', async () => {
    const res = await one(
      await writeCase(
        'missing/pooler',
        doublerCase({ outputs: ['logits', 'ids', 'loss', 'grad.w', 'pooler_output'] }, { pooler_output: f32([2], [0, 0]) }),
      ),
    );
    expect(res.status).toBe('mismatch');
    expect(res.line).toBe('FAIL missing/pooler pooler_output: missing: the class runner did not return it');
  });

  it('names the first failing output and lists the others', async () => {
    const res = await one(
      await writeCase(
        'multi/two',
        doublerCase({}, { logits: f32([2, 3], [0, 0, 0, 0, 0, 0]), loss: f32([], [0]) }),
      ),
    );
    expect(res.line).toMatch(/^FAIL multi\/two logits: 6 of 6 values .* \(also failing: loss\)$/);
  });

  it('matches NaN only with NaN, and equal infinities', async () => {
    const x = f32([4], [NaN, Infinity, -Infinity, 1]);
    const base = { class: 'FakeIdentity', tensor_inputs: ['x'], outputs: ['x'], atol: 0, rtol: 0 };
    const ok = await one(await writeCase('nan/ok', { spec: base, inputs: { x }, expected: { x } }));
    expect(ok.line).toBe('PASS nan/ok worst=x maxabs=0');
    const bad = await one(
      await writeCase('nan/bad', { spec: { ...base, atol: 1e9 }, inputs: { x }, expected: { x: f32([4], [0, Infinity, -Infinity, 1]) } }),
    );
    expect(bad.line).toMatch(/^FAIL nan\/bad x: 1 of 4 values out of tolerance .*max abs err inf at \[0\] \(actual NaN, expected 0\)/);
    const nanExpected = await one(
      await writeCase('nan/expected', { spec: { ...base, atol: 1e9 }, inputs: { x: f32([1], [0]) }, expected: { x: f32([1], [NaN]) } }),
    );
    expect(nanExpected.ok).toBe(false);
  });

  it('uploads inputs.safetensors with their dtype (ints -> int32, BOOL -> bool)', async () => {
    const inputs = {
      mask: { dtype: 'BOOL' as const, shape: [3], data: new Uint8Array([1, 0, 1]) },
      pos: { dtype: 'I64' as const, shape: [2], data: [7, -3] },
      h: { dtype: 'F16' as const, shape: [2], data: new Float32Array([0.5, -1.25]) },
    };
    const res = await one(
      await writeCase('dtypes/identity', {
        spec: { class: 'FakeIdentity', tensor_inputs: ['mask', 'pos', 'h'], outputs: ['mask', 'pos', 'h'], atol: 0, rtol: 0 },
        inputs,
        expected: { ...inputs, h: f32([2], [0.5, -1.25]) },
      }),
    );
    expect(res.line).toBe('PASS dtypes/identity worst=mask maxabs=0');
  });

  it('fails a class no family implements', async () => {
    const res = await one(await writeCase('unknown/cls', doublerCase({ class: 'MegatronBertForMaskedLM' })));
    expect(res.status).toBe('unknown-class');
    expect(res.line).toBe('FAIL unknown/cls class MegatronBertForMaskedLM is not implemented (no registered family has it)');
  });

  it('fails unreadable cases: bad JSON, missing or incomplete expected.safetensors, bad fields, missing inputs', async () => {
    const badJson = await one(await writeCase('bad/json', { caseJson: '{"class": "FakeDoubler", ' }));
    expect(badJson.status).toBe('unreadable');
    expect(badJson.line).toMatch(/^FAIL bad\/json unreadable case: case\.json: invalid JSON: /);

    const noExpected = doublerCase();
    delete noExpected.expected;
    expect((await one(await writeCase('bad/no-expected', noExpected))).line).toBe(
      'FAIL bad/no-expected unreadable case: expected.safetensors: missing',
    );

    const incomplete = await one(
      await writeCase('bad/incomplete', doublerCase({ outputs: ['logits', 'ids', 'loss', 'grad.w', 'attentions.0'] })),
    );
    expect(incomplete.line).toBe(
      "FAIL bad/incomplete unreadable case: expected.safetensors: no tensor 'attentions.0' (named in case.json \"outputs\")",
    );

    const extra = await one(await writeCase('bad/extra', doublerCase({ outputs: ['logits', 'ids', 'loss'] })));
    expect(extra.line).toContain("'grad.w' not listed in case.json \"outputs\"");

    const noTol = await one(await writeCase('bad/no-atol', doublerCase({ atol: undefined })));
    expect(noTol.line).toBe('FAIL bad/no-atol unreadable case: case.json: "atol" must be a number >= 0');

    const noInputs = doublerCase();
    delete noInputs.inputs;
    expect((await one(await writeCase('bad/no-inputs', noInputs))).line).toBe(
      'FAIL bad/no-inputs unreadable case: inputs.safetensors: missing',
    );

    const corrupt = await writeCase('bad/corrupt', doublerCase());
    writeFileSync(join(corrupt, 'expected.safetensors'), 'not a safetensors file');
    expect((await one(corrupt)).line).toMatch(/^FAIL bad\/corrupt unreadable case: expected\.safetensors: /);
  });

  it('fails a case whose runner throws or returns something else, with the message on one line', async () => {
    const thrown = await one(await writeCase('err/throws', doublerCase({ class: 'FakeThrower' })));
    expect(thrown.status).toBe('error');
    expect(thrown.line).toBe('FAIL err/throws FakeThrower threw: boom | at the second line');
    const notMap = await one(await writeCase('err/not-map', doublerCase({ class: 'FakeNotAMap' })));
    expect(notMap.line).toBe(
      'FAIL err/not-map FakeNotAMap: the class runner returned [object Object], not a Map of outputs or { outputs: Map, values: object }',
    );
  });
});

describe('JSON expectations (tokenizer cases: expected_ids, decode_expected)', () => {
  const i32 = (data: number[]): T => ({ dtype: 'I32', shape: [data.length], data });
  /** A FakeCharCodes case on texts "ab", "C": ids 97 98 / 67. */
  function charCase(over: Record<string, unknown> = {}, config: Record<string, unknown> = {}, expected: Record<string, T> = {}): CaseFiles {
    return {
      spec: {
        class: 'FakeCharCodes',
        inputs: { texts: ['ab', 'C'] },
        outputs: ['0.ids', '1.ids'],
        expected_ids: [
          { ids: [97, 98], upper: 'AB' },
          { ids: [67], upper: 'C' },
        ],
        atol: 0,
        rtol: 0,
        ...over,
      },
      config,
      expected: { '0.ids': i32([97, 98]), '1.ids': i32([67]), ...expected },
    };
  }

  it('passes when host outputs and every expected_* field match, and says which fields it compared', async () => {
    const res = await one(await writeCase('json/pass', charCase()));
    expect(res.line).toBe('PASS json/pass worst=0.ids maxabs=0 values=expected_ids');
    expect(res.outputs.map((o) => o.name)).toEqual(['0.ids', '1.ids', 'expected_ids']);
  });

  it('fails a string, a list length or a key that differs, naming the first by path and counting them', async () => {
    const spec = charCase().spec!;
    const items = spec.expected_ids as { ids: number[]; upper: string }[];
    const res = await one(await writeCase('json/string', charCase({ expected_ids: [{ ...items[0], upper: 'Ab' }, { ids: [67, 0], upper: 'C' }] })));
    expect(res.status).toBe('mismatch');
    expect(res.line).toBe('FAIL json/string expected_ids[0].upper: "AB" != expected "Ab" (2 differences)');
    const keys = await one(await writeCase('json/keys', charCase({ expected_ids: [{ ids: [97, 98], text: 'ab' }, items[1]] })));
    expect(keys.line).toBe('FAIL json/keys expected_ids[0]: missing "text" (2 differences)');
  });

  it('fails when the runner returns no value for a field case.json has, or one it lacks', async () => {
    const missing = await one(await writeCase('json/missing', charCase({}, { drop: true })));
    expect(missing.line).toBe('FAIL json/missing expected_ids: missing: the class runner returned no value for this case.json field');
    const extra = await one(await writeCase('json/extra', charCase({ expected_ids: undefined })));
    expect(extra.line).toBe('FAIL json/extra FakeCharCodes: the class runner returned values for expected_ids, which case.json does not have');
  });

  it('compares host outputs with expected.safetensors exactly', async () => {
    const res = await one(await writeCase('json/host', charCase({}, {}, { '0.ids': i32([97, 99]) })));
    expect(res.line).toMatch(/^FAIL json\/host 0\.ids: 1 of 2 values differ \(exact match required\)/);
  });
});

describe('case discovery', () => {
  it('finds every case below a family folder, nested, in name order, named from the family folder', async () => {
    await writeCase('disc/fam/b_case', doublerCase());
    await writeCase('disc/fam/group/a_case', doublerCase());
    await writeCase('disc/fam/group/z_case', doublerCase({ class: 'Nope' }));
    mkdirSync(join(root, 'disc/fam/empty-sub'), { recursive: true });
    const { cases } = await discoverCases(join(root, 'disc/fam'));
    expect(cases.map((c) => c.label)).toEqual(['fam/b_case', 'fam/group/a_case', 'fam/group/z_case']);

    const r = await run([join(root, 'disc/fam')]);
    expect(r.results.map((x) => x.line.split(' ').slice(0, 2).join(' '))).toEqual([
      'PASS fam/b_case',
      'PASS fam/group/a_case',
      'FAIL fam/group/z_case',
    ]);
    expect(r.summary).toBe('2 passed, 1 failed');
    expect(r.exitCode).toBe(1);
  });

  it('takes a single case folder, names it <parent>/<case>, and runs a case given twice once', async () => {
    const dir = join(root, 'disc/fam/group/a_case');
    const r = await run([dir, dir]);
    expect(r.results.map((x) => x.label)).toEqual(['group/a_case']);
    expect(r.exitCode).toBe(0);
  });

  it('filters by substring of <family>/<case>', async () => {
    const r = await run([join(root, 'disc/fam')], 'group/a');
    expect(r.results.map((x) => x.label)).toEqual(['fam/group/a_case']);
    const none = await run([join(root, 'disc/fam')], 'no-such-case');
    expect(none.summary).toBe('0 passed, 0 failed');
    expect(none.exitCode).toBe(1); // nothing ran
  });

  it('fails a missing folder and a folder without cases', async () => {
    mkdirSync(join(root, 'disc/nothing-here/sub'), { recursive: true });
    const r = await run([join(root, 'disc/does-not-exist'), join(root, 'disc/nothing-here')]);
    expect(r.results.map((x) => x.ok)).toEqual([false, false]);
    expect(r.results[0].line).toMatch(/no such folder/);
    expect(r.results[1].line).toMatch(/no case folders \(with case\.json\) below/);
    expect(r.summary).toBe('0 passed, 2 failed');
    expect(r.exitCode).toBe(1);
  });
});

describe('the CLI (built dist/cli.js, as a child process)', () => {
  const exec = promisify(execFile);
  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await exec(process.execPath, [cliPath, ...args], { cwd: pkgDir });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };
  const lines = (s: string) => s.trimEnd().split('\n');

  it('prints one line per case and `N passed, M failed` last; exits 1 on a failure', async () => {
    const { code, stdout } = await cli('--backend', 'cpu', '--register', './test/fake-family.mjs', join(root, 'disc/fam'));
    expect(lines(stdout)).toEqual([
      expect.stringMatching(/^PASS fam\/b_case worst=logits maxabs=0$/),
      expect.stringMatching(/^PASS fam\/group\/a_case worst=logits maxabs=0$/),
      'FAIL fam/group/z_case class Nope is not implemented (no registered family has it)',
      '2 passed, 1 failed',
    ]);
    expect(code).toBe(1);
  });

  it('exits 0 when every case passes', async () => {
    const { code, stdout } = await cli('--register', './test/fake-family.mjs', join(root, 'disc/fam'), '--filter', 'a_case');
    expect(lines(stdout).at(-1)).toBe('1 passed, 0 failed');
    expect(code).toBe(0);
  });

  it('without --register, a fake class is not implemented; an empty selection exits 1', async () => {
    const r = await cli('--backend', 'cpu', join(root, 'pass/doubler'));
    expect(lines(r.stdout)).toEqual([
      'FAIL pass/doubler class FakeDoubler is not implemented (no registered family has it)',
      '0 passed, 1 failed',
    ]);
    expect(r.code).toBe(1);
    const none = await cli('--register', './test/fake-family.mjs', '--filter', 'zzz', join(root, 'disc/fam'));
    expect(lines(none.stdout)).toEqual(['0 passed, 0 failed']);
    expect(none.code).toBe(1);
  });

  it('exits 2 on usage errors', async () => {
    expect((await cli('--backend', 'tpu', root)).code).toBe(2);
    expect((await cli()).code).toBe(2);
    expect((await cli('--register', './test/no-such-module.mjs', root)).code).toBe(2);
    expect((await cli('--help')).code).toBe(0);
  });

  it('--backend webgpu runs the cases on WebGPU, or exits 3 with a clear message without an adapter', async () => {
    const { code, stdout, stderr } = await cli('--backend', 'webgpu', '--register', './test/fake-family.mjs', join(root, 'pass/doubler'));
    if (code === 3) {
      expect(process.env.LM_REQUIRE_WEBGPU, 'LM_REQUIRE_WEBGPU=1 but no WebGPU adapter').not.toBe('1');
      expect(stderr).toMatch(/--backend webgpu is not available: /);
      return;
    }
    expect(stderr).toMatch(/backend webgpu/);
    expect(lines(stdout)).toEqual([expect.stringMatching(/^PASS pass\/doubler worst=\S+ maxabs=\S+$/), '1 passed, 0 failed']);
    expect(code).toBe(0);
  });
});
