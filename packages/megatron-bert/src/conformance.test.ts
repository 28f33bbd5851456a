// Every megatron-bert parity fixture through the package's conformance runners, on cpu and webgpu,
// compared with expected.safetensors under the case's tolerances.

import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '@lm/dist-ckpt';
import { fromHost, type Backend, type Tensor } from '@lm/tensor-gpu';
import { findSharedFixtures, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import type { ConformanceCase } from '@lm/layers/testing';
import { conformance } from './conformance.js';

const fixtures = findSharedFixtures(import.meta.url);
const familyDir = fixtures ? join(fixtures, 'megatron-bert') : null;
const cases = familyDir && existsSync(familyDir) ? readdirSync(familyDir).filter((d) => existsSync(join(familyDir, d, 'case.json'))).sort() : [];

async function loadCase(dir: string, backend: Backend): Promise<ConformanceCase> {
  const spec = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as ConformanceCase['spec'];
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as ConformanceCase['config'];
  const tensorInputs = new Map<string, Tensor>();
  if (spec.tensor_inputs?.length) {
    const ckpt = await openCheckpoint(join(dir, 'inputs.safetensors'));
    for (const name of spec.tensor_inputs) {
      const { data, shape } = await ckpt.readTensor(name);
      const dtype = data instanceof Int32Array ? 'int32' : data instanceof Uint8Array ? 'bool' : 'float32';
      tensorInputs.set(name, fromHost(data, shape, dtype, backend));
    }
    await ckpt.close();
  }
  return { dir, spec, config, tensorInputs, backend };
}

/** Runs one case; returns the failures (empty when every output is within tolerance). */
async function check(dir: string, backend: Backend): Promise<string[]> {
  const c = await loadCase(dir, backend);
  const runner = conformance.classes[c.spec.class];
  if (!runner) return [`class ${c.spec.class} is not implemented`];
  const actual = await runner(c);
  const expected = await openCheckpoint(join(dir, 'expected.safetensors'));
  const failures: string[] = [];
  try {
    for (const name of c.spec.outputs) {
      const got = actual.get(name);
      if (!got) {
        failures.push(`${name}: missing`);
        continue;
      }
      const want = await expected.readTensor(name);
      if (want.shape.join(',') !== got.shape.join(',')) {
        failures.push(`${name}: shape [${got.shape.join(',')}] != expected [${want.shape.join(',')}]`);
        continue;
      }
      const isGrad = name.startsWith('grad.');
      const atol = Number((isGrad ? c.spec.grad_atol : undefined) ?? c.spec.atol ?? 1e-4);
      const rtol = Number((isGrad ? c.spec.grad_rtol : undefined) ?? c.spec.rtol ?? 1e-4);
      const exact = !(want.data instanceof Float32Array);
      const a = await got.data();
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
    await expected.close();
    for (const t of actual.values()) t.dispose();
    for (const t of c.tensorInputs.values()) t.dispose();
  }
  return failures;
}

describe.skipIf(cases.length === 0)('megatron-bert fixtures: cpu', () => {
  for (const name of cases) {
    it(name, async () => {
      expect(await check(join(familyDir!, name), testCpuBackend())).toEqual([]);
    });
  }
});

describe.skipIf(cases.length === 0)('megatron-bert fixtures: webgpu', async () => {
  const webgpu = await testWebGPUBackend();
  for (const name of cases) {
    it.skipIf(!webgpu)(name, async () => {
      expect(await check(join(familyDir!, name), webgpu!)).toEqual([]);
    });
  }
});
