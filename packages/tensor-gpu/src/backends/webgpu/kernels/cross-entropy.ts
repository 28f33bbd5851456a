// The fused cross-entropy rows (FusedKernels.crossEntropy / crossEntropyBackward, decision 0026).
// Forward: one workgroup per logits row (64 threads, 256 from 2048 classes); each thread keeps the online
// (max, sum of exp(x - max)) pair of softmax.ts and a plain sum over its strided slice, the pairs and sums
// merge in one workgroup reduction (subgroup shuffles where the device has them, workgroup-reduce.ts),
// and thread 0 writes the row's lse and loss (reading the target logit).
// A target outside [0, C) that is not ignoreIndex is reported as gather reports it (index-check.ts: an
// IndexError naming crossEntropy at the next read) and that row's loss is written as 0.
// Backward: one thread per element, softmax recomputed from the logits and the row's lse.

import type { View } from '../../../backend.js';
import { Params, storageRef, type Runtime } from '../runtime.js';
import { GROUP_ID_WGSL, MAIN_ARGS, PARAMS_WGSL, WG, grid, prod } from './common.js';
import { REPORT_WGSL } from './index-check.js';
import { MS_WGSL } from './softmax.js';
import { WGSL_MATH } from './wgsl-math.js';
import { enableSubgroups, rowMain, workgroupReduce } from './workgroup-reduce.js';

export function runCrossEntropy(rt: Runtime, logits: View, targets: View, loss: View, lse: View, ignoreIndex: number, smoothing: number): void {
  const [rows, C] = logits.shape;
  if (rows === 0) return;
  const wg = C >= 2048 ? 256 : 64;
  const id = rt.indexCheck({ opName: 'crossEntropy', size: C, axis: 1 });
  const sub = rt.subgroups;
  const red = workgroupReduce({ name: 'rowMsx', type: 'MSX', fields: ['m', 's', 'x'], combine: 'mergeX(a, b)', identity: 'MSX(-inf_f32(), 0.0, 0.0)', wg, subgroups: sub });
  const code = (): string => `${enableSubgroups(sub)}${PARAMS_WGSL}${WGSL_MATH}${MS_WGSL}
struct MSX { m: f32, s: f32, x: f32 }
fn mergeX(a: MSX, b: MSX) -> MSX {
  let c = merge(MS(a.m, a.s), MS(b.m, b.s));
  return MSX(c.m, c.s, a.x + b.x);
}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<i32>;
@group(0) @binding(3) var<storage, read_write> L: array<f32>;
@group(0) @binding(4) var<storage, read_write> E: array<f32>;
${REPORT_WGSL(5)}
${red.decl}
${rowMain(wg, sub)}
  let n = pu(1u);
  let xo = pu(2u) + row * n;
  var acc = MS(-inf_f32(), 0.0);
  var sum = 0.0;
  for (var j = lid; j < n; j += ${wg}u) { let v = X[xo + j]; acc = merge(acc, MS(v, 1.0)); sum += v; }
  let r = ${red.call('MSX(acc.m, acc.s, sum)')};
  if (lid != 0u) { return; }
  // an all -inf row: lse -inf, as torch's logsumexp
  let lse = select(r.m + log_f32(r.s), -inf_f32(), r.m == -inf_f32());
  E[pu(5u) + row] = lse;
  let t = T[pu(3u) + row];
  var l = 0.0;
  if (t != pi(6u)) {
    if (t < 0 || u32(t) >= n) {
      report_bad_index(pu(8u), t);
    } else {
      let eps = pf(7u);
      l = lse - (1.0 - eps) * X[xo + u32(t)];
      // only with smoothing: 0 * (a row sum holding -inf) would make the loss NaN
      if (eps > 0.0) { l -= eps * r.x / f32(n); }
    }
  }
  L[pu(4u) + row] = l;
}`;
  const p = new Params().pushU(rows).pushU(C).pushU(logits.offset).pushU(targets.offset).pushU(loss.offset).pushU(lse.offset).pushI(ignoreIndex).pushF(smoothing).pushU(id);
  rt.dispatch(
    'crossEntropy',
    { key: `crossEntropy:${wg}:${sub}`, bindings: ['uniform', 'read', 'read', 'rw', 'rw', 'rw'], code },
    p,
    [
      storageRef(logits.storage, 'crossEntropy', 'logits'),
      storageRef(targets.storage, 'crossEntropy', 'targets'),
      storageRef(loss.storage, 'crossEntropy', 'loss'),
      storageRef(lse.storage, 'crossEntropy', 'lse'),
      { pb: rt.errBuf, size: 16 },
    ],
    grid(rows),
  );
}

export function runCrossEntropyBackward(rt: Runtime, logits: View, targets: View, lse: View, gradLoss: View, gradIn: View, ignoreIndex: number, smoothing: number): void {
  const total = prod(logits.shape);
  if (total === 0) return;
  const code = (): string => `${PARAMS_WGSL}${WGSL_MATH}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<i32>;
@group(0) @binding(3) var<storage, read> E: array<f32>;
@group(0) @binding(4) var<storage, read> G: array<f32>;
@group(0) @binding(5) var<storage, read_write> DX: array<f32>;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let idx = gidx * ${WG}u + lid;
  if (idx >= pu(0u)) { return; }
  let n = pu(1u);
  let row = idx / n;
  let c = idx - row * n;
  let t = T[pu(3u) + row];
  var v = 0.0;
  if (t != pi(7u)) {
    let eps = pf(8u);
    let hit = select(0.0, 1.0 - eps, i32(c) == t);
    v = G[pu(5u) + row] * (exp(X[pu(2u) + idx] - E[pu(4u) + row]) - hit - eps / f32(n));
  }
  DX[pu(6u) + idx] = v;
}`;
  const p = new Params()
    .pushU(total).pushU(logits.shape[1]).pushU(logits.offset).pushU(targets.offset).pushU(lse.offset).pushU(gradLoss.offset).pushU(gradIn.offset)
    .pushI(ignoreIndex).pushF(smoothing);
  rt.dispatch(
    'crossEntropy backward',
    { key: 'crossEntropyBackward', bindings: ['uniform', 'read', 'read', 'read', 'read', 'rw'], code },
    p,
    [
      storageRef(logits.storage, 'crossEntropy backward', 'logits'),
      storageRef(targets.storage, 'crossEntropy backward', 'targets'),
      storageRef(lse.storage, 'crossEntropy backward', 'lse'),
      storageRef(gradLoss.storage, 'crossEntropy backward', 'gradLoss'),
      storageRef(gradIn.storage, 'crossEntropy backward', 'gradIn'),
    ],
    grid(Math.ceil(total / WG)),
  );
}
