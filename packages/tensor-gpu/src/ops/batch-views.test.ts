// Attention's head split as strided views: matmul and the fused attention on [B, L, H, D] permuted to
// [B, H, L, D] (batch dims that do not merge), with a mask broadcast over the heads, against float64
// loops on both backends; on the cpu backend without a single contiguous copy, the fused attention's
// context written in [B, L, H, D] order so that merging the heads back is a view.
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { Backend } from '../backend.js';
import { scaledDotProductAttention, tensor, type Tensor } from '../index.js';
import { compareArrays, hostInput, testCpuBackend, testWebGPUBackend } from '../testing/index.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());
const backends: Record<string, Backend | null> = { cpu: testCpuBackend(), webgpu };

const [B, L, H, D] = [3, 5, 4, 8];

/** x[b, h, i, j] of a [B, L, H, C] host array read as its [B, H, L, C] permutation. */
const at = (x: ArrayLike<number>, C: number) => (b: number, h: number, i: number, j: number) => x[((b * L + i) * H + h) * C + j];

describe.each(Object.keys(backends).map((name) => ({ name })))('head split views on $name', ({ name }) => {
  const backend = backends[name]!;
  describe.skipIf(!backend)(name, () => {
    const heads = (x: ArrayLike<number>, C: number): Tensor => tensor(Array.from(x), { backend }).reshape(B, L, H, C).permute(0, 2, 1, 3); // [B, H, L, C]
    const qh = hostInput({ shape: [B, L, H, D] }, 1);
    const kh = hostInput({ shape: [B, L, H, D] }, 2);
    const vh = hostInput({ shape: [B, L, H, D] }, 3);
    const maskh = hostInput({ shape: [B, L] }, 4).map((u) => (u > 0.5 ? 0 : -1e4));

    it('q @ k^T and (q @ k^T) @ v on permuted heads match float64', async () => {
      const copies = vi.spyOn(backend, 'copy');
      const q = heads(qh, D);
      const k = heads(kh, D);
      const v = heads(vh, D);
      const s = q.matmul(k.transpose(-1, -2)); // [B, H, L, L]
      const ctx = s.matmul(v); // [B, H, L, D]
      const [Q, K, V] = [at(qh, D), at(kh, D), at(vh, D)];
      const wantS: number[] = [];
      const wantC: number[] = [];
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          const rows = Array.from({ length: L }, (_, i) => Array.from({ length: L }, (_, j) => Array.from({ length: D }, (_, d) => Math.fround(Q(b, h, i, d)) * Math.fround(K(b, h, j, d))).reduce((x, y) => x + y, 0)));
          rows.forEach((r) => wantS.push(...r));
          for (let i = 0; i < L; i++) for (let d = 0; d < D; d++) wantC.push(rows[i].reduce((acc, sij, j) => acc + Math.fround(sij) * Math.fround(V(b, h, j, d)), 0));
        }
      }
      expect(compareArrays(await s.data(), wantS, 1e-5, 1e-5).ok).toBe(true);
      expect(compareArrays(await ctx.data(), wantC, 1e-4, 1e-5).ok).toBe(true);
      // the cpu backend reads the strided heads in place
      if (name === 'cpu') expect(copies).not.toHaveBeenCalled();
      else expect(copies).toHaveBeenCalled(); // webgpu keeps its contiguous copies
      copies.mockRestore();
    });

    it('the fused attention on permuted heads with a [B, 1, 1, L] mask matches float64', async () => {
      const copies = vi.spyOn(backend, 'copy');
      const q = heads(qh, D);
      const k = heads(kh, D);
      const v = heads(vh, D);
      const mask = tensor(Array.from(maskh), { backend }).reshape(B, 1, 1, L);
      const got = await scaledDotProductAttention(q, k, v, { mask, scale: 0.3 }).data(); // [B, H, L, D]
      const [Q, K, V] = [at(qh, D), at(kh, D), at(vh, D)];
      const want: number[] = [];
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          for (let i = 0; i < L; i++) {
            const sc = Array.from({ length: L }, (_, j) => 0.3 * Array.from({ length: D }, (_, d) => Math.fround(Q(b, h, i, d)) * Math.fround(K(b, h, j, d))).reduce((x, y) => x + y, 0) + Math.fround(maskh[b * L + j]));
            const m = Math.max(...sc);
            const e = sc.map((x) => Math.exp(x - m));
            const z = e.reduce((x, y) => x + y, 0);
            for (let d = 0; d < D; d++) want.push(e.reduce((acc, ej, j) => acc + (ej / z) * Math.fround(V(b, h, j, d)), 0));
          }
        }
      }
      expect(compareArrays(got, want, 1e-5, 1e-4).ok).toBe(true);
      if (name === 'cpu') expect(copies).not.toHaveBeenCalled();
      else expect(copies).toHaveBeenCalled(); // webgpu keeps its contiguous copies
      copies.mockRestore();
    });

    it("the context's head merge (permute + reshape to [B, L, H*D]) is a view on cpu, with the same values", async () => {
      const q = heads(qh, D);
      const k = heads(kh, D);
      const v = heads(vh, D);
      const mask = tensor(Array.from(maskh), { backend }).reshape(B, 1, 1, L);
      // heads split as views (batch dims that do not merge) and as contiguous [B, H, L, D] inputs (they merge)
      const split = scaledDotProductAttention(q, k, v, { mask, scale: 0.3 });
      const dense = scaledDotProductAttention(q.contiguous(), k.contiguous(), v.contiguous(), { mask, scale: 0.3 });
      const copies = vi.spyOn(backend, 'copy');
      const merged = [split, dense].map((c) => c.permute(0, 2, 1, 3).reshape(B, L, H * D));
      if (name === 'cpu') {
        expect(copies).not.toHaveBeenCalled();
        expect(split.isContiguous).toBe(false); // [B, H, L, D] over [B, L, H, D] storage
      }
      copies.mockRestore();
      const [a, b] = await Promise.all(merged.map((t) => t.data()));
      expect(compareArrays(a, await split.permute(0, 2, 1, 3).contiguous().data(), 0, 0).ok).toBe(true);
      expect(compareArrays(a, b, 1e-6, 1e-5).ok).toBe(true);
      expect(Array.from(a).some((u) => Math.abs(u) > 1e-2)).toBe(true);
    });

    it('gradients through permuted heads (and a mask broadcast over heads) equal those through contiguous copies', async () => {
      const q = heads(qh, D).requiresGrad_();
      const k = heads(kh, D).requiresGrad_();
      const v = heads(vh, D).requiresGrad_();
      const qc = q.contiguous().detach().requiresGrad_();
      const kc = k.contiguous().detach().requiresGrad_();
      const vc = v.contiguous().detach().requiresGrad_();
      const mask = tensor(Array.from(maskh), { backend }).reshape(B, 1, 1, L);
      const g = tensor(Array.from(hostInput({ shape: [B, H, L, D] }, 5)), { backend }).reshape(B, H, L, D);
      // matmul path and fused attention, summed so one backward covers both
      const run = (a: Tensor, b: Tensor, c: Tensor) => a.matmul(b.transpose(-1, -2)).matmul(c).add(scaledDotProductAttention(a, b, c, { mask, scale: 0.3 }));
      run(q, k, v).backward(g);
      run(qc, kc, vc).backward(g);
      for (const [x, y] of [[q, qc], [k, kc], [v, vc]] as const) {
        const got = await x.grad!.data();
        const want = await y.grad!.data();
        expect(compareArrays(got, want, 1e-5, 1e-4).ok).toBe(true);
        // and not trivially: the gradient is not all zeros
        expect(Array.from(got).some((u) => Math.abs(u) > 1e-3)).toBe(true);
      }
    });
  });
});
