// Every hf-t5 and megatron-t5 parity fixture through the package's conformance runners, on cpu and
// webgpu, compared with expected.safetensors under the case's tolerances (exact for int and bool outputs).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromHost, Tensor, type Backend } from '@lm/tensor-gpu';
import { findSharedFixtures, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { readExpectedOutputs, safetensorsF32, type ConformanceCase } from '@lm/layers/testing';
import { modelRunners } from './conformance.js';

const fixtures = findSharedFixtures(import.meta.url);

function casesOf(family: string): { dir: string; names: string[] } {
  const dir = fixtures ? join(fixtures, family) : '';
  const names = dir && existsSync(dir) ? readdirSync(dir).filter((d) => existsSync(join(dir, d, 'case.json'))).sort() : [];
  return { dir, names };
}

function loadCase(dir: string, backend: Backend): ConformanceCase {
  const spec = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as ConformanceCase['spec'];
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as ConformanceCase['config'];
  const tensorInputs = new Map<string, Tensor>();
  if (spec.tensor_inputs?.length) {
    const stored = safetensorsF32(readFileSync(join(dir, 'inputs.safetensors')));
    for (const name of spec.tensor_inputs) {
      const t = stored.get(name);
      if (!t) throw new Error(`${dir}: inputs.safetensors has no F32 tensor '${name}'`);
      tensorInputs.set(name, fromHost(t.data, t.shape, 'float32', backend));
    }
  }
  return { dir, spec, config, tensorInputs, backend };
}

/** Runs one case; returns the failures (empty when every output is within tolerance). */
async function check(dir: string, backend: Backend): Promise<string[]> {
  const c = loadCase(dir, backend);
  const runner = modelRunners[c.spec.class];
  if (!runner) return [`class ${c.spec.class} is not implemented`];
  const actual = await runner(c);
  const expected = await readExpectedOutputs(dir);
  const failures: string[] = [];
  try {
    for (const name of c.spec.outputs) {
      const got = actual.get(name);
      const want = expected.get(name);
      if (!got || !want) {
        failures.push(`${name}: ${got ? 'not in expected.safetensors' : 'missing'}`);
        continue;
      }
      if (want.shape.join(',') !== got.shape.join(',')) {
        failures.push(`${name}: shape [${got.shape.join(',')}] != expected [${want.shape.join(',')}]`);
        continue;
      }
      const isGrad = name.startsWith('grad.');
      const overrides = (c.spec.output_tolerances as Record<string, { atol?: number; rtol?: number }> | undefined)?.[name];
      const atol = Number(overrides?.atol ?? (isGrad ? c.spec.grad_atol : undefined) ?? c.spec.atol ?? 1e-4);
      const rtol = Number(overrides?.rtol ?? (isGrad ? c.spec.grad_rtol : undefined) ?? c.spec.rtol ?? 1e-4);
      const a = got instanceof Tensor ? await got.data() : got.data;
      const exact = got instanceof Tensor ? got.dtype !== 'float32' : true;
      let worst = 0;
      let bad = -1;
      for (let i = 0; i < a.length; i++) {
        const e = Number(want.data[i]);
        const err = Math.abs(Number(a[i]) - e);
        const ok = exact ? err === 0 : err <= atol + rtol * Math.abs(e);
        if (!ok && bad < 0) bad = i;
        if (err > worst || Number.isNaN(err)) worst = Number.isNaN(err) ? Infinity : err;
      }
      if (bad >= 0) failures.push(`${name}: max abs err ${worst.toExponential(2)} (first at ${bad}: ${a[bad]} vs ${Number(want.data[bad])})`);
    }
  } finally {
    for (const t of actual.values()) if (t instanceof Tensor) t.dispose();
    for (const t of c.tensorInputs.values()) t.dispose();
  }
  return failures;
}

for (const family of ['hf-t5', 'megatron-t5']) {
  const { dir, names } = casesOf(family);

  describe.skipIf(names.length === 0)(`${family} fixtures: cpu`, () => {
    for (const name of names) {
      it(name, async () => {
        expect(await check(join(dir, name), testCpuBackend())).toEqual([]);
      });
    }
  });

  describe.skipIf(names.length === 0)(`${family} fixtures: webgpu`, async () => {
    const webgpu = await testWebGPUBackend();
    for (const name of names) {
      it.skipIf(!webgpu)(name, async () => {
        expect(await check(join(dir, name), webgpu!)).toEqual([]);
      });
    }
  });
}
