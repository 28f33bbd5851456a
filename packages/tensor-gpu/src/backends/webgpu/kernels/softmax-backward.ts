// softmaxBackward: the input gradient of softmax / log-softmax over the last dim of contiguous
// [outer, inner] rows (FusedKernels.softmaxBackward), from the forward's output y:
//   softmax: y * (g - sum(g * y));  log-softmax: g - exp(y) * sum(g).
// One row sum, then one write pass. Geometry as the forward kernel: one workgroup per row (64 threads,
// 256 from 2048 elements) with one workgroup reduction for the sum (workgroup-reduce.ts); rows of <= 32 elements (attention
// probabilities of short sequences) use one thread per row with no barriers. It replaces a composite
// of three or four kernels over the row (mul, sum, sub/exp, mul) in softmax, log-softmax (and so
// cross-entropy) and attention backward.

import type { View } from '../../../backend.js';
import { Params, storageRef, type Runtime } from '../runtime.js';
import { enableSubgroups, rowMain, workgroupReduce } from './workgroup-reduce.js';
import { GROUP_ID_WGSL, MAIN_ARGS, PARAMS_WGSL, enables, fromF32, grid, prod, toF32, wtype } from './common.js';

export function runSoftmaxBackward(rt: Runtime, y: View, gradOut: View, gradIn: View, log: boolean): void {
  const inner = y.shape[y.shape.length - 1] ?? 1;
  const outer = inner === 0 ? 0 : prod(y.shape) / inner;
  if (outer === 0 || inner === 0) return;
  const rowMode = inner <= 32;
  const wg = rowMode ? 64 : inner >= 2048 ? 256 : 64;
  const term = log ? 'g(go + j)' : 'g(go + j) * yv(yo + j)';
  const write = log ? 'g(go + j) - exp(yv(yo + j)) * dot' : 'yv(yo + j) * (g(go + j) - dot)';
  const sub = !rowMode && rt.subgroups;
  const red = workgroupReduce({ name: 'rowSum', type: 'f32', combine: 'a + b', identity: '0.0', wg, subgroups: sub });
  const code = (): string => {
    const head = `${enableSubgroups(sub)}${enables([y.dtype, gradOut.dtype, gradIn.dtype])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> Yv: array<${wtype(y.dtype)}>;
@group(0) @binding(2) var<storage, read> G: array<${wtype(gradOut.dtype)}>;
@group(0) @binding(3) var<storage, read_write> DX: array<${wtype(gradIn.dtype)}>;
fn yv(o: u32) -> f32 { return ${toF32(y.dtype, 'Yv[o]')}; }
fn g(o: u32) -> f32 { return ${toF32(gradOut.dtype, 'G[o]')}; }
`;
    const offsets = `let n = pu(1u);
  let yo = pu(2u) + row * n;
  let go = pu(3u) + row * n;
  let dxo = pu(4u) + row * n;`;
    return rowMode
      ? `${head}
@compute @workgroup_size(${wg})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let row = gidx * ${wg}u + lid;
  if (row >= pu(0u)) { return; }
  ${offsets}
  var dot = 0.0;
  for (var j = 0u; j < n; j++) { dot += ${term}; }
  for (var j = 0u; j < n; j++) { DX[dxo + j] = ${fromF32(gradIn.dtype, write)}; }
}`
      : `${head}
${red.decl}
${rowMain(wg, sub)}
  ${offsets}
  var acc = 0.0;
  for (var j = lid; j < n; j += ${wg}u) { acc += ${term}; }
  let dot = ${red.call('acc')};
  for (var j = lid; j < n; j += ${wg}u) { DX[dxo + j] = ${fromF32(gradIn.dtype, write)}; }
}`;
  };
  const p = new Params().pushU(outer).pushU(inner).pushU(y.offset).pushU(gradOut.offset).pushU(gradIn.offset);
  const op = log ? 'logSoftmax backward' : 'softmax backward';
  const key = `softmaxBackward:${log}:${y.dtype}:${gradOut.dtype}:${gradIn.dtype}:${rowMode}:${wg}:${sub}`;
  rt.dispatch(
    op,
    { key, bindings: ['uniform', 'read', 'read', 'rw'], code },
    p,
    [storageRef(y.storage, op, 'y'), storageRef(gradOut.storage, op, 'gradOut'), storageRef(gradIn.storage, op, 'gradIn')],
    grid(rowMode ? Math.ceil(outer / wg) : outer),
  );
}
