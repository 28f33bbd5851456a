// attention: fused scaled-dot-product attention, q [B, Lq, D], k [B, Lk, D], v [B, Lk, Dv] (any strides)
// -> out [B, Lq, Dv], never materialising [Lq, Lk]. One thread per (batch, query row, 64-wide chunk of
// Dv): it walks the keys once with an online softmax (running max m, running sum l, accumulator rescaled
// only when m grows); q is cached in registers when D <= 128.
// Masking: an additive float mask is added to the scaled score; a bool mask (true = keep) and the causal
// rule (key j > i + Lk - Lq) replace the score by -3.4028235e38 (float32 min), so a fully masked row
// averages v uniformly; a row whose scores are all -inf (additive -inf) gives NaN like PyTorch.
// Without a mask, causal rows skip the masked keys (their weight is exactly 0).
// Measured: correctness only so far (SwiftShader); a workgroup-cooperative flash kernel is future work.

import type { View } from '../../../backend.js';
import { Params, storageRef, type BufferRef, type Runtime } from '../runtime.js';
import { GROUP_ID_WGSL, MAIN_ARGS, PARAMS_WGSL, WG, enables, fromF32, grid, toF32, wtype } from './common.js';
import { WGSL_MATH } from './wgsl-math.js';

const QMAX = 128;

export function runAttention(rt: Runtime, q: View, k: View, v: View, mask: View | null, out: View, scale: number, causal: boolean): void {
  const [B, Lq, D] = q.shape;
  const Lk = k.shape[1];
  const Dv = v.shape[2];
  if (B * Lq * Dv === 0) return;
  const dvc = Math.min(64, 2 ** Math.ceil(Math.log2(Math.max(1, Dv))));
  const nC = Math.ceil(Dv / dvc);
  const qCache = D <= QMAX;
  const maskKind = mask ? (mask.dtype === 'bool' ? 'bool' : 'add') : 'none';
  const md = mask?.dtype ?? 'float32';
  const p = new Params()
    .pushU(B).pushU(Lq).pushU(Lk).pushU(D).pushU(Dv).pushF(scale).pushU(causal ? 1 : 0).pushU(nC);
  for (const view of [q, k, v]) p.pushU(view.offset).pushI(view.strides[0]).pushI(view.strides[1]).pushI(view.strides[2]);
  p.pushU(mask?.offset ?? 0).pushI(mask?.strides[0] ?? 0).pushI(mask?.strides[1] ?? 0).pushI(mask?.strides[2] ?? 0);
  p.pushU(out.offset).pushI(out.strides[0]).pushI(out.strides[1]).pushI(out.strides[2]);
  const qLoad = (d: string) => toF32(q.dtype, `Q[qo + ${d} * pu(11u)]`);
  const code = (): string => `${enables([q.dtype, k.dtype, v.dtype, md, out.dtype])}${PARAMS_WGSL}${WGSL_MATH}
@group(0) @binding(1) var<storage, read> Q: array<${wtype(q.dtype)}>;
@group(0) @binding(2) var<storage, read> K: array<${wtype(k.dtype)}>;
@group(0) @binding(3) var<storage, read> V: array<${wtype(v.dtype)}>;
@group(0) @binding(4) var<storage, read> M: array<${wtype(md)}>;
@group(0) @binding(5) var<storage, read_write> Y: array<${wtype(out.dtype)}>;
const DVC: u32 = ${dvc}u;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let t = gidx * ${WG}u + lid;
  let B = pu(0u); let Lq = pu(1u); let Lk = pu(2u); let D = pu(3u); let Dv = pu(4u);
  let nC = pu(7u);
  if (t >= B * Lq * nC) { return; }
  let c = t % nC; let r = t / nC; let i = r % Lq; let b = r / Lq;
  let d0 = c * DVC;
  let dn = min(DVC, Dv - d0);
  let scale = pf(5u);
  let qo = pu(8u) + b * pu(9u) + i * pu(10u);
  let ko = pu(12u) + b * pu(13u);
  let vo = pu(16u) + b * pu(17u) + d0 * pu(19u);
  let mo = pu(20u) + b * pu(21u) + i * pu(22u);
  ${qCache ? `var qv: array<f32, ${QMAX}>;\n  for (var d = 0u; d < D; d++) { qv[d] = ${qLoad('d')}; }` : ''}
  let causal = pu(6u) != 0u;
  let limit = i32(i) + i32(Lk) - i32(Lq);
  var kEnd = Lk;
  ${maskKind === 'none' ? 'if (causal && limit >= 0) { kEnd = min(Lk, u32(limit) + 1u); }' : ''}
  var acc: array<f32, ${dvc}>;
  for (var d = 0u; d < DVC; d++) { acc[d] = 0.0; }
  var m = -inf_f32();
  var l = 0.0;
  for (var j = 0u; j < kEnd; j++) {
    var s = 0.0;
    let kj = ko + j * pu(14u);
    for (var d = 0u; d < D; d++) { s += ${qCache ? 'qv[d]' : qLoad('d')} * ${toF32(k.dtype, 'K[kj + d * pu(15u)]')}; }
    s = s * scale;
    ${
      maskKind === 'add'
        ? `s = s + ${toF32(md, 'M[mo + j * pu(23u)]')};`
        : maskKind === 'bool'
          ? 'if (M[mo + j * pu(23u)] == 0u) { s = -3.4028234663852886e38; }'
          : ''
    }
    if (causal && i32(j) > limit) { s = -3.4028234663852886e38; }
    if (s == -inf_f32()) { continue; }
    if (s > m || is_nan_f32(s)) {
      let corr = exp(m - s);
      l = l * corr;
      for (var d = 0u; d < dn; d++) { acc[d] = acc[d] * corr; }
      m = s;
    }
    let pj = exp(s - m);
    l = l + pj;
    let vj = vo + j * pu(18u);
    for (var d = 0u; d < dn; d++) { acc[d] = acc[d] + pj * ${toF32(v.dtype, 'V[vj + d * pu(19u)]')}; }
  }
  let yo = pu(24u) + b * pu(25u) + i * pu(26u) + d0 * pu(27u);
  for (var d = 0u; d < dn; d++) { Y[yo + d * pu(27u)] = ${fromF32(out.dtype, 'acc[d] / l')}; }
}`;
  const key = `attention:${q.dtype}:${k.dtype}:${v.dtype}:${maskKind}:${md}:${out.dtype}:${dvc}:${qCache}`;
  const maskRef: BufferRef = mask ? storageRef(mask.storage, 'attention', 'mask') : { pb: rt.dummy, size: 16 };
  rt.dispatch(
    'attention',
    { key, bindings: ['uniform', 'read', 'read', 'read', 'read', 'rw'], code },
    p,
    [
      storageRef(q.storage, 'attention', 'q'),
      storageRef(k.storage, 'attention', 'k'),
      storageRef(v.storage, 'attention', 'v'),
      maskRef,
      storageRef(out.storage, 'attention', 'out'),
    ],
    grid(Math.ceil((B * Lq * nC) / WG)),
  );
}
