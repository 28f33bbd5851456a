import { describe, expect, it } from 'vitest';
import { applyFunction, noGrad, enableGrad, tensor, scope, memory, type CustomFunction, type Tensor, cpu, TensorError, roundToFloat16 } from './index.js';

const backend = cpu();
const t = (d: Parameters<typeof tensor>[0], requiresGrad = false) => tensor(d, { backend, requiresGrad });
const arr = async (x: Tensor | null) => Array.from(await x!.data());

describe('autograd', () => {
  it('fills .grad on leaves and accumulates across backward calls', async () => {
    const x = t([1, 2, 3], true);
    x.mul(x).sum().backward();
    expect(await arr(x.grad)).toEqual([2, 4, 6]);
    x.mulScalar(3).sum().backward();
    expect(await arr(x.grad)).toEqual([5, 7, 9]);
    x.zeroGrad();
    expect(x.grad).toBeNull();
  });

  it('sums gradients over every path through the graph', async () => {
    const x = t([2], true);
    const y = x.mul(x); // x^2
    const z = y.mul(x).add(y); // x^3 + x^2
    z.sum().backward();
    expect(await arr(x.grad)).toEqual([3 * 4 + 2 * 2]);
  });

  it('noGrad records nothing; detach cuts the graph; enableGrad turns it back on', () => {
    const x = t([1, 2], true);
    const y = noGrad(() => x.mul(x));
    expect(y.requiresGrad).toBe(false);
    expect(x.detach().mulScalar(2).requiresGrad).toBe(false);
    const z = noGrad(() => enableGrad(() => x.mulScalar(2)));
    expect(z.requiresGrad).toBe(true);
  });

  it('refuses a second backward through a freed graph unless retainGraph', async () => {
    const x = t([1, 2], true);
    const y = x.exp().sum();
    y.backward(undefined, { retainGraph: true });
    y.backward();
    const g = await arr(x.grad);
    expect(g[0]).toBeCloseTo(2 * Math.E, 5);
    expect(g[1]).toBeCloseTo(2 * Math.exp(2), 4);
    expect(() => y.backward()).toThrow(/already freed/);
  });

  it('requires a scalar or an explicit gradient', async () => {
    const x = t([1, 2], true);
    const y = x.mulScalar(2);
    expect(() => y.backward()).toThrow(TensorError);
    y.backward(t([1, 10]));
    expect(await arr(x.grad)).toEqual([2, 20]);
  });

  it('refuses an explicit gradient of another shape, before any work', async () => {
    const x = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], { backend: cpu() }).requiresGrad_();
    const y = x.sum(-1); // [2]
    expect(() => y.backward(tensor(new Float32Array(6), [2, 3], { backend: cpu() }))).toThrow(
      "backward: grad of shape [2,3] does not match the output's shape [2]",
    );
    expect(() => y.backward(tensor(new Float32Array(2), [1, 2], { backend: cpu() }))).toThrow(/does not match/);
    expect(x.grad).toBeNull();
    y.backward(tensor(new Float32Array([1, 2]), [2], { backend: cpu() }));
    expect(await arr(x.grad)).toEqual([1, 1, 1, 2, 2, 2]);
  });

  it('custom functions supply their own backward (straight-through clamp)', async () => {
    const straightThrough: CustomFunction<[Tensor]> = {
      name: 'straightThroughClamp',
      forward: (_ctx, x) => x.clamp(-1, 1),
      backward: (_ctx, g) => [g],
    };
    const x = t([-3, 0.5, 2], true);
    const y = applyFunction(straightThrough, x) as Tensor;
    expect(await arr(y)).toEqual([-1, 0.5, 1]);
    y.sum().backward();
    expect(await arr(x.grad)).toEqual([1, 1, 1]);
  });

  it('custom functions can recompute in backward (gradient checkpointing)', async () => {
    const block = (x: Tensor, w: Tensor) => x.mul(w).tanh().mul(w);
    const checkpoint: CustomFunction<[Tensor, Tensor]> = {
      name: 'checkpoint',
      forward: (ctx, x, w) => {
        ctx.saveForBackward(x, w);
        return block(x, w);
      },
      backward: (ctx, g) => {
        const [x, w] = ctx.saved;
        const xr = x.detach().requiresGrad_();
        const wr = w.detach().requiresGrad_();
        enableGrad(() => block(xr, wr)).backward(g!);
        return [xr.grad, wr.grad];
      },
    };
    const x1 = t([0.3, -0.7], true);
    const w1 = t([1.5, 0.5], true);
    block(x1, w1).sum().backward();
    const x2 = t([0.3, -0.7], true);
    const w2 = t([1.5, 0.5], true);
    (applyFunction(checkpoint, x2, w2) as Tensor).sum().backward();
    expect(await arr(x2.grad)).toEqual(await arr(x1.grad));
    expect(await arr(w2.grad)).toEqual(await arr(w1.grad));
  });

  it('multi-output custom functions route each output gradient', async () => {
    const splitScale: CustomFunction<[Tensor]> = {
      name: 'splitScale',
      forward: (_ctx, x) => [x.mulScalar(2), x.mulScalar(3)],
      backward: (_ctx, ga, gb) => [ga!.mulScalar(2).add(gb!.mulScalar(3))],
    };
    const x = t([1, 1], true);
    const [a, b] = applyFunction(splitScale, x) as Tensor[];
    a.add(b.mulScalar(10)).sum().backward();
    expect(await arr(x.grad)).toEqual([32, 32]);
  });

  it('copy_ updates a parameter in place under noGrad only', async () => {
    const p = t([1, 2], true);
    expect(() => p.copy_(t([0, 0]))).toThrow(/wrap it in noGrad/);
    const view = p.detach();
    noGrad(() => p.copy_(t([5])));
    expect(await arr(p)).toEqual([5, 5]);
    expect(await arr(view)).toEqual([5, 5]);
    expect(() => noGrad(() => p.copy_(t([1, 2, 3])))).toThrow(/does not broadcast|cannot be broadcast/);
  });

  it('a scope around forward+backward frees the graph and intermediates', () => {
    const w = t([[0.1, 0.2], [0.3, 0.4]], true);
    const before = memory().tensors;
    for (let i = 0; i < 5; i++) {
      scope(() => {
        const x = t([[1, 2]]);
        const loss = x.matmul(w).relu().square().mean();
        loss.backward();
      });
    }
    // only w.grad survives
    expect(memory().tensors).toBe(before + 1);
  });

  it('gives each input a gradient of its own dtype (float16 leaves get float16 grads, as torch)', async () => {
    const h = tensor([0.1, 2049, -3], { backend, dtype: 'float16', requiresGrad: true });
    const w = t([1, 1 / 3, 2], true);
    // float16 * float32 promotes to float32; the float32 gradient flowing back to h is rounded to float16.
    const y = h.mul(w);
    expect(y.dtype).toBe('float32');
    y.mulScalar(0.7).sum().backward();
    expect(h.grad!.dtype).toBe('float16');
    expect(await arr(h.grad)).toEqual([0.7, 0.7 / 3, 1.4].map(roundToFloat16));
    expect(w.grad!.dtype).toBe('float32');
    // A float16 intermediate through a float32 op: the grad reaching the intermediate's node is float16 too.
    const g = tensor([1, 2], { backend, dtype: 'float16', requiresGrad: true });
    g.mulScalar(3).cast('float32').mul(t([0.1, 0.1])).sum().backward();
    expect(g.grad!.dtype).toBe('float16');
    expect(await arr(g.grad)).toEqual([roundToFloat16(roundToFloat16(0.1) * 3), roundToFloat16(roundToFloat16(0.1) * 3)]);
  });
});
