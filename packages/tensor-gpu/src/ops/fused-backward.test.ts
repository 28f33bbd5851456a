// The fused backward kernels (GELU's gradient rows, Backend.layerNormBackward) against the composites
// they replaced, which stay here as the oracle, on both backends; plus matmul's batch folding.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend.js';
import { biasActivation, layerNorm, matmul, rmsNorm, tensor, type Tensor } from '../index.js';
import { compareArrays, hostInput, testCpuBackend, testWebGPUBackend } from '../testing/index.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

const INV_SQRT_2 = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** d/dx of gelu, composed from table ops as the rule was before the fused row. */
function geluGradComposite(g: Tensor, x: Tensor): Tensor {
  const cdf = x.mulScalar(INV_SQRT_2).erf().addScalar(1).mulScalar(0.5);
  const pdf = x.square().mulScalar(-0.5).exp().mulScalar(1 / Math.sqrt(2 * Math.PI));
  return g.mul(cdf.add(x.mul(pdf)));
}

function geluTanhGradComposite(g: Tensor, x: Tensor): Tensor {
  const t = x.add(x.pow(3).mulScalar(0.044715)).mulScalar(SQRT_2_OVER_PI).tanh();
  const dInner = x.square().mulScalar(3 * 0.044715).addScalar(1).mulScalar(SQRT_2_OVER_PI);
  const left = t.addScalar(1).mulScalar(0.5);
  const right = x.mul(t.square().neg().addScalar(1)).mul(dInner).mulScalar(0.5);
  return g.mul(left.add(right));
}

/** The input, weight and bias gradients of layer norm (rms: RMS norm) over the last `k` dims, composed. */
function normGradComposite(x: Tensor, w: Tensor | null, g: Tensor, k: number, eps: number, rms: boolean) {
  const axes = Array.from({ length: k }, (_, i) => x.rank - k + i);
  const centered = rms ? x : x.sub(x.mean(axes, true));
  const rstd = centered.square().mean(axes, true).addScalar(eps).rsqrt();
  const xhat = centered.mul(rstd);
  const gw = w ? g.mul(w) : g;
  const inner = rms ? gw : gw.sub(gw.mean(axes, true));
  const dx = rstd.mul(inner.sub(xhat.mul(gw.mul(xhat).mean(axes, true))));
  const outer = Array.from({ length: x.rank - k }, (_, i) => i);
  return { dx, dw: g.mul(xhat).sum(outer), db: g.sum(outer) };
}

async function expectClose(actual: Tensor, expected: Tensor, tol: number, what: string) {
  const r = compareArrays(await actual.data(), await expected.data(), tol, tol);
  expect(r.ok, `${what}: max |difference| ${r.maxAbs} at ${r.at}`).toBe(true);
}

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('fused backward kernels on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const input = (shape: number[], seed: number, scale = 1) =>
      tensor(hostInput({ shape, kind: 'normal' }, seed).map((v) => v * scale), shape, { backend });

    it('gelu and geluTanh gradients equal the composites, including the tails', async () => {
      // |x| up to ~12: the pdf underflows and the cdf saturates; the fused row must stay finite and exact.
      const x = input([7, 129], 1, 4);
      const g = input([7, 129], 2);
      for (const [act, oracle] of [
        ['gelu', geluGradComposite],
        ['geluTanh', geluTanhGradComposite],
      ] as const) {
        const leaf = x.detach().requiresGrad_();
        const y = act === 'gelu' ? leaf.gelu() : leaf.geluTanh();
        y.backward(g);
        await expectClose(leaf.grad!, oracle(g, x), 2e-6, `${act} gradient`);
      }
    });

    it('the fused bias + gelu epilogue (Linear) uses the same gradient', async () => {
      const x = input([5, 33], 3, 3).requiresGrad_();
      const bias = input([33], 4).requiresGrad_();
      const g = input([5, 33], 5);
      biasActivation(x, bias, 'gelu').backward(g);
      const z = x.detach().add(bias.detach());
      const want = geluGradComposite(g, z);
      await expectClose(x.grad!, want, 2e-6, 'addGelu dx');
      await expectClose(bias.grad!, want.sum(0), 1e-5, 'addGelu dbias');
    });

    for (const rms of [false, true]) {
      const op = rms ? 'rmsNorm' : 'layerNorm';
      for (const [shape, withWeight] of [
        [[3, 5, 64], true],
        [[4, 37], false],
        [[2, 3, 2050], true], // the 256-thread workgroup on webgpu
      ] as const) {
        it(`${op} gradients on [${shape.join(',')}]${withWeight ? ' with weight and bias' : ''} equal the composite`, async () => {
          const inner = shape[shape.length - 1];
          const x = input([...shape], 6, 2).addScalar(0.5).requiresGrad_();
          const w = withWeight ? input([inner], 7).requiresGrad_() : null;
          const b = withWeight && !rms ? input([inner], 8).requiresGrad_() : null;
          const g = input([...shape], 9);
          const y = rms ? rmsNorm(x, w, 1e-6) : layerNorm(x, inner, w, b, 1e-5);
          y.backward(g);
          const want = normGradComposite(x.detach(), w?.detach() ?? null, g, 1, rms ? 1e-6 : 1e-5, rms);
          await expectClose(x.grad!, want.dx, 2e-5, `${op} dx`);
          if (w) await expectClose(w.grad!, want.dw, 2e-5, `${op} dweight`);
          if (b) await expectClose(b.grad!, want.db, 2e-5, `${op} dbias`);
        });
      }
    }

    it('layerNorm over two trailing dims, on a strided (transposed) input', async () => {
      const base = input([6, 4, 5], 10);
      const x = base.transpose(1, 2).requiresGrad_(); // [6, 5, 4], not contiguous
      const w = input([5, 4], 11).requiresGrad_();
      const g = input([6, 5, 4], 12);
      layerNorm(x, [5, 4], w, null).backward(g);
      const want = normGradComposite(base.transpose(1, 2), w.detach(), g, 2, 1e-5, false);
      await expectClose(x.grad!, want.dx, 2e-5, 'dx');
      await expectClose(w.grad!, want.dw, 2e-5, 'dweight');
    });

    it('matmul folds [batch, seq, in] @ [in, out] into one product, forward and backward', async () => {
      const a = input([3, 4, 6], 13).requiresGrad_();
      const b = input([6, 5], 14).requiresGrad_();
      const g = input([3, 4, 5], 15);
      const y = matmul(a, b);
      expect(y.shape).toEqual([3, 4, 5]);
      y.backward(g);
      // Per-batch products, the unfolded definition.
      const aHost = await a.detach().data();
      const bHost = await b.detach().data();
      const gHost = await g.data();
      const yWant = new Float32Array(60);
      const gaWant = new Float32Array(72);
      const gbWant = new Float32Array(30);
      for (let r = 0; r < 12; r++) {
        for (let n = 0; n < 5; n++) for (let k = 0; k < 6; k++) yWant[r * 5 + n] += aHost[r * 6 + k] * bHost[k * 5 + n];
        for (let k = 0; k < 6; k++) for (let n = 0; n < 5; n++) gaWant[r * 6 + k] += gHost[r * 5 + n] * bHost[k * 5 + n];
        for (let k = 0; k < 6; k++) for (let n = 0; n < 5; n++) gbWant[k * 5 + n] += aHost[r * 6 + k] * gHost[r * 5 + n];
      }
      for (const [got, want, what] of [
        [await y.data(), yWant, 'y'],
        [await a.grad!.data(), gaWant, 'da'],
        [await b.grad!.data(), gbWant, 'db'],
      ] as const) {
        const r = compareArrays(got, want, 1e-5, 1e-5);
        expect(r.ok, `${what}: max |difference| ${r.maxAbs} at ${r.at}`).toBe(true);
      }
      // A batch that cannot merge without a copy (a transposed view) takes the batched path: same values.
      const at = input([4, 3, 6], 16).transpose(0, 1);
      const unfolded = matmul(at.contiguous(), b.detach());
      await expectClose(matmul(at, b.detach()), unfolded, 1e-6, 'transposed batch');
    });
  });
});
