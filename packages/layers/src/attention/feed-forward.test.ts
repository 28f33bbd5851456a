import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, matmul, scope, type Tensor } from '@lm/tensor-gpu';
import { gradcheck, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { ChunkingError, GatedMLP, MLP, applyChunkingToForward, geglu, resolveActivation } from './feed-forward.js';
import type { Linear } from '../nn/linear.js';
import { expectClose, expectTensorsClose, randomTensor, testBackends } from './testing.js';

const backends = await testBackends();
afterAll(async () => (await testWebGPUBackend())?.destroy());

/** x W^T + b with plain ops. */
const lin = (l: Linear, x: Tensor) => {
  const y = matmul(x, l.weight.transpose(0, 1));
  return l.bias ? y.add(l.bias) : y;
};

describe.each(backends)('feed-forward on %s', (_name, backend) => {
  it('MLP = fc2(act(fc1 x)) with reference names and activations', async () => {
    const x = randomTensor([2, 3, 6], 1, backend);
    const cases = [
      { activation: 'relu', names: { fc1: 'wi', fc2: 'wo' }, bias: false, fn: (t: Tensor) => t.relu() },
      { activation: 'gelu_new', names: { fc1: 'dense_h_to_4h', fc2: 'dense_4h_to_h' }, bias: true, fn: (t: Tensor) => t.geluTanh() },
      { activation: 'quick_gelu', names: { fc1: 'linear_fc1', fc2: 'linear_fc2' }, bias: true, fn: (t: Tensor) => t.mul(t.mulScalar(1.702).sigmoid()) },
      { activation: (t: Tensor) => t.square(), names: undefined, bias: true, fn: (t: Tensor) => t.square() },
    ];
    for (const c of cases) {
      const m = new MLP(6, 10, { activation: c.activation, names: c.names, bias: c.bias, backend });
      const names = c.names ?? { fc1: 'fc1', fc2: 'fc2' };
      const keys = [...m.stateDict().keys()];
      expect(keys).toEqual(c.bias ? [`${names.fc1}.weight`, `${names.fc1}.bias`, `${names.fc2}.weight`, `${names.fc2}.bias`] : [`${names.fc1}.weight`, `${names.fc2}.weight`]);
      const expected = scope(() => lin(m.fc2, c.fn(lin(m.fc1, x))));
      await expectTensorsClose(m.forward(x), expected, 1e-5, 1e-5);
      m.dispose();
    }
  });

  it('GatedMLP (T5 v1.1 gated-gelu) = wo(gelu_new(wi_0 x) * wi_1 x); geglu = x1 * gelu(x2)', async () => {
    const x = randomTensor([2, 3, 6], 2, backend);
    const m = new GatedMLP(6, 8, { bias: false, backend });
    expect([...m.stateDict().keys()]).toEqual(['wi_0.weight', 'wi_1.weight', 'wo.weight']);
    const expected = scope(() => lin(m.down, lin(m.gate, x).geluTanh().mul(lin(m.up, x))));
    await expectTensorsClose(m.forward(x), expected, 1e-5, 1e-5);
    const y = fromHost(Float32Array.from([1, 2, -1, 0.5]), [1, 4], 'float32', backend);
    const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
    await expectClose(geglu(y), [1 * gelu(-1), 2 * gelu(0.5)], 1e-5, 1e-5);
    m.dispose();
  });

  it('applyChunkingToForward equals the unchunked forward, values and gradients', async () => {
    const m = new MLP(4, 6, { backend });
    const a = randomTensor([2, 6, 4], 3, backend).requiresGrad_();
    const b = randomTensor([2, 6, 4], 4, backend);
    const fn = (u: Tensor, v: Tensor) => m.forward(u.mul(v));
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
    m.zeroGrad();
    scope(() => applyChunkingToForward(fn, 2, 1, a, b).mul(w).sum().backward());
    await expectClose(a.grad!, g1, 1e-5, 1e-5);
    await expectClose(m.fc1.weight.grad!, gw1, 1e-5, 1e-5);
    expect(() => applyChunkingToForward(fn, 4, 1, a, b)).toThrow(ChunkingError);
    expect(() => applyChunkingToForward(fn, 4, 1, a, b)).toThrow(/multiple of the chunk size 4/);
    expect(() => applyChunkingToForward((u: Tensor) => u, 2, 1, a, b)).toThrow(/takes 1 arguments, but 2 input tensors/);
    expect(() => applyChunkingToForward(fn, 2, 1, a, b.narrow(1, 0, 4))).toThrow(/same size along dim 1/);
    m.dispose();
  });
});

describe('feed-forward gradients and activation lookup (cpu)', () => {
  const backend = testCpuBackend();
  it('GatedMLP and MLP gradients by finite differences', () => {
    const g = new GatedMLP(3, 4, { backend, activation: 'silu' });
    const r1 = gradcheck((x: Tensor) => g.forward(x), [{ shape: [2, 3] }], backend);
    expect(r1.worst, r1.detail).toBeLessThanOrEqual(1);
    const m = new MLP(3, 4, { backend, activation: 'tanh' });
    const r2 = gradcheck((x: Tensor) => m.forward(x), [{ shape: [2, 3] }], backend);
    expect(r2.worst, r2.detail).toBeLessThanOrEqual(1);
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
