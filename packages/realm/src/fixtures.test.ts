// Every realm parity fixture (../shared/fixtures/realm) through the package's conformance runners, on
// cpu and webgpu, compared with expected.safetensors under the case's tolerances (integer and bool
// outputs exactly).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '@lm/dist-ckpt';
import { fromHost, type Backend, type Tensor } from '@lm/tensor-gpu';
import { findSharedFixtures, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import type { ConformanceCase } from '@lm/layers/testing';
import { conformance } from './conformance.js';

const fixtures = findSharedFixtures(import.meta.url);
const familyDir = fixtures ? join(fixtures, 'realm') : null;
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
  const result = await conformance.classes[c.spec.class](c);
  const actual = (result instanceof Map ? result : result.outputs) as Map<string, Tensor>;
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
      const atol = Number((isGrad ? c.spec.grad_atol : undefined) ?? c.spec.atol);
      const rtol = Number((isGrad ? c.spec.grad_rtol : undefined) ?? c.spec.rtol);
      const exact = !(want.data instanceof Float32Array);
      const a = await got.data();
      for (let i = 0; i < a.length; i++) {
        const e = Number(want.data[i]);
        const err = Math.abs(Number(a[i]) - e);
        if (exact ? err !== 0 : !(err <= atol + rtol * Math.abs(e))) {
          failures.push(`${name}[${i}]: ${a[i]} vs ${e}`);
          break;
        }
      }
    }
  } finally {
    await expected.close();
    for (const t of actual.values()) t.dispose();
    for (const t of c.tensorInputs.values()) t.dispose();
  }
  return failures;
}

describe('realm fixtures are present', () => {
  it.skipIf(!fixtures)('every class of the family has a case', () => {
    const classes = new Set(cases.map((name) => (JSON.parse(readFileSync(join(familyDir!, name, 'case.json'), 'utf8')) as { class: string }).class));
    expect([...classes].sort()).toEqual(['RealmEmbedder', 'RealmForOpenQA', 'RealmKnowledgeAugEncoder', 'RealmReader', 'RealmScorer']);
  });
});

describe.skipIf(cases.length === 0)('realm fixtures: cpu', () => {
  for (const name of cases) {
    it(name, async () => {
      expect(await check(join(familyDir!, name), testCpuBackend())).toEqual([]);
    });
  }
});

describe.skipIf(cases.length === 0)('realm fixtures: webgpu', async () => {
  const webgpu = await testWebGPUBackend();
  for (const name of cases) {
    it.skipIf(!webgpu)(name, async () => {
      expect(await check(join(familyDir!, name), webgpu!)).toEqual([]);
    });
  }
});
