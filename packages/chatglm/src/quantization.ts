// Weight-only int8 / int4 quantization as THUDM's ChatGLM-6B does it (`quantization.py` of
// THUDM/chatglm-6b-int4: QuantizedLinear, compress_int4_weight, extract_weight_to_float, and
// ChatGLMForConditionalGeneration.quantize), on @lm/tensor-gpu's quantizedMatmul kernels.
//
// For a Linear weight w [out, in] and bits 4 or 8 (qmax 7 or 127):
//   weight_scale[i] = max_j |w[i, j]| / qmax      one scale per output row, no zero point, computed in
//                                                  float16 (w is float16): float32 quotient rounded to f16
//   q[i, j]         = round_half_even(w[i, j] / weight_scale[i])   (never clamped: |q| <= qmax)
// The quotient of the second line is float32 on the reference's CPU path (fp16 / fp32 promotes) and
// float16 on its GPU path (a .half() model on CUDA): `rounding: 'cpu' | 'gpu'` picks one; the GPU rule
// reproduces THUDM-made checkpoints, the CPU rule the reference run on CPU (and the fixtures).
// int4 stores two values per byte, the EVEN column in the HIGH nibble: [out, in/2] int8. Here the
// stored bytes are kept in int32 words (packQuantizedRows) so both backends read them directly; the
// reference layout comes back through `storedWeight()`.

import {
  biasActivation,
  dequantizeWeight,
  fromHost,
  noGrad,
  packQuantizedRows,
  quantizedMatmul,
  quantizedRowWords,
  roundToFloat16,
  type Backend,
  type FusedBiasActivation,
  type QuantBits,
  type Tensor,
} from '@lm/tensor-gpu';
import type { Linear} from '@lm/layers';
import { Module } from '@lm/layers';

export type QuantizationRounding = 'cpu' | 'gpu';

/** torch.round: halves to even (2.5 -> 2, -1.5 -> -2), unlike Math.round. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface QuantizedValues {
  /** float16-exact scales, one per output row. */
  scale: Float32Array;
  /** q [out, in], -qmax..qmax. */
  values: Int8Array;
  /** The stored weight: q itself (int8, [out, in]) or nibble pairs (int4, [out, ceil(in / 2)]). */
  stored: Int8Array;
}

/**
 * THUDM's `QuantizedLinear.__init__` on host values: w [out, in] (float16-exact values, row-major).
 * An all-zero row would give 0/0 in the reference (NaN); it is refused here.
 */
export function quantizeWeight(w: Float32Array, out: number, inFeatures: number, bits: QuantBits, rounding: QuantizationRounding = 'cpu'): QuantizedValues {
  if (bits !== 4 && bits !== 8) throw new RangeError(`quantizeWeight: bits must be 4 or 8, got ${String(bits)}`);
  if (w.length !== out * inFeatures) throw new RangeError(`quantizeWeight: ${w.length} values is not [${out}, ${inFeatures}]`);
  const qmax = 2 ** (bits - 1) - 1;
  const scale = new Float32Array(out);
  const values = new Int8Array(out * inFeatures);
  for (let i = 0; i < out; i++) {
    let maxAbs = 0;
    for (let j = 0; j < inFeatures; j++) maxAbs = Math.max(maxAbs, Math.abs(w[i * inFeatures + j]));
    if (maxAbs === 0) throw new RangeError(`quantizeWeight: row ${i} is all zeros (the reference divides 0 by 0 there)`);
    // float16 arithmetic as torch does it on CPU: float32 quotient, rounded to float16.
    const s = roundToFloat16(Math.fround(maxAbs / qmax));
    scale[i] = s;
    for (let j = 0; j < inFeatures; j++) {
      const quotient = Math.fround(w[i * inFeatures + j] / s); // float32 quotient (fp16 / fp32)
      values[i * inFeatures + j] = roundHalfEven(rounding === 'gpu' ? roundToFloat16(quotient) : quotient);
    }
  }
  return { scale, values, stored: bits === 8 ? values : compressInt4(values, out, inFeatures) };
}

/** `compress_int4_weight`: byte j of row i = ((q[i][2j] & 0xF) << 4) | (q[i][2j+1] & 0xF), as int8. */
export function compressInt4(values: Int8Array, out: number, inFeatures: number): Int8Array {
  const rowBytes = Math.ceil(inFeatures / 2);
  const bytes = new Int8Array(out * rowBytes);
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < rowBytes; j++) {
      const hi = values[i * inFeatures + 2 * j] & 0xf;
      const lo = 2 * j + 1 < inFeatures ? values[i * inFeatures + 2 * j + 1] & 0xf : 0;
      bytes[i * rowBytes + j] = (hi << 4) | lo; // wraps to the signed byte, as the reference's int8
    }
  }
  return bytes;
}

export interface QuantizedLinearOptions {
  bias?: boolean;
  backend?: Backend;
}

/**
 * THUDM's `QuantizedLinear`: y = x @ (q * weight_scale)^T + bias, with `weight` the int8 / packed int4
 * rows (kept in int32 words: [out, rowWords]), `weight_scale` float32 [out] and `bias` [out]. The
 * weights are frozen (the reference's are `requires_grad=False`); gradients flow to the input.
 */
export class QuantizedLinear extends Module {
  readonly weightBitWidth: QuantBits;
  readonly inFeatures: number;
  readonly outFeatures: number;
  declare weight: Tensor;
  declare weight_scale: Tensor;
  declare bias: Tensor | null;

  constructor(weightBitWidth: QuantBits, inFeatures: number, outFeatures: number, options: QuantizedLinearOptions = {}) {
    super();
    if (weightBitWidth !== 4 && weightBitWidth !== 8) throw new RangeError(`QuantizedLinear: weight_bit_width must be 4 or 8, got ${String(weightBitWidth)}`);
    this.weightBitWidth = weightBitWidth;
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const { backend } = options;
    // Allocated empty (the reference's empty_init): a checkpoint or quantize() fills them.
    this.registerBuffer('weight', fromHost(new Int32Array(outFeatures * quantizedRowWords(weightBitWidth, inFeatures)), [outFeatures, quantizedRowWords(weightBitWidth, inFeatures)], 'int32', backend));
    this.registerBuffer('weight_scale', fromHost(new Float32Array(outFeatures), [outFeatures], 'float32', backend));
    this.registerBuffer('bias', options.bias === false ? null : fromHost(new Float32Array(outFeatures), [outFeatures], 'float32', backend));
  }

  /** The stored weight's shape in the reference's layout: [out, in] (int8) or [out, ceil(in / 2)] (int4). */
  get storedShape(): [number, number] {
    return [this.outFeatures, this.weightBitWidth === 8 ? this.inFeatures : Math.ceil(this.inFeatures / 2)];
  }

  /** Fills `weight` from the reference's stored int8 bytes ([out, in] or [out, in/2], row-major). */
  loadStored(bytes: Int8Array): void {
    const [rows, rowBytes] = this.storedShape;
    const words = packQuantizedRows(bytes, rows, rowBytes);
    this.setBuffer('weight', fromHost(words, this.weight.shape, 'int32', this.weight.backend), { disposeOld: true });
  }

  /** The stored weight in the reference's layout (int8 bytes, [out, in] or [out, in/2]). */
  async storedWeight(): Promise<{ data: Int8Array; shape: [number, number] }> {
    const [rows, rowBytes] = this.storedShape;
    const words = (await this.weight.data()) as Int32Array;
    const all = new Int8Array(words.buffer, words.byteOffset, words.byteLength);
    const rowWordBytes = this.weight.shape[1] * 4;
    const data = new Int8Array(rows * rowBytes);
    for (let r = 0; r < rows; r++) data.set(all.subarray(r * rowWordBytes, r * rowWordBytes + rowBytes), r * rowBytes);
    return { data, shape: [rows, rowBytes] };
  }

  /** A QuantizedLinear from float host values: weight [out, in] (float16-exact) and bias [out]. */
  static fromFloat(weight: Float32Array, bias: Float32Array | null, bits: QuantBits, inFeatures: number, outFeatures: number, options: { backend?: Backend; rounding?: QuantizationRounding } = {}): QuantizedLinear {
    const q = quantizeWeight(weight, outFeatures, inFeatures, bits, options.rounding);
    const layer = new QuantizedLinear(bits, inFeatures, outFeatures, { bias: bias !== null, backend: options.backend });
    layer.loadStored(q.stored);
    const backend = layer.weight.backend;
    layer.setBuffer('weight_scale', fromHost(q.scale, [outFeatures], 'float32', backend), { disposeOld: true });
    if (bias) layer.setBuffer('bias', fromHost(Float32Array.from(bias), [outFeatures], 'float32', backend), { disposeOld: true });
    return layer;
  }

  /** The reference's `quantize()` for one Linear: its weight rounded to float16 first (the reference quantizes a .half() model). */
  static async fromLinear(linear: Linear, bits: QuantBits, options: { rounding?: QuantizationRounding } = {}): Promise<QuantizedLinear> {
    const w = Float32Array.from((await linear.weight.data()) as Float32Array, roundToFloat16);
    const b = linear.bias ? Float32Array.from((await linear.bias.data()) as Float32Array, roundToFloat16) : null;
    return QuantizedLinear.fromFloat(w, b, bits, linear.inFeatures, linear.outFeatures, { backend: linear.weight.backend, rounding: options.rounding });
  }

  /** The float32 weight [out, in] = q * weight_scale (the reference's extract_weight_to_float). */
  dequantizedWeight(): Tensor {
    return noGrad(() => dequantizeWeight(this.weight, this.weight_scale, { bits: this.weightBitWidth, inFeatures: this.inFeatures }));
  }

  /** [..., in] -> [..., out]; with `activation`, the bias add and activation run as one kernel (as Linear). */
  forward(x: Tensor, activation?: FusedBiasActivation): Tensor {
    const y = quantizedMatmul(x, this.weight, this.weight_scale, { bits: this.weightBitWidth, inFeatures: this.inFeatures });
    if (!this.bias && !activation) return y;
    const bias = this.bias ?? fromHost(new Float32Array(this.outFeatures), [this.outFeatures], 'float32', y.backend);
    const out = activation ? biasActivation(y, bias, activation) : y.add(bias);
    y.dispose();
    if (!this.bias) bias.dispose();
    return out;
  }
}
