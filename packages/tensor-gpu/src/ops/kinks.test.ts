// Gradients exactly at the kinks, where finite differences say nothing: each follows PyTorch
// (tools/autograd/derivatives.yaml and the kernels it names): abs'(0) = sgn(0) = 0, relu'(0) = 0
// (threshold_backward on the result), clamp passes the gradient at both bounds (clamp_backward:
// min <= x <= max), leaky_relu'(0) = slope (x > 0 ? g : g * slope), and maximum/minimum give each
// input half the gradient of a tie. On every backend, and on the composites (no fused kernels).
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend.js';
import type { Tensor } from '../tensor.js';
import { testCpuBackend, testWebGPUBackend, withoutFusedKernels } from '../testing/index.js';
import { fromHost } from './creation.js';
import { biasActivation, maximum, minimum } from './elementwise.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());
const backends: Record<string, Backend | null> = { cpu: testCpuBackend(), webgpu, 'cpu without fused kernels': withoutFusedKernels(testCpuBackend()) };

const f32 = (xs: number[]) => xs.map(Math.fround);

describe.each(Object.keys(backends).map((name) => ({ name })))('gradients at kinks on $name', ({ name }) => {
  const backend = backends[name]!;
  describe.skipIf(!backend)(name, () => {
    const leaf = (values: number[], shape = [values.length]) => {
      const t = fromHost(Float32Array.from(values), shape, 'float32', backend);
      t.requiresGrad = true;
      return t;
    };
    /** d(sum(y * w))/d(inputs) for the seeded upstream gradient w. */
    async function grads(inputs: Tensor[], y: Tensor, upstream: number[]): Promise<number[][]> {
      y.backward(fromHost(Float32Array.from(upstream), y.shape, 'float32', backend));
      return Promise.all(inputs.map(async (t) => Array.from(await t.grad!.data())));
    }

    it('abs at 0 has gradient 0', async () => {
      const x = leaf([-2, 0, 3]);
      expect(await grads([x], x.abs(), [1, 1, 1])).toEqual([[-1, 0, 1]]);
    });

    it('relu at 0 has gradient 0', async () => {
      const x = leaf([-1, 0, 2]);
      expect(await grads([x], x.relu(), [3, 3, 3])).toEqual([[0, 0, 3]]);
    });

    it('clamp passes the gradient at both bounds', async () => {
      const x = leaf([-0.5, 0.7, -1, 1, 0]);
      expect(await grads([x], x.clamp(-0.5, 0.7), [1, 2, 3, 4, 5])).toEqual([f32([1, 2, 0, 0, 5])]);
    });

    it('leakyRelu at 0 takes the negative slope', async () => {
      const x = leaf([-2, 0, 3]);
      expect(await grads([x], x.leakyRelu(0.1), [1, 1, 1])).toEqual([f32([0.1, 0.1, 1])]);
    });

    it('maximum splits a tie evenly', async () => {
      const a = leaf([1, 2, 3]);
      const b = leaf([1, 0, 5]);
      expect(await grads([a, b], maximum(a, b), [1, 2, 4])).toEqual([
        [0.5, 2, 0],
        [0.5, 0, 4],
      ]);
    });

    it('minimum splits a tie evenly', async () => {
      const a = leaf([1, 2, 3]);
      const b = leaf([1, 0, 5]);
      expect(await grads([a, b], minimum(a, b), [1, 2, 4])).toEqual([
        [0.5, 0, 4],
        [0.5, 2, 0],
      ]);
    });

    it('maximum with broadcast sums the split shares back to each input', async () => {
      // a [2, 1] against b [1, 3]: ties at (0, 0) and (1, 1)
      const a = leaf([1, 2], [2, 1]);
      const b = leaf([1, 2, 3], [1, 3]);
      expect(await grads([a, b], maximum(a, b), [1, 1, 1, 1, 1, 1])).toEqual([
        [0.5, 1.5],
        [0.5, 1.5, 2],
      ]);
    });

    it('bias + relu at x + bias = 0 has gradient 0', async () => {
      const x = leaf([0.5, -1, 0.25, 3], [2, 2]);
      const bias = leaf([-0.5, 2]);
      // x + bias = [[0, 1], [-0.25, 5]]
      expect(await grads([x, bias], biasActivation(x, bias, 'relu'), [1, 1, 1, 1])).toEqual([
        [0, 1, 0, 1],
        [0, 2],
      ]);
    });
  });
});
