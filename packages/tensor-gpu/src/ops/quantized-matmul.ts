// Weight-only quantized matmul (int8 / int4 weights, float activations): the linear layers of
// quantized checkpoints such as THUDM's ChatGLM-6B int4/int8 (`quantization.py`: per-output-row
// scales, no zero point; int4 packed two per byte with the EVEN column in the HIGH nibble).
//
// Layout of a quantized weight here: int32 [out, rowWords], each row's bytes little-endian in its
// words (byte b of a row is bits 8*(b%4).. of word b/4), the row's tail padded with zero bytes.
// bits 8: byte c is column c (two's complement); bits 4: byte j holds columns 2j (high nibble) and
// 2j+1 (low nibble), each a 4-bit two's-complement value; bits 16: float16 c is the half-word c
// (a float16 table, e.g. tied embeddings, held in 16 bits; its scale is usually all ones).
// `packQuantizedRows` builds it from the reference's int8 tensor, `packFloat16Rows` from float values. Values are dequantized in registers (q * scale[row]) and accumulated in
// float32; the kernels (FusedKernels.quantizedMatmul / dequantizeWeight) exist on both backends.

import { noGrad, record } from '../autograd.js';
import { BackendError, DTypeError, ShapeError } from '../errors.js';
import { matmul } from './linalg.js';
import { contiguous, reshape } from './views.js';
import type { Tensor } from '../tensor.js';
import { backendOf, describe, empty } from './util.js';
import { float16BitsToNumber, numberToFloat16Bits } from '../dtype.js';

export type QuantBits = 4 | 8 | 16;

export interface QuantizedWeightOptions {
  bits: QuantBits;
  /** Columns of the unpacked weight (the layer's input features). */
  inFeatures: number;
}

/** int32 words per packed row of `inFeatures` columns. */
export function quantizedRowWords(bits: QuantBits, inFeatures: number): number {
  const bytes = bits === 16 ? 2 * inFeatures : bits === 8 ? inFeatures : Math.ceil(inFeatures / 2);
  return Math.ceil(bytes / 4);
}

/**
 * Host packing of float16-exact values [rows, cols] into the bits-16 layout (int32 [rows, rowWords]);
 * `name` labels the error for a value float16 cannot hold exactly, whose row is reported from `firstRow`.
 */
export function packFloat16Rows(values: Float32Array, rows: number, cols: number, name = 'packFloat16Rows', firstRow = 0): Int32Array {
  if (values.length !== rows * cols) throw new ShapeError(`${name}: ${values.length} values is not ${rows} rows of ${cols}`);
  const rowWords = quantizedRowWords(16, cols);
  const out = new Int32Array(rows * rowWords);
  const halves = new Uint16Array(out.buffer);
  const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const b = bits[r * cols + c];
      const e = (b >>> 23) & 0xff;
      let h: number;
      // Fast path: a float16 normal (exponent 113..142, low 13 mantissa bits zero) moves its bits over.
      if (e >= 113 && e <= 142 && (b & 0x1fff) === 0) h = ((b >>> 16) & 0x8000) | ((e - 112) << 10) | ((b >>> 13) & 0x3ff);
      else {
        const v = values[r * cols + c];
        h = numberToFloat16Bits(v);
        if (float16BitsToNumber(h) !== v && !(Number.isNaN(v) && Number.isNaN(float16BitsToNumber(h)))) {
          throw new RangeError(`${name}: value ${v} at [${firstRow + r}, ${c}] is not exact in float16`);
        }
      }
      halves[r * rowWords * 2 + c] = h;
    }
  }
  return out;
}

/**
 * Host packing: `rows` rows of `rowBytes` int8 bytes each (the reference's stored int8 weight,
 * [out, in] for int8 or [out, in/2] for int4) into the int32 [rows, rowWords] words the kernels read.
 */
export function packQuantizedRows(bytes: Int8Array | Uint8Array, rows: number, rowBytes: number): Int32Array {
  if (bytes.length !== rows * rowBytes) throw new ShapeError(`packQuantizedRows: ${bytes.length} bytes is not ${rows} rows of ${rowBytes}`);
  const rowWords = Math.ceil(rowBytes / 4);
  const out = new Int32Array(rows * rowWords);
  const asBytes = new Uint8Array(out.buffer);
  const src = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  // Little-endian hosts (every platform we run on) lay a word's bytes out in order: one copy per row.
  for (let r = 0; r < rows; r++) asBytes.set(src.subarray(r * rowBytes, (r + 1) * rowBytes), r * rowWords * 4);
  return out;
}

function checkQuantized(op: string, weight: Tensor, scale: Tensor, o: QuantizedWeightOptions): number {
  if (o.bits !== 4 && o.bits !== 8 && o.bits !== 16) throw new RangeError(`${op}: bits must be 4, 8 or 16, got ${String(o.bits)}`);
  if (!Number.isInteger(o.inFeatures) || o.inFeatures < 1) throw new RangeError(`${op}: inFeatures must be a positive integer, got ${o.inFeatures}`);
  if (weight.dtype !== 'int32' || weight.rank !== 2) throw new DTypeError(`${op}: weight must be the packed int32 [out, rowWords], got ${describe(weight)}`);
  const rowWords = quantizedRowWords(o.bits, o.inFeatures);
  if (weight.shape[1] !== rowWords) throw new ShapeError(`${op}: weight ${describe(weight)} needs ${rowWords} words per row for ${o.inFeatures} ${o.bits === 16 ? 'float16' : `int${o.bits}`} columns`);
  if (scale.dtype !== 'float32' || scale.rank !== 1 || scale.shape[0] !== weight.shape[0]) {
    throw new ShapeError(`${op}: scale must be float32 [${weight.shape[0]}] (one per output row), got ${describe(scale)}`);
  }
  return rowWords;
}

/** The float32 weight [out, inFeatures] = q * scale[row] (exact: |q| <= 127 and the scale is float16-exact in checkpoints; float16 rows widen exactly). */
export function dequantizeWeight(weight: Tensor, scale: Tensor, options: QuantizedWeightOptions): Tensor {
  const backend = backendOf('dequantizeWeight', weight, scale);
  checkQuantized('dequantizeWeight', weight, scale, options);
  const kernel = backend.fused.dequantizeWeight;
  if (!kernel) throw new BackendError(`dequantizeWeight: the ${backend.name} backend has no quantized kernels`);
  const out = empty(backend, 'float32', [weight.shape[0], options.inFeatures]);
  const w = contiguous(weight);
  const s = contiguous(scale);
  if (out.size > 0) kernel(w, s, out, options.bits, options.inFeatures);
  [w, s].forEach((t) => t.dispose());
  return out;
}

/**
 * x [..., inFeatures] (float32) @ dequantize(weight, scale)^T -> [..., out], float32 accumulation.
 * Differentiable in x (the gradient is gradOut @ dequantized weight); the weight is frozen.
 */
export function quantizedMatmul(x: Tensor, weight: Tensor, scale: Tensor, options: QuantizedWeightOptions): Tensor {
  const backend = backendOf('quantizedMatmul', x, weight, scale);
  checkQuantized('quantizedMatmul', weight, scale, options);
  if (x.dtype !== 'float32') throw new DTypeError(`quantizedMatmul: x must be float32, got ${describe(x)}`);
  if (x.rank < 1 || x.shape[x.rank - 1] !== options.inFeatures) {
    throw new ShapeError(`quantizedMatmul: x ${describe(x)} must end in inFeatures ${options.inFeatures}`);
  }
  const kernel = backend.fused.quantizedMatmul;
  if (!kernel) throw new BackendError(`quantizedMatmul: the ${backend.name} backend has no quantized kernels`);
  const outFeatures = weight.shape[0];
  const rows = x.size / options.inFeatures;
  const out = empty(backend, 'float32', [...x.shape.slice(0, -1), outFeatures]);
  const xc = noGrad(() => contiguous(x));
  const x2 = xc.viewOf([rows, options.inFeatures], [options.inFeatures, 1], xc.offset); // [rows, in]
  const out2 = out.viewOf([rows, outFeatures], [outFeatures, 1], 0); // [rows, out]
  const w = contiguous(weight);
  const s = contiguous(scale);
  if (out.size > 0) kernel(x2, w, s, out2, options.bits, options.inFeatures);
  [x2, out2, xc, w, s].forEach((t) => t.dispose());
  // The weight and scale are saved (held by the graph), so disposing them before backward is safe.
  return record('quantizedMatmul', out, [x], [weight, scale], ([g], [savedWeight, savedScale]) => {
    const deq = noGrad(() => dequantizeWeight(savedWeight, savedScale, options)); // [out, in]
    const gx = matmul(g!, deq); // [..., in]
    deq.dispose();
    return [reshape(gx, x.shape)];
  });
}
