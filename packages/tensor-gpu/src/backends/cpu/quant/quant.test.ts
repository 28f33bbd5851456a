// The WebAssembly SIMD weight-only matmul kernels against a float64 host reference built from the
// integers (or float16 values) and scales directly: int8, int4 and float16 rows, M = 1..8 (the gemv
// kernels in groups of up to 4 rows) and prefill-sized M (dequantized blocks through the GEMM engine),
// widths that are not a multiple of a block (ragged tails), weights spanning several staged chunks, a
// weight at an offset inside its array, float16 specials, memory grown between calls; and the cpu backend's op with the SIMD kernels
// against the JS loops.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { float16BitsToNumber, numberToFloat16Bits } from '../../../dtype.js';
import { fromHost } from '../../../ops/creation.js';
import { dequantizeWeight, packQuantizedRows, quantizedMatmul, quantizedRowWords } from '../../../ops/quantized-matmul.js';
import { seededRandom, testCpuBackend } from '../../../testing/index.js';
import { setQuantizedSimd } from '../kernels/quantized-matmul.js';
import { QUANT_BYTES_PATH, generateQuantBytesSource } from './gen-quant.js';
import type { QuantFormat } from './gen-quant-shared.js';
import { quantModule, simdDequantize, simdWeightMatmul, type PackedRows } from './quant.js';

interface Weights {
  rows: PackedRows;
  /** The real weight [N, K] = value * scale, float64. */
  dense: Float64Array;
}

/** Random weights of a format, packed as the kernels read them, placed `lead` words into their array. */
function makeWeights(fmt: QuantFormat, N: number, K: number, seed: number, lead = 0): Weights {
  const rnd = seededRandom(seed);
  const dense = new Float64Array(N * K);
  if (fmt === 'h16') {
    const rowWords = Math.ceil(K / 2);
    const data = new Int32Array(lead + N * rowWords);
    const halves = new Uint16Array(data.buffer, (lead + 0) * 4, N * rowWords * 2);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) {
        const bits = numberToFloat16Bits((rnd() * 2 - 1) * 3);
        halves[n * rowWords * 2 + k] = bits;
        dense[n * K + k] = float16BitsToNumber(bits);
      }
    }
    // a scale per row as every format has (a tied embedding table's is 1; powers of two keep the product exact)
    const scale = Float32Array.from({ length: 3 + N }, (_, i) => 2 ** ((i % 3) - 1));
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) dense[n * K + k] *= scale[3 + n];
    return { rows: { fmt, data, offset: lead, rows: N, rowWords, cols: K, scale, scaleOffset: 3 }, dense };
  }
  const bits = fmt === 'q8' ? 8 : 4;
  const qmax = bits === 8 ? 127 : 7;
  const q = Int8Array.from({ length: N * K }, () => Math.round((rnd() * 2 - 1) * qmax) || (bits === 4 ? -8 : -128) * (rnd() < 0.02 ? 1 : 0));
  const scale = Float32Array.from({ length: 3 + N }, () => Math.round((0.001 + rnd() * 0.05) * 4096) / 4096);
  const rowBytes = bits === 8 ? K : Math.ceil(K / 2);
  const bytes = new Int8Array(N * rowBytes);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < rowBytes; j++) {
      if (bits === 8) bytes[n * rowBytes + j] = q[n * K + j];
      else bytes[n * rowBytes + j] = (((q[n * K + 2 * j] & 0xf) << 4) | (2 * j + 1 < K ? q[n * K + 2 * j + 1] & 0xf : 0)) << 24 >> 24;
    }
    for (let k = 0; k < K; k++) dense[n * K + k] = q[n * K + k] * scale[3 + n];
  }
  const packed = packQuantizedRows(bytes, N, rowBytes);
  const data = new Int32Array(lead + packed.length);
  data.set(packed, lead);
  const rowWords = quantizedRowWords(bits, K);
  return { rows: { fmt, data, offset: lead, rows: N, rowWords, cols: K, scale, scaleOffset: 3 }, dense };
}

function hostMatmul(x: Float32Array, xOffset: number, M: number, w: Weights): { y: Float64Array; mag: Float64Array } {
  const { rows: N, cols: K } = w.rows;
  const y = new Float64Array(M * N);
  const mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      let abs = 0;
      for (let k = 0; k < K; k++) {
        const p = x[xOffset + m * K + k] * w.dense[n * K + k];
        acc += p;
        abs += Math.abs(p);
      }
      y[m * N + n] = acc;
      mag[m * N + n] = abs;
    }
  }
  return { y, mag };
}

/** Worst |got - want| / sum |x w| (float32 accumulation error is relative to the magnitudes summed). */
function worstError(got: Float32Array, gotOffset: number, want: Float64Array, mag: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[gotOffset + i] - want[i]) / Math.max(mag[i], 1e-30));
  return worst;
}

describe('cpu WebAssembly SIMD weight-only matmul', () => {
  it('quant-bytes.ts matches the generator output (drift check)', async () => {
    expect(await generateQuantBytesSource()).toBe(readFileSync(QUANT_BYTES_PATH, 'utf8'));
  });

  it('loads where WebAssembly SIMD is available (Node 20+)', () => {
    expect(quantModule()).not.toBeNull();
  });

  it('stays right when the module memory grows between calls (its cached views are replaced, not reused detached)', () => {
    const w = makeWeights('q4', 37, 100, 11, 1);
    const rnd = seededRandom(5);
    const x = Float32Array.from({ length: 3 * 100 }, () => rnd() * 2 - 1);
    const { y, mag } = hostMatmul(x, 0, 3, w);
    for (let i = 0; i < 3; i++) {
      const out = new Float32Array(3 * 37);
      const buffer = quantModule()!.memory.buffer;
      expect(simdWeightMatmul(x, 0, 3, w.rows, out, 0)).toBe(true);
      expect(worstError(out, 0, y, mag), `call ${i}`).toBeLessThan(1e-6);
      const dense = new Float32Array(37 * 100);
      expect(simdDequantize(w.rows, dense, 0)).toBe(true);
      expect(Array.from(dense)).toEqual(Array.from(w.dense, (v) => Math.fround(v)));
      // Growing detaches the buffer the previous call's views were made over.
      quantModule()!.memory.grow(1);
      expect(buffer.byteLength).toBe(0);
    }
  });

  const shapes: [number, number][] = [
    [1, 1],
    [3, 5],
    [7, 31],
    [5, 32],
    [9, 33],
    [37, 100],
    [300, 257], // several staged chunks for every format
    [64, 4096],
  ];
  for (const fmt of ['q8', 'q4', 'h16'] as QuantFormat[]) {
    for (const [N, K] of shapes) {
      it(`${fmt}: N ${N}, K ${K}, M = 1..8 and 13, 40 match the float64 product of the dequantized weight`, () => {
        const w = makeWeights(fmt, N, K, N * 1000 + K, 5);
        for (const M of [1, 2, 3, 4, 5, 6, 7, 8, 13, 40]) {
          const rnd = seededRandom(M + K);
          const x = Float32Array.from({ length: 2 + M * K }, () => rnd() * 2 - 1);
          const out = new Float32Array(1 + M * N).fill(Number.NaN);
          expect(simdWeightMatmul(x, 2, M, w.rows, out, 1)).toBe(true);
          const { y, mag } = hostMatmul(x, 2, M, w);
          expect(Number.isNaN(out[0])).toBe(true); // nothing written before the output
          expect(worstError(out, 1, y, mag), `M ${M}`).toBeLessThan(1e-6);
        }
      });
    }
    it(`${fmt}: dequantize gives the weight exactly`, () => {
      for (const [N, K] of shapes) {
        const w = makeWeights(fmt, N, K, 7 * N + K, 3);
        const out = new Float32Array(N * K);
        expect(simdDequantize(w.rows, out, 0)).toBe(true);
        // q * scale is exact in float32 (|q| <= 127, scales with 12 significant bits); float16 widens exactly
        expect(Array.from(out)).toEqual(Array.from(w.dense, (v) => Math.fround(v)));
      }
    });
  }

  it('h16: widens float16 specials exactly (signed zeros, subnormals, the largest finite, infinities, NaN)', () => {
    const specials = [0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x3555, 0x0200];
    const rowWords = Math.ceil(specials.length / 2);
    const data = new Int32Array(rowWords);
    new Uint16Array(data.buffer).set(specials);
    const out = new Float32Array(specials.length);
    expect(simdDequantize({ fmt: 'h16', data, offset: 0, rows: 1, rowWords, cols: specials.length, scale: Float32Array.of(1), scaleOffset: 0 }, out, 0)).toBe(true);
    expect(Array.from(out)).toEqual(specials.map(float16BitsToNumber));
    expect(Object.is(out[1], -0)).toBe(true);
  });

  it('the cpu op with the SIMD kernels agrees with the JS loops (int4, int8 and float16, decode and prefill)', () => {
    const backend = testCpuBackend();
    for (const bits of [4, 8, 16] as const) {
      const [N, K] = [45, 77];
      const w = makeWeights(bits === 4 ? 'q4' : bits === 8 ? 'q8' : 'h16', N, K, bits);
      const weight = fromHost(w.rows.data, [N, w.rows.rowWords], 'int32', backend);
      const scale = fromHost(w.rows.scale.slice(3), [N], 'float32', backend);
      for (const M of [1, 6, 20]) {
        const rnd = seededRandom(M);
        const x = fromHost(Float32Array.from({ length: M * K }, () => rnd() * 2 - 1), [M, K], 'float32', backend);
        const simd = quantizedMatmul(x, weight, scale, { bits, inFeatures: K }).dataSync() as Float32Array;
        const simdDeq = dequantizeWeight(weight, scale, { bits, inFeatures: K }).dataSync() as Float32Array;
        setQuantizedSimd(false);
        try {
          const js = quantizedMatmul(x, weight, scale, { bits, inFeatures: K }).dataSync() as Float32Array;
          const jsDeq = dequantizeWeight(weight, scale, { bits, inFeatures: K }).dataSync() as Float32Array;
          expect(Array.from(simdDeq)).toEqual(Array.from(jsDeq));
          for (let i = 0; i < js.length; i++) expect(Math.abs(simd[i] - js[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(js[i])));
        } finally {
          setQuantizedSimd(true);
        }
        x.dispose();
      }
      weight.dispose();
      scale.dispose();
    }
  });
});
