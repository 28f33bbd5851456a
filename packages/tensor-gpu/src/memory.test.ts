import { afterAll, describe, expect, it } from 'vitest';
import { memory, scope, keep, tensor, randn, zeros, type Tensor, DisposedError, noGrad } from './index.js';
import { testCpuBackend, testWebGPUBackend } from './testing/index.js';
import type { Backend } from './backend.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('memory on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    it('scope frees everything but what it returns', () => {
      const before = memory();
      const kept = scope(() => {
        const a = randn([4, 4], { backend });
        const b = a.matmul(a).softmax(-1);
        return { b, list: [b.sum()] };
      });
      const after = memory();
      expect(after.tensors).toBe(before.tensors + 2);
      kept.b.dispose();
      kept.list[0].dispose();
      expect(memory().tensors).toBe(before.tensors);
      expect(memory().backends[backend.name].bytes).toBe(before.backends[backend.name]?.bytes ?? 0);
    });

    it('keep() survives the scope; nested scopes hand results outwards', () => {
      const before = memory().tensors;
      let inner: Tensor | null = null;
      const outer = scope(() => {
        const k = keep(zeros([2], { backend }));
        inner = scope(() => zeros([3], { backend }).addScalar(1));
        return k;
      });
      expect(memory().tensors).toBe(before + 1);
      expect(inner!.disposed).toBe(true);
      outer.dispose();
      expect(memory().tensors).toBe(before);
    });

    it('scope refuses async callbacks', () => {
      expect(() => scope(() => Promise.resolve(1) as unknown as number)).toThrow(/synchronous/);
    });

    it('using disposes at block end', () => {
      const before = memory().tensors;
      {
        using a = zeros([8], { backend });
        expect(a.disposed).toBe(false);
      }
      expect(memory().tensors).toBe(before);
    });

    it('use after dispose names the op and the tensor', () => {
      const a = zeros([2, 3], { backend });
      a.dispose();
      expect(() => a.addScalar(1)).toThrow(DisposedError);
      expect(() => a.addScalar(1)).toThrow(/affine: tensor #\d+ \[2,3\] float32 was used after dispose/);
    });

    it('the buffer pool stays under its cap and trim() empties it', async () => {
      const gpu = backend as Backend & { poolLimitBytes: number };
      const before = gpu.poolLimitBytes;
      gpu.poolLimitBytes = 1 << 20;
      for (let n = 1000; n < 60000; n += 7000) zeros([n], { backend }).dispose();
      await backend.sync();
      expect(backend.memory().pooledBytes).toBeLessThanOrEqual(1 << 20);
      backend.trim!();
      expect(backend.memory().pooledBytes).toBe(0);
      expect(Array.from(await zeros([3], { backend }).addScalar(2).data())).toEqual([2, 2, 2]);
      gpu.poolLimitBytes = before;
    });

    it('a freed buffer is reused with stale contents that no kernel reads', async () => {
      backend.trim!();
      const a = randn([64, 64], { backend });
      const first = a.storage;
      a.dispose();
      expect(backend.memory().pooledBytes).toBe(64 * 64 * 4);
      // The pooled storage comes back for the next tensor of that size; every kernel writes all of it.
      const b = tensor(new Float32Array(4096).fill(1), [64, 64], { backend });
      const c = b.matmul(b);
      expect(backend.memory().pooledBytes).toBe(0);
      expect(Array.from(new Set(await c.data()))).toEqual([64]);
      expect(first.refs).toBe(0);
      [b, c].forEach((t) => t.dispose());
    });

    it('a training step in a loop does not grow memory', async () => {
      // A tiny MLP trained with SGD: forward, backward, update, all inside one scope per step.
      let w1 = noGrad(() => randn([8, 16], { backend, std: 0.3 })).requiresGrad_();
      let w2 = noGrad(() => randn([16, 4], { backend, std: 0.3 })).requiresGrad_();
      const x = randn([5, 8], { backend });
      const target = tensor([0, 1, 2, 3, 0], { backend, dtype: 'int32' });
      const step = () =>
        scope(() => {
          const logits = x.matmul(w1).gelu().matmul(w2);
          const loss = logits.logSoftmax(-1).gather(1, target.unsqueeze(1)).mean().neg();
          loss.backward();
          const next = noGrad(() => [w1.sub(w1.grad!.mulScalar(0.1)), w2.sub(w2.grad!.mulScalar(0.1))]);
          for (const p of [w1, w2]) {
            p.zeroGrad();
            p.dispose();
          }
          [w1, w2] = next.map((p) => p.requiresGrad_());
          return next;
        });
      step();
      const baseline = memory();
      for (let i = 0; i < 10; i++) step();
      await backend.sync();
      const after = memory();
      expect(after.tensors).toBe(baseline.tensors);
      expect(after.backends[backend.name].storages).toBe(baseline.backends[backend.name].storages);
      expect(after.backends[backend.name].bytes).toBe(baseline.backends[backend.name].bytes);
    });
  });
});
