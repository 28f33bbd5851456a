// binary: out = op(a, b) for every row of the BINARY table (and the FUSED_BINARY rows: the GELU gradients,
// bias + activation), generated from the row's `wgsl` expression.
// a and b are views already broadcast to out's shape (0 strides); one thread per element, dims merged
// where all three views allow. Math in f32, except int32 add/sub/mul/maximum/minimum/comparisons which
// run in i32 so they stay exact beyond 2^24.

import type { View } from '../../../backend.js';
import { BackendError } from '../../../errors.js';
import type { BinaryRow } from '../../../elementwise-math.js';
import type { Runtime } from '../runtime.js';
import { fromF32, runMap, toF32 } from './common.js';
import { WGSL_MATH, fixExpr } from './wgsl-math.js';

const INT_ARITH = new Set<string>(['add', 'sub', 'mul', 'maximum', 'minimum']);
const INT_CMP = new Set<string>(['eq', 'ne', 'lt', 'le', 'gt', 'ge']);

export function runBinary<K extends string>(rt: Runtime, op: K, table: Record<K, BinaryRow>, a: View, b: View, out: View): void {
  const row = table[op];
  if (!row) throw new BackendError(`binary: unknown op '${op}'`);
  const ints = a.dtype === 'int32' && b.dtype === 'int32';
  let body: string;
  let mode = 'f';
  if (ints && INT_ARITH.has(op) && out.dtype === 'int32') {
    mode = 'i';
    body = `let a = v0; let b = v1; Y[oy] = ${row.wgsl};`;
  } else if (ints && INT_CMP.has(op)) {
    mode = 'ic';
    body = `let a = v0; let b = v1; Y[oy] = ${fromF32(out.dtype, `(${row.wgsl})`)};`;
  } else {
    body = `let a = ${toF32(a.dtype, 'v0')}; let b = ${toF32(b.dtype, 'v1')}; Y[oy] = ${fromF32(out.dtype, `(${fixExpr(row.wgsl)})`)};`;
  }
  runMap(rt, op, { key: `binary-${op}-${mode}`, body, decl: WGSL_MATH }, [a, b], out);
}
