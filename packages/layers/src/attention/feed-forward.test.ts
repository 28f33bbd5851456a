import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, matmul, scope, type Tensor } from '@lm/tensor-gpu';
import { gradcheck, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { ChunkingError, applyChunkingToForward, geglu, linearAct, resolveActivation } from './feed-forward.js';
import { Linear } from '../nn/linear.js';
import { expectClose, expectTensorsClose, randomTensor, testBackends } from './testing.js';

const backends = await testBackends();
afterAll(async () => (await testWebGPUBackend())?.destroy());

/** x W^T + b with plain ops. */
const lin = (l: Linear, x: Tensor) => {
  const y = matmul(x, l.weight.transpose(0, 1));
  return l.bias ? y.add(l.bias) : y;
};

describe.each(backends)('feed-forward on %s', (_name, backend) => {
  it('linearAct = act(x W^T + b), fused or not, for reference activation names and functions', async () => {
    const x = randomTensor([2, 3, 6], 1, backend);
    const cases = [
      { activation: 'relu', bias: false, fn: (t: Tensor) => t.relu() },
      { activation: 'gelu_new', bias: true, fn: (t: Tensor) => t.geluTanh() },
      { activation: 'quick_gelu', bias: true, fn: (t: Tensor) => t.mul(t.mulScalar(1.702).sigmoid()) },
      { activation: (t: Tensor) => t.square(), bias: true, fn: (t: Tensor) => t.square() },
    ];
    for (const c of cases) {
      const dense = new Linear(6, 10, { bias: c.bias, backend });
      const expected = scope(() => c.fn(lin(dense, x)));
      await expectTensorsClose(linearAct(dense, x, resolveActivation(c.activation)), expected, 1e-5, 1e-5);
      dense.dispose();
    }
  });

  it('geglu = x1 * gelu(x2)', async () => {
    const y = fromHost(Float32Array.from([1, 2, -1, 0.5]), [1, 4], 'float32', backend);
    const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
    await expectClose(geglu(y), [1 * gelu(-1), 2 * gelu(0.5)], 1e-5, 1e-5);
  });

  it('applyChunkingToForward equals the unchunked forward, values and gradients', async () => {
    // A BERT-style feed-forward: dense2(gelu(dense1 x)).
    const m = { fc1: new Linear(4, 6, { backend }), fc2: new Linear(6, 4, { backend }) };
    const act = resolveActivation('gelu');
    const a = randomTensor([2, 6, 4], 3, backend).requiresGrad_();
    const b = randomTensor([2, 6, 4], 4, backend);
    const fn = (u: Tensor, v: Tensor) => m.fc2.forward(linearAct(m.fc1, u.mul(v), act));
    const whole = fn(a, b);
    for (const [size, dim] of [[2, 1], [3, 1], [1, 0], [0, 1], [6, -2]] as const) {
      const chunked = applyChunkingToForward(fn, size, dim, a, b);
      await expectTensorsClose(chunked, whole, 1e-6, 1e-6);
      chunked.dispose();
    }
    const w = randomTensor([2, 6, 4], 5, backend);
    scope(() => whole.mul(w).sum().backward());
    const g1 = Array.from(await a.grad!.data());
    const gw1 = Array.from(await m.fc1.weight.grad!.data());
    a.zeroGrad();
    m.fc1.zeroGrad();
    m.fc2.zeroGrad();
    scope(() => applyChunkingToForward(fn, 2, 1, a, b).mul(w).sum().backward());
    await expectClose(a.grad!, g1, 1e-5, 1e-5);
    await expectClose(m.fc1.weight.grad!, gw1, 1e-5, 1e-5);
    expect(() => applyChunkingToForward(fn, 4, 1, a, b)).toThrow(ChunkingError);
    expect(() => applyChunkingToForward(fn, 4, 1, a, b)).toThrow(/multiple of the chunk size 4/);
    expect(() => applyChunkingToForward((u: Tensor) => u, 2, 1, a, b)).toThrow(/takes 1 arguments, but 2 input tensors/);
    expect(() => applyChunkingToForward(fn, 2, 1, a, b.narrow(1, 0, 4))).toThrow(/same size along dim 1/);
    m.fc1.dispose();
    m.fc2.dispose();
  });
});

describe('feed-forward gradients and activation lookup (cpu)', () => {
  const backend = testCpuBackend();
  it('linearAct gradients by finite differences (fused silu, unfused quick_gelu)', () => {
    for (const name of ['silu', 'quick_gelu']) {
      const dense = new Linear(3, 4, { backend });
      const r = gradcheck((x: Tensor) => linearAct(dense, x, resolveActivation(name)), [{ shape: [2, 3] }], backend);
      expect(r.worst, `${name}: ${r.detail}`).toBeLessThanOrEqual(1);
      dense.dispose();
    }
  });
  it('resolveActivation: reference names, our geluTanh, functions; unknown names throw', () => {
    expect(resolveActivation('gelu_new').fused).toBe('geluTanh');
    expect(resolveActivation('geluTanh').fused).toBe('geluTanh');
    expect(resolveActivation('quick_gelu').fused).toBeNull();
    expect(() => resolveActivation('nope')).toThrow(/unknown activation "nope"/);
  });
});

/** erf by its Maclaurin series (float64; converges quickly for the |x| < 3 used here). */
function erf(x: number): number {
  let sum = x;
  let term = x;
  for (let n = 1; n < 60; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
