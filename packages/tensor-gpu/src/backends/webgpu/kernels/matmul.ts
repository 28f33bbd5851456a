// matmul: batched a [batch, M, K] @ b [batch, K, N] -> contiguous out [batch, M, N]; a and b take any
// strides (transposes are stride swaps, broadcast batches stride 0).
//
// Two kernel families, chosen by adapter (WebGPUBackend.matmulKernel):
// - 'regblock' (software adapters): each thread computes a TM x TN output block (4x4, 4x8 wide N,
//   1x8 for M <= 2) straight from global memory with NO shared memory and NO barriers — SwiftShader
//   runs a workgroup's invocations as one CPU thread and barriers cost far more than cache-served
//   reloads. 8x8 threads per workgroup. Loads are vec4 when the layout allows: a along K (sk = 1),
//   b along N (row-major b) or along K (transposed b, then each output is a dot of two vec4s);
//   otherwise scalar strided loads (the generic path). Edge blocks clamp their loads and mask stores.
// - 'tiled' (hardware GPUs): 128x128 (8x8 per thread) or 64x64 (4x4) output tiles per 256-thread workgroup,
//   K in steps of 16 through shared memory (16 KiB at 128x128 f32), vec4 global loads when the layout
//   allows (else scalar strided), float16 operands kept f16 in shared memory with f32 products and sums.
//   Not measurable here; tested for correctness on SwiftShader by forcing it (SwiftShader has no
//   shader-f16, so the f16 variant first runs on a GPU: gpu-bench.sh checks it against float32).
// Measured (SwiftShader, 2 cores shared with a load average of ~14, so +-2x noise; bench/webgpu-matmul.mjs):
// regblock4x8 0.7-1.2 GFLOPS on 256-1024 cubes (4x4: 0.5-1.0), 4x4 with transposed b (dot form) 0.6-1.0,
// 1x8 GEMV (M = 1, N = 3072, K = 768) ~0.35. Workgroup shapes 16x4 / 4x16 / 16x16 were no better.

import type { View } from '../../../backend.js';
import { BackendError } from '../../../errors.js';
import { Params, storageRef, type Runtime } from '../runtime.js';
import { PARAMS_WGSL, enables, fromF32, toF32, wtype } from './common.js';

export type MatmulKernel = 'regblock' | 'tiled';

type ALoad = 'vk' | 's';
type BLoad = 'vn' | 'vk' | 's';

function aligned(...xs: number[]): boolean {
  return xs.every((x) => x % 4 === 0);
}

/** params: [0] batch [1] M [2] N [3] K [4] aOff [5] aSB [6] aSM [7] aSK [8] bOff [9] bSB [10] bSK [11] bSN [12] outOff [13] batchBase */
function params(a: View, b: View, out: View, batchBase: number): Params {
  const [batch, M, K] = a.shape;
  const N = b.shape[2];
  return new Params()
    .pushU(batch).pushU(M).pushU(N).pushU(K)
    .pushU(a.offset).pushI(a.strides[0]).pushI(a.strides[1]).pushI(a.strides[2])
    .pushU(b.offset).pushI(b.strides[0]).pushI(b.strides[1]).pushI(b.strides[2])
    .pushU(out.offset).pushU(batchBase);
}

function bindings(a: View, b: View, out: View, aMode: ALoad, bMode: BLoad): string {
  const at = aMode === 'vk' ? 'vec4<f32>' : wtype(a.dtype);
  const bt = bMode === 's' ? wtype(b.dtype) : 'vec4<f32>';
  const la = aMode === 'vk' ? 'A[e >> 2u][e & 3u]' : toF32(a.dtype, 'A[e]');
  const lb = bMode === 's' ? toF32(b.dtype, 'B[e]') : 'B[e >> 2u][e & 3u]';
  return `${enables([a.dtype, b.dtype, out.dtype])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> A: array<${at}>;
@group(0) @binding(2) var<storage, read> B: array<${bt}>;
@group(0) @binding(3) var<storage, read_write> Y: array<${wtype(out.dtype)}>;
fn la(e: u32) -> f32 { return ${la}; }
fn lb(e: u32) -> f32 { return ${lb}; }
`;
}

function regblockCode(a: View, b: View, out: View, aMode: ALoad, bMode: BLoad, TM: number, TN: number, WX: number, WY: number): string {
  const H = TN / 4; // vec4 accumulators per row
  const rows = [...Array(TM).keys()];
  const hs = [...Array(H).keys()];
  const cols = [...Array(TN).keys()];
  const L: string[] = [];
  L.push(bindings(a, b, out, aMode, bMode));
  L.push(`@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = pu(1u); let N = pu(2u); let K = pu(3u);
  let bz = wid.z + pu(13u);
  let row0 = (wid.y * ${WY}u + lid.y) * ${TM}u;
  let col0 = (wid.x * ${WX}u + lid.x) * ${TN}u;
  if (row0 >= M || col0 >= N) { return; }
  let aSM = pu(6u); let aSK = pu(7u); let bSK = pu(10u); let bSN = pu(11u);
  let aBase = pu(4u) + bz * pu(5u);
  let bBase = pu(8u) + bz * pu(9u);`);
  for (const i of rows) L.push(`  let ar${i} = aBase + min(row0 + ${i}u, M - 1u) * aSM;`);
  for (const c of cols) L.push(`  let bc${c} = bBase + min(col0 + ${c}u, N - 1u) * bSN;`);
  for (const i of rows) for (const h of hs) L.push(`  var acc${i}_${h} = vec4<f32>(0.0);`);
  L.push('  let K4 = K & ~3u;');
  L.push('  for (var k = 0u; k < K4; k += 4u) {');
  for (const i of rows) {
    L.push(
      aMode === 'vk'
        ? `    let a${i} = A[(ar${i} + k) >> 2u];`
        : `    let a${i} = vec4<f32>(la(ar${i} + k * aSK), la(ar${i} + (k + 1u) * aSK), la(ar${i} + (k + 2u) * aSK), la(ar${i} + (k + 3u) * aSK));`,
    );
  }
  if (bMode === 'vk') {
    for (const c of cols) L.push(`    let b${c} = B[(bc${c} + k) >> 2u];`);
    for (const i of rows)
      for (const h of hs)
        L.push(
          `    acc${i}_${h} += vec4<f32>(dot(a${i}, b${4 * h}), dot(a${i}, b${4 * h + 1}), dot(a${i}, b${4 * h + 2}), dot(a${i}, b${4 * h + 3}));`,
        );
  } else {
    for (let kk = 0; kk < 4; kk++) {
      for (const h of hs) {
        L.push(
          bMode === 'vn'
            ? `    let b${kk}_${h} = B[(bBase + (k + ${kk}u) * bSK + min(col0 + ${4 * h}u, N - 4u)) >> 2u];`
            : `    let b${kk}_${h} = vec4<f32>(${[0, 1, 2, 3].map((c) => `lb(bc${4 * h + c} + (k + ${kk}u) * bSK)`).join(', ')});`,
        );
      }
    }
    const comp = ['x', 'y', 'z', 'w'];
    for (const i of rows)
      for (const h of hs)
        L.push(`    acc${i}_${h} += ${[0, 1, 2, 3].map((kk) => `a${i}.${comp[kk]} * b${kk}_${h}`).join(' + ')};`);
  }
  L.push('  }');
  // K tail (K % 4 elements), scalar loads.
  L.push('  for (var k = K4; k < K; k++) {');
  for (const h of hs)
    L.push(
      `    let bt${h} = vec4<f32>(${[0, 1, 2, 3].map((c) => `lb(bc${4 * h + c} + k * bSK)`).join(', ')});`,
    );
  for (const i of rows) for (const h of hs) L.push(`    acc${i}_${h} += la(ar${i} + k * aSK) * bt${h};`);
  L.push('  }');
  L.push('  let yBase = pu(12u) + bz * M * N;');
  for (const i of rows) {
    L.push(`  if (row0 + ${i}u < M) {`);
    L.push(`    let yr = yBase + (row0 + ${i}u) * N + col0;`);
    for (const c of cols) {
      const h = Math.floor(c / 4);
      const comp = ['x', 'y', 'z', 'w'][c % 4];
      L.push(`    if (col0 + ${c}u < N) { Y[yr + ${c}u] = ${fromF32(out.dtype, `acc${i}_${h}.${comp}`)}; }`);
    }
    L.push('  }');
  }
  L.push('}');
  return L.join('\n');
}

/** Global-load modes, per-thread block and shared-memory type of the 'tiled' kernel for these operands. */
interface TiledPlan {
  aMode: ALoad;
  bMode: BLoad;
  /** Outputs per thread along M and N (4 or 8); the workgroup is 16 x 16 threads, so the tile is 16T x 16T. */
  T: 4 | 8;
  /** Shared tiles (and vec4 global loads) in f16: both operands float16. */
  half: boolean;
}

function chooseTiled(a: View, b: View): TiledPlan {
  const [, M, K] = a.shape;
  const N = b.shape[2];
  // K = 0 binds buffers too small for one vec4.
  const vec = (v: View) => K > 0 && (v.dtype === 'float32' || v.dtype === 'float16');
  const [aSB, aSM, aSK] = a.strides;
  const [bSB, bSK, bSN] = b.strides;
  const aMode: ALoad = vec(a) && aSK === 1 && aligned(K, a.offset, aSM, aSB) ? 'vk' : 's';
  const bMode: BLoad =
    vec(b) && bSN === 1 && aligned(N, b.offset, bSK, bSB) ? 'vn' : vec(b) && bSK === 1 && aligned(K, b.offset, bSN, bSB) ? 'vk' : 's';
  // 128 x 128 tiles (8 x 8 per thread) once both sides fill them; 64 x 64 (4 x 4) keeps more
  // workgroups in flight on smaller products.
  const T = M >= 128 && N >= 128 ? 8 : 4;
  return { aMode, bMode, T, half: a.dtype === 'float16' && b.dtype === 'float16' };
}

/**
 * The 'tiled' kernel: a (16T x 16T) output tile per 16 x 16 workgroup, T x T outputs per thread (rows
 * ty*4 + 64i + c, columns tx*4 + 64j + d: neighbouring threads read neighbouring vec4s of the shared
 * tiles), K in steps of 16. Global loads are vec4 along K for a (row-major a) and along N (row-major b)
 * or K (transposed b) when aligned, else scalar strided; out-of-range elements load as 0. float16
 * operands stay f16 in shared memory (half the bytes); products and sums are f32.
 */
function tiledCode(a: View, b: View, out: View, plan: TiledPlan): string {
  const { aMode, bMode, T, half } = plan;
  const S = half ? 'f16' : 'f32';
  const BM = 16 * T;
  const KT = 16;
  const V = T / 4; // vec4 groups per thread along each side
  const vs = [...Array(V).keys()];
  const comp = ['x', 'y', 'z', 'w'];
  const at = aMode === 'vk' ? `vec4<${wtype(a.dtype)}>` : wtype(a.dtype);
  const bt = bMode === 's' ? wtype(b.dtype) : `vec4<${wtype(b.dtype)}>`;
  const L: string[] = [];
  L.push(`${enables([a.dtype, b.dtype, out.dtype])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> A: array<${at}>;
@group(0) @binding(2) var<storage, read> B: array<${bt}>;
@group(0) @binding(3) var<storage, read_write> Y: array<${wtype(out.dtype)}>;
const BM: u32 = ${BM}u; // tile side (M and N)
const KT: u32 = ${KT}u;
var<workgroup> As: array<vec4<${S}>, ${(KT * BM) / 4}>; // As[k * BM/4 + r/4][r % 4] = a[m0 + r, k0 + k]
var<workgroup> Bs: array<vec4<${S}>, ${(KT * BM) / 4}>; // Bs[k * BM/4 + c/4][c % 4] = b[k0 + k, n0 + c]
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let M = pu(1u); let N = pu(2u); let K = pu(3u);
  let bz = wid.z + pu(13u);
  let m0 = wid.y * BM; let n0 = wid.x * BM;
  let aSM = pu(6u); let aSK = pu(7u); let bSK = pu(10u); let bSN = pu(11u);
  let aBase = pu(4u) + bz * pu(5u);
  let bBase = pu(8u) + bz * pu(9u);
  let zero = vec4<${S}>(0.0);`);
  for (let i = 0; i < T; i++) for (const j of vs) L.push(`  var acc${i}_${j} = vec4<f32>(0.0);`);
  L.push('  for (var k0 = 0u; k0 < K; k0 += KT) {');
  // a tile: BM x KT elements.
  if (aMode === 'vk') {
    for (let q = 0; q < (BM * KT) / 4 / 256; q++) {
      L.push(`    {
      let e = li + ${q * 256}u; let r = e >> 2u; let kq = (e & 3u) * 4u;
      var v = zero;
      if (m0 + r < M && k0 + kq < K) { v = vec4<${S}>(A[(aBase + (m0 + r) * aSM + k0 + kq) >> 2u]); }
      ${[0, 1, 2, 3].map((c) => `As[(kq + ${c}u) * ${BM / 4}u + (r >> 2u)][r & 3u] = v.${comp[c]};`).join(' ')}
    }`);
    }
  } else {
    L.push(`    for (var q = 0u; q < ${(BM * KT) / 256}u; q++) {
      let e = li + q * 256u; let r = e / KT; let k = e % KT;
      var v = 0.0;
      if (m0 + r < M && k0 + k < K) { v = ${toF32(a.dtype, 'A[aBase + (m0 + r) * aSM + (k0 + k) * aSK]')}; }
      As[k * ${BM / 4}u + (r >> 2u)][r & 3u] = ${S}(v);
    }`);
  }
  // b tile: KT x BM elements.
  if (bMode === 'vn') {
    for (let q = 0; q < (BM * KT) / 4 / 256; q++) {
      L.push(`    {
      let e = li + ${q * 256}u; let k = e / ${BM / 4}u; let c4 = e % ${BM / 4}u;
      var v = zero;
      if (k0 + k < K && n0 + c4 * 4u < N) { v = vec4<${S}>(B[(bBase + (k0 + k) * bSK + n0 + c4 * 4u) >> 2u]); }
      Bs[k * ${BM / 4}u + c4] = v;
    }`);
    }
  } else if (bMode === 'vk') {
    for (let q = 0; q < (BM * KT) / 4 / 256; q++) {
      L.push(`    {
      let e = li + ${q * 256}u; let c = e >> 2u; let kq = (e & 3u) * 4u;
      var v = zero;
      if (n0 + c < N && k0 + kq < K) { v = vec4<${S}>(B[(bBase + (n0 + c) * bSN + k0 + kq) >> 2u]); }
      ${[0, 1, 2, 3].map((d) => `Bs[(kq + ${d}u) * ${BM / 4}u + (c >> 2u)][c & 3u] = v.${comp[d]};`).join(' ')}
    }`);
    }
  } else {
    L.push(`    for (var q = 0u; q < ${(BM * KT) / 256}u; q++) {
      let e = li + q * 256u; let k = e / BM; let c = e % BM;
      var v = 0.0;
      if (k0 + k < K && n0 + c < N) { v = ${toF32(b.dtype, 'B[bBase + (k0 + k) * bSK + (n0 + c) * bSN]')}; }
      Bs[k * ${BM / 4}u + (c >> 2u)][c & 3u] = ${S}(v);
    }`);
  }
  L.push('    workgroupBarrier();');
  L.push('    for (var kk = 0u; kk < KT; kk++) {');
  for (const i of vs) L.push(`      let a${i} = vec4<f32>(As[kk * ${BM / 4}u + ${i * 16}u + lid.y]);`);
  for (const j of vs) L.push(`      let b${j} = vec4<f32>(Bs[kk * ${BM / 4}u + ${j * 16}u + lid.x]);`);
  for (let i = 0; i < T; i++) for (const j of vs) L.push(`      acc${i}_${j} += a${i >> 2}.${comp[i & 3]} * b${j};`);
  L.push('    }');
  L.push('    workgroupBarrier();');
  L.push('  }');
  L.push('  let yBase = pu(12u) + bz * M * N;');
  for (let i = 0; i < T; i++) {
    L.push(`  { let r = m0 + ${(i >> 2) * 64 + (i & 3)}u + lid.y * 4u;`);
    L.push('    if (r < M) {');
    for (const j of vs) {
      for (let d = 0; d < 4; d++) {
        L.push(`      { let c = n0 + ${j * 64 + d}u + lid.x * 4u; if (c < N) { Y[yBase + r * N + c] = ${fromF32(out.dtype, `acc${i}_${j}.${comp[d]}`)}; } }`);
      }
    }
    L.push('    }');
    L.push('  }');
  }
  L.push('}');
  return L.join('\n');
}

export function runMatmul(rt: Runtime, a: View, b: View, out: View, kernel: MatmulKernel): void {
  const [batch, M, K] = a.shape;
  const N = b.shape[2];
  if (batch * M * N === 0) return;
  // K = 0 needs no special case: the K loops run zero times and out is written with zeros.
  const { aMode, bMode, TM, TN } = chooseRegblock(a, b);
  let key: string;
  let code: () => string;
  let gx: number;
  let gy: number;
  if (kernel === 'tiled') {
    const plan = chooseTiled(a, b);
    key = `matmul-tiled:${a.dtype}:${b.dtype}:${out.dtype}:${plan.aMode}:${plan.bMode}:${plan.T}:${plan.half}`;
    code = () => tiledCode(a, b, out, plan);
    gx = Math.ceil(N / (16 * plan.T));
    gy = Math.ceil(M / (16 * plan.T));
  } else {
    const WX = 8;
    const WY = 8;
    key = `matmul-regblock:${a.dtype}:${b.dtype}:${out.dtype}:${aMode}:${bMode}:${TM}x${TN}:${WX}x${WY}`;
    code = () => regblockCode(a, b, out, aMode, bMode, TM, TN, WX, WY);
    gx = Math.ceil(N / (WX * TN));
    gy = Math.ceil(M / (WY * TM));
  }
  if (gx > 65535 || gy > 65535) {
    throw new BackendError(`matmul: [${batch}, ${M}, ${K}] @ [${batch}, ${K}, ${N}] needs a ${gx} x ${gy} workgroup grid (limit 65535)`);
  }
  const spec = { key, bindings: ['uniform', 'read', 'read', 'rw'] as const, code };
  const refs = [storageRef(a.storage, 'matmul', 'a'), storageRef(b.storage, 'matmul', 'b'), storageRef(out.storage, 'matmul', 'out')];
  for (let base = 0; base < batch; base += 65535) {
    rt.dispatch('matmul', spec, params(a, b, out, base), refs, [gx, gy, Math.min(65535, batch - base)]);
  }
}

/** Load modes and per-thread block of the regblock kernel for these operands. */
function chooseRegblock(a: View, b: View): { aMode: ALoad; bMode: BLoad; TM: number; TN: number } {
  const [, M, K] = a.shape;
  const N = b.shape[2];
  const f32 = a.dtype === 'float32' && b.dtype === 'float32';
  const [aSB, aSM, aSK] = a.strides;
  const [bSB, bSK, bSN] = b.strides;
  const aMode: ALoad = f32 && aSK === 1 && aligned(K, a.offset, aSM, aSB) ? 'vk' : 's';
  const bMode: BLoad =
    f32 && bSN === 1 && aligned(N, b.offset, bSK, bSB) ? 'vn' : f32 && bSK === 1 && aligned(K, b.offset, bSN, bSB) ? 'vk' : 's';
  const TM = M <= 2 ? 1 : 4;
  const TN = M <= 2 || (N >= 256 && bMode !== 'vk') ? 8 : 4;
  return { aMode, bMode, TM, TN };
}

/** The variant runMatmul picks (benchmarks print it). */
export function matmulVariant(a: View, b: View, kernel: MatmulKernel): string {
  if (kernel === 'tiled') {
    const { aMode, bMode, T, half } = chooseTiled(a, b);
    return `tiled${16 * T}x${16 * T}-a${aMode}-b${bMode}${half ? '-f16' : ''}`;
  }
  const { aMode, bMode, TM, TN } = chooseRegblock(a, b);
  return `regblock${TM}x${TN}-a${aMode}-b${bMode}`;
}
