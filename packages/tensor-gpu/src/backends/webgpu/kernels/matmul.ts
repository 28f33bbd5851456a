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
// - 'tiled' (hardware GPUs): 64x64 output tile per 256-thread workgroup, 4x4 outputs per thread,
//   K in steps of 16 through shared memory (8 KiB), scalar strided global loads with bounds checks.
//   Not measurable here; tested for correctness on SwiftShader by forcing it.
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

function tiledCode(a: View, b: View, out: View): string {
  return `${bindings(a, b, out, 's', 's')}
const TS: u32 = 64u;
const KT: u32 = 16u;
var<workgroup> As: array<vec4<f32>, 256>; // [KT][TS / 4]: As[k * 16 + r / 4][r % 4] = a[row r, k]
var<workgroup> Bs: array<vec4<f32>, 256>; // [KT][TS / 4]: Bs[k * 16 + c / 4][c % 4] = b[k, col c]
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let M = pu(1u); let N = pu(2u); let K = pu(3u);
  let bz = wid.z + pu(13u);
  let m0 = wid.y * TS; let n0 = wid.x * TS;
  let aSM = pu(6u); let aSK = pu(7u); let bSK = pu(10u); let bSN = pu(11u);
  let aBase = pu(4u) + bz * pu(5u);
  let bBase = pu(8u) + bz * pu(9u);
  var acc0 = vec4<f32>(0.0); var acc1 = vec4<f32>(0.0); var acc2 = vec4<f32>(0.0); var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < K; k0 += KT) {
    for (var q = 0u; q < 4u; q++) {
      let e = li + q * 256u;
      // a tile: e -> (row = e / KT, k = e % KT)
      let ar = e / KT; let ak = e % KT;
      var av = 0.0;
      if (m0 + ar < M && k0 + ak < K) { av = la(aBase + (m0 + ar) * aSM + (k0 + ak) * aSK); }
      As[ak * 16u + (ar >> 2u)][ar & 3u] = av;
      // b tile: e -> (k = e / TS, col = e % TS)
      let bk = e / TS; let bc = e % TS;
      var bv = 0.0;
      if (n0 + bc < N && k0 + bk < K) { bv = lb(bBase + (k0 + bk) * bSK + (n0 + bc) * bSN); }
      Bs[bk * 16u + (bc >> 2u)][bc & 3u] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < KT; kk++) {
      let av = As[kk * 16u + lid.y];
      let bv = Bs[kk * 16u + lid.x];
      acc0 += av.x * bv; acc1 += av.y * bv; acc2 += av.z * bv; acc3 += av.w * bv;
    }
    workgroupBarrier();
  }
  let row0 = m0 + lid.y * 4u; let col0 = n0 + lid.x * 4u;
  let yBase = pu(12u) + bz * M * N;
  var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    if (row0 + i < M) {
      for (var c = 0u; c < 4u; c++) {
        if (col0 + c < N) { Y[yBase + (row0 + i) * N + col0 + c] = ${fromF32(out.dtype, 'accs[i][c]')}; }
      }
    }
  }
}`;
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
    key = `matmul-tiled:${a.dtype}:${b.dtype}:${out.dtype}`;
    code = () => tiledCode(a, b, out);
    gx = Math.ceil(N / 64);
    gy = Math.ceil(M / 64);
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
  if (kernel === 'tiled') return 'tiled64x64';
  const { aMode, bMode, TM, TN } = chooseRegblock(a, b);
  return `regblock${TM}x${TN}-a${aMode}-b${bMode}`;
}
