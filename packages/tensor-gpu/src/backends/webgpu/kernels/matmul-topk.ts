// matmulTopk on WebGPU (contract: FusedKernels.matmulTopk). Each block tensor is its own binding (at
// most maxStorageBufferBindingSize), walked in tiles of rows, one dispatch per tile over a [G, Q] grid:
// workgroup (g, q) scores rows g*64 + lid, stepping G*64 (consecutive threads, consecutive rows), each
// thread keeping its own sorted top k in registers; the workgroup then merges its 64 lists, and the
// running list of its slot from the earlier tiles (thread 0 starts from it), into that slot of a
// [Q, G, k] buffer by k rounds of a shared-memory argmax over the list heads. A last dispatch merges
// each query's G slots into [Q, k] the same way. Order: score descending, then id ascending, so ties
// go to the smaller id as on the cpu. Only the [Q, G, k] slots exist beyond the inputs; scores live in
// registers. k above MAX_K declines (returns false): the op then runs its composite.
// Measured: correctness only (SwiftShader); throughput on hardware is the bench's job.

import type { View } from '../../../backend.js';
import { Params, storageRef, tempStorage, type Runtime } from '../runtime.js';
import { PARAMS_WGSL } from './common.js';

const WGT = 64;
/** Largest k the kernel keeps per thread (private arrays of k values and ids). */
export const MATMUL_TOPK_MAX_K = 256;
const DEFAULT_TILE_ROWS = 2 ** 17;

/** The k-round merge of the workgroup's per-thread lists (lv, li, first c valid) into out slot `dst` by `store`. */
function mergeWgsl(k: number, store: string): string {
  return /* wgsl */ `
  var pos = 0u;
  for (var round = 0u; round < ${k}u; round++) {
    if (pos < c) { mv[lid] = lv[pos]; mi[lid] = li[pos]; } else { mv[lid] = 0.0; mi[lid] = -1; }
    mt[lid] = lid;
    workgroupBarrier();
    for (var st = ${WGT / 2}u; st > 0u; st >>= 1u) {
      if (lid < st && better(mv[lid + st], mi[lid + st], mv[lid], mi[lid])) {
        mv[lid] = mv[lid + st]; mi[lid] = mi[lid + st]; mt[lid] = mt[lid + st];
      }
      workgroupBarrier();
    }
    if (lid == 0u) { ${store} }
    if (mi[0] >= 0 && mt[0] == lid) { pos++; }
    workgroupBarrier();
  }`;
}

function sharedWgsl(k: number): string {
  return /* wgsl */ `
var<workgroup> mv: array<f32, ${WGT}>;
var<workgroup> mi: array<i32, ${WGT}>;
var<workgroup> mt: array<u32, ${WGT}>;
// (a, ai) ranks before (b, bi): a valid entry (id >= 0) with a larger score, or an equal score and a smaller id.
fn better(a: f32, ai: i32, b: f32, bi: i32) -> bool {
  if (ai < 0) { return false; }
  if (bi < 0) { return true; }
  return a > b || (a == b && ai < bi);
}
// Loads slot entries [at, at + k) (ids < 0: empty) into a thread's list.
fn loadList(at: u32, lv: ptr<function, array<f32, ${k}>>, li: ptr<function, array<i32, ${k}>>) -> u32 {
  var c = 0u;
  for (var j = 0u; j < ${k}u; j++) {
    if (SI[at + j] < 0) { break; }
    (*lv)[j] = SV[at + j]; (*li)[j] = SI[at + j]; c = j + 1u;
  }
  return c;
}`;
}

export function runMatmulTopk(rt: Runtime, queries: View, blocks: readonly View[], values: View, indices: View, k: number, tileRows: number): boolean {
  if (k > MATMUL_TOPK_MAX_K) return false;
  const [Q, D] = queries.shape;
  if (Q > 65535) throw new RangeError(`matmulTopk: ${Q} queries exceed the 65535 workgroups of one dispatch dimension`);
  const T = tileRows > 0 ? tileRows : DEFAULT_TILE_ROWS;
  // Workgroups per query: about 256 in all, but no more than a tile's rows keep busy (each merge costs k rounds).
  const tileMax = Math.min(T, Math.max(...blocks.map((b) => b.shape[0])));
  const G = Math.min(WGT, Math.max(1, Math.ceil(256 / Q)), Math.ceil(tileMax / WGT));
  const slotsV = tempStorage(rt, 'float32', Q * G * k);
  const slotsI = tempStorage(rt, 'int32', Q * G * k);
  const sv = storageRef(slotsV, 'matmulTopk', 'score slots');
  const si = storageRef(slotsI, 'matmulTopk', 'id slots');
  const qRef = storageRef(queries.storage, 'matmulTopk', 'queries');
  let first = true;
  let base = 0;
  for (const [i, b] of blocks.entries()) {
    const f16 = b.dtype === 'float16';
    const bRef = storageRef(b.storage, 'matmulTopk', `blocks[${i}]`);
    if (bRef.size > rt.maxBindingBytes) {
      throw new RangeError(`matmulTopk: blocks[${i}] holds ${bRef.size} bytes, more than one storage binding (${rt.maxBindingBytes}); split the rows over several tensors`);
    }
    const code = (): string => `${f16 ? 'enable f16;\n' : ''}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> Qv: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<${f16 ? 'f16' : 'f32'}>;
@group(0) @binding(3) var<storage, read_write> SV: array<f32>;
@group(0) @binding(4) var<storage, read_write> SI: array<i32>;
${sharedWgsl(k)}
@compute @workgroup_size(${WGT})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x;
  let q = wid.y;
  let D = pu(1u);
  let G = pu(3u);
  let rows = pu(4u);
  let qb = pu(6u) + q * D;
  let slot = (q * G + g) * ${k}u;
  var lv: array<f32, ${k}>;
  var li: array<i32, ${k}>;
  var c = 0u;
  if (lid == 0u && pu(8u) == 0u) { c = loadList(slot, &lv, &li); }
  for (var r = g * ${WGT}u + lid; r < rows; r += G * ${WGT}u) {
    let rb = pu(5u) + r * D;
    var acc = 0.0;
    for (var d = 0u; d < D; d++) { acc += Qv[qb + d] * f32(B[rb + d]); }
    if (c < ${k}u || acc > lv[${k - 1}u]) {
      // Insert after every entry >= acc (rows come in increasing id: equal scores keep the earlier id first).
      var p = select(${k - 1}u, c, c < ${k}u);
      while (p > 0u && !(lv[p - 1u] >= acc)) { lv[p] = lv[p - 1u]; li[p] = li[p - 1u]; p--; }
      lv[p] = acc;
      li[p] = i32(pu(7u) + r);
      if (c < ${k}u) { c++; }
    }
  }
  workgroupBarrier();
${mergeWgsl(k, 'SV[slot + round] = mv[0]; SI[slot + round] = mi[0];')}
}`;
    const spec = { key: `matmulTopk:${k}:${f16 ? 'f16' : 'f32'}`, bindings: ['uniform', 'read', 'read', 'rw', 'rw'] as const, code };
    const rows = b.shape[0];
    for (let r0 = 0; r0 < rows; r0 += T) {
      // params: [0] Q [1] D [2] k [3] G [4] rows in the tile [5] the tile's first element in the binding
      //         [6] queries offset [7] id of the tile's first row [8] 1 on the first tile (slots start empty)
      const p = new Params().pushU(Q).pushU(D).pushU(k).pushU(G).pushU(Math.min(T, rows - r0)).pushU(b.offset + r0 * D).pushU(queries.offset).pushU(base + r0).pushU(first ? 1 : 0);
      rt.dispatch('matmulTopk', spec, p, [qRef, bRef, sv, si], [G, Q]);
      first = false;
    }
    base += rows;
  }
  const mergeCode = (): string => `${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> SV: array<f32>;
@group(0) @binding(2) var<storage, read> SI: array<i32>;
@group(0) @binding(3) var<storage, read_write> OV: array<f32>;
@group(0) @binding(4) var<storage, read_write> OI: array<i32>;
${sharedWgsl(k)}
@compute @workgroup_size(${WGT})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let q = wid.x;
  var lv: array<f32, ${k}>;
  var li: array<i32, ${k}>;
  var c = 0u;
  if (lid < pu(1u)) { c = loadList((q * pu(1u) + lid) * ${k}u, &lv, &li); }
  workgroupBarrier();
${mergeWgsl(k, 'OV[pu(2u) + q * ' + k + 'u + round] = mv[0]; OI[pu(3u) + q * ' + k + 'u + round] = mi[0];')}
}`;
  // params: [0] Q [1] G [2] values offset [3] indices offset
  const p = new Params().pushU(Q).pushU(G).pushU(values.offset).pushU(indices.offset);
  rt.dispatch(
    'matmulTopk',
    { key: `matmulTopkMerge:${k}`, bindings: ['uniform', 'read', 'read', 'rw', 'rw'], code: mergeCode },
    p,
    [sv, si, storageRef(values.storage, 'matmulTopk', 'values'), storageRef(indices.storage, 'matmulTopk', 'indices')],
    [Q, 1],
  );
  rt.release(slotsV.buf);
  rt.release(slotsI.buf);
  return true;
}
