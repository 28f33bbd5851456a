// The flash attention kernels (forced with attentionKernel: 'flash'; SwiftShader picks 'rowwise') through
// the op: forward values and q/k/v gradients against the cpu backend, which computes attention and its
// backward with its own kernels and the composite (weights recomputed with ops). Masks, causal with a
// KV-cache offset and with fully masked rows, several query blocks and key tiles, both tile configurations,
// broadcast batch dims, and the composite fallbacks (mask gradient, head dim above 128).
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../backend.js';
import { scaledDotProductAttention, tensor, type Tensor } from '../../index.js';
import { compareArrays, hostInput, testCpuBackend } from '../../testing/index.js';
import { webgpuRequired } from '../../testing/backends.js';
import { createWebGPUBackend, type WebGPUBackend } from './index.js';

let flash: WebGPUBackend | null = null;
try {
  flash = await createWebGPUBackend({ attentionKernel: 'flash' });
} catch (e) {
  if (webgpuRequired()) throw e;
}
afterAll(() => flash?.destroy());

interface Case {
  name: string;
  q: number[];
  k: number[];
  v: number[];
  mask?: { shape: number[]; kind: 'bool' | 'add'; grad?: boolean };
  causal?: boolean;
  /** The op's composite backward runs, not the fused one. */
  composite?: boolean;
}

const cases: Case[] = [
  { name: 'one tile, no mask', q: [2, 3, 5, 16], k: [2, 3, 7, 16], v: [2, 3, 7, 12] },
  { name: 'several query blocks and key tiles', q: [1, 2, 37, 64], k: [1, 2, 50, 64], v: [1, 2, 50, 64] },
  { name: 'causal with a KV-cache offset', q: [2, 1, 19, 24], k: [2, 1, 35, 24], v: [2, 1, 35, 40], causal: true },
  { name: 'causal with fully masked rows (Lq > Lk)', q: [1, 2, 20, 8], k: [1, 2, 9, 8], v: [1, 2, 9, 8], causal: true },
  { name: 'bool padding mask broadcast over heads', q: [2, 3, 17, 32], k: [2, 3, 17, 32], v: [2, 3, 17, 32], mask: { shape: [2, 1, 1, 17], kind: 'bool' } },
  { name: 'additive mask with -inf entries, causal', q: [1, 2, 21, 16], k: [1, 2, 21, 16], v: [1, 2, 21, 16], mask: { shape: [1, 1, 21, 21], kind: 'add' }, causal: true },
  { name: 'head dims up to 128', q: [1, 2, 21, 96], k: [1, 2, 17, 96], v: [1, 2, 17, 128], mask: { shape: [1, 1, 21, 17], kind: 'bool' } },
  { name: 'k and v shared by every head (broadcast)', q: [2, 4, 9, 16], k: [2, 1, 11, 16], v: [2, 1, 11, 16], causal: true },
  { name: 'additive mask that needs a gradient (composite)', q: [1, 2, 6, 8], k: [1, 2, 7, 8], v: [1, 2, 7, 8], mask: { shape: [1, 2, 6, 7], kind: 'add', grad: true }, composite: true },
  { name: 'head dim above 128 (row kernel, composite backward)', q: [1, 1, 5, 160], k: [1, 1, 6, 160], v: [1, 1, 6, 8], composite: true },
];

function maskHost(c: Case): Float32Array {
  const m = c.mask!;
  const n = m.shape.reduce((a, b) => a * b, 1);
  const L = m.shape[m.shape.length - 1];
  if (m.kind === 'bool') return Float32Array.from({ length: n }, (_, i) => (i % L < L - 2 - (i % 3) ? 1 : 0)); // ragged padding
  return Float32Array.from(hostInput({ shape: m.shape, kind: 'normal' }, 9), (x, i) => (i % 7 === 3 && !m.grad ? -Infinity : x));
}

async function run(backend: Backend, c: Case) {
  const mk = (shape: number[], seed: number) => tensor(hostInput({ shape, kind: 'normal' }, seed), shape, { backend }).requiresGrad_();
  const q = mk(c.q, 1);
  const k = mk(c.k, 2);
  const v = mk(c.v, 3);
  let mask: Tensor | null = null;
  if (c.mask) {
    const host = maskHost(c);
    mask = c.mask.kind === 'bool' ? tensor(Uint8Array.from(host), c.mask.shape, { backend, dtype: 'bool' }) : tensor(host, c.mask.shape, { backend });
    if (c.mask.grad) mask.requiresGrad_();
  }
  const y = scaledDotProductAttention(q, k, v, { mask, causal: c.causal ?? false });
  // read between forward and backward: each compiles pipelines synchronously (seconds on SwiftShader)
  const yHost = await y.data();
  const g = tensor(hostInput({ shape: [...y.shape], kind: 'normal' }, 4), [...y.shape], { backend });
  y.backward(g);
  const out: Record<string, Float32Array | Int32Array | Uint8Array> = {
    y: yHost,
    dq: await q.grad!.data(),
    dk: await k.grad!.data(),
    dv: await v.grad!.data(),
  };
  if (mask?.requiresGrad) out.dmask = await mask.grad!.data();
  return out;
}

// Counts the fused backward's runs (it returns false when it declines).
let fusedRuns = 0;
if (flash) {
  const kernel = flash.fused.attentionBackward!;
  flash.fused.attentionBackward = (...args) => {
    const done = kernel(...args);
    if (done) fusedRuns++;
    return done;
  };
}

describe.skipIf(!flash)('flash attention on webgpu (forced)', () => {
  it('is the attention kernel of the forced backend', () => {
    expect(flash!.attentionKernel).toBe('flash');
  });
  for (const c of cases) {
    it(`${c.name}: output and gradients equal the cpu backend's`, async () => {
      const want = await run(testCpuBackend(), c);
      const runs = fusedRuns;
      const got = await run(flash!, c);
      expect(fusedRuns - runs).toBe(c.composite ? 0 : 1);
      expect(Object.keys(got)).toEqual(Object.keys(want));
      for (const key of Object.keys(want)) {
        const r = compareArrays(got[key], want[key], 1e-5, 1e-5);
        expect(r.ok, `${key}: max |difference| ${r.maxAbs} at ${r.at}`).toBe(true);
      }
    }, 300_000); // four pipelines to compile per mask kind: tens of seconds on a loaded SwiftShader
  }
  it('the fused backward declines what it does not handle and leaves no storage behind', async () => {
    const view = (shape: number[]) => ({ storage: flash!.alloc('float32', shape.reduce((a, b) => a * b, 1)), dtype: 'float32' as const, shape, strides: [shape[1] * shape[2], shape[2], 1], offset: 0 });
    const before = flash!.memory().storages;
    const [q, k, v, g, gq, gk, gv] = [[1, 2, 160], [1, 3, 160], [1, 3, 4], [1, 2, 4], [1, 2, 160], [1, 3, 160], [1, 3, 4]].map(view);
    expect(flash!.fused.attentionBackward!(q, k, v, null, g, gq, gk, gv, 1, false)).toBe(false);
    for (const t of [q, k, v, g, gq, gk, gv]) flash!.free(t.storage);
    expect(flash!.memory().storages).toBe(before);
  });
});
