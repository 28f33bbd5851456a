// Decoder caches as the generation loop sees them. The loop never looks inside a cache: it asks
// CacheOps for the tensors it holds (to keep them alive across steps and free them when replaced)
// and, in beam search, for a copy with its batch rows picked by index (HF's `_reorder_cache`).
//
// The default ops treat a cache as a tree of tensors (arrays, plain objects and Maps, the shapes
// `scope` keeps) whose batch axis is 0, which covers the usual KV cache: one `{ key, value }` per
// layer, [batch, heads, len, headDim]. Seq-first layouts (ChatGLM's [len, batch, heads, headDim])
// pass `batchAxis: 1`; a cache class supplies its own `tensors`/`reorder`.

import { concat, keep, Tensor } from '@lm/tensor-gpu';

export interface CacheOps<Cache> {
  /** Every tensor the cache holds; the generation loop owns them and disposes them when replaced. */
  tensors(cache: Cache): Iterable<Tensor>;
  /** A cache whose batch row i is row `indices[i]` of `cache` (int32 [rows]); `cache` is left intact. */
  reorder(cache: Cache, indices: Tensor): Cache;
}

/** One attention layer's cached projections, [batch, heads, len, headDim]. */
export interface KVPair {
  key: Tensor;
  value: Tensor;
}

/** A decoder's self-attention cache: one entry per layer. */
export type KVCache = KVPair[];

/** Tensors reachable from `value` through arrays, plain objects and Maps, each once. */
export function cacheTensors(value: unknown): Tensor[] {
  const out = new Set<Tensor>();
  const seen = new Set<unknown>();
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (v instanceof Tensor) out.add(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v instanceof Map) for (const x of v.values()) walk(x);
    else if (Object.getPrototypeOf(v) === Object.prototype) Object.values(v).forEach(walk);
  };
  walk(value);
  return [...out];
}

/** Copies the tree with every tensor replaced by `fn(tensor)` (shared tensors map once). */
function mapTensors<T>(value: T, fn: (t: Tensor) => Tensor, memo = new Map<Tensor, Tensor>()): T {
  if (value instanceof Tensor) {
    let m = memo.get(value);
    if (!m) memo.set(value, (m = fn(value)));
    return m as T;
  }
  if (Array.isArray(value)) return value.map((v) => mapTensors(v, fn, memo)) as T;
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, mapTensors(v, fn, memo)])) as T;
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapTensors(v, fn, memo)])) as T;
  }
  return value;
}

/** CacheOps for a tree of tensors whose batch rows lie along `batchAxis` (default 0). */
export function treeCacheOps<Cache>(options: { batchAxis?: number } = {}): CacheOps<Cache> {
  const axis = options.batchAxis ?? 0;
  return {
    tensors: (cache) => cacheTensors(cache),
    reorder: (cache, indices) => mapTensors(cache, (t) => t.indexSelect(axis, indices)),
  };
}

/** The default: tensors found by walking arrays/objects/Maps, batch axis 0. */
export const defaultCacheOps: CacheOps<unknown> = treeCacheOps();

/** The cache with its batch rows picked by `indices` (int32 [rows]): index_select along axis 0. */
export function reorderKVCache(cache: KVCache, indices: Tensor): KVCache {
  return cache.map(({ key, value }) => ({ key: key.indexSelect(0, indices), value: value.indexSelect(0, indices) }));
}

export function disposeKVCache(cache: KVCache | null | undefined): void {
  for (const t of cacheTensors(cache)) t.dispose();
}

/** Cached positions (the `len` of layer 0's key, along `seqAxis`), 0 for no cache: the position offset of the next input. */
export function kvCacheLength(cache: KVCache | null | undefined, seqAxis = 2): number {
  const first = cache?.[0];
  return first ? first.key.shape[seqAxis < 0 ? first.key.rank + seqAxis : seqAxis] : 0;
}

/**
 * The layer's cache after this step: the past keys/values (if any) followed by the new ones along
 * `seqAxis` ([batch, heads, len, headDim] -> 2). Returns fresh tensors; the past is left for the
 * generation loop to free.
 */
export function appendKV(past: KVPair | null | undefined, key: Tensor, value: Tensor, seqAxis = 2): KVPair {
  if (!past) return { key: key.contiguous(), value: value.contiguous() };
  return { key: concat([past.key, key], seqAxis), value: concat([past.value, value], seqAxis) };
}

/** Keeps every tensor of a cache out of the enclosing scopes; returns the cache. */
export function keepCache<Cache>(cache: Cache, ops: CacheOps<Cache>): Cache {
  for (const t of ops.tensors(cache)) keep(t);
  return cache;
}

/** Disposes the tensors of `old` that `next` does not hold (a step may pass some through unchanged). */
export function disposeReplaced<Cache>(old: Cache | null, next: Cache | null, ops: CacheOps<Cache>): void {
  if (old === null) return;
  const live = new Set(next === null ? [] : ops.tensors(next));
  for (const t of ops.tensors(old)) if (!live.has(t)) t.dispose();
}
