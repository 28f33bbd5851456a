// The row kernels in place on the GEMM's shared memory (rows.ts, decision 0024): tensors of 256 KiB and
// more, split over the threads, against float64 references; the partial last row of the flat kernels;
// a one-thread pool; and the cases that must decline (storage outside the memory, rows not in fours).
import { describe, expect, it } from 'vitest';
import { FUSED_BINARY, UNARY } from '../../../elementwise-math.js';
import { biasActivation, cpu, layerNorm, logSoftmax, rmsNorm, softmax, tensor, type Tensor } from '../../../index.js';
import { heapOf } from '../gemm/heap.js';
import { createGemm } from '../gemm/index.js';
import { runRowTask } from './rows.js';

const backend = cpu();

function values(n: number, seed: number, scale = 6): number[] {
  return Array.from({ length: n }, (_, i) => {
    const k = (i * 2654435761 + seed) >>> 0;
    if (k % 97 === 0) return 0;
    return ((k % 100000) / 100000 - 0.5) * 2 * scale;
  });
}

function maxRelError(got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number> = want): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(scale[i])));
  return worst;
}

/** The tensor's storage lies in the GEMM's memory and its pool runs row tasks (the path under test). */
function inPlace(t: Tensor): boolean {
  const data = (t.storage as { data?: unknown }).data;
  return data instanceof Float32Array && heapOf(data)?.rows != null;
}

const rowsOf = (xs: number[], n: number) => Array.from({ length: xs.length / n }, (_, r) => xs.slice(r * n, (r + 1) * n).map(Math.fround));

describe('cpu row kernels in place on the shared memory', () => {
  it('softmax, log-softmax and their gradients over [160, 512] (a masked row, a NaN row) match float64', () => {
    const [rows, n] = [160, 512];
    const xs = values(rows * n, 1);
    for (let j = 0; j < n; j++) xs[3 * n + j] = -Infinity;
    xs[9 * n + 5] = NaN;
    xs[11 * n + 2] = -Infinity;
    const gs = values(rows * n, 2, 1);
    const [x, x2] = [tensor(xs, { backend, requiresGrad: true }), tensor(xs, { backend, requiresGrad: true })];
    const p = softmax(x.reshape([rows, n]), -1);
    const lp = logSoftmax(x2.reshape([rows, n]), -1);
    expect(inPlace(p) && inPlace(lp)).toBe(true);
    const g = tensor(gs, { backend }).reshape([rows, n]);
    p.backward(g);
    lp.backward(g);
    const [P, LP, GP, GL] = [p.dataSync(), lp.dataSync(), x.grad!.dataSync(), x2.grad!.dataSync()];
    const want = { p: [] as number[], l: [] as number[], gp: [] as number[], gl: [] as number[], scale: [] as number[] };
    rowsOf(xs, n).forEach((row, r) => {
      const m = r === 3 ? 0 : Math.max(...row.filter((v) => !Number.isNaN(v)));
      const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
      const gr = gs.slice(r * n, (r + 1) * n).map(Math.fround);
      const py = row.map((v) => Math.exp(v - m) / z);
      const dot = gr.reduce((s, v, j) => s + v * py[j], 0);
      const gsum = gr.reduce((s, v) => s + v, 0);
      row.forEach((v, j) => {
        want.p.push(py[j]);
        want.l.push(v - m - Math.log(z));
        want.gp.push(py[j] * (gr[j] - dot));
        want.gl.push(gr[j] - py[j] * gsum);
        want.scale.push(Math.max(Math.abs(gsum), Math.abs(dot)));
      });
    });
    // the fully masked row is 0 / 0 (NaN) like PyTorch, and so is the row holding a NaN
    for (const r of [3, 9]) for (let j = 0; j < n; j++) {
      expect(Number.isNaN(P[r * n + j]) && Number.isNaN(LP[r * n + j])).toBe(true);
      for (const a of [P, LP, GP, GL]) a[r * n + j] = 0;
      for (const a of [want.p, want.l, want.gp, want.gl, want.scale]) a[r * n + j] = 0;
    }
    expect(LP[11 * n + 2]).toBe(-Infinity);
    LP[11 * n + 2] = want.l[11 * n + 2] = 0;
    expect(maxRelError(P, want.p)).toBeLessThan(1e-6);
    expect(maxRelError(LP, want.l)).toBeLessThan(2e-6);
    expect(maxRelError(GP, want.gp, want.scale)).toBeLessThan(2e-6);
    expect(maxRelError(GL, want.gl, want.scale)).toBeLessThan(2e-6);
  });

  for (const rms of [false, true]) {
    it(`${rms ? 'RMS' : 'layer'} norm over [96, 768] and its gradients (input, weight) match float64`, () => {
      const [rows, n] = [96, 768];
      const xs = values(rows * n, 3).map((v, i) => v + (Math.floor(i / n) % 5 === 0 ? 300 : 0));
      const ws = values(n, 4, 1).map((v) => 1 + v);
      const bs = values(n, 5, 1);
      const gs = values(rows * n, 6, 1);
      const eps = rms ? 1e-6 : 1e-5;
      const x = tensor(xs, { backend, requiresGrad: true });
      const w = tensor(ws, { backend, requiresGrad: true });
      const b = tensor(bs, { backend });
      const y = rms ? rmsNorm(x.reshape([rows, n]), w, eps) : layerNorm(x.reshape([rows, n]), n, w, b, eps);
      expect(inPlace(y)).toBe(true);
      y.backward(tensor(gs, { backend }).reshape([rows, n]));
      const want = { y: [] as number[], dx: [] as number[], dw: new Array<number>(n).fill(0) };
      const wf = ws.map(Math.fround);
      rowsOf(xs, n).forEach((row, r) => {
        const mean = rms ? 0 : row.reduce((s, v) => s + v, 0) / n;
        const rstd = 1 / Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / n + eps);
        const xh = row.map((v) => (v - mean) * rstd);
        const g = gs.slice(r * n, (r + 1) * n).map(Math.fround);
        const gw = g.map((v, j) => v * wf[j]);
        const mg = rms ? 0 : gw.reduce((s, v) => s + v, 0) / n;
        const mgx = gw.reduce((s, v, j) => s + v * xh[j], 0) / n;
        xh.forEach((h, j) => {
          want.y.push(h * wf[j] + (rms ? 0 : Math.fround(bs[j])));
          want.dx.push(rstd * (gw[j] - mg - h * mgx));
          want.dw[j] += g[j] * h;
        });
      });
      expect(maxRelError(y.dataSync(), want.y)).toBeLessThan(2e-5);
      expect(maxRelError(x.grad!.dataSync(), want.dx)).toBeLessThan(2e-5);
      expect(maxRelError(w.grad!.dataSync(), want.dw)).toBeLessThan(2e-5);
    });
  }

  // 2048-float rows split over the threads, then a partial row (including a part lane) on the calling thread
  for (const count of [70000, 65536 * 2 + 2051]) {
    it(`gelu, silu, bias + gelu and the GELU / SiLU gradients over ${count} floats match the JS rows`, () => {
      const xs = values(count, 7);
      const gs = values(count, 8, 1);
      const x = tensor(xs, { backend, requiresGrad: true });
      const f = (op: 'gelu' | 'silu') => UNARY[op].cpu as (v: number) => number;
      for (const op of ['gelu', 'silu'] as const) {
        const y = x[op]();
        expect(inPlace(y)).toBe(true);
        expect(maxRelError(y.dataSync(), xs.map((v) => f(op)(Math.fround(v))))).toBeLessThan(2e-6);
        x.grad = null;
        y.backward(tensor(gs, { backend }));
        const d = (v: number) => (op === 'gelu' ? FUSED_BINARY.geluBackward.cpu(1, v) : (1 / (1 + Math.exp(-v))) * (1 + v * (1 - 1 / (1 + Math.exp(-v)))));
        const want = xs.map((v, i) => Math.fround(gs[i]) * d(Math.fround(v)));
        expect(maxRelError(x.grad!.dataSync(), want, gs)).toBeLessThan(4e-6);
      }
    });
  }

  it('bias + gelu over [40, 3072] rows matches the JS row', () => {
    const [rows, n] = [40, 3072];
    const xs = values(rows * n, 9);
    const bs = values(n, 10, 1);
    const y = biasActivation(tensor(xs, { backend }).reshape([rows, n]), tensor(bs, { backend }), 'gelu');
    expect(inPlace(y)).toBe(true);
    const want = xs.map((v, i) => FUSED_BINARY.addGelu.cpu(Math.fround(v), Math.fround(bs[i % n])));
    expect(maxRelError(y.dataSync(), want)).toBeLessThan(2e-6);
  });

  it('the residual add over [100, 768] (and a bias row over it) matches float32 sums', () => {
    const [rows, n] = [100, 768];
    const xs = values(rows * n, 12);
    const ys = values(rows * n, 13);
    const bs = values(n, 14);
    const x = tensor(xs, { backend }).reshape([rows, n]);
    const sum = x.add(tensor(ys, { backend }).reshape([rows, n]));
    const biased = x.add(tensor(bs, { backend }));
    expect(inPlace(sum) && inPlace(biased)).toBe(true);
    expect(Array.from(sum.dataSync())).toEqual(xs.map((v, i) => Math.fround(Math.fround(v) + Math.fround(ys[i]))));
    expect(Array.from(biased.dataSync())).toEqual(xs.map((v, i) => Math.fround(Math.fround(v) + Math.fround(bs[i % n]))));
  });

  it('a transpose made contiguous ([296, 260] -> [260, 296], and a column slice of it) copies every element', () => {
    const [r, c] = [296, 260];
    const xs = Array.from({ length: r * c }, (_, i) => i * 0.25 - 3);
    const x = tensor(xs, { backend }).reshape([r, c]);
    const t = x.permute(1, 0).contiguous();
    expect(inPlace(t)).toBe(true);
    expect(Array.from(t.dataSync())).toEqual(Array.from({ length: r * c }, (_, i) => xs[(i % r) * c + Math.floor(i / r)]));
    // columns 4 .. 255 of x: the source starts mid-row (offset 4) and its rows are longer than the output's columns
    const cols = x.slice(1, 4, 256).permute(1, 0).contiguous();
    expect(Array.from(cols.dataSync())).toEqual(Array.from({ length: r * 252 }, (_, i) => xs[(i % r) * c + 4 + Math.floor(i / r)]));
  });

  it('a one-thread pool runs the rows on the calling thread; operands it cannot reach decline', () => {
    const gemm = createGemm({ threads: 1 });
    try {
      const [rows, n] = [20, 1024];
      const x = gemm.alloc(rows * n);
      const o = gemm.alloc(rows * n);
      if (!x || !o) throw new Error('no shared memory in this runtime');
      x.set(values(rows * n, 11));
      expect(runRowTask('softmax', rows, n, [{ data: x, offset: 0, step: n }, { data: o, offset: 0, step: n, out: true }])).toBe(true);
      for (let r = 0; r < rows; r++) {
        const row = Array.from(x.subarray(r * n, (r + 1) * n));
        const m = Math.max(...row);
        const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
        expect(maxRelError(o.subarray(r * n, (r + 1) * n), row.map((v) => Math.exp(v - m) / z))).toBeLessThan(1e-6);
      }
      // an output outside the memory, and rows not in whole lanes, are left to the staged path
      const plain = new Float32Array(rows * n);
      expect(runRowTask('softmax', rows, n, [{ data: x, offset: 0, step: n }, { data: plain, offset: 0, step: n, out: true }])).toBe(false);
      expect(runRowTask('softmax', rows, n - 2, [{ data: x, offset: 0, step: n - 2 }, { data: o, offset: 0, step: n - 2, out: true }])).toBe(false);
    } finally {
      gemm.dispose();
    }
  });
});
