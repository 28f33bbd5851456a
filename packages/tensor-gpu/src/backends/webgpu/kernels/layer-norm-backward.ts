// layerNormBackward: the input gradient of layerNorm / RMS norm over the last dim of contiguous
// [outer, inner] rows (FusedKernels.layerNormBackward), and optionally gradOut * xhat for the weight's
// gradient. One workgroup per row (64 threads, 256 from 2048 elements), three passes over the row:
// mean and variance (Welford, merged as in the forward kernel), then the two row sums mean(g * w) and
// mean(g * w * xhat) in one workgroup reduction (workgroup-reduce.ts), then the writes. It replaces a ~12-kernel
// composite (broadcast subs and muls, squares, three row means) that re-read the row each time.

import type { View } from '../../../backend.js';
import { Params, storageRef, type BufferRef, type Runtime } from '../runtime.js';
import { PARAMS_WGSL, enables, fromF32, grid, prod, toF32, wtype } from './common.js';
import { rowStats, rowStatsDecl } from './layer-norm.js';
import { enableSubgroups, rowMain, workgroupReduce } from './workgroup-reduce.js';

export function runLayerNormBackward(
  rt: Runtime,
  x: View,
  weight: View | null,
  gradOut: View,
  gradIn: View,
  gradOutXhat: View | null,
  eps: number,
  rms: boolean,
): void {
  const inner = x.shape[x.shape.length - 1] ?? 1;
  const outer = inner === 0 ? 0 : prod(x.shape) / inner;
  if (outer === 0) return;
  const wg = inner >= 2048 ? 256 : 64;
  const hasW = !!weight;
  const hasGx = !!gradOutXhat;
  const wd = weight?.dtype ?? 'float32';
  const gxd = gradOutXhat?.dtype ?? 'float32';
  const gw = (j: string) => `${toF32(gradOut.dtype, `G[go + ${j}]`)}${hasW ? ` * ${toF32(wd, `W[pu(5u) + ${j} * pu(6u)]`)}` : ''}`;
  const sub = rt.subgroups;
  const sums = workgroupReduce({ name: 'rowSums', type: 'vec2<f32>', combine: 'a + b', identity: 'vec2<f32>(0.0)', wg, subgroups: sub });
  const code = (): string => `${enableSubgroups(sub)}${enables([x.dtype, wd, gradOut.dtype, gradIn.dtype, gxd])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> X: array<${wtype(x.dtype)}>;
@group(0) @binding(2) var<storage, read> W: array<${hasW ? wtype(wd) : 'f32'}>;
@group(0) @binding(3) var<storage, read> G: array<${wtype(gradOut.dtype)}>;
@group(0) @binding(4) var<storage, read_write> DX: array<${wtype(gradIn.dtype)}>;
@group(0) @binding(5) var<storage, read_write> GX: array<${hasGx ? wtype(gxd) : 'f32'}>;
${rowStatsDecl(wg, rms, sub)}
${sums.decl}
${rowMain(wg, sub)}
  let n = pu(1u);
  let xo = pu(2u) + row * n;
  let go = pu(3u) + row * n;
  let dxo = pu(4u) + row * n;
  let gxo = pu(7u) + row * n;
${rowStats(wg, rms, toF32(x.dtype, 'X[xo + j]'), 'pf(8u)', sub)}
  // Row sums of gw and gw * xhat, in one reduction.
  var acc2 = vec2<f32>(0.0);
  for (var j = lid; j < n; j += ${wg}u) {
    let gw = ${gw('j')};
    acc2 += vec2<f32>(gw, gw * (${toF32(x.dtype, 'X[xo + j]')} - mean) * rstd);
  }
  let s2 = ${sums.call('acc2')};
  let meanGw = ${rms ? '0.0' : 's2.x / f32(n)'};
  let meanGwXhat = s2.y / f32(n);
  for (var j = lid; j < n; j += ${wg}u) {
    let xhat = (${toF32(x.dtype, 'X[xo + j]')} - mean) * rstd;
    let gw = ${gw('j')};
    DX[dxo + j] = ${fromF32(gradIn.dtype, 'rstd * (gw - meanGw - xhat * meanGwXhat)')};
    ${hasGx ? `GX[gxo + j] = ${fromF32(gxd, `${toF32(gradOut.dtype, 'G[go + j]')} * xhat`)};` : ''}
  }
}`;
  const p = new Params()
    .pushU(outer)
    .pushU(inner)
    .pushU(x.offset)
    .pushU(gradOut.offset)
    .pushU(gradIn.offset)
    .pushU(weight?.offset ?? 0)
    .pushI(weight?.strides[weight.strides.length - 1] ?? 0)
    .pushU(gradOutXhat?.offset ?? 0)
    .pushF(eps);
  const op = rms ? 'rmsNorm backward' : 'layerNorm backward';
  const dummy: BufferRef = { pb: rt.dummy, size: 16 };
  const key = `layerNormBackward:${rms}:${hasW}:${hasGx}:${x.dtype}:${wd}:${gradOut.dtype}:${gradIn.dtype}:${gxd}:${wg}:${sub}`;
  rt.dispatch(
    op,
    { key, bindings: ['uniform', 'read', 'read', 'read', 'rw', 'rw'], code },
    p,
    [
      storageRef(x.storage, op, 'x'),
      weight ? storageRef(weight.storage, op, 'weight') : dummy,
      storageRef(gradOut.storage, op, 'gradOut'),
      storageRef(gradIn.storage, op, 'gradIn'),
      gradOutXhat ? storageRef(gradOutXhat.storage, op, 'gradOutXhat') : { pb: rt.dummyRw, size: 16 },
    ],
    grid(outer),
  );
}
