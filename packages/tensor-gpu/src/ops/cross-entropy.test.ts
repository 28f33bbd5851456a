// The fused cross-entropy (FusedKernels.crossEntropy / crossEntropyBackward) on both backends, against a
// float64 reference computed here from the definition: every reduction, ignored rows (all of them too),
// label smoothing, rank-3 logits, large logits, rows long enough for the wasm row tasks on both threads;
// plus the out-of-range target error and the memory it keeps.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend.js';
import { IndexError } from '../errors.js';
import { crossEntropy, memory, scope, tensor, type Tensor } from '../index.js';
import { compareArrays, gradcheck, hostInput, testCpuBackend, testWebGPUBackend } from '../testing/index.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

interface Reference {
  /** Per-row losses (0 at ignored rows). */
  loss: Float64Array;
  /** d(sum of w[n] loss[n]) / dlogits, [N, C]. */
  grad: (w: ArrayLike<number>) => Float64Array;
}

/** -(1 - eps) log p[t] - eps mean_c log p[c] per row of [N, C] logits, in float64 from the definition. */
function reference(x: ArrayLike<number>, N: number, C: number, t: ArrayLike<number>, ignore: number, eps: number): Reference {
  const logp = new Float64Array(N * C);
  const loss = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, x[n * C + c]);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(x[n * C + c] - m);
    let mean = 0;
    for (let c = 0; c < C; c++) {
      logp[n * C + c] = x[n * C + c] - m - Math.log(s);
      mean += logp[n * C + c] / C;
    }
    // torch adds the smoothing term only with smoothing (0 * -inf, a masked class, would be NaN)
    loss[n] = t[n] === ignore ? 0 : -(1 - eps) * logp[n * C + t[n]] - (eps > 0 ? eps * mean : 0);
  }
  const grad = (w: ArrayLike<number>) => {
    const g = new Float64Array(N * C);
    for (let n = 0; n < N; n++) {
      if (t[n] === ignore) continue;
      for (let c = 0; c < C; c++) g[n * C + c] = w[n] * (Math.exp(logp[n * C + c]) - (c === t[n] ? 1 - eps : 0) - eps / C);
    }
    return g;
  };
  return { loss, grad };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) {
  const r = compareArrays(actual, expected, tol, tol);
  expect(r.ok, `${what}: max |difference| ${r.maxAbs} at ${r.at}: ${actual[r.at]} vs ${expected[r.at]}`).toBe(true);
}

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('fused crossEntropy on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const logitsOf = (N: number, C: number, seed: number, scale = 2) => Float32Array.from(hostInput({ shape: [N, C], kind: 'normal' }, seed), (v) => v * scale);
    const targetsOf = (t: number[]) => tensor(Int32Array.from(t), [t.length], { dtype: 'int32', backend });

    it('uses the fused kernels', () => {
      expect(backend.fused.crossEntropy).toBeTypeOf('function');
      expect(backend.fused.crossEntropyBackward).toBeTypeOf('function');
    });

    for (const eps of [0, 0.1]) {
      for (const reduction of ['mean', 'sum', 'none'] as const) {
        it(`${reduction}, labelSmoothing ${eps}, with ignored rows: loss and gradient`, async () => {
          const [N, C] = [7, 13];
          const x = logitsOf(N, C, 3 + (eps > 0 ? 1 : 0));
          const t = [3, -100, 0, 12, 5, -100, 5];
          const logits = tensor(x, [N, C], { backend, requiresGrad: true });
          const loss = crossEntropy(logits, targetsOf(t), { reduction, labelSmoothing: eps });
          const ref = reference(x, N, C, t, -100, eps);
          const counted = t.filter((v) => v !== -100).length;
          const sum = ref.loss.reduce((a, b) => a + b, 0);
          const rowWeights = Array.from({ length: N }, (_, n) => (reduction === 'mean' ? 1 / counted : reduction === 'sum' ? 1 : 0.5 + n / 4));
          if (reduction === 'none') {
            expect(loss.shape).toEqual([N]);
            expectClose(await loss.data(), ref.loss, 1e-5, 'loss');
            loss.backward(tensor(Float32Array.from(rowWeights), [N], { backend }));
          } else {
            expect(loss.shape).toEqual([]);
            expectClose(await loss.data(), [reduction === 'mean' ? sum / counted : sum], 1e-5, 'loss');
            loss.backward();
          }
          expectClose(await logits.grad!.data(), ref.grad(rowWeights), 1e-6, 'dlogits');
        });
      }
    }

    it('every target ignored: mean NaN (as torch), sum 0, zero gradient', async () => {
      const x = logitsOf(3, 8, 5);
      const logits = tensor(x, [3, 8], { backend, requiresGrad: true });
      const t = targetsOf([-1, -1, -1]);
      const mean = crossEntropy(logits, t, { ignoreIndex: -1 });
      expect(Number.isNaN((await mean.data())[0])).toBe(true);
      expect(await crossEntropy(logits, t, { ignoreIndex: -1, reduction: 'sum' }).data()).toEqual(Float32Array.from([0]));
      mean.backward();
      expect(Array.from(await logits.grad!.data())).toEqual(new Array(24).fill(0));
    });

    it('rank-3 logits [N, C, L]: the class dim moved last, loss [N, L] and gradient back in place', async () => {
      const [N, C, L] = [2, 6, 3];
      const x = Float32Array.from(hostInput({ shape: [N, C, L], kind: 'normal' }, 7));
      const t = [5, 0, -100, 2, 2, 4];
      const logits = tensor(x, [N, C, L], { backend, requiresGrad: true });
      const loss = crossEntropy(logits, tensor(Int32Array.from(t), [N, L], { dtype: 'int32', backend }), { reduction: 'none', labelSmoothing: 0.2 });
      expect(loss.shape).toEqual([N, L]);
      // rows of the reference: item (n, l) is the class column x[n, :, l]
      const rows = new Float64Array(N * L * C);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let l = 0; l < L; l++) rows[(n * L + l) * C + c] = x[(n * C + c) * L + l];
      const ref = reference(rows, N * L, C, t, -100, 0.2);
      expectClose(await loss.data(), ref.loss, 1e-5, 'loss');
      loss.sum().backward();
      const g = ref.grad(new Array(N * L).fill(1));
      const want = new Float64Array(N * C * L);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let l = 0; l < L; l++) want[(n * C + c) * L + l] = g[(n * L + l) * C + c];
      expectClose(await logits.grad!.data(), want, 1e-6, 'dlogits');
    });

    // [64, 1024]: the cpu wasm rows (see below)
    for (const [N, C] of [[4, 40], [64, 1024]]) {
      it(`masked logits (-inf) on [${N}, ${C}]: finite losses and gradients as torch gives, an ignored all -inf row gives 0`, async () => {
        const x = logitsOf(N, C, 11);
        for (let n = 0; n < N; n++) for (let c = 1; c < C; c += 3) x[n * C + c] = -Infinity; // a masked vocabulary
        x.fill(-Infinity, C, 2 * C); // row 1: every class masked, and ignored
        const t = Array.from({ length: N }, (_, n) => (n === 1 ? -100 : (n * 3) % C)); // never a masked class
        const logits = tensor(x, [N, C], { backend, requiresGrad: true });
        const loss = crossEntropy(logits, targetsOf(t), { reduction: 'none' });
        const ref = reference(x, N, C, t, -100, 0);
        const got = await loss.data();
        expect(Array.from(got).every(Number.isFinite)).toBe(true);
        expectClose(got, ref.loss, 1e-5, 'loss');
        loss.sum().backward();
        const grad = await logits.grad!.data();
        expect(Array.from(grad).every(Number.isFinite)).toBe(true);
        expectClose(grad, ref.grad(new Array(N).fill(1)), 1e-6, 'dlogits');
      });

      it(`large logits (1e4) on [${N}, ${C}] stay finite and exact`, async () => {
        const x = logitsOf(N, C, 9, 1e4);
        const t = Array.from({ length: N }, (_, n) => (n * 17) % C);
        const logits = tensor(x, [N, C], { backend, requiresGrad: true });
        const loss = crossEntropy(logits, targetsOf(t), { reduction: 'none', labelSmoothing: 0.05 });
        const ref = reference(x, N, C, t, -100, 0.05);
        const got = await loss.data();
        expect(Array.from(got).every(Number.isFinite)).toBe(true);
        // float32 logits of 1e4 carry ~1e-3 of rounding: compare relative to that scale
        expectClose(Array.from(got, (v) => v / 1e4), Array.from(ref.loss, (v) => v / 1e4), 1e-6, 'loss / 1e4');
        loss.sum().backward();
        expectClose(await logits.grad!.data(), ref.grad(new Array(N).fill(1)), 1e-5, 'dlogits');
      });
    }

    // [96, 1024] lies in the cpu GEMM's shared memory (>= 256 KiB) and splits over both threads (>= 32768
    // floats): the wasm row tasks; [33, 1030] (C not a multiple of 4) takes the JS rows.
    for (const [N, C] of [[96, 1024], [33, 1030]]) {
      it(`[${N}, ${C}] with smoothing and ignored rows: loss and gradient`, async () => {
        const x = logitsOf(N, C, 11, 3);
        const t = Array.from({ length: N }, (_, n) => (n % 7 === 3 ? -100 : (n * 7919) % C));
        const logits = tensor(x, [N, C], { backend, requiresGrad: true });
        const loss = crossEntropy(logits, targetsOf(t), { labelSmoothing: 0.1 });
        const ref = reference(x, N, C, t, -100, 0.1);
        const counted = t.filter((v) => v !== -100).length;
        expectClose(await loss.data(), [ref.loss.reduce((a, b) => a + b, 0) / counted], 1e-5, 'loss');
        loss.backward();
        expectClose(await logits.grad!.data(), ref.grad(new Array(N).fill(1 / counted)), 1e-6, 'dlogits');
      });
    }

    it('runs under scope, backward twice with retainGraph, and frees everything', async () => {
      const x = logitsOf(64, 1024, 12);
      const logits = tensor(x, [64, 1024], { backend, requiresGrad: true });
      const t = targetsOf(Array.from({ length: 64 }, (_, n) => (n * 31) % 1024));
      const before = memory();
      for (let i = 0; i < 3; i++) {
        scope(() => {
          const loss = crossEntropy(logits, t);
          loss.backward(undefined, { retainGraph: true });
          loss.backward();
        });
      }
      // only logits.grad survives: the graph, lse and temporaries are gone
      expect(memory().tensors).toBe(before.tensors + 1);
      const ref = reference(x, 64, 1024, Array.from({ length: 64 }, (_, n) => (n * 31) % 1024), -100, 0);
      expectClose(await logits.grad!.data(), Array.from(ref.grad(new Array(64).fill(1 / 64)), (v) => 6 * v), 1e-6, 'dlogits after 3 x 2 backward');
    });

    it('keeps only the logits and [N] floats for backward', () => {
      const logits = tensor(logitsOf(64, 1024, 13), [64, 1024], { backend, requiresGrad: true });
      const t = targetsOf(Array.from({ length: 64 }, (_, n) => n));
      const before = backend.memory().bytes;
      const loss = crossEntropy(logits, t);
      // the loss, the saved lse [N] and targets (an alias): nothing of [N, C] size
      expect(backend.memory().bytes - before).toBeLessThan(64 * 1024 * 4);
      loss.backward();
    });

    it('a target outside [0, C) is an IndexError naming the op, the target and C', async () => {
      const logits = tensor(logitsOf(3, 5, 14), [3, 5], { backend });
      const run = async () => crossEntropy(logits, targetsOf([1, 7, 2])).data();
      if (name === 'cpu') expect(() => crossEntropy(logits, targetsOf([1, 7, 2]))).toThrow(/crossEntropy: target 7 \(row 1\) is out of range for 5 classes/);
      await expect(run()).rejects.toThrow(IndexError);
      await expect(run()).rejects.toThrow(/crossEntropy.*7.*5/);
    });
  });
});

describe('crossEntropy options', () => {
  it('refuses labelSmoothing outside [0, 1] before any work, naming the op and the value', () => {
    const backend = testCpuBackend();
    const logits = tensor(new Float32Array(6), [2, 3], { backend });
    const t = tensor(Int32Array.from([0, 2]), [2], { dtype: 'int32', backend });
    expect(() => crossEntropy(logits, t, { labelSmoothing: 1.5 })).toThrow(/crossEntropy: labelSmoothing must be in \[0, 1\], got 1.5/);
    expect(() => crossEntropy(logits, t, { labelSmoothing: -0.1 })).toThrow(RangeError);
  });
});

describe('fused crossEntropy gradcheck (cpu, finite differences)', () => {
  const backend = testCpuBackend();
  for (const [name, run] of [
    ['mean with ignored rows', (x: Tensor, t: Tensor) => crossEntropy(x, t, { ignoreIndex: 2 })],
    ['sum with smoothing', (x: Tensor, t: Tensor) => crossEntropy(x, t, { reduction: 'sum', labelSmoothing: 0.3 })],
  ] as const) {
    it(name, () => {
      const r = gradcheck(run, [{ shape: [5, 8] }, { shape: [5], kind: 'int', high: 8 }], backend);
      expect(r.worst, r.detail).toBeLessThanOrEqual(1);
    });
  }
});
