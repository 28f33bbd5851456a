// mseLoss and binaryCrossEntropyWithLogits against values computed here from the textbook formulas in
// float64 (not by the functions under test), their gradients by the closed forms (on cpu and webgpu)
// and by finite differences (cpu: gradcheck reads synchronously), and their errors.
import { afterAll, describe, expect, it } from 'vitest';
import { binaryCrossEntropyWithLogits, mseLoss, tensor } from '../index.js';
import { gradcheck, testCpuBackend, testWebGPUBackend } from '../testing/index.js';
import type { Backend } from '../backend.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

const close = (actual: ArrayLike<number>, expected: number[], tol = 1e-5) => {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(Math.abs(actual[i] - e), `index ${i}: ${actual[i]} vs ${e}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(e))));
};

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
/** The definition -[p y log s(x) + (1 - y) log(1 - s(x))], fine in float64 for moderate x. */
const bceNaive = (x: number, y: number, p = 1) => -(p * y * Math.log(sigmoid(x)) + (1 - y) * Math.log(1 - sigmoid(x)));

const X = [[0.5, -1.25, 2], [-0.3, 3.5, -2.75]];
const Y = [[1, 0, 0.25], [0, 1, 0.5]];
const flatX = X.flat();
const flatY = Y.flat();

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('losses on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const t = (data: number[] | number[][]) => tensor(data, { backend });

    it('mseLoss: mean, sum and none of (x - y)^2', async () => {
      const sq = flatX.map((x, i) => (x - flatY[i]) ** 2);
      const total = sq.reduce((a, b) => a + b, 0);
      close(await mseLoss(t(X), t(Y)).data(), [total / 6]);
      close(await mseLoss(t(X), t(Y), { reduction: 'sum' }).data(), [total]);
      const none = mseLoss(t(X), t(Y), { reduction: 'none' });
      expect([...none.shape]).toEqual([2, 3]);
      close(await none.data(), sq);
    });

    it('binaryCrossEntropyWithLogits: mean, sum, none, weight and posWeight match the definition', async () => {
      const per = flatX.map((x, i) => bceNaive(x, flatY[i]));
      const total = per.reduce((a, b) => a + b, 0);
      close(await binaryCrossEntropyWithLogits(t(X), t(Y)).data(), [total / 6]);
      close(await binaryCrossEntropyWithLogits(t(X), t(Y), { reduction: 'sum' }).data(), [total]);
      close(await binaryCrossEntropyWithLogits(t(X), t(Y), { reduction: 'none' }).data(), per);
      // weight [3] scales each column; posWeight [3] the positive term of each class (last dim).
      const w = [0.5, 2, 1];
      const p = [3, 0.5, 1.5];
      const weighted = flatX.map((x, i) => w[i % 3] * bceNaive(x, flatY[i], p[i % 3]));
      const out = binaryCrossEntropyWithLogits(t(X), t(Y), { weight: t(w), posWeight: t(p), reduction: 'none' });
      close(await out.data(), weighted);
    });

    it('binaryCrossEntropyWithLogits stays finite and exact for large logits', async () => {
      // y = 0, x = 100: -log(1 - s(100)) = 100 + log(1 + e^-100) = 100; y = 1, x = -100 likewise;
      // the right answers (x = 100, y = 1 and x = -100, y = 0) cost log(1 + e^-100) ~ 3.7e-44 -> 0.
      const out = await binaryCrossEntropyWithLogits(t([100, -100, 100, -100]), t([0, 1, 1, 0]), { reduction: 'none' }).data();
      close(out, [100, 100, 0, 0]);
    });

    it('gradients match the closed forms: mseLoss (input, target), binaryCrossEntropyWithLogits (input, target, weight, posWeight)', async () => {
      const leaf = (data: number[] | number[][]) => {
        const v = t(data);
        v.requiresGrad = true;
        return v;
      };
      // mean mse: d/dx = 2 (x - y) / n, d/dy = -2 (x - y) / n
      const [mx, my] = [leaf(X), leaf(Y)];
      mseLoss(mx, my).backward();
      close(await mx.grad!.data(), flatX.map((x, i) => (2 * (x - flatY[i])) / 6));
      close(await my.grad!.data(), flatX.map((x, i) => (-2 * (x - flatY[i])) / 6));
      // mean bce, no weights: d/dx = (s(x) - y) / n
      const z = leaf(X);
      binaryCrossEntropyWithLogits(z, t(Y)).backward();
      close(await z.grad!.data(), flatX.map((x, i) => (sigmoid(x) - flatY[i]) / 6));
      // summed bce with weight w and posWeight p per class, l = w [(1 - y) x + (1 + (p - 1) y) sp], sp = -log s(x):
      // dl/dx = w [(1 - y) - (1 + (p - 1) y)(1 - s(x))], dl/dy = w [(p - 1) sp - x], dl/dw = l / w, dl/dp = w y sp
      const w = [0.5, 2, 1];
      const p = [3, 0.5, 1.5];
      const [bx, by, bw, bp] = [leaf(X), leaf(Y), leaf(w), leaf(p)];
      binaryCrossEntropyWithLogits(bx, by, { weight: bw, posWeight: bp, reduction: 'sum' }).backward();
      const sp = (x: number) => -Math.log(sigmoid(x));
      const per = (f: (x: number, y: number, w: number, p: number) => number) => flatX.map((x, i) => f(x, flatY[i], w[i % 3], p[i % 3]));
      const byClass = (v: number[]) => [0, 1, 2].map((c) => v[c] + v[c + 3]);
      close(await bx.grad!.data(), per((x, y, wc, pc) => wc * (1 - y - (1 + (pc - 1) * y) * (1 - sigmoid(x)))));
      close(await by.grad!.data(), per((x, _y, wc, pc) => wc * ((pc - 1) * sp(x) - x)));
      close(await bw.grad!.data(), byClass(per((x, y, _wc, pc) => bceNaive(x, y, pc))));
      close(await bp.grad!.data(), byClass(per((x, y, wc) => wc * y * sp(x))));
    });
  });
});

describe('loss gradients by finite differences and errors (cpu)', () => {
  const backend = testCpuBackend();
  // Logits kept away from 0, where |x| and max(-x, 0) have their kinks.
  const logits = { shape: [2, 3], values: [0.5, -1.25, 2, -0.3, 3.5, -2.75] };

  it('finite differences: mseLoss (input and target), binaryCrossEntropyWithLogits (input, target, weight, posWeight)', () => {
    for (const reduction of ['mean', 'sum'] as const) {
      const mse = gradcheck((a, b) => mseLoss(a, b, { reduction }), [{ shape: [2, 3] }, { shape: [2, 3] }], backend);
      expect(mse.worst, mse.detail).toBeLessThanOrEqual(1);
      const bce = gradcheck(
        (x, y, w, p) => binaryCrossEntropyWithLogits(x, y, { weight: w, posWeight: p, reduction }),
        [logits, { shape: [2, 3], kind: 'unit' }, { shape: [3], kind: 'positive' }, { shape: [3], kind: 'positive' }],
        backend,
      );
      expect(bce.worst, bce.detail).toBeLessThanOrEqual(1);
    }
  });

  it('refuses mismatched shapes, integer targets and unknown reductions, naming the op', () => {
    const x = tensor(X, { backend });
    expect(() => mseLoss(x, tensor([1, 2, 3], { backend }))).toThrow(/mseLoss: input \[2,3\] and target \[3\] must have the same shape/);
    expect(() => binaryCrossEntropyWithLogits(x, tensor([[1, 0, 1], [0, 1, 0]], { backend, dtype: 'int32' }))).toThrow(/binaryCrossEntropyWithLogits.*target/);
    expect(() => binaryCrossEntropyWithLogits(x, tensor(Y, { backend }), { posWeight: tensor([1, 2], { backend }) })).toThrow(/posWeight/);
    expect(() => mseLoss(x, x, { reduction: 'avg' as 'mean' })).toThrow(/mseLoss: reduction must be 'mean', 'sum' or 'none', got 'avg'/);
  });
});
