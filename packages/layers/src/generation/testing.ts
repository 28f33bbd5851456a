// Test-only helpers for the generation tests (not exported from the package): a tiny deterministic
// "model" whose next-token logits depend on the last two tokens, computed on the device from a KV
// cache that stores every id fed so far, so a wrongly reordered cache shows up as wrong logits; and
// its float64 host twin for the references.

import { fromHost, keep, stack, zeros, type Backend, type Tensor } from '@lm/tensor-gpu';
import { appendKV, type KVCache } from './cache.js';
import type { DecoderStep } from './generate.js';

/** Logits of token v after ids [..., prev, last]: a[last][v] + c[prev][v] (prev = 0 for one id). */
export interface Table {
  vocab: number;
  a: number[][];
  c: number[][];
}

export function table(a: number[][], c?: number[][]): Table {
  const vocab = a.length;
  const f = (m: number[][]) => m.map((r) => r.map(Math.fround));
  return { vocab, a: f(a), c: f(c ?? a.map((r) => r.map(() => 0))) };
}

/** float32 logits, as the device computes them (one rounding of a + c). */
export function hostLogits(t: Table, ids: readonly number[]): number[] {
  const last = ids[ids.length - 1];
  const prev = ids.length >= 2 ? ids[ids.length - 2] : 0;
  return t.a[last].map((v, j) => Math.fround(v + t.c[prev][j]));
}

export function logSoftmax(x: readonly number[]): number[] {
  const m = Math.max(...x);
  const lse = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return x.map((v) => v - lse);
}

export interface CallRecord {
  rows: number;
  newLen: number;
  pastLen: number;
}

export interface FakeModel {
  step: DecoderStep<KVCache>;
  calls: CallRecord[];
  dispose(): void;
}

/** The device model for `t` on `backend`: a one-layer KV cache whose key holds the ids, value their negation. */
export function fakeModel(t: Table, backend: Backend): FakeModel {
  const flat = (m: number[][]) => fromHost(Float32Array.from(m.flat()), [t.vocab, t.vocab], 'float32', backend);
  const a = keep(flat(t.a));
  const c = keep(flat(t.c));
  const calls: CallRecord[] = [];
  const step: DecoderStep<KVCache> = (inputIds, cache) => {
    const [rows, newLen] = inputIds.shape;
    const past = cache?.[0];
    if (past && (past.key.shape[0] !== rows || past.value.shape[0] !== rows)) throw new Error(`fake model: cache rows ${past.key.shape[0]} != input rows ${rows}`);
    calls.push({ rows, newLen, pastLen: past ? past.key.shape[2] : 0 });
    const x = inputIds.toFloat().reshape(rows, 1, newLen, 1); // [rows, heads=1, newLen, headDim=1]
    const layer = appendKV(past, x, x.neg());
    const len = layer.key.shape[2];
    const idAt = (i: number, kv: Tensor, sign: number): Tensor => kv.narrow(2, i, 1).reshape(rows).mulScalar(sign).toInt();
    const last = idAt(len - 1, layer.key, 1);
    // The older id comes from the value half, so both halves must have been reordered.
    const prev = len >= 2 ? idAt(len - 2, layer.value, -1) : zeros([rows], { backend, dtype: 'int32' });
    const logits = a.indexSelect(0, last).add(c.indexSelect(0, prev)); // [rows, vocab]
    return { logits, cache: [layer] };
  };
  return {
    step,
    calls,
    dispose() {
      a.dispose();
      c.dispose();
    },
  };
}

/** A deterministic pseudo-random table in [-spread, spread]. */
export function randomTable(vocab: number, seed: number, spread = 2): number[][] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  return Array.from({ length: vocab }, () => Array.from({ length: vocab }, () => (next() * 2 - 1) * spread));
}

/** The same model as a full-sequence forward (no cache): logits [rows, len, vocab] for every position. */
export function fakeForward(t: Table, backend: Backend): { forward: (ids: Tensor) => Tensor; calls: number[][]; dispose(): void } {
  const flat = (m: number[][]) => fromHost(Float32Array.from(m.flat()), [t.vocab, t.vocab], 'float32', backend);
  const a = keep(flat(t.a));
  const c = keep(flat(t.c));
  const calls: number[][] = [];
  const forward = (ids: Tensor): Tensor => {
    const [rows, len] = ids.shape;
    calls.push([rows, len]);
    const positions: Tensor[] = [];
    for (let i = 0; i < len; i++) {
      const last = ids.narrow(1, i, 1).reshape(rows);
      const prev = i >= 1 ? ids.narrow(1, i - 1, 1).reshape(rows) : zeros([rows], { backend, dtype: 'int32' });
      positions.push(a.indexSelect(0, last).add(c.indexSelect(0, prev))); // [rows, vocab]
    }
    return stack(positions, 1); // [rows, len, vocab]
  };
  return {
    forward,
    calls,
    dispose() {
      a.dispose();
      c.dispose();
    },
  };
}
