// softmax / log-softmax over the last dim of a contiguous [outer, inner] view, numerically stable.
// Each thread keeps an online (max, sum of exp(x - max)) pair over its strided slice of the row; the
// pairs merge in one workgroup reduction (one instead of max-then-sum; subgroup shuffles where the device
// has them, see workgroup-reduce.ts), then every thread writes its elements. One workgroup per row (64 threads, 256 from 2048 elements); rows of <= 32 elements use
// one thread per row with no barriers. NaN anywhere in a row gives a NaN row; an all -inf row gives NaN
// (0/0) like PyTorch. MS_WGSL (the online pair and its merge) is shared with cross-entropy.ts.

import type { View } from '../../../backend.js';
import { Params, storageRef, type Runtime } from '../runtime.js';
import { GROUP_ID_WGSL, MAIN_ARGS, PARAMS_WGSL, enables, fromF32, grid, prod, toF32, wtype } from './common.js';
import { WGSL_MATH } from './wgsl-math.js';
import { enableSubgroups, rowMain, workgroupReduce } from './workgroup-reduce.js';

export const MS_WGSL = /* wgsl */ `
struct MS { m: f32, s: f32 }
fn fmax_nan(a: f32, b: f32) -> f32 { if (is_nan_f32(a) || is_nan_f32(b)) { return nan_f32(); } return max(a, b); }
fn merge(a: MS, b: MS) -> MS {
  let m = fmax_nan(a.m, b.m);
  let ninf = -inf_f32();
  let sa = select(a.s * exp(a.m - m), 0.0, a.m == ninf);
  let sb = select(b.s * exp(b.m - m), 0.0, b.m == ninf);
  return MS(m, sa + sb);
}
`;

export function runSoftmax(rt: Runtime, x: View, out: View, log: boolean): void {
  const inner = x.shape[x.shape.length - 1] ?? 1;
  const outer = inner === 0 ? 0 : prod(x.shape) / inner;
  if (outer === 0 || inner === 0) return;
  const rowMode = inner <= 32;
  const wg = rowMode ? 64 : inner >= 2048 ? 256 : 64;
  // An all -inf row has m = -inf: write NaN explicitly (SwiftShader's exp(NaN) is not NaN).
  const writeExpr = `select(${log ? 'v - r.m - log_f32(r.s)' : 'exp(v - r.m) / r.s'}, nan_f32(), r.m == -inf_f32())`;
  const sub = !rowMode && rt.subgroups;
  const code = (): string => {
  const red = workgroupReduce({ name: 'rowMs', type: 'MS', fields: ['m', 's'], combine: 'merge(a, b)', identity: 'MS(-inf_f32(), 0.0)', wg, subgroups: sub });
  const head = `${enableSubgroups(sub)}${enables([x.dtype, out.dtype])}${PARAMS_WGSL}${WGSL_MATH}${MS_WGSL}
@group(0) @binding(1) var<storage, read> X: array<${wtype(x.dtype)}>;
@group(0) @binding(2) var<storage, read_write> Y: array<${wtype(out.dtype)}>;
fn ld(o: u32) -> f32 { return ${toF32(x.dtype, 'X[o]')}; }
`;
  return rowMode
    ? `${head}
@compute @workgroup_size(${wg})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let row = gidx * ${wg}u + lid;
  if (row >= pu(0u)) { return; }
  let n = pu(1u);
  let xo = pu(2u) + row * n;
  let yo = pu(3u) + row * n;
  var r = MS(-inf_f32(), 0.0);
  for (var j = 0u; j < n; j++) { r = merge(r, MS(ld(xo + j), 1.0)); }
  for (var j = 0u; j < n; j++) { let v = ld(xo + j); Y[yo + j] = ${fromF32(out.dtype, writeExpr)}; }
}`
    : `${head}
${red.decl}
${rowMain(wg, sub)}
  let n = pu(1u);
  let xo = pu(2u) + row * n;
  let yo = pu(3u) + row * n;
  var acc = MS(-inf_f32(), 0.0);
  for (var j = lid; j < n; j += ${wg}u) { acc = merge(acc, MS(ld(xo + j), 1.0)); }
  let r = ${red.call('acc')};
  for (var j = lid; j < n; j += ${wg}u) { let v = ld(xo + j); Y[yo + j] = ${fromF32(out.dtype, writeExpr)}; }
}`;
  };
  const p = new Params().pushU(outer).pushU(inner).pushU(x.offset).pushU(out.offset);
  const key = `softmax:${log}:${x.dtype}:${out.dtype}:${rowMode}:${wg}:${sub}`;
  rt.dispatch(
    log ? 'logSoftmax' : 'softmax',
    { key, bindings: ['uniform', 'read', 'rw'], code },
    p,
    [storageRef(x.storage, 'softmax', 'x'), storageRef(out.storage, 'softmax', 'out')],
    grid(rowMode ? Math.ceil(outer / wg) : outer),
  );
}
