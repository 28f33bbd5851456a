import { afterAll, describe, expect, it } from 'vitest';
import { tensor, zeros, ShapeError, DTypeError, IndexError, BackendError, concat, crossEntropy, cpu, init } from './index.js';
import { testCpuBackend, testWebGPUBackend } from './testing/index.js';
import type { Backend } from './backend.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('errors on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const t = (d: Parameters<typeof tensor>[0], dtype?: 'int32') => tensor(d, { backend, dtype });

    it('shape mismatches name the op and both shapes', () => {
      expect(() => zeros([2, 3], { backend }).matmul(zeros([4, 5], { backend }))).toThrow(new ShapeError('matmul: a[2,3] @ b[4,5]: inner dims 3 != 4'));
      expect(() => zeros([2, 3], { backend }).add(zeros([4], { backend }))).toThrow(/add: shapes \[2,3\] and \[4\] cannot be broadcast together/);
      expect(() => zeros([6], { backend }).reshape(4, 2)).toThrow(/reshape: cannot reshape \[6\] \(size 6\) to \[4,2\]/);
      expect(() => concat([zeros([2, 3], { backend }), zeros([2, 4], { backend })], 0)).toThrow(ShapeError);
      expect(() => zeros([2, 3], { backend }).permute(0, 1).view(3, 2)).not.toThrow();
      expect(() => zeros([2, 3], { backend }).transpose().view(6)).toThrow(/view: .* cannot be viewed as \[6\]; use reshape/);
    });

    it('bad axes name the axis and the rank', () => {
      expect(() => zeros([2, 3], { backend }).sum(2)).toThrow(IndexError);
      expect(() => zeros([2, 3], { backend }).softmax(-3)).toThrow(/axis -3 is out of range for a tensor of rank 2/);
    });

    it('dtype mismatches name the dtypes', () => {
      expect(() => t([1, 2], 'int32').matmul(t([1, 2], 'int32'))).toThrow(DTypeError);
      expect(() => crossEntropy(zeros([2, 3], { backend }), zeros([2], { backend }))).toThrow(/targets must be int32/);
      expect(() => zeros([3], { backend }).gather(0, zeros([2], { backend }))).toThrow(/gather: index must be int32, got \[2\] float32/);
    });

    it('out-of-range indices are an IndexError, never garbage', async () => {
      const table = zeros([4, 2], { backend });
      const run = async () => {
        const out = table.indexSelect(0, t([1, 7], 'int32'));
        await out.data();
      };
      await expect(run()).rejects.toThrow(IndexError);
      await expect(run()).rejects.toThrow(/indexSelect: index 7 is out of range/);
      // the backend stays usable afterwards
      expect(Array.from(await table.indexSelect(0, t([3], 'int32')).data())).toEqual([0, 0]);
    });

    it('mixing backends is refused with a hint', () => {
      if (backend === cpu()) return;
      expect(() => zeros([2], { backend }).add(zeros([2], { backend: cpu() }))).toThrow(/different backends .* await t.to\(backend\)/);
    });
  });
});

describe('backend choice', () => {
  it('init rejects unknown backends by name', async () => {
    await expect(init('tpu' as never)).rejects.toThrow(BackendError);
  });
  it("auto does not pick a software adapter over the cpu backend", async () => {
    const b = await init('auto');
    if (webgpu?.isSoftware) expect(b.name).toBe('cpu');
    await init('cpu');
  });
});
