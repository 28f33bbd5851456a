// arange: out[i] = start + i * step over a contiguous out. One thread per element (map kernel).
// float outputs compute in f32 (start + f32(i) * step; may differ from the CPU's float64-then-round by
// 1 ulp for large i); int32 outputs with integral start/step compute exactly in i32.

import type { View } from '../../../backend.js';
import type { Runtime } from '../runtime.js';
import { fromF32, runMap } from './common.js';

export function runArange(rt: Runtime, out: View, start: number, step: number): void {
  const exactInt = out.dtype === 'int32' && Number.isInteger(start) && Number.isInteger(step);
  runMap(
    rt,
    'arange',
    exactInt
      ? {
          key: 'arange-i',
          body: 'Y[oy] = pi(SC) + i32(idx) * pi(SC + 1u);',
          scalars: (p) => p.pushI(start).pushI(step),
        }
      : {
          key: 'arange-f',
          body: `Y[oy] = ${fromF32(out.dtype, 'pf(SC) + f32(idx) * pf(SC + 1u)')};`,
          scalars: (p) => p.pushF(start).pushF(step),
        },
    [],
    out,
  );
}
