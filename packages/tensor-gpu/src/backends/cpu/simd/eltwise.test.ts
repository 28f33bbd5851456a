// The WebAssembly SIMD GELU rows against the JS rows of elementwise-math.ts (float64, rounded once) and
// against known values, through the cpu backend's fused kernels: bias rows of odd lengths, chunking
// past the staging buffer, and the cases that must fall back to the JS loop.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FUSED_BINARY } from '../../../elementwise-math.js';
import { adamStep_, biasActivation, cpu, layerNorm, logSoftmax, noGrad, rmsNorm, softmax, tensor, UNARY } from '../../../index.js';
import { ELTWISE_BYTES_PATH, generateEltwiseBytesSource } from './gen-eltwise.js';
import { eltwiseModule, layerNormRowsSimd, SIMD_ROW_MIN, softmaxRowsSimd, trySimdRow, trySimdUnary } from './eltwise.js';

const backend = cpu();

function values(n: number, seed: number): number[] {
  // a spread over [-12, 12] with exact zeros, tiny and huge magnitudes mixed in
  return Array.from({ length: n }, (_, i) => {
    const k = (i * 2654435761 + seed) >>> 0;
    if (k % 97 === 0) return 0;
    if (k % 89 === 0) return (k % 2 ? 1 : -1) * 1e-30;
    if (k % 83 === 0) return (k % 2 ? 1 : -1) * 1e6;
    return ((k % 100000) / 100000) * 24 - 12;
  });
}

/** max |got - want| / max(1, |scale|): scale is want, or for a gradient the incoming gradient g. */
function maxRelError(got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number> = want): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(scale[i])));
  return worst;
}

describe('cpu SIMD elementwise rows', () => {
  it('eltwise-bytes.ts matches the generator output (drift check)', async () => {
    expect(await generateEltwiseBytesSource()).toBe(readFileSync(ELTWISE_BYTES_PATH, 'utf8'));
  });

  it('loads where WebAssembly SIMD is available (Node 20+)', () => {
    expect(eltwiseModule()).not.toBeNull();
  });

  it('gelu(x + bias) takes known values', () => {
    const x = tensor([Array.from({ length: SIMD_ROW_MIN }, (_, i) => [1, -1, 3, 0][i % 4])], { backend });
    const y = biasActivation(x, tensor(Array.from({ length: SIMD_ROW_MIN }, () => 0), { backend }), 'gelu');
    const got = Array.from(y.dataSync() as Float32Array).slice(0, 4);
    // torch.nn.functional.gelu(torch.tensor([1., -1., 3., 0.], dtype=torch.float64))
    const want = [0.8413447460685429, -0.15865525393145707, 2.995950490069622, 0];
    // A&S erf is within 1.5e-7, and float32 holds 3 to 2.4e-7
    for (let i = 0; i < 4; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(want[i])));
  });

  for (const [rows, n] of [
    [3, 257],
    [50, 37],
    [1200, 100],
    [2, 70000],
  ] as const) {
    it(`addGelu over [${rows}, ${n}] with a bias row matches the JS row`, () => {
      const xs = values(rows * n, 1);
      const bs = values(n, 2).map((v) => v / 4);
      const x = tensor(xs, { backend }).reshape([rows, n]);
      const b = tensor(bs, { backend });
      const got = biasActivation(x, b, 'gelu').dataSync();
      const f = FUSED_BINARY.addGelu.cpu;
      const want = xs.map((v, i) => Math.fround(f(Math.fround(v), Math.fround(bs[i % n]))));
      expect(maxRelError(got, want)).toBeLessThan(2e-6);
    });
  }

  it('geluBackward matches the JS row and takes a known value', () => {
    const n = 40003;
    const xs = values(n, 3);
    const gs = values(n, 4).map((v) => v / 10);
    const x = tensor(xs, { backend, requiresGrad: true });
    const y = biasActivation(x, tensor(Array.from({ length: n }, () => 0), { backend }), 'gelu');
    y.backward(tensor(gs, { backend }));
    const f = FUSED_BINARY.geluBackward.cpu;
    const want = xs.map((v, i) => Math.fround(f(Math.fround(gs[i]), Math.fround(v))));
    // relative to g: gelu'(x) = Phi(x) + x phi(x) cancels near its zero (x ~ -0.75), where float32's
    // absolute error of ~1e-7 in gelu' is all there is, for PyTorch's float32 kernel as for this one
    expect(maxRelError(x.grad!.dataSync(), want, gs)).toBeLessThan(2e-6);
    // gelu'(1) = Phi(1) + phi(1) = 1.0833154705876864
    const one = tensor(Array.from({ length: SIMD_ROW_MIN }, () => 1), { backend, requiresGrad: true });
    biasActivation(one, tensor(0, { backend }), 'gelu').sum().backward();
    expect(Math.abs(one.grad!.dataSync()[0] - 1.0833154705876864)).toBeLessThan(1e-6);
  });

  it('leaves strided, float16 and short operands to the JS loop', () => {
    const x = tensor(values(64 * 64, 5), { backend }).reshape([64, 64]);
    const t = x.transpose(0, 1);
    const view = (v: typeof x) => ({ storage: v.storage, dtype: v.dtype, shape: v.shape, strides: v.strides, offset: v.offset }) as never;
    const out = tensor(values(64 * 64, 6), { backend }).reshape([64, 64]);
    expect(trySimdRow('addGelu', view(t), view(x), view(out))).toBe(false);
    const h = x.cast('float16');
    expect(trySimdRow('addGelu', view(h), view(h), view(h))).toBe(false);
    const small = tensor(values(8, 7), { backend });
    expect(trySimdRow('addGelu', view(small), view(small), view(small))).toBe(false);
    expect(trySimdRow('addGelu', view(x), view(x), view(out))).toBe(true);
  });

  for (const n of [37, 8192, 50001]) {
    it(`softmax and log-softmax rows of ${n} (and log-softmax's gradient) match float64`, () => {
      const rows = 3;
      const xs = values(rows * n, 8).map((v) => (Math.abs(v) > 100 ? v / 1e5 : v));
      xs[5] = -Infinity; // a masked entry contributes exp(-inf) = 0
      const leaf = tensor(xs, { backend, requiresGrad: true });
      const x = leaf.reshape([rows, n]);
      const ws = values(rows * n, 9).map((v) => (Math.abs(v) > 100 ? 1 : v));
      const p = softmax(x, -1).dataSync();
      const lp = logSoftmax(x, -1);
      lp.backward(tensor(ws, { backend }).reshape([rows, n]));
      const wantP: number[] = [];
      const wantL: number[] = [];
      const wantG: number[] = [];
      for (let r = 0; r < rows; r++) {
        const row = xs.slice(r * n, (r + 1) * n).map(Math.fround);
        const m = Math.max(...row);
        const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
        const wsum = ws.slice(r * n, (r + 1) * n).reduce((s, v) => s + Math.fround(v), 0);
        row.forEach((v, j) => {
          wantP.push(Math.exp(v - m) / z);
          wantL.push(v - m - Math.log(z));
          wantG.push(Math.fround(ws[r * n + j]) - (Math.exp(v - m) / z) * wsum);
        });
      }
      expect(maxRelError(p, wantP)).toBeLessThan(1e-6);
      const got = lp.dataSync();
      expect(got[5]).toBe(-Infinity);
      wantL[5] = got[5] = 0;
      expect(maxRelError(got, wantL)).toBeLessThan(2e-6);
      // relative to the row's sum(w), the term the gradient's error scales with
      const wsums = Array.from({ length: rows }, (_, r) => ws.slice(r * n, (r + 1) * n).reduce((s, v) => s + v, 0));
      expect(maxRelError(leaf.grad!.dataSync(), wantG, ws.map((_, i) => wsums[Math.floor(i / n)]))).toBeLessThan(2e-6);
    });
  }

  // below 256 KiB (outside the GEMM's memory): rows staged through the module, across several chunks
  it('softmax and log-softmax over [500, 128] (rows staged across several chunks) match float64', () => {
    const [rows, n] = [500, 128];
    const xs = values(rows * n, 10).map((v) => (Math.abs(v) > 100 ? v / 1e5 : v));
    for (let j = 0; j < n; j++) xs[7 * n + j] = -Infinity; // a fully masked row: 0 / 0 like PyTorch
    const x = tensor(xs, { backend }).reshape([rows, n]);
    const p = softmax(x, -1).dataSync();
    const lp = logSoftmax(x, -1).dataSync();
    const wantP: number[] = [];
    const wantL: number[] = [];
    for (let r = 0; r < rows; r++) {
      const row = xs.slice(r * n, (r + 1) * n).map(Math.fround);
      const m = r === 7 ? 0 : Math.max(...row);
      const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
      row.forEach((v) => {
        wantP.push(Math.exp(v - m) / z);
        wantL.push(v - m - Math.log(z));
      });
    }
    expect(Number.isNaN(p[7 * n])).toBe(true);
    for (let j = 0; j < n; j++) wantP[7 * n + j] = p[7 * n + j] = 0;
    expect(maxRelError(p, wantP)).toBeLessThan(1e-6);
    for (let j = 0; j < n; j++) wantL[7 * n + j] = lp[7 * n + j] = 0;
    expect(maxRelError(lp, wantL)).toBeLessThan(2e-6);
  });

  for (const rms of [false, true]) {
    it(`${rms ? 'RMS' : 'layer'} norm over [80, 768] (staged, two chunks) with and without weight and bias matches float64`, () => {
      const [rows, n] = [80, 768];
      // a large common offset in some rows: the two-pass variance keeps its precision
      const xs = values(rows * n, 11).map((v, i) => (Math.abs(v) > 100 ? v / 1e4 : v) + (Math.floor(i / n) % 5 === 0 ? 300 : 0));
      // weights and biases of ordinary size (a 1e5 weight would make the float32 rounding of x w itself the error)
      const ws = values(n, 12).map((v) => (Math.abs(v) > 100 ? 1 : v / 10));
      const bs = values(n, 13).map((v) => (Math.abs(v) > 100 ? 1 : v / 10));
      const x = tensor(xs, { backend }).reshape([rows, n]);
      for (const affine of [true, false]) {
        const w = affine ? tensor(ws, { backend }) : null;
        const b = affine ? tensor(bs, { backend }) : null;
        const got = (rms ? rmsNorm(x, w, 1e-6) : layerNorm(x, n, w, b, 1e-5)).dataSync();
        const want: number[] = [];
        for (let r = 0; r < rows; r++) {
          const row = xs.slice(r * n, (r + 1) * n).map(Math.fround);
          const mean = rms ? 0 : row.reduce((s, v) => s + v, 0) / n;
          const rstd = 1 / Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / n + (rms ? 1e-6 : 1e-5));
          row.forEach((v, j) => want.push((v - mean) * rstd * (affine ? Math.fround(ws[j]) : 1) + (affine && !rms ? Math.fround(bs[j]) : 0)));
        }
        expect(maxRelError(got, want)).toBeLessThan(2e-5);
      }
    });
  }

  for (const op of ['gelu', 'silu'] as const) {
    it(`${op} alone over 50001 floats matches the JS row`, () => {
      const xs = values(50001, 14).map((v) => (Math.abs(v) > 100 ? v / 1e4 : v * 8));
      const got = tensor(xs, { backend })[op]().dataSync();
      const f = UNARY[op].cpu as (x: number) => number;
      const want = xs.map((v) => Math.fround(f(Math.fround(v))));
      expect(maxRelError(got, want)).toBeLessThan(2e-6);
    });
  }

  // 40003 floats: staged on the calling thread; 100003 (400 KB, in the GEMM's shared memory): whole rows of
  // 2048 in place on both threads (the adam row task), the last 1699 staged
  for (const [decoupled, weightDecay, n] of [[true, 0.01, 40003], [false, 0.01, 40003], [false, 0, 40003], [true, 0.01, 100003], [false, 0.01, 100003]] as const) {
    it(`the Adam step (decoupled ${decoupled}, weight decay ${weightDecay}, ${n} floats) is bitwise the float32 loop`, () => {
      const ps = values(n, 15).map((v) => v / 100);
      const gs = values(n, 16).map((v) => v / 1000);
      const ms = values(n, 17).map((v) => v / 1e4);
      const vs = values(n, 18).map((v) => Math.abs(v) / 1e6);
      const [p, g, m, v] = [ps, gs, ms, vs].map((a) => tensor(a, { backend }));
      const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay, decoupled, maximize: false, biasCorrection1: 1 - 0.9 ** 3, biasCorrection2: 1 - 0.999 ** 3 };
      noGrad(() => adamStep_(p, g, m, v, null, h));
      // torch's single-tensor Adam, every operation rounded to float32
      const f = Math.fround;
      const [wantP, wantM, wantV] = [[], [], []] as number[][];
      for (let i = 0; i < n; i++) {
        const [pv, mv0, vv0] = [f(ps[i]), f(ms[i]), f(vs[i])];
        let gv = f(gs[i]);
        let base = pv;
        if (decoupled) base = f(pv * f(1 - h.lr * weightDecay));
        else gv = f(gv + f(pv * f(weightDecay)));
        const mv = f(f(mv0 * f(0.9)) + f(gv * f(1 - 0.9)));
        const vv = f(f(vv0 * f(0.999)) + f(f(gv * gv) * f(1 - 0.999)));
        const denom = f(f(f(Math.sqrt(vv)) * f(1 / Math.sqrt(h.biasCorrection2))) + f(1e-8));
        wantP.push(f(base - f(f(mv / denom) * f(h.lr / h.biasCorrection1))));
        wantM.push(mv);
        wantV.push(vv);
      }
      // the first element that differs (-1: none), not a 100000-element diff
      const firstDiff = (got: ArrayLike<number>, want: number[]) => want.findIndex((w, i) => !Object.is(got[i], w));
      expect(firstDiff(p.dataSync(), wantP)).toBe(-1);
      expect(firstDiff(m.dataSync(), wantM)).toBe(-1);
      expect(firstDiff(v.dataSync(), wantV)).toBe(-1);
    });
  }

  it('the row kernels refuse lengths they do not stage (the JS loops run then)', () => {
    const a = new Float32Array(3 * 37);
    expect(softmaxRowsSimd(a, 0, 3, 37, a, 0, false)).toBe(false);
    expect(layerNormRowsSimd(a, 0, 3, 37, null, 0, null, 0, a, 0, 1e-5, false)).toBe(false);
    const big = new Float32Array(2 * 8196);
    expect(softmaxRowsSimd(big, 0, 2, 8196, big, 0, true)).toBe(false);
    const x = tensor(values(64 * 64, 19), { backend }).reshape([64, 64]);
    const view = (v: typeof x) => ({ storage: v.storage, dtype: v.dtype, shape: v.shape, strides: v.strides, offset: v.offset }) as never;
    expect(trySimdUnary('gelu', view(x.transpose(0, 1)), view(x))).toBe(false);
    expect(trySimdUnary('silu', view(x), view(x.cast('float16')))).toBe(false);
  });
});
