// copy: dst[i] = cast(src[i]) for two strided views of one shape (also the gather-to-contiguous step of
// read()). One thread per element (map kernel, dims merged where both views allow, a contiguous fast
// path without the div/mod loop); same-dtype copies move the raw value, so int32 stays exact.

import type { View } from '../../../backend.js';
import type { Runtime } from '../runtime.js';
import { convert, runMap } from './common.js';

export function runCopy(rt: Runtime, src: View, dst: View, op = 'copy'): void {
  runMap(rt, op, { key: 'copy', body: `Y[oy] = ${convert(src.dtype, dst.dtype, 'v0')};` }, [src], dst);
}
