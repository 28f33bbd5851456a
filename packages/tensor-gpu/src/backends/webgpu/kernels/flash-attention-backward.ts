// attention backward, flash-style (hardware adapters; the forward is kernels/flash-attention.ts). With
// P = softmax(S), S = q k^T * scale (+ mask), dP = gradOut v^T and dS = P * (dP - rowsum(gradOut * out)):
//   gradQ = scale * dS k,   gradK = scale * dS^T q,   gradV = P^T gradOut.
// Three dispatches, none holding more than a tile of S:
//   1. stats (runFlashAttentionStats): per query row m, l (P = exp(S - m) / l) and rowsum(gradOut * out);
//   2. gradQ: a workgroup per block of query rows walks the key tiles, recomputing P and dS per tile;
//   3. gradK and gradV: a workgroup per block of keys walks the query tiles.
// Scores a bool mask or causality replaced by float32 min are constants: their dS is 0 (the forward's
// P still weighs them, so a fully masked row spreads gradV over every key). Additive masks get no
// gradient here: the op runs its composite when the mask needs one.

import type { View } from '../../../backend.js';
import { storageRef, tempStorage, type BufferRef, type Runtime } from '../runtime.js';
import { PARAMS_WGSL, enables, fromF32, grid, toF32, wtype } from './common.js';
import { causalKeyEndWgsl, flashConfig, flashMainWgsl, flashParams, runFlashAttentionStats, stageWgsl } from './flash-attention.js';
import { WGSL_MATH } from './wgsl-math.js';

const LANES = 16;

/**
 * gradQ [B, Lq, D], gradK [B, Lk, D], gradV [B, Lk, Dv] (contiguous) of attention(q, k, v, mask).
 * The caller checks flashAttentionFits(q, v) first.
 */
export function runFlashAttentionBackward(
  rt: Runtime, q: View, k: View, v: View, mask: View | null, gradOut: View,
  gradQ: View, gradK: View, gradV: View, scale: number, causal: boolean,
): void {
  const [B, Lq, D] = q.shape;
  const Lk = k.shape[1];
  const Dv = v.shape[2];
  const fit = flashConfig(D, Dv);
  if (!fit) throw new Error(`attention backward: flash kernel called with head dims D ${D}, Dv ${Dv} above 128`);
  const { DM } = fit;
  const stats = tempStorage(rt, 'float32', Math.max(1, B * Lq * 4));
  const st: View = { storage: stats, dtype: 'float32', shape: [B * Lq, 4], strides: [4, 1], offset: 0 };
  try {
    if (B * Lq > 0) runFlashAttentionStats(rt, q, k, v, mask, gradOut, st, scale, causal);
    const common = { rt, q, k, v, mask, gradOut, stats: st, scale, causal, DM };
    if (B * Lq * D > 0) pass({ ...common, kind: 'dq', outs: [gradQ] });
    if (B * Lk * (D + Dv) > 0) pass({ ...common, kind: 'dkv', outs: [gradK, gradV] });
  } finally {
    // Later commands that reuse the buffer are encoded after these reads.
    rt.release(stats.buf);
  }
}

interface Pass {
  rt: Runtime;
  q: View;
  k: View;
  v: View;
  mask: View | null;
  gradOut: View;
  stats: View;
  scale: number;
  causal: boolean;
  DM: number;
  kind: 'dq' | 'dkv';
  outs: View[];
}

/** WGSL computing, for block row sr (query qi) and key column sj (key kj), p and ds into `p`, `ds`. */
function scoreWgsl(maskKind: string, md: View['dtype']): string {
  return `var p = 0.0;
      var ds = 0.0;
      if (qi < Lq && kj < Lk) {
        var s = 0.0;
        for (var d = 0u; d < D; d++) { s += Qs[sr * DM + d] * Ks[sj * DM + d]; }
        s = s * scale;
        var keep = true;
        ${
          maskKind === 'add'
            ? `s = s + ${toF32(md, 'M[mo + qi * pu(22u) + kj * pu(23u)]')};`
            : maskKind === 'bool'
              ? 'if (M[mo + qi * pu(22u) + kj * pu(23u)] == 0u) { s = MASKED; keep = false; }'
              : ''
        }
        if (causal && i32(kj) > i32(qi) + i32(Lk) - i32(Lq)) { s = MASKED; keep = false; }
        let so = pu(28u) + (b * Lq + qi) * 4u;
        let m = ST[so]; let l = ST[so + 1u];
        if (s != -inf_f32()) { p = exp(s - m) / l; }
        if (l == 0.0) { p = nan_f32(); } // every score -inf: the forward gave NaN
        if (keep) {
          var dp = 0.0;
          for (var d = 0u; d < Dv; d++) { dp += Gs[sr * DM + d] * Vs[sj * DM + d]; }
          ds = p * (dp - ST[so + 2u]);
        }
      }`;
}

function pass(P: Pass): void {
  const { rt, q, k, v, mask, gradOut, stats, scale, causal, DM, kind, outs } = P;
  const [B, Lq] = q.shape;
  const Lk = k.shape[1];
  // Shared memory: q, gradOut, k, v tiles of DM floats per row plus one or two score tiles, < 16 KiB.
  const dq = kind === 'dq';
  const BQ = dq ? (DM === 64 ? 16 : 8) : DM === 64 ? 8 : 4;
  const BK = dq ? (DM === 64 ? 8 : 4) : DM === 64 ? 16 : 8;
  const rows = dq ? BQ : BK; // block rows owned by threads (16 lanes each)
  const NT = rows * LANES;
  const OUT = DM / LANES;
  const maskKind = mask ? (mask.dtype === 'bool' ? 'bool' : 'add') : 'none';
  const md = mask?.dtype ?? 'float32';
  const nBlocks = Math.ceil((dq ? Lq : Lk) / rows);
  const p = flashParams(q, k, v, mask, scale, causal, nBlocks);
  p.pushU(gradOut.offset).pushI(gradOut.strides[0]).pushI(gradOut.strides[1]).pushI(gradOut.strides[2]);
  p.pushU(stats.offset).pushU(0).pushU(0).pushU(0);
  for (const o of outs) p.pushU(o.offset).pushI(o.strides[0]).pushI(o.strides[1]).pushI(o.strides[2]);
  const odt = outs.map((o) => o.dtype);
  const loadQ = `${stageWgsl('Qs', 'BQ', 'D', 'Q', q.dtype, 'qo', 'i0', 'Lq', 10, 11)}
    ${stageWgsl('Gs', 'BQ', 'Dv', 'G', gradOut.dtype, 'go', 'i0', 'Lq', 26, 27)}`;
  const loadK = `${stageWgsl('Ks', 'BK', 'D', 'K', k.dtype, 'ko', 'j0', 'Lk', 14, 15)}
    ${stageWgsl('Vs', 'BK', 'Dv', 'V', v.dtype, 'vo', 'j0', 'Lk', 18, 19)}`;
  const scores = `for (var e = li; e < BQ * BK; e += NT) {
      let sr = e / BK; let sj = e % BK;
      let qi = i0 + sr; let kj = j0 + sj;
      ${scoreWgsl(maskKind, md)}
      ${dq ? 'Ds[e] = ds;' : 'Ps[e] = p; Ds[e] = ds;'}
    }`;
  const body = dq
    ? `  let i0 = blk * BQ;
  ${loadQ}
  ${causalKeyEndWgsl(maskKind)}
  var acc: array<f32, ${OUT}>;
  for (var t = 0u; t < ${OUT}u; t++) { acc[t] = 0.0; }
  for (var j0 = 0u; j0 < kEnd; j0 += BK) {
    ${loadK}
    workgroupBarrier();
    ${scores}
    workgroupBarrier();
    for (var j = 0u; j < BK; j++) {
      let dsv = Ds[r * BK + j];
      for (var t = 0u; t < ${OUT}u; t++) { acc[t] += dsv * Ks[j * DM + lane + t * ${LANES}u]; }
    }
    workgroupBarrier();
  }
  let i = i0 + r;
  if (i < Lq) {
    let yo = pu(32u) + b * pu(33u) + i * pu(34u);
    for (var t = 0u; t < ${OUT}u; t++) {
      let d = lane + t * ${LANES}u;
      if (d < D) { Y0[yo + d * pu(35u)] = ${fromF32(odt[0], 'acc[t] * scale')}; }
    }
  }`
    : `  let j0 = blk * BK;
  ${loadK}
  var accK: array<f32, ${OUT}>;
  var accV: array<f32, ${OUT}>;
  for (var t = 0u; t < ${OUT}u; t++) { accK[t] = 0.0; accV[t] = 0.0; }
  for (var i0 = 0u; i0 < Lq; i0 += BQ) {
    // Without a mask, a query tile whose rows all see keys (limit >= 0) but none of this block's
    // (limit < j0) contributes nothing.
    ${
      maskKind === 'none'
        ? `let lastRow = min(i0 + BQ, Lq) - 1u;
    if (causal && i32(i0) + i32(Lk) - i32(Lq) >= 0 && i32(lastRow) + i32(Lk) - i32(Lq) < i32(j0)) { continue; }`
        : ''
    }
    ${loadQ}
    workgroupBarrier();
    ${scores}
    workgroupBarrier();
    for (var sr = 0u; sr < BQ; sr++) {
      let pv = Ps[sr * BK + r];
      let dsv = Ds[sr * BK + r];
      for (var t = 0u; t < ${OUT}u; t++) {
        let d = lane + t * ${LANES}u;
        accV[t] += pv * Gs[sr * DM + d];
        accK[t] += dsv * Qs[sr * DM + d];
      }
    }
    workgroupBarrier();
  }
  let j = j0 + r;
  if (j < Lk) {
    let ko2 = pu(32u) + b * pu(33u) + j * pu(34u);
    let vo2 = pu(36u) + b * pu(37u) + j * pu(38u);
    for (var t = 0u; t < ${OUT}u; t++) {
      let d = lane + t * ${LANES}u;
      if (d < D) { Y0[ko2 + d * pu(35u)] = ${fromF32(odt[0], 'accK[t] * scale')}; }
      if (d < Dv) { Y1[vo2 + d * pu(39u)] = ${fromF32(odt[1] ?? 'float32', 'accV[t]')}; }
    }
  }`;
  const code = (): string => `${enables([q.dtype, k.dtype, v.dtype, md, gradOut.dtype, ...odt])}${PARAMS_WGSL}${WGSL_MATH}
@group(0) @binding(1) var<storage, read> Q: array<${wtype(q.dtype)}>;
@group(0) @binding(2) var<storage, read> K: array<${wtype(k.dtype)}>;
@group(0) @binding(3) var<storage, read> V: array<${wtype(v.dtype)}>;
@group(0) @binding(4) var<storage, read> M: array<${wtype(md)}>;
@group(0) @binding(5) var<storage, read> G: array<${wtype(gradOut.dtype)}>;
@group(0) @binding(6) var<storage, read> ST: array<f32>;
${outs.map((o, n) => `@group(0) @binding(${7 + n}) var<storage, read_write> Y${n}: array<${wtype(o.dtype)}>;`).join('\n')}
const BQ: u32 = ${BQ}u;
const BK: u32 = ${BK}u;
const DM: u32 = ${DM}u;
const NT: u32 = ${NT}u;
const MASKED: f32 = -3.4028234663852886e38;
var<workgroup> Qs: array<f32, ${BQ * DM}>; // [BQ][DM] q rows
var<workgroup> Gs: array<f32, ${BQ * DM}>; // [BQ][DM] gradOut rows
var<workgroup> Ks: array<f32, ${BK * DM}>; // [BK][DM]
var<workgroup> Vs: array<f32, ${BK * DM}>; // [BK][DM]
var<workgroup> Ds: array<f32, ${BQ * BK}>; // [BQ][BK] dS
${dq ? '' : `var<workgroup> Ps: array<f32, ${BQ * BK}>; // [BQ][BK] P`}
${flashMainWgsl(NT)}
  let go = pu(24u) + b * pu(25u);
  let r = li / ${LANES}u;    // this thread's block row (query row for gradQ, key row for gradK/V)
  let lane = li % ${LANES}u; // its columns: lane + 16 t
${body}
}`;
  const key = `flash-attention-${kind}:${q.dtype}:${k.dtype}:${v.dtype}:${maskKind}:${md}:${gradOut.dtype}:${odt.join(',')}:${DM}`;
  const op = 'attention backward';
  const maskRef: BufferRef = mask ? storageRef(mask.storage, op, 'mask') : { pb: rt.dummy, size: 16 };
  rt.dispatch(
    op,
    { key, bindings: ['uniform', 'read', 'read', 'read', 'read', 'read', 'read', ...outs.map(() => 'rw' as const)], code },
    p,
    [
      storageRef(q.storage, op, 'q'),
      storageRef(k.storage, op, 'k'),
      storageRef(v.storage, op, 'v'),
      maskRef,
      storageRef(gradOut.storage, op, 'gradOut'),
      storageRef(stats.storage, op, 'stats'),
      ...outs.map((o, n) => storageRef(o.storage, op, `grad ${n}`)),
    ],
    grid(B * nBlocks),
  );
}
