// Weight-only int8/int4 matmul on every backend: against a float64 host reference built from the
// integers and scales directly, against dequantize-then-float-matmul on the same backend, the input
// gradient, ragged widths (a row's tail in a partial word), decode-sized and prefill-sized inputs, and
// (webgpu) a weight bound in windows.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend.js';
import type { WebGPUBackend } from '../backends/webgpu/webgpu-backend.js';
import { runQuantizedMatmul } from '../backends/webgpu/kernels/quantized-matmul.js';
import { fromHost } from './creation.js';
import { matmul } from './linalg.js';
import { dequantizeWeight, packFloat16Rows, packQuantizedRows, quantizedMatmul, quantizedRowWords, type QuantBits } from './quantized-matmul.js';
import { float16BitsToNumber, numberToFloat16Bits } from '../dtype.js';
import { compareArrays, seededRandom, testCpuBackend, testWebGPUBackend } from '../testing/index.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());
const backends: [string, Backend][] = webgpu ? [['cpu', testCpuBackend()], ['webgpu', webgpu]] : [['cpu', testCpuBackend()]];

interface Case {
  q: Int8Array; // [out, in] unpacked values
  bytes: Int8Array; // the reference's stored weight: [out, in] (int8) or [out, ceil(in / 2)] (int4)
  scale: Float32Array;
  x: Float32Array;
}

/** Random q in [-qmax, qmax], fp16-exact scales, x ~ U(-1, 1); int4 bytes packed as compress_int4_weight. */
function makeCase(bits: QuantBits, out: number, inF: number, rows: number, seed: number): Case {
  const rnd = seededRandom(seed);
  const qmax = bits === 8 ? 127 : 7;
  const q = Int8Array.from({ length: out * inF }, () => Math.round((rnd() * 2 - 1) * qmax));
  const scale = Float32Array.from({ length: out }, () => Math.round((0.001 + rnd() * 0.05) * 4096) / 4096);
  const x = Float32Array.from({ length: rows * inF }, () => rnd() * 2 - 1);
  if (bits === 8) return { q, bytes: q, scale, x };
  const rowBytes = Math.ceil(inF / 2);
  const bytes = new Int8Array(out * rowBytes);
  for (let r = 0; r < out; r++) {
    for (let j = 0; j < rowBytes; j++) {
      const hi = q[r * inF + 2 * j] & 0xf;
      const lo = 2 * j + 1 < inF ? q[r * inF + 2 * j + 1] & 0xf : 0;
      bytes[r * rowBytes + j] = ((hi << 4) | lo) << 24 >> 24;
    }
  }
  return { q, bytes, scale, x };
}

function hostOutput(c: Case, out: number, inF: number, rows: number): number[] {
  const y: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let n = 0; n < out; n++) {
      let acc = 0;
      for (let k = 0; k < inF; k++) acc += c.x[r * inF + k] * c.q[n * inF + k] * c.scale[n];
      y.push(acc);
    }
  }
  return y;
}

function upload(c: Case, bits: QuantBits, out: number, inF: number, rows: number, backend: Backend) {
  const rowBytes = bits === 8 ? inF : Math.ceil(inF / 2);
  const words = packQuantizedRows(c.bytes, out, rowBytes);
  return {
    weight: fromHost(words, [out, quantizedRowWords(bits, inF)], 'int32', backend),
    scale: fromHost(c.scale, [out], 'float32', backend),
    x: fromHost(c.x, [rows, inF], 'float32', backend),
  };
}

describe.each(backends)('quantizedMatmul on %s', (_name, backend) => {
  for (const bits of [8, 4] as const) {
    for (const [out, inF, rows] of [
      [24, 64, 3],
      [7, 13, 1],
      [33, 150, 4],
      // more rows than the cpu kernel's fused decode path takes: each weight row decoded once
      [5, 40, 9],
    ]) {
      it(`int${bits}: ${rows} x ${inF} @ [${out}, ${inF}]^T matches the float64 reference and dequantize-then-matmul`, async () => {
        const c = makeCase(bits, out, inF, rows, out * 1000 + inF + bits);
        const t = upload(c, bits, out, inF, rows, backend);
        const y = quantizedMatmul(t.x, t.weight, t.scale, { bits, inFeatures: inF });
        expect([...y.shape]).toEqual([rows, out]);
        const got = Array.from(await y.data());
        const cmp = compareArrays(got, hostOutput(c, out, inF, rows), 1e-5, 1e-5);
        expect(cmp.ok, `max |diff| ${cmp.maxAbs} at ${cmp.at}`).toBe(true);

        const deq = dequantizeWeight(t.weight, t.scale, { bits, inFeatures: inF });
        const expectedDeq = Array.from(c.q, (v, i) => Math.fround(v * c.scale[Math.floor(i / inF)]));
        expect(Array.from(await deq.data())).toEqual(expectedDeq);
        const viaFloat = matmul(t.x, deq.transpose(0, 1));
        const cmp2 = compareArrays(got, Array.from(await viaFloat.data()), 1e-5, 1e-5);
        expect(cmp2.ok, `max |diff| ${cmp2.maxAbs} against dequantize-then-matmul`).toBe(true);
        [y, deq, viaFloat, t.weight, t.scale, t.x].forEach((u) => u.dispose());
      });
    }

    it(`int${bits}: the input gradient is gradOut @ the dequantized weight; leading dims are kept`, async () => {
      const [out, inF] = [6, 16];
      const c = makeCase(bits, out, inF, 4, 7 + bits);
      const t = upload(c, bits, out, inF, 4, backend);
      const x = t.x.reshape(2, 2, inF).clone().requiresGrad_();
      const y = quantizedMatmul(x, t.weight, t.scale, { bits, inFeatures: inF });
      expect([...y.shape]).toEqual([2, 2, out]);
      // The graph holds the weight and scale: the caller may drop its handles before backward.
      t.weight.dispose();
      t.scale.dispose();
      y.sum().backward();
      // d sum / d x[r, k] = sum_n q[n, k] * scale[n]
      const expected = Array.from({ length: 4 * inF }, (_, i) => {
        let s = 0;
        for (let n = 0; n < out; n++) s += c.q[n * inF + (i % inF)] * c.scale[n];
        return s;
      });
      const cmp = compareArrays(Array.from(await x.grad!.data()), expected, 1e-5, 1e-5);
      expect(cmp.ok, `max |diff| ${cmp.maxAbs}`).toBe(true);
      [x, y, t.x].forEach((u) => u.dispose());
    });
  }

  // bits 16: a float16 table (tied embeddings / output head) in 16 bits, decoded to float32 in registers
  for (const [out, inF, rows] of [
    [9, 13, 1],
    [33, 150, 4],
    [5, 40, 9],
  ]) {
    it(`float16 rows: ${rows} x ${inF} @ [${out}, ${inF}]^T matches the float64 reference; dequantize widens exactly`, async () => {
      const rnd = seededRandom(out + inF);
      const w = Float32Array.from({ length: out * inF }, () => float16BitsToNumber(numberToFloat16Bits((rnd() * 2 - 1) * 4)));
      w[0] = 6.1e-5 * 0.5; // a float16 subnormal (2^-15)
      w[0] = float16BitsToNumber(numberToFloat16Bits(w[0]));
      const scale = Float32Array.from({ length: out }, (_, n) => (n % 2 ? 1 : 0.5));
      const x = Float32Array.from({ length: rows * inF }, () => rnd() * 2 - 1);
      const weight = fromHost(packFloat16Rows(w, out, inF), [out, quantizedRowWords(16, inF)], 'int32', backend);
      const sc = fromHost(scale, [out], 'float32', backend);
      const xt = fromHost(x, [rows, inF], 'float32', backend).requiresGrad_();
      const y = quantizedMatmul(xt, weight, sc, { bits: 16, inFeatures: inF });
      const want: number[] = [];
      for (let r = 0; r < rows; r++) {
        for (let n = 0; n < out; n++) {
          let acc = 0;
          for (let k = 0; k < inF; k++) acc += x[r * inF + k] * w[n * inF + k] * scale[n];
          want.push(acc);
        }
      }
      const cmp = compareArrays(Array.from(await y.data()), want, 1e-5, 1e-5);
      expect(cmp.ok, `max |diff| ${cmp.maxAbs} at ${cmp.at}`).toBe(true);
      const deq = dequantizeWeight(weight, sc, { bits: 16, inFeatures: inF });
      expect(Array.from(await deq.data())).toEqual(Array.from(w, (v, i) => v * scale[Math.floor(i / inF)]));
      // d sum(y) / d x[r, k] = sum_n w[n, k] * scale[n]
      y.sum().backward();
      const wantGrad = Array.from({ length: rows * inF }, (_, i) => {
        let g = 0;
        for (let n = 0; n < out; n++) g += w[n * inF + (i % inF)] * scale[n];
        return g;
      });
      const gcmp = compareArrays(Array.from(await xt.grad!.data()), wantGrad, 1e-5, 1e-5);
      expect(gcmp.ok, `input gradient: max |diff| ${gcmp.maxAbs}`).toBe(true);
      [y, deq, weight, sc, xt].forEach((u) => u.dispose());
    });
  }

  it('refuses bad inputs with the op and the shapes in the message', () => {
    const w = fromHost(new Int32Array(8), [2, 4], 'int32', backend);
    const s = fromHost(new Float32Array(2), [2], 'float32', backend);
    const x = fromHost(new Float32Array(16), [1, 16], 'float32', backend);
    expect(() => quantizedMatmul(x, w, s, { bits: 4, inFeatures: 16 })).toThrow(/quantizedMatmul: weight .* needs 2 words per row for 16 int4 columns/);
    const narrow = fromHost(new Float32Array(12), [1, 12], 'float32', backend);
    expect(() => quantizedMatmul(narrow, w, s, { bits: 8, inFeatures: 16 })).toThrow(/quantizedMatmul: x .* must end in inFeatures 16/);
    narrow.dispose();
    expect(() => quantizedMatmul(x, w, s, { bits: 3 as QuantBits, inFeatures: 16 })).toThrow(/bits must be 4, 8 or 16/);
    [w, s, x].forEach((u) => u.dispose());
  });
});

describe.skipIf(!webgpu)('quantizedMatmul on webgpu: a weight split across storage-binding windows', () => {
  for (const bits of [8, 4] as const) {
    it(`int${bits}: 40 rows bound 6 at a time give the unsplit result`, async () => {
      const gpu = webgpu as WebGPUBackend;
      const [out, inF, rows] = [40, 72, 3];
      const c = makeCase(bits, out, inF, rows, 99 + bits);
      const t = upload(c, bits, out, inF, rows, gpu);
      const y = fromHost(new Float32Array(rows * out), [rows, out], 'float32', gpu);
      const rowBytes = quantizedRowWords(bits, inF) * 4;
      // A window of 6 rows plus the alignment slack: 7 dispatches, most starting mid-window.
      runQuantizedMatmul(gpu.rt, t.x, t.weight, t.scale, y, bits, inF, 6 * rowBytes + 256);
      const cmp = compareArrays(Array.from(await y.data()), hostOutput(c, out, inF, rows), 1e-5, 1e-5);
      expect(cmp.ok, `max |diff| ${cmp.maxAbs} at ${cmp.at}`).toBe(true);
      [y, t.weight, t.scale, t.x].forEach((u) => u.dispose());
    });
  }
});

describe('packFloat16Rows', () => {
  it('packs float16-exact values two per word and refuses an inexact one by position', () => {
    const words = packFloat16Rows(Float32Array.of(1, -2, 0.5), 1, 3);
    expect(Array.from(new Uint16Array(words.buffer))).toEqual([0x3c00, 0xc000, 0x3800, 0]);
    expect(() => packFloat16Rows(Float32Array.of(1, 0.1), 2, 1, 'lm_head.weight')).toThrow(/lm_head.weight: value 0.1.* at \[1, 0\] is not exact in float16/);
  });
});
