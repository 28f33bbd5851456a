// attention, flash-style (hardware adapters): the same contract as kernels/attention.ts (q [B, Lq, D],
// k [B, Lk, D], v [B, Lk, Dv], any strides, optional additive/bool mask broadcast to [B, Lq, Lk], causal),
// computed by a workgroup per block of BQ query rows that walks the keys in tiles of BK:
//   1. the block's q rows are staged in shared memory once;
//   2. per key tile, k and v rows go to shared memory (read from global once per block, not once per
//      query row as in the row-per-thread kernel), the BQ x BK scores are computed into shared memory;
//   3. each query row's 16 lanes update the online softmax (running max m, running sum l, output
//      accumulator rescaled by exp(m_old - m_new)); lane t owns output columns t, t + 16, ...
// Only a BQ x BK score tile ever exists; no [Lq, Lk] matrix. Masking rules are attention.ts's: bool
// false and causal give float32 min (a fully masked row averages v uniformly), an additive -inf
// everywhere gives NaN, and without a mask a block skips the key tiles its causal rows never see.
// Sizes: D, Dv <= 64 -> BQ = BK = 16 (256 threads); <= 128 -> BQ = BK = 8 (128 threads); both under
// 16 KiB of shared memory. Larger head dims use attention.ts (flashAttentionFits says which).

import type { View } from '../../../backend.js';
import { Params, storageRef, type BufferRef, type Runtime } from '../runtime.js';
import { GROUP_ID_WGSL, PARAMS_WGSL, enables, fromF32, grid, toF32, wtype } from './common.js';
import { WGSL_MATH } from './wgsl-math.js';

const LANES = 16;

/** The shared-memory tile sizes for these head dims, or null when they are too large for this kernel. */
export function flashConfig(D: number, Dv: number): { BQ: number; BK: number; DM: number } | null {
  const d = Math.max(D, Dv);
  if (d <= 64) return { BQ: 16, BK: 16, DM: 64 };
  if (d <= 128) return { BQ: 8, BK: 8, DM: 128 };
  return null;
}

/** The params head of the flash kernels: [0..7] sizes, scale, causal, blocks; [8..23] q, k, v, mask views. */
export function flashParams(q: View, k: View, v: View, mask: View | null, scale: number, causal: boolean, nBlocks: number): Params {
  const p = new Params()
    .pushU(q.shape[0]).pushU(q.shape[1]).pushU(k.shape[1]).pushU(q.shape[2]).pushU(v.shape[2])
    .pushF(scale).pushU(causal ? 1 : 0).pushU(nBlocks);
  for (const view of [q, k, v]) p.pushU(view.offset).pushI(view.strides[0]).pushI(view.strides[1]).pushI(view.strides[2]);
  p.pushU(mask?.offset ?? 0).pushI(mask?.strides[0] ?? 0).pushI(mask?.strides[1] ?? 0).pushI(mask?.strides[2] ?? 0);
  return p;
}

/**
 * WGSL staging `rows` rows (from row `row0`; zeros at rows >= `len`) of a strided view into the shared
 * array `dst` [rows][DM], the workgroup's NT threads striding over the elements. `base` is the view's
 * offset for this batch, `rs`/`cs` the params words of its row and column strides.
 */
export function stageWgsl(dst: string, rows: string, width: string, src: string, dtype: View['dtype'], base: string, row0: string, len: string, rs: number, cs: number): string {
  return `for (var e = li; e < ${rows} * ${width}; e += NT) {
      let r = e / ${width}; let d = e % ${width};
      var x = 0.0;
      if (${row0} + r < ${len}) { x = ${toF32(dtype, `${src}[${base} + (${row0} + r) * pu(${rs}u) + d * pu(${cs}u)]`)}; }
      ${dst}[r * DM + d] = x;
    }`;
}

/**
 * WGSL setting kEnd: without a mask, key tiles past the block's last causal limit carry no weight for
 * any of its rows, provided its first row sees at least one key (else that row averages every key).
 */
export function causalKeyEndWgsl(maskKind: string): string {
  return `var kEnd = Lk;
  let lastRow = min(i0 + BQ, Lq) - 1u;
  ${maskKind === 'none' ? 'if (causal && i32(i0) + i32(Lk) - i32(Lq) >= 0) { kEnd = min(Lk, u32(i32(lastRow) + i32(Lk) - i32(Lq)) + 1u); }' : ''}`;
}

/**
 * WGSL opening the flash kernels' main: a workgroup per (batch b, block blk of rows); the sizes, scale,
 * causal flag and each view's offset for batch b (qo, ko, vo, mo) from flashParams' words.
 */
export function flashMainWgsl(NT: number): string {
  return `@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  ${GROUP_ID_WGSL}
  let B = pu(0u); let Lq = pu(1u); let Lk = pu(2u); let D = pu(3u); let Dv = pu(4u);
  let nBlocks = pu(7u);
  if (gidx >= B * nBlocks) { return; } // uniform: the whole workgroup leaves
  let b = gidx / nBlocks;
  let blk = gidx % nBlocks;
  let scale = pf(5u);
  let causal = pu(6u) != 0u;
  let qo = pu(8u) + b * pu(9u);
  let ko = pu(12u) + b * pu(13u);
  let vo = pu(16u) + b * pu(17u);
  let mo = pu(20u) + b * pu(21u);`;
}

/** Whether runFlashAttention handles these shapes (else the row-per-thread kernel runs). */
export function flashAttentionFits(q: View, v: View): boolean {
  return flashConfig(q.shape[2], v.shape[2]) !== null;
}

export function runFlashAttention(
  rt: Runtime, q: View, k: View, v: View, mask: View | null, out: View, scale: number, causal: boolean,
): void {
  flashForward(rt, q, k, v, mask, out, scale, causal, null);
}

/**
 * The backward's first pass (kernels/flash-attention-backward.ts): the forward again, but instead of the
 * output it writes per query row stats [B * Lq, 4] = (m, l, rowsum(gradOut * out), 0): the softmax of
 * row i is exp(s - m) / l. (m, l) stay apart rather than folded into one logsumexp: scores replaced by
 * float32 min would absorb log(l) in m + log(l), and a fully masked row must still weigh every key 1/Lk.
 */
export function runFlashAttentionStats(
  rt: Runtime, q: View, k: View, v: View, mask: View | null, gradOut: View, stats: View, scale: number, causal: boolean,
): void {
  flashForward(rt, q, k, v, mask, stats, scale, causal, gradOut);
}

function flashForward(
  rt: Runtime, q: View, k: View, v: View, mask: View | null, out: View, scale: number, causal: boolean, gradOut: View | null,
): void {
  const [B, Lq, D] = q.shape;
  const Dv = v.shape[2];
  if (B * Lq * Dv === 0) return;
  const cfg = flashConfig(D, Dv);
  if (!cfg) throw new Error(`attention: flash kernel called with head dims D ${D}, Dv ${Dv} above 128`);
  const { BQ, BK, DM } = cfg;
  const NT = BQ * LANES;
  const maskKind = mask ? (mask.dtype === 'bool' ? 'bool' : 'add') : 'none';
  const md = mask?.dtype ?? 'float32';
  const nBlocks = Math.ceil(Lq / BQ);
  const p = flashParams(q, k, v, mask, scale, causal, nBlocks);
  p.pushU(out.offset).pushI(out.strides[0]).pushI(out.strides[1]).pushI(out.strides[2]);
  if (gradOut) p.pushU(gradOut.offset).pushI(gradOut.strides[0]).pushI(gradOut.strides[1]).pushI(gradOut.strides[2]);
  const stats = gradOut !== null;
  const OUT = DM / LANES; // output columns per thread
  const code = (): string => `${enables([q.dtype, k.dtype, v.dtype, md, out.dtype])}${PARAMS_WGSL}${WGSL_MATH}
@group(0) @binding(1) var<storage, read> Q: array<${wtype(q.dtype)}>;
@group(0) @binding(2) var<storage, read> K: array<${wtype(k.dtype)}>;
@group(0) @binding(3) var<storage, read> V: array<${wtype(v.dtype)}>;
@group(0) @binding(4) var<storage, read> M: array<${wtype(md)}>;
${
  stats
    ? `@group(0) @binding(5) var<storage, read> G: array<${wtype(gradOut.dtype)}>;
@group(0) @binding(6) var<storage, read_write> ST: array<f32>;
var<workgroup> Red: array<f32, ${NT}>;`
    : `@group(0) @binding(5) var<storage, read_write> Y: array<${wtype(out.dtype)}>;`
}
const BQ: u32 = ${BQ}u;
const BK: u32 = ${BK}u;
const DM: u32 = ${DM}u;
const NT: u32 = ${NT}u;
const MASKED: f32 = -3.4028234663852886e38;
var<workgroup> Qs: array<f32, ${BQ * DM}>; // [BQ][DM]
var<workgroup> Ks: array<f32, ${BK * DM}>; // [BK][DM]
var<workgroup> Vs: array<f32, ${BK * DM}>; // [BK][DM]
var<workgroup> Ss: array<f32, ${BQ * BK}>; // [BQ][BK] scaled, masked scores; -inf past Lk
${flashMainWgsl(NT)}
  let i0 = blk * BQ;
  // 1. this block's query rows (zeros past Lq)
  ${stageWgsl('Qs', 'BQ', 'D', 'Q', q.dtype, 'qo', 'i0', 'Lq', 10, 11)}
  ${causalKeyEndWgsl(maskKind)}
  let r = li / ${LANES}u;      // this thread's query row in the block (online-softmax phase)
  let lane = li % ${LANES}u;   // its output columns: lane + 16 t
  let i = i0 + r;
  var m = -inf_f32();
  var l = 0.0;
  var acc: array<f32, ${OUT}>;
  for (var t = 0u; t < ${OUT}u; t++) { acc[t] = 0.0; }
  for (var j0 = 0u; j0 < kEnd; j0 += BK) {
    // 2. k and v rows of this tile (zeros past Lk), then the scores
    ${stageWgsl('Ks', 'BK', 'D', 'K', k.dtype, 'ko', 'j0', 'Lk', 14, 15)}
    ${stageWgsl('Vs', 'BK', 'Dv', 'V', v.dtype, 'vo', 'j0', 'Lk', 18, 19)}
    workgroupBarrier();
    for (var e = li; e < BQ * BK; e += NT) {
      let sr = e / BK; let sj = e % BK;
      let qi = i0 + sr; let kj = j0 + sj;
      var s = -inf_f32();
      if (kj < Lk) {
        s = 0.0;
        for (var d = 0u; d < D; d++) { s += Qs[sr * DM + d] * Ks[sj * DM + d]; }
        s = s * scale;
        ${
          maskKind === 'add'
            ? `if (qi < Lq) { s = s + ${toF32(md, 'M[mo + qi * pu(22u) + kj * pu(23u)]')}; }`
            : maskKind === 'bool'
              ? 'if (qi < Lq && M[mo + qi * pu(22u) + kj * pu(23u)] == 0u) { s = MASKED; }'
              : ''
        }
        if (causal && i32(kj) > i32(qi) + i32(Lk) - i32(Lq)) { s = MASKED; }
      }
      Ss[e] = s;
    }
    workgroupBarrier();
    // 3. online softmax over this tile for row r (every lane of the row keeps the same m and l)
    var mt = m;
    for (var j = 0u; j < BK; j++) {
      let s = Ss[r * BK + j];
      if (s == -inf_f32()) { continue; }
      if (s > mt || is_nan_f32(s)) { mt = s; }
    }
    if (mt != m) {
      let corr = exp(m - mt);
      l = l * corr;
      for (var t = 0u; t < ${OUT}u; t++) { acc[t] = acc[t] * corr; }
      m = mt;
    }
    for (var j = 0u; j < BK; j++) {
      let s = Ss[r * BK + j];
      if (s == -inf_f32()) { continue; }
      let pj = exp(s - m);
      l = l + pj;
      for (var t = 0u; t < ${OUT}u; t++) { acc[t] = acc[t] + pj * Vs[j * DM + lane + t * ${LANES}u]; }
    }
    workgroupBarrier();
  }
${
  stats
    ? `  // rowsum(gradOut * out) over the row's 16 lanes
  var part = 0.0;
  if (i < Lq) {
    let go = pu(28u) + b * pu(29u) + i * pu(30u);
    for (var t = 0u; t < ${OUT}u; t++) {
      let d = lane + t * ${LANES}u;
      if (d < Dv) { part += ${toF32(gradOut?.dtype ?? 'float32', 'G[go + d * pu(31u)]')} * (acc[t] / l); }
    }
  }
  Red[li] = part;
  workgroupBarrier();
  if (lane == 0u && i < Lq) {
    var sum = 0.0;
    for (var x = 0u; x < ${LANES}u; x++) { sum += Red[li + x]; }
    let so = pu(24u) + (b * Lq + i) * 4u;
    ST[so] = m; ST[so + 1u] = l; ST[so + 2u] = sum; ST[so + 3u] = 0.0;
  }`
    : `  if (i < Lq) {
    let yo = pu(24u) + b * pu(25u) + i * pu(26u);
    for (var t = 0u; t < ${OUT}u; t++) {
      let d = lane + t * ${LANES}u;
      if (d < Dv) { Y[yo + d * pu(27u)] = ${fromF32(out.dtype, 'acc[t] / l')}; }
    }
  }`
}
}`;
  const key = `flash-attention${stats ? `-stats:${gradOut.dtype}` : ''}:${q.dtype}:${k.dtype}:${v.dtype}:${maskKind}:${md}:${out.dtype}:${BQ}x${BK}x${DM}`;
  const maskRef: BufferRef = mask ? storageRef(mask.storage, 'attention', 'mask') : { pb: rt.dummy, size: 16 };
  rt.dispatch(
    'attention',
    { key, bindings: ['uniform', 'read', 'read', 'read', 'read', ...(stats ? (['read'] as const) : []), 'rw'], code },
    p,
    [
      storageRef(q.storage, 'attention', 'q'),
      storageRef(k.storage, 'attention', 'k'),
      storageRef(v.storage, 'attention', 'v'),
      maskRef,
      ...(gradOut ? [storageRef(gradOut.storage, 'attention backward', 'gradOut')] : []),
      storageRef(out.storage, 'attention', stats ? 'stats' : 'out'),
    ],
    grid(B * nBlocks),
  );
}
