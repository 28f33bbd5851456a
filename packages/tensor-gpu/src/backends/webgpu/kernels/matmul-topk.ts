// matmulTopk on WebGPU (contract: FusedKernels.matmulTopk). Two barrier-free kernels, no shared memory:
//  1. score: P lanes per query (thread t: the queries of group t / P, lane t % P). Lane j scores rows
//     j, j + P, ... of a tile, keeping its own sorted top k in private memory, and folds it into its
//     own list of a [Q, P, k] slot buffer (read back on the next tile, so a lane's list runs over every
//     tile and shard). One dispatch per tile; each block tensor is its own binding (at most
//     maxStorageBufferBindingSize).
//     For k <= 32 a thread serves up to 4 queries with one list each, so a row it reads is scored
//     against all of them (a batch of queries reads the rows a quarter as often).
//  2. merge: each thread merges up to F = 16 consecutive lists of a query into one, by k rounds of picking
//     the best of the F list heads (kept in private memory); passes ping-pong between two slot buffers
//     until one list per query is left, the last pass writing [Q, k] values and ids.
// Order: score descending, then id ascending, so ties go to the smaller id as on the cpu: a lane sees its
// rows in increasing id and inserts a row after every entry >= its score; the merge compares ids. A list
// shorter than k ends with id -1. k above MAX_K declines (returns false): the op then runs its composite.
// Why no workgroup merge: on SwiftShader (one CPU thread per workgroup) the earlier kernel's k rounds of a
// barrier-synchronised argmax per workgroup cost more than the scoring; the tree of list merges needs no
// barrier and touches each list once per pass. Measured (bench/webgpu-topk.mjs): see the package README.

import type { View } from '../../../backend.js';
import { Params, storageRef, tempStorage, type Runtime } from '../runtime.js';
import { GROUP_ID_WGSL, MAIN_ARGS, PARAMS_WGSL, grid } from './common.js';

const WGT = 64;
/** Largest k the kernel keeps per thread (private arrays of k values and ids). */
export const MATMUL_TOPK_MAX_K = 256;
const DEFAULT_TILE_ROWS = 2 ** 17;
/** Queries one thread scores against each row it reads, where k is at most QUERIES_PER_THREAD_MAX_K. */
const QUERIES_PER_THREAD = 4;
const QUERIES_PER_THREAD_MAX_K = 32;
/** Lists merged by one thread per merge pass. */
const FAN_IN = 16;
/** Lanes per query: at most this many in all over the queries... */
const MAX_LANES = 4096;
/** ...and at most this many slot entries (values + ids: 8 bytes each) beyond the inputs. */
const MAX_SLOT_ENTRIES = 2 ** 22;

const BETTER_WGSL = /* wgsl */ `
// (a, ai) ranks before (b, bi): a valid entry (id >= 0) with a larger score, or an equal score and a smaller id.
fn better(a: f32, ai: i32, b: f32, bi: i32) -> bool {
  if (ai < 0) { return false; }
  if (bi < 0) { return true; }
  return a > b || (a == b && ai < bi);
}`;

/** Lanes per query: enough rows per lane (at least max(32, k)) for its list to be worth keeping, within the caps. */
function lanesPerQuery(Q: number, k: number, rows: number): number {
  const byRows = Math.ceil(rows / Math.max(32, k));
  const byLanes = Math.floor(MAX_LANES / Q);
  const byMemory = Math.floor(MAX_SLOT_ENTRIES / (Q * k));
  return Math.max(1, Math.min(byRows, byLanes, byMemory));
}

export function runMatmulTopk(rt: Runtime, queries: View, blocks: readonly View[], values: View, indices: View, k: number, tileRows: number): boolean {
  if (k > MATMUL_TOPK_MAX_K) return false;
  const [Q, D] = queries.shape;
  if (Q > 65535) throw new RangeError(`matmulTopk: ${Q} queries exceed the 65535 workgroups of one dispatch dimension`);
  const T = tileRows > 0 ? tileRows : DEFAULT_TILE_ROWS;
  const N = blocks.reduce((a, b) => a + b.shape[0], 0);
  const P = lanesPerQuery(Q, k, N);
  const slots = [tempStorage(rt, 'float32', Q * P * k), tempStorage(rt, 'int32', Q * P * k)];
  const qRef = storageRef(queries.storage, 'matmulTopk', 'queries');
  const sv = storageRef(slots[0], 'matmulTopk', 'score slots');
  const si = storageRef(slots[1], 'matmulTopk', 'id slots');
  // Queries per thread: a row read once serves QB queries (their lists: QB * k private entries each).
  const QB = k <= QUERIES_PER_THREAD_MAX_K ? Math.min(QUERIES_PER_THREAD, Q) : 1;
  const each = (line: (j: number) => string): string => Array.from({ length: QB }, (_, j) => line(j)).join('\n');
  const scoreGrid = grid(Math.ceil((Math.ceil(Q / QB) * P) / WGT));
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
alias List = array<f32, ${k}>;
alias Ids = array<i32, ${k}>;
// A lane's list from its slot (on tiles after the first), c = its length.
fn load(slot: u32, lv: ptr<function, List>, li: ptr<function, Ids>) -> u32 {
  var c = 0u;
  for (var j = 0u; j < ${k}u; j++) {
    if (SI[slot + j] < 0) { break; }
    (*lv)[j] = SV[slot + j]; (*li)[j] = SI[slot + j]; c = j + 1u;
  }
  return c;
}
// Inserts (acc, id) after every entry >= acc (rows come in increasing id: equal scores keep the earlier id first).
fn insert(lv: ptr<function, List>, li: ptr<function, Ids>, c: ptr<function, u32>, acc: f32, id: i32) {
  if (*c < ${k}u || acc > (*lv)[${k - 1}u]) {
    var p = select(${k - 1}u, *c, *c < ${k}u);
    while (p > 0u && !((*lv)[p - 1u] >= acc)) { (*lv)[p] = (*lv)[p - 1u]; (*li)[p] = (*li)[p - 1u]; p--; }
    (*lv)[p] = acc;
    (*li)[p] = id;
    if (*c < ${k}u) { *c += 1u; }
  }
}
fn store(slot: u32, lv: ptr<function, List>, li: ptr<function, Ids>, c: u32) {
  for (var j = 0u; j < c; j++) { SV[slot + j] = (*lv)[j]; SI[slot + j] = (*li)[j]; }
  if (c < ${k}u) { SI[slot + c] = -1; }
}
@compute @workgroup_size(${WGT})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let t = gidx * ${WGT}u + lid;
  let Q = pu(0u);
  let P = pu(2u);
  if (t >= ((Q + ${QB - 1}u) / ${QB}u) * P) { return; }
  let D = pu(1u);
  let D4 = D & ~3u;
  let lane = t % P;
  // this thread's queries q0 .. q0 + nq - 1 (a short last group reads query Q - 1 again, unused)
  let q0 = (t / P) * ${QB}u;
  let nq = min(${QB}u, Q - q0);
${each((j) => `  let qb${j} = pu(5u) + min(q0 + ${j}u, Q - 1u) * D;
  let slot${j} = ((q0 + ${j}u) * P + lane) * ${k}u;
  var lv${j}: List;
  var li${j}: Ids;
  var c${j} = 0u;
  if (pu(7u) == 0u && ${j}u < nq) { c${j} = load(slot${j}, &lv${j}, &li${j}); }`)}
  for (var r = lane; r < pu(3u); r += P) {
    let rb = pu(4u) + r * D;
${each((j) => `    var a${j} = 0.0;`)}
    // each row value read once for the thread's queries; each sum in d order, as one query at a time
    var d = 0u;
    for (; d < D4; d += 4u) {
${[0, 1, 2, 3].map((e) => `      let x${e} = f32(B[rb + d + ${e}u]);`).join('\n')}
${each((j) => [0, 1, 2, 3].map((e) => `      a${j} += Qv[qb${j} + d + ${e}u] * x${e};`).join('\n'))}
    }
    for (; d < D; d++) {
      let x = f32(B[rb + d]);
${each((j) => `      a${j} += Qv[qb${j} + d] * x;`)}
    }
    let id = i32(pu(6u) + r);
${each((j) => `    if (${j}u < nq) { insert(&lv${j}, &li${j}, &c${j}, a${j}, id); }`)}
  }
${each((j) => `  if (${j}u < nq) { store(slot${j}, &lv${j}, &li${j}, c${j}); }`)}
}`;
    const spec = { key: `matmulTopkScore:${k}:${QB}:${f16 ? 'f16' : 'f32'}`, bindings: ['uniform', 'read', 'read', 'rw', 'rw'] as const, code };
    const rows = b.shape[0];
    for (let r0 = 0; r0 < rows; r0 += T) {
      // params: [0] Q [1] D [2] P [3] rows in the tile [4] the tile's first element in the binding
      //         [5] queries offset [6] id of the tile's first row [7] 1 on the first tile (lists start empty)
      const p = new Params().pushU(Q).pushU(D).pushU(P).pushU(Math.min(T, rows - r0)).pushU(b.offset + r0 * D).pushU(queries.offset).pushU(base + r0).pushU(first ? 1 : 0);
      rt.dispatch('matmulTopk', spec, p, [qRef, bRef, sv, si], scoreGrid);
      first = false;
    }
    base += rows;
  }

  const mergeCode = (): string => `${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> SV: array<f32>;
@group(0) @binding(2) var<storage, read> SI: array<i32>;
@group(0) @binding(3) var<storage, read_write> OV: array<f32>;
@group(0) @binding(4) var<storage, read_write> OI: array<i32>;
${BETTER_WGSL}
@compute @workgroup_size(${WGT})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let t = gidx * ${WGT}u + lid;
  let L = pu(1u);
  let L2 = pu(2u);
  if (t >= pu(0u) * L2) { return; }
  let q = t / L2;
  let first = (t % L2) * ${FAN_IN}u;
  let n = min(${FAN_IN}u, L - first);
  let src = (q * L + first) * ${k}u;
  // heads: list m's next entry at pos[m] (id -1 once it is used up)
  var pos: array<u32, ${FAN_IN}>;
  var hv: array<f32, ${FAN_IN}>;
  var hi: array<i32, ${FAN_IN}>;
  for (var m = 0u; m < n; m++) { pos[m] = 0u; hv[m] = SV[src + m * ${k}u]; hi[m] = SI[src + m * ${k}u]; }
  let dv = pu(3u) + t * ${k}u;
  let di = pu(4u) + t * ${k}u;
  for (var j = 0u; j < ${k}u; j++) {
    var b = 0u;
    for (var m = 1u; m < n; m++) { if (better(hv[m], hi[m], hv[b], hi[b])) { b = m; } }
    if (hi[b] < 0) { OI[di + j] = -1; break; }
    OV[dv + j] = hv[b];
    OI[di + j] = hi[b];
    pos[b]++;
    let at = src + b * ${k}u + pos[b];
    if (pos[b] < ${k}u) { hv[b] = SV[at]; hi[b] = SI[at]; } else { hi[b] = -1; }
  }
}`;
  const mergeSpec = { key: `matmulTopkMerge:${k}`, bindings: ['uniform', 'read', 'read', 'rw', 'rw'] as const, code: mergeCode };
  // Each pass: [Q, L, k] -> [Q, ceil(L / F), k]; the last one (one list per query) writes the outputs.
  let L = P;
  let from = slots;
  let to: typeof slots | null = null;
  const temps = [...slots];
  for (;;) {
    const L2 = Math.ceil(L / FAN_IN);
    const last = L2 === 1;
    if (!last && to === null) {
      to = [tempStorage(rt, 'float32', Q * L2 * k), tempStorage(rt, 'int32', Q * L2 * k)];
      temps.push(...to);
    }
    const outV = last ? values.storage : to![0];
    const outI = last ? indices.storage : to![1];
    // params: [0] Q [1] lists in [2] lists out (per query) [3] values offset [4] ids offset
    const p = new Params().pushU(Q).pushU(L).pushU(L2).pushU(last ? values.offset : 0).pushU(last ? indices.offset : 0);
    const refs = [
      storageRef(from[0], 'matmulTopk', 'score slots'),
      storageRef(from[1], 'matmulTopk', 'id slots'),
      storageRef(outV, 'matmulTopk', last ? 'values' : 'score slots'),
      storageRef(outI, 'matmulTopk', last ? 'indices' : 'id slots'),
    ];
    rt.dispatch('matmulTopk', mergeSpec, p, refs, grid(Math.ceil((Q * L2) / WGT)));
    if (last) break;
    [from, to] = [to!, from];
    L = L2;
  }
  for (const s of temps) rt.release(s.buf);
  return true;
}
