import { describe, expect, it } from 'vitest';

import {
  bfloat16BitsToFloat32,
  byteswapInPlace,
  convertBytes,
  encodeTensorData,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  type DType,
} from './dtypes.js';
import { DTypeConversionError } from './errors.js';

const ctx = { file: 'f.safetensors', tensor: 't' };
const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Reference float16 decoding, straight from the IEEE 754 definition. */
function f16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

describe('half floats', () => {
  it('decodes every float16 exactly', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const out = float16BitsToFloat32(all);
    for (let i = 0; i < 65536; i++) {
      if (Number.isNaN(f16(i))) expect(Number.isNaN(out[i])).toBe(true);
      else if (out[i] !== f16(i)) expect.fail(`bits ${i}: ${out[i]} !== ${f16(i)}`);
    }
  });

  it('decodes bfloat16 as the top half of float32', () => {
    const out = bfloat16BitsToFloat32(new Uint16Array([0x3f80, 0xc000, 0x4049, 0x7f80, 0x0001, 0x8000]));
    expect(Array.from(out)).toEqual([1, -2, 3.140625, Infinity, 2 ** -133, -0]);
  });

  it('encodes float16 and bfloat16 round-to-nearest-even, and round trips every value', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // halfway to the next (inf) rounds to even = inf
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal -> 0
    expect(float32ToFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
    for (let i = 0; i < 65536; i++) {
      const v = f16(i);
      if (!Number.isNaN(v) && float32ToFloat16Bits(v) !== i) expect.fail(`f16 bits ${i} do not round trip`);
    }
    expect(float32ToBFloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBFloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(float32ToBFloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(float32ToBFloat16Bits(NaN) & 0x7fc0).toBe(0x7fc0);
  });
});

describe('convertBytes', () => {
  it('float8 formats decode exactly', () => {
    const e4m3 = convertBytes('F8_E4M3', new Uint8Array([0x38, 0x7e, 0xfe, 0x7f, 0x01]), 'host', ctx) as Float32Array;
    expect(Array.from(e4m3.subarray(0, 3))).toEqual([1, 448, -448]);
    expect(Number.isNaN(e4m3[3])).toBe(true);
    expect(e4m3[4]).toBe(2 ** -9);
    const e5m2 = convertBytes('F8_E5M2', new Uint8Array([0x3c, 0x7b, 0x7c]), 'host', ctx);
    expect(Array.from(e5m2 as ArrayLike<unknown>)).toEqual([1, 57344, Infinity]);
  });

  it('integers go to Int32Array, range-checked, and name the tensor when out of range', () => {
    const i64 = bytesOf(new BigInt64Array([-(2n ** 31n), 2n ** 31n - 1n]));
    expect(Array.from(convertBytes('I64', i64, 'host', ctx) as ArrayLike<unknown>)).toEqual([-(2 ** 31), 2 ** 31 - 1]);
    for (const [dtype, arr] of [
      ['I64', new BigInt64Array([0n, 2n ** 31n])],
      ['I64', new BigInt64Array([-(2n ** 31n) - 1n])],
      ['U64', new BigUint64Array([2n ** 63n])],
      ['U32', new Uint32Array([2 ** 31])],
    ] as Array<[DType, ArrayBufferView]>) {
      expect(() => convertBytes(dtype, bytesOf(arr), 'host', ctx)).toThrow(DTypeConversionError);
      expect(() => convertBytes(dtype, bytesOf(arr), 'int32', ctx)).toThrow(/^f\.safetensors: tensor 't': .* outside the int32 range/);
    }
    expect(Array.from(convertBytes('U8', new Uint8Array([255]), 'host', ctx) as ArrayLike<unknown>)).toEqual([255]);
    expect(convertBytes('U8', new Uint8Array([255]), 'host', ctx)).toBeInstanceOf(Int32Array);
    expect(Array.from(convertBytes('U64', bytesOf(new BigUint64Array([2n ** 40n])), 'float32', ctx) as ArrayLike<unknown>)).toEqual([2 ** 40]);
  });

  it('copies misaligned bytes rather than failing', () => {
    const buf = new Uint8Array(9);
    buf.set(bytesOf(new Float32Array([1.5, -2])), 1);
    expect(Array.from(convertBytes('F32', buf.subarray(1), 'host', ctx) as ArrayLike<unknown>)).toEqual([1.5, -2]);
  });
});

describe('encodeTensorData', () => {
  it('takes raw bytes and native arrays as they are, converts numbers', () => {
    const raw = new Uint8Array(8);
    expect(encodeTensorData('F32', 2, raw, ctx)).toEqual(raw);
    expect(encodeTensorData('F32', 2, raw.buffer, ctx).byteLength).toBe(8);
    expect(Array.from(encodeTensorData('F16', 2, new Float32Array([1, -2]), ctx))).toEqual([0x00, 0x3c, 0x00, 0xc0]);
    expect(Array.from(new BigInt64Array(encodeTensorData('I64', 2, new Int32Array([-1, 5]), ctx).buffer))).toEqual([-1n, 5n]);
    expect(Array.from(encodeTensorData('BOOL', 3, [0, 2, 1], ctx))).toEqual([0, 1, 1]);
    expect(() => encodeTensorData('I64', 1, [1.5], ctx)).toThrow(/element 0 \(1\.5\) is not an integer/);
    expect(() => encodeTensorData('U8', 1, [256], ctx)).toThrow(/not a valid U8/);
    expect(() => encodeTensorData('F8_E4M3', 1, [1], ctx)).toThrow(/pass the raw bytes/);
  });

  it('byteswaps elements in place', () => {
    const b = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    byteswapInPlace(b, 4);
    expect(Array.from(b)).toEqual([4, 3, 2, 1, 8, 7, 6, 5]);
  });
});
