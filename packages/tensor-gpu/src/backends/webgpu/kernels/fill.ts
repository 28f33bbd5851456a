// fill: out[i] = value for every element of a (possibly strided) view. One thread per element through
// the strided map kernel (common.ts), 256 threads per workgroup; the value travels as the bit pattern
// of out's storage type so int32 fills are exact. Measured: bandwidth-bound like every map kernel.

import type { View } from '../../../backend.js';
import type { Runtime } from '../runtime.js';
import { runMap } from './common.js';

export function runFill(rt: Runtime, out: View, value: number): void {
  const t = out.dtype;
  const load = t === 'int32' ? 'pi(SC)' : t === 'bool' ? 'pu(SC)' : t === 'float16' ? 'f16(pf(SC))' : 'pf(SC)';
  runMap(
    rt,
    'fill',
    {
      key: 'fill',
      body: `Y[oy] = ${load};`,
      scalars: (p) => {
        if (t === 'int32') p.pushI(Math.trunc(value));
        else if (t === 'bool') p.pushU(value !== 0 ? 1 : 0);
        else p.pushF(value);
      },
    },
    [],
    out,
  );
}
