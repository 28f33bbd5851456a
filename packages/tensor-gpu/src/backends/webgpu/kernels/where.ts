// where: out = cond ? a : b with all three views broadcast to out's shape. One thread per element (map
// kernel); the chosen value is moved in its own type and converted only when out's dtype differs.

import type { View } from '../../../backend.js';
import type { Runtime } from '../runtime.js';
import { convert, runMap } from './common.js';

export function runWhere(rt: Runtime, cond: View, a: View, b: View, out: View): void {
  const test = cond.dtype === 'bool' ? 'v0 != 0u' : cond.dtype === 'int32' ? 'v0 != 0i' : `f32(v0) != 0.0`;
  const body = `Y[oy] = select(${convert(b.dtype, out.dtype, 'v2')}, ${convert(a.dtype, out.dtype, 'v1')}, ${test});`;
  runMap(rt, 'where', { key: 'where', body }, [cond, a, b], out);
}
