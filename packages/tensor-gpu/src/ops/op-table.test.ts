// Runs the whole op-case table on cpu and on webgpu, comparing webgpu with cpu; gradients too. It also
// runs on the cpu backend with its fused kernels removed (all of them, or only the backward ones), where
// every op takes its composite path: the fused kernels must agree with their composites.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend.js';
import { scope } from '../memory.js';
import type { Tensor } from '../tensor.js';
import { OP_CASES, compareArrays, makeInput, testCpuBackend, testWebGPUBackend, withoutFusedKernels, type OpCase } from '../testing/index.js';

const cpuBackend = testCpuBackend();
const webgpu = await testWebGPUBackend();
const backends: Record<string, Backend | null> = {
  cpu: cpuBackend,
  webgpu,
  'cpu without fused kernels': withoutFusedKernels(cpuBackend),
  'cpu without fused backward kernels': withoutFusedKernels(cpuBackend, ['softmaxBackward', 'layerNormBackward', 'geluBackward', 'siluBackward']),
};

function asList(out: Tensor | Tensor[]): Tensor[] {
  return Array.isArray(out) ? out : [out];
}

/** Forward (and backward) inside a scope; returns the tensors to read, which the caller disposes. */
function computeCase(c: OpCase, backend: Backend, withGrad: boolean): { outputs: Tensor[]; grads: (Tensor | null)[] } {
  return scope(() => {
    const inputs = c.inputs.map((s, i) => makeInput({ ...s, requiresGrad: withGrad ? s.requiresGrad : false }, 1 + i, backend));
    const outputs = asList(c.run(...inputs));
    const floats = outputs.filter((o) => o.requiresGrad);
    if (!withGrad || floats.length === 0) return { outputs, grads: [] };
    let loss = floats[0].mul(floats[0]).sum();
    for (const o of floats.slice(1)) loss = loss.add(o.mul(o).sum());
    loss.backward();
    return { outputs, grads: inputs.map((t) => t.grad) };
  });
}

async function runCase(c: OpCase, backend: Backend, withGrad: boolean) {
  const { outputs, grads } = computeCase(c, backend, withGrad);
  const values = await Promise.all(outputs.map((o) => o.data()));
  const gradValues = await Promise.all(grads.map(async (g) => (g ? ((await g.data()) as Float32Array) : null)));
  const meta = outputs.map((o) => ({ shape: [...o.shape], dtype: o.dtype }));
  [...outputs, ...grads].forEach((t) => t?.dispose());
  return { values, meta, grads: gradValues };
}

describe.each(Object.keys(backends).map((name) => ({ name })))('op table on $name', ({ name }) => {
  const backend = backends[name];
  describe.skipIf(!backend)(name, () => {
    for (const c of OP_CASES) {
      it(c.name, async () => {
        const expected = await runCase(c, cpuBackend, c.grad !== false);
        for (const v of expected.values) expect(v.length).toBeGreaterThan(0);
        if (name === 'cpu') return;
        const actual = await runCase(c, backend!, c.grad !== false);
        expect(actual.meta).toEqual(expected.meta);
        actual.values.forEach((v, i) => {
          const r = compareArrays(v, expected.values[i], c.atol ?? 1e-5, c.rtol ?? 1e-4);
          expect(r.ok, `output ${i}: max abs err ${r.maxAbs} at ${r.at}: ${v[r.at]} vs ${expected.values[i][r.at]}`).toBe(true);
        });
        actual.grads.forEach((g, i) => {
          const e = expected.grads[i];
          expect(g === null, `grad ${i} presence`).toBe(e === null);
          if (g && e) {
            const r = compareArrays(g, e, 1e-4, 1e-3);
            expect(r.ok, `grad ${i}: max abs err ${r.maxAbs} at ${r.at}`).toBe(true);
          }
        });
      });
    }
  });
});

afterAll(() => webgpu?.destroy());
