import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend.js';
import { noGrad } from '../autograd.js';
import { fromHost } from './creation.js';
import { adamStep_ } from './optim.js';
import { compareArrays, hostInput, testCpuBackend, testWebGPUBackend, withoutFusedKernels } from '../testing/index.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

/** torch's single-tensor Adam/AdamW in float64, the reference for the fused kernel. */
function reference(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, vmax: Float64Array | null, h: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; decoupled: boolean; maximize: boolean; step: number }) {
  const bc1 = 1 - h.beta1 ** h.step;
  const bc2 = 1 - h.beta2 ** h.step;
  for (let i = 0; i < p.length; i++) {
    let gi = h.maximize ? -g[i] : g[i];
    let base = p[i];
    if (h.decoupled) base = p[i] * (1 - h.lr * h.weightDecay);
    else gi += h.weightDecay * p[i];
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * gi;
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * gi * gi;
    let second = v[i];
    if (vmax) second = vmax[i] = Math.max(vmax[i], v[i]);
    p[i] = base - (h.lr / bc1) * (m[i] / (Math.sqrt(second) / Math.sqrt(bc2) + h.eps));
  }
}

// 'cpu without fused kernels' runs the composite update.
const backends: Record<string, Backend | null> = { cpu: testCpuBackend(), webgpu, 'cpu without fused kernels': withoutFusedKernels(testCpuBackend()) };

describe.each(Object.keys(backends).map((name) => ({ name })))('adamStep_ on $name', ({ name }) => {
  const backend = backends[name]!;
  describe.skipIf(!backend)(name, () => {
    const variants = [
      { decoupled: true, maximize: false, amsgrad: false, weightDecay: 0.01 },
      { decoupled: false, maximize: false, amsgrad: false, weightDecay: 0.1 },
      { decoupled: true, maximize: true, amsgrad: true, weightDecay: 0 },
    ];
    for (const variant of variants) {
      it(`matches torch's formula over 5 steps (${JSON.stringify(variant)})`, async () => {
        const n = 37;
        const p64 = Float64Array.from(hostInput({ shape: [n] }, 1));
        const m64 = new Float64Array(n);
        const v64 = new Float64Array(n);
        const x64 = variant.amsgrad ? new Float64Array(n) : null;
        const t = (a: Float64Array) => fromHost(Float32Array.from(a), [n], 'float32', backend);
        const p = t(p64);
        const m = t(m64);
        const v = t(v64);
        const vmax = x64 ? t(x64) : null;
        const hyper = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, ...variant };
        for (let step = 1; step <= 5; step++) {
          const g64 = Float64Array.from(hostInput({ shape: [n] }, 10 + step));
          const g = t(g64);
          noGrad(() =>
            adamStep_(p, g, m, v, vmax, { ...hyper, biasCorrection1: 1 - 0.9 ** step, biasCorrection2: 1 - 0.999 ** step }),
          );
          reference(p64, g64, m64, v64, x64, { ...hyper, step });
          g.dispose();
        }
        const r = compareArrays(await p.data(), Array.from(p64), 1e-6, 1e-5);
        expect(r.ok, `max abs ${r.maxAbs}`).toBe(true);
        expect(compareArrays(await v.data(), Array.from(v64), 1e-8, 1e-5).ok).toBe(true);
      });
    }

    it('names the bad argument', () => {
      const a = fromHost(new Float32Array(4), [4], 'float32', backend);
      const b = fromHost(new Float32Array(3), [3], 'float32', backend);
      const h = { lr: 1, beta1: 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0, decoupled: true, maximize: false, biasCorrection1: 0.1, biasCorrection2: 0.1 };
      expect(() => adamStep_(a, b, a, a, null, h)).toThrow(/adamStep: grad \[3\] float32 does not match param \[4\] float32/);
    });
  });
});
