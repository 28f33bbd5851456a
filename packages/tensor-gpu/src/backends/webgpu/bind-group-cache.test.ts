// The runtime's bind-group cache (runtime.ts): a dispatch repeated on the same buffers, offsets and
// params slot reuses its bind group (counted by rt.bindGroupsCreated), results stay right when pooled
// buffers are recycled under new tensors, the LRU bound holds, and limit 0 turns the cache off.
import { afterAll, describe, expect, it } from 'vitest';
import { add, fromHost, mul } from '../../index.js';
import { testWebGPUBackend } from '../../testing/index.js';
import type { WebGPUBackend } from './index.js';

const backend = (await testWebGPUBackend()) as WebGPUBackend | null;
afterAll(() => backend?.destroy());

describe.skipIf(!backend)('webgpu bind-group cache', () => {
  const rt = backend!.rt;
  const a = fromHost(Float32Array.from([1, 2, 3, 4]), [4], 'float32', backend!);
  const b = fromHost(Float32Array.from([10, 20, 30, 40]), [4], 'float32', backend!);

  /** One step the way a decode step runs: compute, read back (the batch is submitted, slots restart). */
  async function step(x = a, y = b): Promise<number[]> {
    const s = add(x, y);
    const out = Array.from(await s.data());
    s.dispose();
    return out;
  }

  it('a repeated step creates no bind group; its results stay right', async () => {
    rt.bindGroupCacheLimit = 4096;
    expect(await step()).toEqual([11, 22, 33, 44]);
    const before = rt.bindGroupsCreated;
    expect(await step()).toEqual([11, 22, 33, 44]);
    expect(await step()).toEqual([11, 22, 33, 44]);
    expect(rt.bindGroupsCreated - before).toBe(0);
  });

  it('recycled buffers under new tensors: the cached groups see the new contents', async () => {
    const x = fromHost(Float32Array.from([5, 6, 7, 8]), [4], 'float32', backend!);
    expect(await step(x)).toEqual([15, 26, 37, 48]);
    x.dispose();
    // the pool hands x's buffer to y: same buffer, same bind group, new data
    const y = fromHost(Float32Array.from([-1, -2, -3, -4]), [4], 'float32', backend!);
    const before = rt.bindGroupsCreated;
    expect(await step(y)).toEqual([9, 18, 27, 36]);
    expect(rt.bindGroupsCreated - before).toBe(0);
    y.dispose();
  });

  it('another kernel with the same layout and buffers shares the group; the LRU bound (limit 1 keeps only the last)', async () => {
    const shared = rt.bindGroupsCreated;
    const p = mul(a, b); // add's layout, add's buffers: add's bind group serves it
    expect(Array.from(await p.data())).toEqual([10, 40, 90, 160]);
    p.dispose();
    expect(rt.bindGroupsCreated - shared).toBe(0);
    rt.bindGroupCacheLimit = 1;
    const m = async (): Promise<number[]> => {
      const s = mul(b, a); // operands swapped: other bindings than add(a, b)
      const out = Array.from(await s.data());
      s.dispose();
      return out;
    };
    const before = rt.bindGroupsCreated;
    expect(await m()).toEqual([10, 40, 90, 160]);
    expect(await step()).toEqual([11, 22, 33, 44]);
    expect(await m()).toEqual([10, 40, 90, 160]);
    expect(await m()).toEqual([10, 40, 90, 160]);
    // mul, add, mul each evicted the other's group: 3 created; the last mul reused the one kept
    expect(rt.bindGroupsCreated - before).toBe(3);
  });

  it('limit 0: every dispatch creates its bind group', async () => {
    rt.bindGroupCacheLimit = 0;
    const before = rt.bindGroupsCreated;
    const d0 = rt.dispatchCount;
    expect(await step()).toEqual([11, 22, 33, 44]);
    expect(await step()).toEqual([11, 22, 33, 44]);
    expect(rt.bindGroupsCreated - before).toBe(rt.dispatchCount - d0);
    expect(rt.dispatchCount - d0).toBeGreaterThan(0);
    rt.bindGroupCacheLimit = 4096;
  });
});
