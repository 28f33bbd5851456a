import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '@lm/tensor-gpu';
import { testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { Adam, AdamW, type AdamHyperparams } from './adam.js';
import { OptimizerError } from './optimizer.js';
import { expectTrajectory, quadratic, quadraticGrad, quadraticParams, runQuadratic, type Quadratic } from './testing.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

/**
 * torch.optim.Adam / AdamW as documented (the algorithm boxes), in float64:
 *   g = -g if maximize;  AdamW: p = p * (1 - lr*wd);  Adam: g = g + wd*p
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  vmax = max(vmax, v) (amsgrad)
 *   p = p - lr/(1-b1^t) * m / (sqrt(v or vmax)/sqrt(1-b2^t) + eps)
 */
function referenceAdam(q: Quadratic, scales: number[], hyper: (i: number) => AdamHyperparams, decoupled: boolean, skip = new Set<number>()): Float64Array[][] {
  const p = q.init.map((a) => Float64Array.from(a));
  const m = p.map((a) => new Float64Array(a.length));
  const v = p.map((a) => new Float64Array(a.length));
  const vmax = p.map((a) => new Float64Array(a.length));
  const steps = p.map(() => 0);
  const out: Float64Array[][] = [];
  for (const scale of scales) {
    p.forEach((pi, i) => {
      if (skip.has(i)) return;
      const { lr, betas, eps, weightDecay: wd, amsgrad, maximize } = hyper(i);
      const [b1, b2] = betas;
      const t = ++steps[i];
      const g = quadraticGrad(q, i, pi, scale);
      for (let k = 0; k < pi.length; k++) {
        let gk = maximize ? -g[k] : g[k];
        if (wd !== 0) {
          if (decoupled) pi[k] *= 1 - lr * wd;
          else gk += wd * pi[k];
        }
        m[i][k] = b1 * m[i][k] + (1 - b1) * gk;
        v[i][k] = b2 * v[i][k] + (1 - b2) * gk * gk;
        vmax[i][k] = Math.max(vmax[i][k], v[i][k]);
        const second = amsgrad ? vmax[i][k] : v[i][k];
        const denom = Math.sqrt(second) / Math.sqrt(1 - b2 ** t) + eps;
        pi[k] -= (lr / (1 - b1 ** t)) * (m[i][k] / denom);
      }
    });
    out.push(p.map((a) => Float64Array.from(a)));
  }
  return out;
}

const ADAMW: AdamHyperparams = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, maximize: false };
const SHAPES = [[4, 5], [7], [2, 3, 2]];
// Loss scales per step: gradients that shrink and grow, so the second moment falls at times (AMSGrad).
const SCALES = [1, 0.3, 2, 0.05, 0.5, 1.5, 0.1];

describe('AdamW/Adam defaults and validation', () => {
  const backend = testCpuBackend();
  it('AdamW has torch.optim.AdamW defaults; Adam has weightDecay 0', () => {
    const q = quadratic(1, [[2]]);
    const { params: _p, ...hyper } = new AdamW(quadraticParams(q, backend)).paramGroups[0];
    expect(hyper).toEqual(ADAMW);
    expect(new Adam(quadraticParams(q, backend)).paramGroups[0].weightDecay).toBe(0);
  });

  it('rejects hyperparameters out of range, naming the group', () => {
    const ps = quadraticParams(quadratic(1, [[2]]), backend);
    expect(() => new AdamW(ps, { lr: -1 })).toThrow(OptimizerError);
    expect(() => new AdamW(ps, { lr: -1 })).toThrow(/AdamW: param group 0: lr must be a number >= 0, got -1/);
    expect(() => new AdamW(ps, { betas: [1, 0.999] })).toThrow(/betas\[0\] must be a number in \[0, 1\), got 1/);
    expect(() => new Adam([{ params: ps, eps: -1 }])).toThrow(/Adam: param group 0: eps/);
  });
});

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('Adam/AdamW trajectories on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const q = quadratic(42, SHAPES);

    it('AdamW with decoupled weight decay and bias correction matches the reference', async () => {
      const hyper: AdamHyperparams = { ...ADAMW, lr: 0.02, weightDecay: 0.1 };
      const params = quadraticParams(q, backend);
      const opt = new AdamW(params, { lr: 0.02, weightDecay: 0.1 });
      expectTrajectory(await runQuadratic(q, params, opt, SCALES), referenceAdam(q, SCALES, () => hyper, true));
      opt.dispose();
      params.forEach((p) => p.dispose());
    });

    it('AdamW with amsgrad matches the reference (and differs from plain AdamW)', async () => {
      const hyper: AdamHyperparams = { ...ADAMW, lr: 0.02, betas: [0.8, 0.6], weightDecay: 0.05, amsgrad: true };
      const params = quadraticParams(q, backend);
      const opt = new AdamW(params, hyper);
      const got = await runQuadratic(q, params, opt, SCALES);
      expectTrajectory(got, referenceAdam(q, SCALES, () => hyper, true));
      expect(() => expectTrajectory(got, referenceAdam(q, SCALES, () => ({ ...hyper, amsgrad: false }), true))).toThrow();
      expect([...opt.state.values()][0].max_exp_avg_sq).toBeDefined();
      opt.dispose();
      params.forEach((p) => p.dispose());
    });

    it('Adam with L2 weight decay and maximize matches the reference', async () => {
      const hyper: AdamHyperparams = { ...ADAMW, lr: 0.01, weightDecay: 0.2, maximize: true };
      const params = quadraticParams(q, backend);
      const opt = new Adam(params, { lr: 0.01, weightDecay: 0.2, maximize: true });
      expectTrajectory(await runQuadratic(q, params, opt, SCALES), referenceAdam(q, SCALES, () => hyper, false));
      opt.dispose();
      params.forEach((p) => p.dispose());
    });

    it('param groups keep their own lr and weight decay; params without a grad are skipped', async () => {
      const params = quadraticParams(q, backend);
      const opt = new AdamW([{ params: [params[0], params[1]], lr: 0.05 }, { params: [params[2]], weightDecay: 0 }], { lr: 0.01, weightDecay: 0.1 });
      const hyper = (i: number): AdamHyperparams => (i < 2 ? { ...ADAMW, lr: 0.05, weightDecay: 0.1 } : { ...ADAMW, lr: 0.01, weightDecay: 0 });
      const skip = new Set([1]);
      const got = await runQuadratic(q, params, opt, SCALES, { skip });
      expectTrajectory(got, referenceAdam(q, SCALES, hyper, true, skip));
      expect(Array.from(got[got.length - 1][1])).toEqual(Array.from(q.init[1]));
      expect(opt.state.has(params[1])).toBe(false);
      expect(opt.state.get(params[0])!.step).toBe(SCALES.length);
      opt.dispose();
      params.forEach((p) => p.dispose());
    });
  });
});
