import { describe, expect, it } from 'vitest';
import { broadcastShapes, contiguousStrides, isContiguous, resolveShape, viewStrides } from './layout.js';
import { numberToFloat16Bits, float16BitsToNumber, roundToFloat16, bfloat16BitsToNumber, promoteTypes } from './dtype.js';
import { tensor, cpu } from './index.js';

describe('layout', () => {
  it('contiguous strides and checks', () => {
    expect(contiguousStrides([2, 3, 4])).toEqual([12, 4, 1]);
    expect(isContiguous([2, 3], [3, 1])).toBe(true);
    expect(isContiguous([2, 3], [1, 2])).toBe(false);
    expect(isContiguous([2, 1, 3], [3, 99, 1])).toBe(true);
  });

  it('broadcasting follows NumPy rules', () => {
    expect(broadcastShapes('op', [2, 1, 3], [4, 1])).toEqual([2, 4, 3]);
    expect(broadcastShapes('op', [], [5])).toEqual([5]);
    expect(() => broadcastShapes('op', [2], [3])).toThrow(/op: shapes \[2\] and \[3\]/);
  });

  it('resolves -1 in reshape targets', () => {
    expect(resolveShape('reshape', [2, 6], [3, -1])).toEqual([3, 4]);
    expect(() => resolveShape('reshape', [2, 6], [5, -1])).toThrow(/cannot reshape/);
    expect(() => resolveShape('reshape', [2, 6], [-1, -1])).toThrow(/only one dimension/);
  });

  it('views merge and split dims only where the layout allows', () => {
    expect(viewStrides([2, 3, 4], [12, 4, 1], [6, 4])).toEqual([4, 1]);
    expect(viewStrides([2, 3, 4], [12, 4, 1], [2, 12])).toEqual([12, 1]);
    expect(viewStrides([6, 4], [4, 1], [2, 3, 2, 2])).toEqual([12, 4, 2, 1]);
    // a transposed [3, 2] (strides [1, 3]) cannot be flattened without a copy
    expect(viewStrides([3, 2], [1, 3], [6])).toBeNull();
    // but splitting its leading dim can
    expect(viewStrides([4, 2], [1, 4], [2, 2, 2])).toEqual([2, 1, 4]);
    // size-1 dims are free
    expect(viewStrides([3, 1, 2], [2, 7, 1], [3, 2])).toEqual([2, 1]);
    expect(viewStrides([3, 2], [2, 1], [1, 3, 2, 1])).not.toBeNull();
  });

  it('view values agree with a copy-based reshape', async () => {
    const x = tensor(Array.from({ length: 24 }, (_, i) => i), [2, 3, 4], { backend: cpu() });
    const p = x.permute(1, 0, 2); // [3, 2, 4]
    expect(await p.reshape(3, 8).toArray()).toEqual(await p.contiguous().view(3, 8).toArray());
    expect(await p.reshape(6, 4).toArray()).toEqual(await p.contiguous().view(6, 4).toArray());
  });
});

describe('dtypes', () => {
  it('float16 conversion rounds to nearest even and handles the edges', () => {
    expect(roundToFloat16(1 / 3)).toBe(0.333251953125);
    expect(roundToFloat16(65504)).toBe(65504);
    expect(roundToFloat16(65520)).toBe(Infinity);
    expect(roundToFloat16(5.960464477539063e-8)).toBe(5.960464477539063e-8); // smallest subnormal
    expect(roundToFloat16(2.9e-8)).toBe(0);
    expect(float16BitsToNumber(numberToFloat16Bits(-2.5))).toBe(-2.5);
    expect(Number.isNaN(roundToFloat16(NaN))).toBe(true);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1)
    expect(roundToFloat16(1 + 2 ** -11)).toBe(1);
    expect(roundToFloat16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9);
  });

  it('bfloat16 bits decode as the top half of a float32', () => {
    expect(bfloat16BitsToNumber(0x3f80)).toBe(1);
    expect(bfloat16BitsToNumber(0xc040)).toBe(-3);
  });

  it('promotion', () => {
    expect(promoteTypes('int32', 'float32')).toBe('float32');
    expect(promoteTypes('bool', 'int32')).toBe('int32');
    expect(promoteTypes('float16', 'float32')).toBe('float32');
  });

  it('float16 tensors on cpu store half-precision values', async () => {
    const x = tensor([1 / 3, 1000.3], { backend: cpu(), dtype: 'float16' });
    expect(Array.from(await x.data())).toEqual([0.333251953125, 1000.5]);
    const y = x.mul(x);
    expect(y.dtype).toBe('float16');
    expect((await y.data())[0]).toBe(roundToFloat16(0.333251953125 * 0.333251953125));
    expect(x.cast('float32').dtype).toBe('float32');
    expect(x.matmul(x.reshape(2, 1)).dtype).toBe('float16');
  });
});
