// unary: out = op(x, p0, p1) for every row of the UNARY table (elementwise-math.ts), generated
// from the row's `wgsl` expression: one thread per element, x strided/broadcast, math in f32 (int32
// inputs of neg/abs/sign/square stay in i32 so they are exact), stored converted to out's dtype.

import type { View } from '../../../backend.js';
import { BackendError } from '../../../errors.js';
import { UNARY, type UnaryOpName } from '../../../elementwise-math.js';
import type { Runtime } from '../runtime.js';
import { fromF32, runMap, toF32 } from './common.js';
import { WGSL_MATH, fixExpr } from './wgsl-math.js';

const INT_EXACT = new Set<string>(['neg', 'abs', 'sign', 'square']);

export function runUnary(rt: Runtime, op: UnaryOpName, x: View, out: View, p0: number, p1: number): void {
  const row = UNARY[op];
  if (!row) throw new BackendError(`unary: unknown op '${op}'`);
  const intMode = x.dtype === 'int32' && out.dtype === 'int32' && INT_EXACT.has(op);
  const body = intMode
    ? `let x = v0; Y[oy] = ${row.wgsl};`
    : `let x = ${toF32(x.dtype, 'v0')}; let p0 = pf(SC); let p1 = pf(SC + 1u); Y[oy] = ${fromF32(out.dtype, `(${fixExpr(row.wgsl)})`)};`;
  runMap(
    rt,
    op,
    { key: `unary-${op}${intMode ? '-i' : ''}`, body, decl: WGSL_MATH, scalars: (p) => p.pushF(p0).pushF(p1) },
    [x],
    out,
  );
}
