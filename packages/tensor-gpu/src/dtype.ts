// The element types a tensor can hold, and how each is stored on the host.

export type DType = 'float32' | 'float16' | 'int32' | 'bool';

/** Host-side array for each dtype. float16 is widened to Float32Array on the host. */
export type HostArray<D extends DType = DType> = D extends 'int32'
  ? Int32Array
  : D extends 'bool'
    ? Uint8Array
    : Float32Array;

export type AnyHostArray = Float32Array | Int32Array | Uint8Array;

export const DTYPES: readonly DType[] = ['float32', 'float16', 'int32', 'bool'];

/** Bytes one element occupies in backend storage (GPU buffers keep bools as u32). */
export function storageBytesPerElement(dtype: DType, backend: 'cpu' | 'webgpu'): number {
  switch (dtype) {
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
      return backend === 'webgpu' ? 2 : 4;
    case 'bool':
      return backend === 'webgpu' ? 4 : 1;
  }
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float16';
}

export function hostArrayFor(dtype: DType, length: number): AnyHostArray {
  switch (dtype) {
    case 'int32':
      return new Int32Array(length);
    case 'bool':
      return new Uint8Array(length);
    default:
      return new Float32Array(length);
  }
}

/** The dtype an op on two inputs produces, following PyTorch's promotion for the types we have. */
export function promoteTypes(a: DType, b: DType): DType {
  if (a === b) return a;
  if (a === 'float32' || b === 'float32') return 'float32';
  if (a === 'float16' || b === 'float16') return 'float16';
  if (a === 'int32' || b === 'int32') return 'int32';
  return 'bool';
}

/** Rounds a float64 to the nearest float16 value (round-to-nearest-even), returned as a number. */
export function roundToFloat16(value: number): number {
  return float16BitsToNumber(numberToFloat16Bits(value));
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits of a number (round-to-nearest-even, overflow to infinity). */
export function numberToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0); // inf / NaN
  let e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mantissa |= 0x800000;
    const shift = 14 - e;
    const halfway = 1 << (shift - 1);
    let m = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    if (rest > halfway || (rest === halfway && (m & 1))) m += 1;
    return sign | m;
  }
  let m = mantissa >>> 13;
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m += 1;
    if (m === 0x400) {
      m = 0;
      e += 1;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** bfloat16 bits (upper half of a float32) to a number. */
export function bfloat16BitsToNumber(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

/** The dtype of a scalar operand next to a tensor of `like` dtype (floats stay float, ints stay int). */
export function autoDType(value: number, like: DType): DType {
  if (like === 'bool') return Number.isInteger(value) ? 'int32' : 'float32';
  if (like === 'int32' && !Number.isInteger(value)) return 'float32';
  return like;
}
