// layerNorm over the last dim of a contiguous [outer, inner] view: (x - mean) / sqrt(var + eps) * w + b,
// or the RMS variant x / sqrt(mean(x^2) + eps) * w. f32 accumulation: each thread runs Welford over its
// strided slice of the row, the (count, mean, M2) triples merge in one workgroup reduction (Chan et al.;
// subgroup shuffles where the device has them, workgroup-reduce.ts),
// so a row costs one reduction and no cancellation-prone sum-of-squares. One workgroup per row (64
// threads, 256 from 2048 elements). weight/bias are strided [inner] views or absent.

import type { View } from '../../../backend.js';
import { Params, storageRef, type BufferRef, type Runtime } from '../runtime.js';
import { enableSubgroups, rowMain, workgroupReduce, type SubgroupMode, type WorkgroupReduce } from './workgroup-reduce.js';
import { PARAMS_WGSL, enables, fromF32, grid, prod, toF32, wtype } from './common.js';

/**
 * WGSL declarations for `rowStats`: Welford triples merged pairwise (Chan et al.; RMS needs only the sum
 * of squares) and their workgroup reduction. Shared by the forward and backward kernels.
 */
export function rowStatsDecl(wg: number, rms: boolean, subgroups: SubgroupMode): string {
  return `struct Wf { n: f32, mean: f32, m2: f32 }
fn merge(a: Wf, b: Wf) -> Wf {
  let n = a.n + b.n;
  if (n == 0.0) { return a; }
  let d = b.mean - a.mean;
  return Wf(n, a.mean + d * (b.n / n), a.m2 + b.m2 + d * d * (a.n * b.n / n));
}
${rowStatReduce(wg, rms, subgroups).decl}`;
}

function rowStatReduce(wg: number, rms: boolean, subgroups: SubgroupMode): WorkgroupReduce {
  return rms
    ? workgroupReduce({ name: 'rowStat', type: 'f32', combine: 'a + b', identity: '0.0', wg, subgroups })
    : workgroupReduce({ name: 'rowStat', type: 'Wf', fields: ['n', 'mean', 'm2'], combine: 'merge(a, b)', identity: 'Wf(0.0, 0.0, 0.0)', wg, subgroups });
}

/**
 * WGSL statements that leave `mean` (0 for rms) and `rstd` of the row in scope: each of the `wg`
 * threads (`lid`) accumulates its strided slice of the n elements (`load` reads element j), then one
 * workgroup reduction merges them. Needs `n`, `lid` (and the subgroup builtins when `subgroups`) and the
 * declarations of `rowStatsDecl`.
 */
export function rowStats(wg: number, rms: boolean, load: string, eps: string, subgroups: SubgroupMode): string {
  const call = rowStatReduce(wg, rms, subgroups).call('acc');
  return rms
    ? `var acc = 0.0;
  for (var j = lid; j < n; j += ${wg}u) {
    let v = ${load};
    acc += v * v;
  }
  let mean = 0.0;
  let rstd = inverseSqrt(${call} / f32(n) + ${eps});`
    : `var acc = Wf(0.0, 0.0, 0.0);
  for (var j = lid; j < n; j += ${wg}u) {
    let v = ${load};
    acc.n += 1.0;
    let d = v - acc.mean;
    acc.mean += d / acc.n;
    acc.m2 += d * (v - acc.mean);
  }
  let st = ${call};
  let mean = st.mean;
  let rstd = inverseSqrt(st.m2 / f32(n) + ${eps});`;
}

export function runLayerNorm(
  rt: Runtime,
  x: View,
  weight: View | null,
  bias: View | null,
  out: View,
  eps: number,
  rms: boolean,
): void {
  const inner = x.shape[x.shape.length - 1] ?? 1;
  const outer = inner === 0 ? 0 : prod(x.shape) / inner;
  if (outer === 0) return;
  const wg = inner >= 2048 ? 256 : 64;
  const hasW = !!weight;
  const hasB = !!bias && !rms;
  const wd = weight?.dtype ?? 'float32';
  const bd = bias?.dtype ?? 'float32';
  const sub = rt.subgroups;
  const code = (): string => `${enableSubgroups(sub)}${enables([x.dtype, out.dtype, wd, bd])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> X: array<${wtype(x.dtype)}>;
@group(0) @binding(2) var<storage, read> W: array<${hasW ? wtype(wd) : 'f32'}>;
@group(0) @binding(3) var<storage, read> B: array<${hasB ? wtype(bd) : 'f32'}>;
@group(0) @binding(4) var<storage, read_write> Y: array<${wtype(out.dtype)}>;
${rowStatsDecl(wg, rms, sub)}
${rowMain(wg, sub)}
  let n = pu(1u);
  let xo = pu(2u) + row * n;
  let yo = pu(3u) + row * n;
${rowStats(wg, rms, toF32(x.dtype, 'X[xo + j]'), 'pf(8u)', sub)}
  for (var j = lid; j < n; j += ${wg}u) {
    var v = (${toF32(x.dtype, 'X[xo + j]')} - mean) * rstd;
    ${hasW ? `v = v * ${toF32(wd, 'W[pu(4u) + j * pu(5u)]')};` : ''}
    ${hasB ? `v = v + ${toF32(bd, 'B[pu(6u) + j * pu(7u)]')};` : ''}
    Y[yo + j] = ${fromF32(out.dtype, 'v')};
  }
}`;
  const p = new Params()
    .pushU(outer)
    .pushU(inner)
    .pushU(x.offset)
    .pushU(out.offset)
    .pushU(weight?.offset ?? 0)
    .pushI(weight?.strides[weight.strides.length - 1] ?? 0)
    .pushU(bias?.offset ?? 0)
    .pushI(bias?.strides[bias.strides.length - 1] ?? 0)
    .pushF(eps);
  const op = rms ? 'rmsNorm' : 'layerNorm';
  const dummy: BufferRef = { pb: rt.dummy, size: 16 };
  const key = `layerNorm:${rms}:${hasW}:${hasB}:${x.dtype}:${wd}:${bd}:${out.dtype}:${wg}:${sub}`;
  rt.dispatch(
    op,
    { key, bindings: ['uniform', 'read', 'read', 'read', 'rw'], code },
    p,
    [
      storageRef(x.storage, op, 'x'),
      weight ? storageRef(weight.storage, op, 'weight') : dummy,
      hasB && bias ? storageRef(bias.storage, op, 'bias') : dummy,
      storageRef(out.storage, op, 'out'),
    ],
    grid(outer),
  );
}
