import { afterAll, describe, expect, it } from 'vitest';
import { arange, fromHost, memory, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import {
  appendKV,
  cacheTensors,
  defaultCacheOps,
  disposeKVCache,
  disposeReplaced,
  keepCache,
  kvCacheLength,
  reorderKVCache,
  treeCacheOps,
  type KVCache,
} from './cache.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('KV cache helpers on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    // [batch=3, heads=2, len, headDim=2] with distinct values per element.
    const kv = (len: number, base: number): Tensor => scope(() => arange(base, base + 3 * 2 * len * 2, 1, { backend, dtype: 'float32' }).reshape(3, 2, len, 2));

    it('appendKV concatenates along the sequence axis; kvCacheLength reads it', async () => {
      const before = memory().tensors;
      const cache: KVCache = scope(() => {
        const first = appendKV(null, kv(2, 0), kv(2, 100));
        const next = appendKV(first, kv(1, 1000), kv(1, 2000));
        return [next];
      });
      expect(cache[0].key.shape).toEqual([3, 2, 3, 2]);
      expect(kvCacheLength(cache)).toBe(3);
      expect(kvCacheLength(null)).toBe(0);
      const key = (await cache[0].key.toArray()) as number[][][][];
      expect(key[1][0]).toEqual([
        [8, 9],
        [10, 11],
        [1004, 1005],
      ]);
      disposeKVCache(cache);
      expect(memory().tensors).toBe(before);
    });

    it('reorderKVCache and the tree ops pick batch rows (axis 0, or 1 for seq-first caches)', async () => {
      const before = memory().tensors;
      const idx = fromHost(Int32Array.from([2, 0, 0]), [3], 'int32', backend);
      const cache: KVCache = [{ key: kv(2, 0), value: kv(2, 100) }];
      const picked = reorderKVCache(cache, idx);
      const viaTree = defaultCacheOps.reorder(cache, idx) as KVCache;
      const key = (await cache[0].key.toArray()) as number[][];
      const value = (await cache[0].value.toArray()) as number[][];
      expect(await picked[0].key.toArray()).toEqual([key[2], key[0], key[0]]);
      expect(await picked[0].value.toArray()).toEqual([value[2], value[0], value[0]]);
      expect(await viaTree[0].value.toArray()).toEqual([value[2], value[0], value[0]]);
      // ChatGLM-style [len, batch, heads, headDim]: batch axis 1, nested in an object with a Map.
      const seqFirst = { layers: new Map([['0', scope(() => kv(2, 0).permute(2, 0, 1, 3))]]) };
      const ops = treeCacheOps<typeof seqFirst>({ batchAxis: 1 });
      const moved = ops.reorder(seqFirst, idx);
      const perm = (await seqFirst.layers.get('0')!.toArray()) as number[][][];
      expect(await moved.layers.get('0')!.toArray()).toEqual(perm.map((rows) => [rows[2], rows[0], rows[0]]));
      expect(cacheTensors(moved)).toHaveLength(1);
      expect([...ops.tensors(seqFirst)]).toEqual([seqFirst.layers.get('0')]);
      for (const t of [idx, ...cacheTensors([cache, picked, viaTree, seqFirst, moved])]) t.dispose();
      expect(memory().tensors).toBe(before);
    });

    it('disposeReplaced frees only the tensors the new cache does not hold; keepCache survives scopes', () => {
      const before = memory().tensors;
      const shared = kv(1, 0);
      const old: KVCache = [{ key: shared, value: kv(1, 10) }];
      const next = scope(() => keepCache([{ key: shared, value: kv(1, 20) }] as KVCache, defaultCacheOps as never) as KVCache);
      expect(next[0].value.disposed).toBe(false);
      disposeReplaced(old, next, defaultCacheOps);
      expect(old[0].value.disposed).toBe(true);
      expect(shared.disposed).toBe(false);
      disposeReplaced(next, null, defaultCacheOps);
      expect(shared.disposed).toBe(true);
      expect(memory().tensors).toBe(before);
    });
  });
});
