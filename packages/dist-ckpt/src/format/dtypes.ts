// Checkpoint dtypes (safetensors names) and the conversions between raw little-endian bytes and host
// typed arrays. float16 / bfloat16 / float8 decode exactly (table or bit shift); float32 -> float16 /
// bfloat16 encode rounds to nearest even, as torch's `.half()` / `.bfloat16()` do.

import { DTypeConversionError } from './errors.js';

/** Element types, spelled as in the safetensors header. */
export type DType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'F8_E4M3'
  | 'F8_E5M2'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL';

/** Bytes per element. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/**
 * The order of the reference implementation's `Dtype` enum (safetensors/src/tensor.rs), which its
 * writer sorts by, descending, before sorting by name.
 */
export const DTYPE_ORDER: readonly DType[] = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
];

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, value);
}

export function isFloatDType(dtype: DType): boolean {
  return dtype[0] === 'F' || dtype === 'BF16';
}

/** The typed array a dtype's raw bytes are viewed as (`as: 'native'`). Half floats come back as raw bits. */
export type NativeArray =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** The host types: floats -> Float32Array, integers -> Int32Array, BOOL -> Uint8Array. */
export type HostArray = Float32Array | Int32Array | Uint8Array;

/**
 * How to hand tensor data back:
 * - `'host'` (default): floats -> Float32Array, integers -> Int32Array (range-checked), BOOL -> Uint8Array;
 * - `'float32'`: everything -> Float32Array;
 * - `'int32'`: integers and BOOL -> Int32Array (range-checked); floats are refused;
 * - `'native'`: a view of the stored element type (F16/BF16 as raw Uint16 bits, I64 as BigInt64Array).
 */
export type ReadAs = 'host' | 'float32' | 'int32' | 'native';

type TypedArrayCtor = {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): NativeArray;
  readonly BYTES_PER_ELEMENT: number;
};

const NATIVE_CTOR: Readonly<Record<DType, TypedArrayCtor>> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  F8_E4M3: Uint8Array,
  F8_E5M2: Uint8Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

export function nativeArrayCtor(dtype: DType): TypedArrayCtor {
  return NATIVE_CTOR[dtype];
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Number of elements of a shape (1 for a 0-d tensor). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Views little-endian bytes as the dtype's typed array, copying only when the bytes are misaligned. */
export function viewNative(dtype: DType, bytes: Uint8Array): NativeArray {
  if (!LITTLE_ENDIAN_HOST) throw new Error('@lm/dist-ckpt: big-endian hosts are not supported');
  const ctor = NATIVE_CTOR[dtype];
  const size = ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  let b = bytes;
  if (b.byteOffset % size !== 0) b = b.slice();
  return new ctor(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength / size);
}

// ---- half and 8-bit floats ------------------------------------------------------------------

let f16Table: Float32Array | undefined;

/** All 65536 float16 values as float32 (exact: every float16 is a float32). Built on first use. */
function float16Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >>> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    if (exponent === 0) t[bits] = sign * mantissa * 2 ** -24;
    else if (exponent === 0x1f) t[bits] = mantissa ? NaN : sign * Infinity;
    else t[bits] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  f16Table = t;
  return t;
}

export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  const table = float16Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

/** bfloat16 is the upper half of a float32: shifting the bits is exact, NaN payloads included. */
export function bfloat16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

let e4m3Table: Float32Array | undefined;
let e5m2Table: Float32Array | undefined;

/** float8 e4m3fn (torch.float8_e4m3fn): bias 7, no infinities, S.1111.111 is NaN. */
function float8E4M3Table(): Float32Array {
  if (e4m3Table) return e4m3Table;
  const t = new Float32Array(256);
  for (let bits = 0; bits < 256; bits++) {
    const sign = bits & 0x80 ? -1 : 1;
    const exponent = (bits >>> 3) & 0xf;
    const mantissa = bits & 0x7;
    if (exponent === 0xf && mantissa === 0x7) t[bits] = NaN;
    else if (exponent === 0) t[bits] = sign * mantissa * 2 ** -9;
    else t[bits] = sign * (1 + mantissa / 8) * 2 ** (exponent - 7);
  }
  e4m3Table = t;
  return t;
}

/** float8 e5m2 is the upper byte of a float16. */
function float8E5M2Table(): Float32Array {
  if (e5m2Table) return e5m2Table;
  const f16 = float16Table();
  const t = new Float32Array(256);
  for (let bits = 0; bits < 256; bits++) t[bits] = f16[bits << 8];
  e5m2Table = t;
  return t;
}

function decodeByTable(bytes: Uint8Array, table: Float32Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = table[bytes[i]];
  return out;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE binary16 bits of a float32 value, round-to-nearest-even, overflow to infinity. */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  let e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const halfway = 1 << (shift - 1);
    let m = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    if (rest > halfway || (rest === halfway && m & 1)) m += 1;
    return sign | m;
  }
  let m = mantissa >>> 13;
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m += 1;
    if (m === 0x400) {
      m = 0;
      e += 1;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** bfloat16 bits of a float32 value, round-to-nearest-even; NaN stays a (quiet) NaN. */
export function float32ToBFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---- raw bytes -> requested host type -------------------------------------------------------

export interface ConversionContext {
  file: string;
  tensor: string;
}

/** Converts a contiguous little-endian buffer of `dtype` elements to the requested host type. */
export function convertBytes(
  dtype: DType,
  bytes: Uint8Array,
  as: ReadAs,
  ctx: ConversionContext,
): NativeArray | HostArray {
  const native = viewNative(dtype, bytes);
  if (as === 'native') return native;
  if (isFloatDType(dtype)) {
    if (as === 'int32') {
      throw new DTypeConversionError(ctx.file, `cannot read ${dtype} data as int32`, ctx.tensor);
    }
    return floatToFloat32(dtype, native);
  }
  if (as === 'float32') return intToFloat32(dtype, native);
  if (dtype === 'BOOL' && as === 'host') return native as Uint8Array;
  return intToInt32(dtype, native, ctx);
}

function floatToFloat32(dtype: DType, native: NativeArray): Float32Array {
  switch (dtype) {
    case 'F32':
      return native as Float32Array;
    case 'F64':
      return Float32Array.from(native as Float64Array);
    case 'F16':
      return float16BitsToFloat32(native as Uint16Array);
    case 'BF16':
      return bfloat16BitsToFloat32(native as Uint16Array);
    case 'F8_E4M3':
      return decodeByTable(native as Uint8Array, float8E4M3Table());
    case 'F8_E5M2':
      return decodeByTable(native as Uint8Array, float8E5M2Table());
    default:
      throw new Error(`unreachable: ${dtype}`);
  }
}

function intToFloat32(dtype: DType, native: NativeArray): Float32Array {
  if (dtype === 'I64' || dtype === 'U64') {
    // Two 32-bit words per element: exact up to 2^53, then float32 rounding anyway.
    const words = new Uint32Array(native.buffer, native.byteOffset, native.length * 2);
    const out = new Float32Array(native.length);
    const signed = dtype === 'I64';
    for (let i = 0; i < out.length; i++) {
      const lo = words[2 * i];
      const hi = words[2 * i + 1];
      out[i] = (signed ? hi | 0 : hi) * 4294967296 + lo;
    }
    return out;
  }
  return Float32Array.from(native as Int32Array);
}

function intToInt32(dtype: DType, native: NativeArray, ctx: ConversionContext): Int32Array {
  switch (dtype) {
    case 'I32':
      return native as Int32Array;
    case 'I16':
    case 'I8':
    case 'U16':
    case 'U8':
    case 'BOOL':
      return Int32Array.from(native as Int16Array);
    case 'U32': {
      const src = native as Uint32Array;
      for (let i = 0; i < src.length; i++) {
        if (src[i] > 0x7fffffff) throw outOfRange(ctx, dtype, i, String(src[i]));
      }
      return new Int32Array(src.buffer, src.byteOffset, src.length).slice();
    }
    case 'I64':
    case 'U64': {
      const words = new Int32Array(native.buffer, native.byteOffset, native.length * 2);
      const out = new Int32Array(native.length);
      const signed = dtype === 'I64';
      for (let i = 0; i < out.length; i++) {
        const lo = words[2 * i];
        const hi = words[2 * i + 1];
        // In range iff the high word is the sign extension of the low word (and, unsigned, both >= 0).
        if (hi !== lo >> 31 || (!signed && lo < 0)) {
          throw outOfRange(ctx, dtype, i, String((native as BigInt64Array)[i]));
        }
        out[i] = lo;
      }
      return out;
    }
    default:
      throw new Error(`unreachable: ${dtype}`);
  }
}

function outOfRange(ctx: ConversionContext, dtype: DType, index: number, value: string): DTypeConversionError {
  return new DTypeConversionError(
    ctx.file,
    `${dtype} value ${value} at flat index ${index} is outside the int32 range; read it with { as: 'native' }`,
    ctx.tensor,
  );
}

// ---- host data -> raw bytes (writers) -------------------------------------------------------

/** Data a writer accepts: raw little-endian bytes, a typed array, or plain numbers / bigints. */
export type TensorDataInput = ArrayBuffer | ArrayBufferView | ArrayLike<number> | ArrayLike<bigint>;

/**
 * Encodes `data` as `count` little-endian elements of `dtype`. Raw bytes (Uint8Array, ArrayBuffer,
 * DataView) and the dtype's own typed array are taken as they are; other numeric arrays are converted
 * (Float32Array -> F16 / BF16 rounds to nearest even; integers are range-checked).
 */
export function encodeTensorData(
  dtype: DType,
  count: number,
  data: TensorDataInput,
  ctx: ConversionContext,
): Uint8Array {
  const size = DTYPE_SIZE[dtype];
  const fail = (msg: string): never => {
    throw new DTypeConversionError(ctx.file, msg, ctx.tensor);
  };
  let bytes: Uint8Array | undefined;
  if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (data instanceof Uint8Array || data instanceof DataView) {
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } else if (ArrayBuffer.isView(data) && data.constructor === NATIVE_CTOR[dtype]) {
    const length = (data as NativeArray).length;
    if (length !== count) fail(`data has ${length} elements but the shape holds ${count}`);
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (bytes) {
    if (bytes.byteLength !== count * size) {
      fail(`data has ${bytes.byteLength} bytes but ${count} ${dtype} elements need ${count * size}`);
    }
    return bytes;
  }
  const src = data as ArrayLike<number | bigint>;
  if (src.length !== count) fail(`data has ${src.length} elements but the shape holds ${count}`);
  const out = new Uint8Array(count * size);
  const num = (i: number): number => Number(src[i]);
  switch (dtype) {
    case 'F32':
    case 'F64': {
      const view = dtype === 'F32' ? new Float32Array(out.buffer) : new Float64Array(out.buffer);
      for (let i = 0; i < count; i++) view[i] = num(i);
      break;
    }
    case 'F16':
    case 'BF16': {
      const view = new Uint16Array(out.buffer);
      const enc = dtype === 'F16' ? float32ToFloat16Bits : float32ToBFloat16Bits;
      for (let i = 0; i < count; i++) view[i] = enc(num(i));
      break;
    }
    case 'I64':
    case 'U64': {
      const view = dtype === 'I64' ? new BigInt64Array(out.buffer) : new BigUint64Array(out.buffer);
      const lo = dtype === 'I64' ? -(2n ** 63n) : 0n;
      const hi = dtype === 'I64' ? 2n ** 63n - 1n : 2n ** 64n - 1n;
      for (let i = 0; i < count; i++) {
        const v = src[i];
        if (typeof v === 'number' && !Number.isInteger(v)) fail(`element ${i} (${v}) is not an integer`);
        const b = BigInt(v);
        if (b < lo || b > hi) fail(`element ${i} (${b}) is outside the ${dtype} range`);
        view[i] = b;
      }
      break;
    }
    case 'BOOL': {
      for (let i = 0; i < count; i++) out[i] = num(i) ? 1 : 0;
      break;
    }
    case 'F8_E4M3':
    case 'F8_E5M2':
      return fail(`converting numbers to ${dtype} is not supported; pass the raw bytes`);
    default: {
      const ctor = NATIVE_CTOR[dtype] as unknown as { new (b: ArrayBuffer): Int32Array };
      const view = new ctor(out.buffer);
      const [lo, hi] = INT_RANGE[dtype];
      for (let i = 0; i < count; i++) {
        const v = num(i);
        if (!Number.isInteger(v) || v < lo || v > hi) fail(`element ${i} (${v}) is not a valid ${dtype}`);
        view[i] = v;
      }
    }
  }
  return out;
}

const INT_RANGE: Record<string, [number, number]> = {
  I32: [-(2 ** 31), 2 ** 31 - 1],
  I16: [-(2 ** 15), 2 ** 15 - 1],
  I8: [-128, 127],
  U32: [0, 2 ** 32 - 1],
  U16: [0, 2 ** 16 - 1],
  U8: [0, 255],
};

/** Reverses the byte order of every `elementSize`-byte element, in place (big-endian storages). */
export function byteswapInPlace(bytes: Uint8Array, elementSize: number): void {
  if (elementSize === 1) return;
  for (let i = 0; i + elementSize <= bytes.length; i += elementSize) {
    for (let a = i, b = i + elementSize - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}
