// The fused backward kernels (GELU's gradient rows, FusedKernels.layerNormBackward, FusedKernels.softmaxBackward) against the composites
// they replaced, which stay here as the oracle, on both backends; plus matmul's batch folding.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend.js';
import { biasActivation, crossEntropy, layerNorm, logSoftmax, matmul, rmsNorm, scaledDotProductAttention, softmax, tensor, type Tensor } from '../index.js';
import { compareArrays, hostInput, testCpuBackend, testWebGPUBackend } from '../testing/index.js';
import { siluBackward } from './elementwise-grad.js';

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

    it('the silu gradient equals the composite, including the tails', async () => {
      const x = input([7, 129], 6, 6);
      const g = input([7, 129], 7);
      const leaf = x.detach().requiresGrad_();
      leaf.silu().backward(g);
      const s = x.sigmoid();
      await expectClose(leaf.grad!, g.mul(s.mul(x.mul(s.neg().addScalar(1)).addScalar(1))), 2e-6, 'silu gradient');
    });

    it('double backward through the fused silu gradient equals autograd through the composite', async () => {
      const x = input([7, 129], 10, 6);
      const g = input([7, 129], 11);
      const h = input([7, 129], 12);
      // fused: d/dx and d/dg of sum(h * siluBackward(g, x))
      const [xf, gf] = [x.detach().requiresGrad_(), g.detach().requiresGrad_()];
      siluBackward(gf, xf).backward(h);
      // composite: g * s * (1 + x (1 - s)), differentiated by autograd through sigmoid and the products
      const [xc, gc] = [x.detach().requiresGrad_(), g.detach().requiresGrad_()];
      const s = xc.sigmoid();
      gc.mul(s.mul(xc.mul(s.neg().addScalar(1)).addScalar(1))).backward(h);
      await expectClose(xf.grad!, xc.grad!, 1e-5, 'silu second derivative (d/dx)');
      await expectClose(gf.grad!, gc.grad!, 2e-6, 'silu gradient (d/dg)');
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

    for (const [shape, axis] of [
      [[6, 20], -1], // one thread per row on webgpu
      [[5, 300], -1],
      [[2, 2100], 1], // 256-thread workgroups
      [[4, 7, 3], 1], // a middle axis: moved last and back
    ] as const) {
      it(`softmax and logSoftmax gradients on [${shape.join(',')}] along ${axis} equal the composites`, async () => {
        const x = input([...shape], 20, 3).requiresGrad_();
        const g = input([...shape], 21);
        softmax(x, axis).backward(g);
        const y = softmax(x.detach(), axis);
        await expectClose(x.grad!, y.mul(g.sub(g.mul(y).sum(axis, true))), 2e-6, 'softmax dx');
        x.grad = null;
        logSoftmax(x, axis).backward(g);
        const ly = logSoftmax(x.detach(), axis);
        await expectClose(x.grad!, g.sub(ly.exp().mul(g.sum(axis, true))), 2e-6, 'logSoftmax dx');
      });
    }

    it('cross-entropy (through log-softmax) gives softmax - onehot over the counted rows', async () => {
      const logits = input([9, 37], 22, 2).requiresGrad_();
      const targets = tensor(Int32Array.from([3, -100, 0, 36, 5, 5, -100, 20, 1]), [9], { dtype: 'int32', backend });
      crossEntropy(logits, targets).backward();
      const p = await softmax(logits.detach(), -1).data();
      const t = await targets.data();
      const want = new Float32Array(9 * 37);
      for (let i = 0; i < 9; i++) {
        if (t[i] === -100) continue;
        for (let c = 0; c < 37; c++) want[i * 37 + c] = (p[i * 37 + c] - (c === t[i] ? 1 : 0)) / 7;
      }
      const r = compareArrays(await logits.grad!.data(), want, 1e-6, 1e-5);
      expect(r.ok, `dlogits: max |difference| ${r.maxAbs} at ${r.at}`).toBe(true);
    });

    it('attention gradients equal attention composed from matmul, exp and sum, with a padding mask', async () => {
      const [B, H, L, D] = [2, 3, 5, 4];
      const q = input([B, H, L, D], 23).requiresGrad_();
      const k = input([B, H, L, D], 24).requiresGrad_();
      const v = input([B, H, L, D], 25).requiresGrad_();
      const keep = tensor(Uint8Array.from({ length: B * L }, (_, i) => (i % L < L - 1 - (i >= L ? 1 : 0) ? 1 : 0)), [B, 1, 1, L], { dtype: 'bool', backend });
      const g = input([B, H, L, D], 26);
      scaledDotProductAttention(q, k, v, { mask: keep }).backward(g);
      const [qd, kd, vd] = [q, k, v].map((t) => t.detach().requiresGrad_());
      const scores = qd.matmul(kd.transpose(-1, -2)).mulScalar(1 / Math.sqrt(D));
      const masked = scores.add(keep.logicalNot().toFloat().mulScalar(-1e30));
      // softmax spelled out with exp and sum, so the oracle does not run the kernel under test
      const e = masked.sub(masked.max(-1, true).detach()).exp();
      e.div(e.sum(-1, true)).matmul(vd).backward(g);
      await expectClose(q.grad!, qd.grad!, 2e-5, 'dq');
      await expectClose(k.grad!, kd.grad!, 2e-5, 'dk');
      await expectClose(v.grad!, vd.grad!, 2e-5, 'dv');
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
