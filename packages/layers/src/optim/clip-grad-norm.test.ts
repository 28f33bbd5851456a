import { afterAll, describe, expect, it } from 'vitest';
import { memory, type Backend, type Tensor } from '@lm/tensor-gpu';
import { compareArrays, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { clipGradNorm } from './clip-grad-norm.js';
import { OptimizerError } from './optimizer.js';
import { upload } from './testing.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

/** torch.nn.utils.clip_grad_norm_ in float64: total = norm of per-grad norms; g *= min(1, max/(total+1e-6)). */
function referenceClip(grads: number[][], maxNorm: number, p: number): { total: number; clipped: number[][] } {
  const norm = (xs: number[]) => (p === Infinity ? Math.max(...xs.map(Math.abs)) : xs.reduce((s, x) => s + Math.abs(x) ** p, 0) ** (1 / p));
  const total = norm(grads.map(norm));
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  return { total, clipped: grads.map((g) => g.map((x) => x * coef)) };
}

const GRADS = [
  [0.5, -1.25, 2, 0.75, -0.125, 3],
  [-2.5, 1.5, 0.25],
  [4, -0.5, 1, -3.5],
];
const SHAPES = [[2, 3], [3], [2, 2]];

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  const r = compareArrays(got, want, 1e-7, 1e-6);
  if (!r.ok) throw new Error(`${what}: max |diff| ${r.maxAbs} at ${r.at} (got ${got[r.at]}, want ${want[r.at]})`);
}

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('clipGradNorm on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const makeParams = (withGrad: boolean[] = [true, true, true]): Tensor[] =>
      SHAPES.map((s, i) => {
        const p = upload(new Array(GRADS[i].length).fill(1), s, backend).requiresGrad_();
        if (withGrad[i]) p.grad = upload(GRADS[i], s, backend);
        return p;
      });
    const dispose = (ps: Tensor[]) =>
      ps.forEach((p) => {
        p.zeroGrad();
        p.dispose();
      });

    const cases = [
      { normType: 2, maxNorm: 100, label: 'L2 norm below maxNorm leaves grads unchanged' },
      { normType: 2, maxNorm: 1.5, label: 'L2 norm above maxNorm scales grads' },
      { normType: Infinity, maxNorm: 2, label: 'inf norm above maxNorm' },
      { normType: Infinity, maxNorm: 10, label: 'inf norm below maxNorm' },
      { normType: 1, maxNorm: 3, label: 'L1 norm' },
      { normType: 3, maxNorm: 2, label: 'L3 norm' },
    ];
    for (const c of cases) {
      it(c.label, async () => {
        const params = makeParams();
        const before = memory().tensors;
        const total = clipGradNorm(params, c.maxNorm, c.normType);
        expect(memory().tensors).toBe(before + 1); // the returned norm; old grads were replaced
        expect(total.shape).toEqual([]);
        const want = referenceClip(GRADS, c.maxNorm, c.normType);
        expectClose([await total.item()], [want.total], 'total norm');
        for (let i = 0; i < params.length; i++) {
          const got = await params[i].grad!.data();
          if (want.total < c.maxNorm) expect(Array.from(got)).toEqual(GRADS[i]);
          else expectClose(got, want.clipped[i], `grad ${i}`);
        }
        total.dispose();
        dispose(params);
      });
    }

    it('ignores params without a grad, and returns 0 when none has one', async () => {
      const params = makeParams([true, false, true]);
      const total = clipGradNorm(params, 1);
      const want = referenceClip([GRADS[0], GRADS[2]], 1, 2);
      expectClose([await total.item()], [want.total], 'total norm');
      expect(params[1].grad).toBeNull();
      expectClose(await params[2].grad!.data(), want.clipped[1], 'grad 2');
      total.dispose();
      dispose(params);
      const none = makeParams([false, false, false]);
      const zero = clipGradNorm(none, 1);
      expect(await zero.item()).toBe(0);
      zero.dispose();
      dispose(none);
    });

    it('clips autograd gradients that share storage exactly once each', async () => {
      // d(sum(a + b))/da and /db are views of one ones-tensor: an in-place scale would apply twice.
      const a = upload([1, 2, 3, 4], [4], backend).requiresGrad_();
      const b = upload([5, 6, 7, 8], [4], backend).requiresGrad_();
      const loss = a.add(b).sum().mulScalar(3);
      loss.backward();
      const total = clipGradNorm([a, b], 1);
      const want = referenceClip([new Array(4).fill(3), new Array(4).fill(3)], 1, 2);
      expectClose([await total.item()], [want.total], 'total norm');
      expectClose(await a.grad!.data(), want.clipped[0], 'a.grad');
      expectClose(await b.grad!.data(), want.clipped[1], 'b.grad');
      for (const t of [total, loss]) t.dispose();
      dispose([a, b]);
    });
  });
});

describe('clipGradNorm validation', () => {
  it('rejects norm types <= 0 and NaN maxNorm', () => {
    const p = upload([1], [1], testCpuBackend());
    expect(() => clipGradNorm([p], 1, 0)).toThrow(OptimizerError);
    expect(() => clipGradNorm([p], 1, -2)).toThrow(/normType must be a number > 0 or Infinity, got -2/);
    expect(() => clipGradNorm([p], NaN)).toThrow(/maxNorm must be a number/);
    p.dispose();
  });
});
