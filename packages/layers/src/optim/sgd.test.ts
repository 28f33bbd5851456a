import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '@lm/tensor-gpu';
import { testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { SGD, SGD_DEFAULTS, type SGDHyperparams } from './sgd.js';
import { OptimizerError } from './optimizer.js';
import { expectTrajectory, quadratic, quadraticGrad, quadraticParams, runQuadratic, type Quadratic } from './testing.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

/**
 * torch.optim.SGD as documented, in float64:
 *   g = -g if maximize;  g = g + wd*p
 *   b = g (first step) else b = mu*b + (1-dampening)*g;  g = nesterov ? g + mu*b : b   (when mu != 0)
 *   p = p - lr*g
 */
function referenceSGD(q: Quadratic, scales: number[], h: SGDHyperparams): Float64Array[][] {
  const p = q.init.map((a) => Float64Array.from(a));
  const buf: (Float64Array | null)[] = p.map(() => null);
  const out: Float64Array[][] = [];
  for (const scale of scales) {
    p.forEach((pi, i) => {
      const g = quadraticGrad(q, i, pi, scale).map((v, k) => (h.maximize ? -v : v) + h.weightDecay * pi[k]);
      let d = g;
      if (h.momentum !== 0) {
        const b = buf[i] ? buf[i]!.map((bv, k) => h.momentum * bv + (1 - h.dampening) * g[k]) : Float64Array.from(g);
        buf[i] = b;
        d = h.nesterov ? g.map((gv, k) => gv + h.momentum * b[k]) : b;
      }
      for (let k = 0; k < pi.length; k++) pi[k] -= h.lr * d[k];
    });
    out.push(p.map((a) => Float64Array.from(a)));
  }
  return out;
}

const SHAPES = [[3, 4], [5]];
const SCALES = [1, 0.5, 2, 0.25, 1, 0.75];
const CASES: { name: string; options: Partial<SGDHyperparams> }[] = [
  { name: 'plain', options: { lr: 0.1 } },
  { name: 'weight decay', options: { lr: 0.1, weightDecay: 0.05 } },
  { name: 'momentum with dampening', options: { lr: 0.05, momentum: 0.9, dampening: 0.3 } },
  { name: 'nesterov with weight decay', options: { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.01 } },
  { name: 'maximize with momentum', options: { lr: 0.02, momentum: 0.5, maximize: true } },
];

describe('SGD defaults and validation', () => {
  const ps = quadraticParams(quadratic(1, [[2]]), testCpuBackend());
  it('has torch.optim.SGD defaults', () => {
    const { params: _p, ...hyper } = new SGD(ps).paramGroups[0];
    expect(hyper).toEqual({ lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false });
  });
  it('rejects Nesterov without momentum or with dampening', () => {
    expect(() => new SGD(ps, { nesterov: true })).toThrow(OptimizerError);
    expect(() => new SGD(ps, { nesterov: true, momentum: 0.9, dampening: 0.1 })).toThrow(/Nesterov momentum needs momentum > 0 and dampening 0/);
    expect(() => new SGD(ps, { momentum: -0.1 })).toThrow(/momentum must be a number >= 0, got -0.1/);
  });
});

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('SGD trajectories on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const q = quadratic(7, SHAPES);
    for (const c of CASES) {
      it(`${c.name} matches the reference`, async () => {
        const params = quadraticParams(q, backend);
        const opt = new SGD(params, c.options);
        expectTrajectory(await runQuadratic(q, params, opt, SCALES), referenceSGD(q, SCALES, { ...SGD_DEFAULTS, ...c.options }));
        expect(opt.state.size).toBe(c.options.momentum ? params.length : 0);
        opt.dispose();
        params.forEach((p) => p.dispose());
      });
    }
  });
});
