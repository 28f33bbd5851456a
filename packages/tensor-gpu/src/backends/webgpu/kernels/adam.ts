// adam: one fused Adam/AdamW step in place over contiguous float32 param, grad, exp_avg, exp_avg_sq
// (and max_exp_avg_sq for amsgrad). One thread per element; replaces ~12 elementwise dispatches and
// their temporaries per parameter. Same float32 operation order as the cpu backend.

import type { AdamStepParams, View } from '../../../backend.js';
import { Params, storageRef, type Runtime } from '../runtime.js';
import { GROUP_ID_WGSL, MAIN_ARGS, PARAMS_WGSL, WG, assertU32, grid, prod } from './common.js';

export function runAdamStep(rt: Runtime, param: View, grad: View, m: View, v: View, vmax: View | null, h: AdamStepParams): void {
  const n = prod(param.shape);
  if (n === 0) return;
  assertU32('adamStep', n, 'size');
  // params: [0] n [1..5] offsets p g m v vmax [6] decay [7] wd [8] b1 [9] b2 [10] 1-b1 [11] 1-b2
  //         [12] 1/sqrt(bc2) [13] eps [14] stepSize
  const p = new Params()
    .pushU(n)
    .pushU(param.offset)
    .pushU(grad.offset)
    .pushU(m.offset)
    .pushU(v.offset)
    .pushU(vmax?.offset ?? 0)
    .pushF(1 - h.lr * h.weightDecay)
    .pushF(h.weightDecay)
    .pushF(h.beta1)
    .pushF(h.beta2)
    .pushF(1 - h.beta1)
    .pushF(1 - h.beta2)
    .pushF(1 / Math.sqrt(h.biasCorrection2))
    .pushF(h.eps)
    .pushF(h.lr / h.biasCorrection1);
  const amsgrad = vmax !== null;
  const decay = h.weightDecay === 0 ? 'none' : h.decoupled ? 'decoupled' : 'l2';
  const code = (): string => `${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> M: array<f32>;
@group(0) @binding(4) var<storage, read_write> V: array<f32>;
@group(0) @binding(5) var<storage, read_write> VMAX: array<f32>;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let i = gidx * ${WG}u + lid;
  if (i >= pu(0u)) { return; }
  let pv = PARAM[pu(1u) + i];
  var g = ${h.maximize ? '-' : ''}G[pu(2u) + i];
  var base = pv;
  ${decay === 'decoupled' ? 'base = pv * pf(6u);' : decay === 'l2' ? 'g = g + pv * pf(7u);' : ''}
  let mv = M[pu(3u) + i] * pf(8u) + g * pf(10u);
  let vv = V[pu(4u) + i] * pf(9u) + (g * g) * pf(11u);
  M[pu(3u) + i] = mv;
  V[pu(4u) + i] = vv;
  var second = vv;
  ${amsgrad ? 'second = max(VMAX[pu(5u) + i], vv); VMAX[pu(5u) + i] = second;' : ''}
  let denom = sqrt(second) * pf(12u) + pf(13u);
  PARAM[pu(1u) + i] = base - (mv / denom) * pf(14u);
}`;
  rt.dispatch(
    'adamStep',
    { key: `adam:${decay}:${h.maximize}:${amsgrad}`, bindings: ['uniform', 'rw', 'read', 'rw', 'rw', 'rw'], code },
    p,
    [
      storageRef(param.storage, 'adamStep', 'param'),
      storageRef(grad.storage, 'adamStep', 'grad'),
      storageRef(m.storage, 'adamStep', 'exp_avg'),
      storageRef(v.storage, 'adamStep', 'exp_avg_sq'),
      vmax ? storageRef(vmax.storage, 'adamStep', 'max_exp_avg_sq') : { pb: rt.dummyRw, size: 16 },
    ],
    grid(Math.ceil(n / WG)),
  );
}
