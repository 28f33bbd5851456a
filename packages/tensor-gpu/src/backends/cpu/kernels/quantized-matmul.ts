// Weight-only quantized matmul on the cpu backend (layout: ops/quantized-matmul.ts). The WebAssembly
// SIMD kernels (quant/quant.ts) serve every call where WebAssembly SIMD exists; the JS loops below are
// the fallback (and the reference the SIMD kernels are tested against). Each weight row
// is decoded once into a float32 scratch row (q only; the row's scale multiplies the dot products),
// then dotted with every row of x: the inner loops are plain typed-array loops over contiguous memory,
// which V8 keeps in registers (and WASM SIMD could take over unchanged). Float32 accumulation.

import type { View } from '../../../backend.js';
import { float16BitsToNumber } from '../../../dtype.js';
import { arr } from '../common.js';
import { simdDequantize, simdWeightMatmul, type PackedRows } from '../quant/quant.js';

/** Decodes row `r` of a packed weight into `dst` [inFeatures] as float q values (no scale). */
function decodeRow(w: Int32Array, base: number, bits: 4 | 8 | 16, inFeatures: number, dst: Float32Array): void {
  if (bits === 16) {
    for (let c = 0; c < inFeatures; c++) dst[c] = float16BitsToNumber((w[base + (c >> 1)] >>> (16 * (c & 1))) & 0xffff);
    return;
  }
  if (bits === 8) {
    const full = inFeatures >> 2;
    for (let k = 0; k < full; k++) {
      const word = w[base + k];
      const c = k << 2;
      // Each byte sign-extended: shift it to the top, then arithmetic-shift back.
      dst[c] = (word << 24) >> 24;
      dst[c + 1] = (word << 16) >> 24;
      dst[c + 2] = (word << 8) >> 24;
      dst[c + 3] = word >> 24;
    }
    for (let c = full << 2; c < inFeatures; c++) dst[c] = (w[base + (c >> 2)] << (24 - 8 * (c & 3))) >> 24;
    return;
  }
  const full = inFeatures >> 3;
  for (let k = 0; k < full; k++) {
    const word = w[base + k];
    const c = k << 3;
    // Byte b holds columns 2b (high nibble) and 2b + 1 (low nibble).
    dst[c] = (word << 24) >> 28;
    dst[c + 1] = (word << 28) >> 28;
    dst[c + 2] = (word << 16) >> 28;
    dst[c + 3] = (word << 20) >> 28;
    dst[c + 4] = (word << 8) >> 28;
    dst[c + 5] = (word << 12) >> 28;
    dst[c + 6] = word >> 28;
    dst[c + 7] = (word << 4) >> 28;
  }
  for (let c = full << 3; c < inFeatures; c++) {
    const byte = c >> 1;
    const shift = 8 * (byte & 3) + ((c & 1) === 0 ? 4 : 0); // low bit of the nibble in the word
    dst[c] = (w[base + (byte >> 2)] << (28 - shift)) >> 28;
  }
}

function rowWordsOf(weight: View): number {
  return weight.shape[1];
}

function packedRows(weight: View, scale: View, bits: 4 | 8 | 16, inFeatures: number): PackedRows {
  return {
    fmt: bits === 4 ? 'q4' : bits === 8 ? 'q8' : 'h16',
    data: arr(weight) as Int32Array,
    offset: weight.offset,
    rows: weight.shape[0],
    rowWords: rowWordsOf(weight),
    cols: inFeatures,
    scale: arr(scale) as Float32Array,
    scaleOffset: scale.offset,
  };
}

/** Whether the WebAssembly SIMD kernels are used (tests switch them off to compare with the JS loops). */
let useSimd = true;
export function setQuantizedSimd(on: boolean): boolean {
  const prev = useSimd;
  useSimd = on;
  return prev;
}

/**
 * One output of a decode-sized matmul (few rows): the weight row's words decoded and multiplied in the
 * same loop, no scratch row (the weights are read once, straight from their words).
 */
function dotWords(xs: Float32Array, xb: number, w: Int32Array, wb: number, bits: 4 | 8 | 16, inFeatures: number): number {
  let a0 = 0;
  let a1 = 0;
  if (bits === 4) {
    const full = inFeatures >> 3;
    for (let k = 0; k < full; k++) {
      const word = w[wb + k];
      const c = xb + (k << 3);
      a0 += xs[c] * ((word << 24) >> 28) + xs[c + 2] * ((word << 16) >> 28) + xs[c + 4] * ((word << 8) >> 28) + xs[c + 6] * (word >> 28);
      a1 += xs[c + 1] * ((word << 28) >> 28) + xs[c + 3] * ((word << 20) >> 28) + xs[c + 5] * ((word << 12) >> 28) + xs[c + 7] * ((word << 4) >> 28);
    }
    for (let c = full << 3; c < inFeatures; c++) {
      const byte = c >> 1;
      const shift = 8 * (byte & 3) + ((c & 1) === 0 ? 4 : 0);
      a0 += xs[xb + c] * ((w[wb + (byte >> 2)] << (28 - shift)) >> 28);
    }
    return a0 + a1;
  }
  const full = inFeatures >> 2;
  for (let k = 0; k < full; k++) {
    const word = w[wb + k];
    const c = xb + (k << 2);
    a0 += xs[c] * ((word << 24) >> 24) + xs[c + 2] * ((word << 8) >> 24);
    a1 += xs[c + 1] * ((word << 16) >> 24) + xs[c + 3] * (word >> 24);
  }
  for (let c = full << 2; c < inFeatures; c++) a0 += xs[xb + c] * ((w[wb + (c >> 2)] << (24 - 8 * (c & 3))) >> 24);
  return a0 + a1;
}

/** The decoded-row scratch of the JS loops, kept between calls (grown when a layer is wider). */
let rowScratch = new Float32Array(0);
function scratchRow(inFeatures: number): Float32Array {
  if (rowScratch.length < inFeatures) rowScratch = new Float32Array(inFeatures);
  return rowScratch;
}

/** Rows of x up to which each weight row is decoded inside the dot product (decoding); above, once into a scratch row. */
const FUSED_DECODE_ROWS = 4;

export function cpuQuantizedMatmul(x: View, weight: View, scale: View, out: View, bits: 4 | 8 | 16, inFeatures: number): void {
  const xs = arr(x) as Float32Array;
  const w = arr(weight) as Int32Array;
  const s = arr(scale) as Float32Array;
  const o = arr(out) as Float32Array;
  const rows = x.shape[0];
  if (useSimd && simdWeightMatmul(xs, x.offset, rows, packedRows(weight, scale, bits, inFeatures), o, out.offset)) return;
  const outFeatures = weight.shape[0];
  const rowWords = rowWordsOf(weight);
  if (rows <= FUSED_DECODE_ROWS && bits !== 16) {
    for (let n = 0; n < outFeatures; n++) {
      const wb = weight.offset + n * rowWords;
      const sc = s[scale.offset + n];
      for (let r = 0; r < rows; r++) o[out.offset + r * outFeatures + n] = Math.fround(dotWords(xs, x.offset + r * inFeatures, w, wb, bits, inFeatures) * sc);
    }
    return;
  }
  const row = scratchRow(inFeatures);
  for (let n = 0; n < outFeatures; n++) {
    decodeRow(w, weight.offset + n * rowWords, bits, inFeatures, row);
    const sc = s[scale.offset + n];
    for (let r = 0; r < rows; r++) {
      const xb = x.offset + r * inFeatures;
      // Four partial sums: shorter dependency chains, as a SIMD lane split would use.
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      let c = 0;
      for (; c + 4 <= inFeatures; c += 4) {
        a0 += xs[xb + c] * row[c];
        a1 += xs[xb + c + 1] * row[c + 1];
        a2 += xs[xb + c + 2] * row[c + 2];
        a3 += xs[xb + c + 3] * row[c + 3];
      }
      for (; c < inFeatures; c++) a0 += xs[xb + c] * row[c];
      o[out.offset + r * outFeatures + n] = Math.fround((a0 + a1 + (a2 + a3)) * sc);
    }
  }
}

export function cpuDequantizeWeight(weight: View, scale: View, out: View, bits: 4 | 8 | 16, inFeatures: number): void {
  const w = arr(weight) as Int32Array;
  const s = arr(scale) as Float32Array;
  const o = arr(out) as Float32Array;
  if (useSimd && simdDequantize(packedRows(weight, scale, bits, inFeatures), o, out.offset)) return;
  const rowWords = rowWordsOf(weight);
  const row = scratchRow(inFeatures);
  for (let n = 0; n < weight.shape[0]; n++) {
    decodeRow(w, weight.offset + n * rowWords, bits, inFeatures, row);
    const sc = s[scale.offset + n];
    const base = out.offset + n * inFeatures;
    for (let c = 0; c < inFeatures; c++) o[base + c] = Math.fround(row[c] * sc);
  }
}
