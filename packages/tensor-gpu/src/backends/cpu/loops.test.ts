// The compiled strided copy against the interpreted one (used where `new Function` is refused), on
// collapsed layouts like those the cpu backend hands it: transposes, broadcasts, offsets, conversions.
import { describe, expect, it } from 'vitest';
import { copyLoop, interpretedCopyLoop } from './loops.js';

const identity = (v: number) => v;
const toInt = function toInt32(v: number) {
  return Math.trunc(v);
};

describe('cpu copy loop', () => {
  const cases: { shape: number[]; src: number[]; dst: number[]; offset: number }[] = [
    { shape: [24], src: [1], dst: [1], offset: 3 },
    { shape: [4, 6], src: [1, 4], dst: [6, 1], offset: 0 }, // transpose
    { shape: [2, 3, 4, 5], src: [60, 5, 15, 1], dst: [60, 20, 5, 1], offset: 7 }, // head split
    { shape: [3, 1, 5], src: [0, 0, 1], dst: [5, 5, 1], offset: 1 }, // broadcast rows
    { shape: [5, 4], src: [2, 10], dst: [4, 1], offset: 2 }, // strided inner
  ];
  for (const { shape, src, dst, offset } of cases) {
    it(`copies [${shape.join(',')}] with src strides [${src.join(',')}] like the interpreted loop`, () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const source = Float32Array.from({ length: 200 }, (_, i) => i * 1.25 - 50.5);
      for (const [conv, out] of [
        [null, () => new Float32Array(n + 4)],
        [toInt, () => new Int32Array(n + 4)],
      ] as const) {
        const a = out();
        const b = out();
        copyLoop(conv, conv ? 'fi' : 'ff')(source, offset, src, a, 2, dst, shape);
        interpretedCopyLoop(conv ?? identity)(source, offset, src, b, 2, dst, shape);
        expect(Array.from(a)).toEqual(Array.from(b));
        // every destination element was written (the two slack elements were not)
        expect(a[0]).toBe(0);
        expect(a[1]).toBe(0);
      }
    });
  }
});
