// sort: stable sort of each row of contiguous [outer, n] into values and int32 source indices.
// Bitonic network over rows padded to P = 2^ceil(log2 n) in temporary (key, index) buffers: one
// dispatch per (k, j) step, one thread per compare-exchange pair (outer * P / 2 threads). Ties break on
// the source index, which makes the network's result equal to a stable sort; padding always sorts
// last; NaN sorts last ascending and first descending (PyTorch). Keys are i32 for int32 rows (exact)
// and f32 otherwise. P = 65536 takes 136 passes.

import type { View } from '../../../backend.js';
import { BackendError } from '../../../errors.js';
import { Params, storageRef, type BufferRef, type Runtime } from '../runtime.js';
import { GROUP_ID_WGSL, MAIN_ARGS, PARAMS_WGSL, WG, convert, enables, grid, prod, wtype } from './common.js';
import { WGSL_MATH } from './wgsl-math.js';

export function runSort(rt: Runtime, x: View, values: View, indices: View, descending: boolean): void {
  const n = x.shape[x.shape.length - 1] ?? 1;
  const outer = n === 0 ? 0 : prod(x.shape) / n;
  if (outer === 0) return;
  const P = 2 ** Math.ceil(Math.log2(Math.max(1, n)));
  if (outer * P > 2 ** 31) throw new BackendError(`sort: ${outer} rows of ${n} elements are too many for one sort`);
  const keyType = x.dtype === 'int32' ? 'i32' : 'f32';
  const keyDtype = x.dtype === 'int32' ? 'int32' : 'float32';
  const keys = rt.acquire(outer * P * 4);
  const idx = rt.acquire(outer * P * 4);
  const keysRef: BufferRef = { pb: keys, size: outer * P * 4, what: 'sort keys' };
  const idxRef: BufferRef = { pb: idx, size: outer * P * 4, what: 'sort indices' };
  // params: [0] outer [1] n [2] P [3] xOff [4] valuesOff [5] indicesOff [6] k [7] j
  const base = (k = 0, j = 0) =>
    new Params().pushU(outer).pushU(n).pushU(P).pushU(x.offset).pushU(values.offset).pushU(indices.offset).pushU(k).pushU(j);

  const initCode = (): string => `${enables([x.dtype])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> X: array<${wtype(x.dtype)}>;
@group(0) @binding(2) var<storage, read_write> K: array<${keyType}>;
@group(0) @binding(3) var<storage, read_write> I: array<i32>;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let t = gidx * ${WG}u + lid;
  let P = pu(2u);
  if (t >= pu(0u) * P) { return; }
  let row = t / P; let j = t % P; let n = pu(1u);
  K[t] = select(${keyType}(0), ${convert(x.dtype, keyDtype, 'X[pu(3u) + row * n + min(j, n - 1u)]')}, j < n);
  I[t] = i32(j);
}`;
  rt.dispatch(
    'sort',
    { key: `sort-init:${x.dtype}`, bindings: ['uniform', 'read', 'rw', 'rw'], code: initCode },
    base(),
    [storageRef(x.storage, 'sort', 'x'), keysRef, idxRef],
    grid(Math.ceil((outer * P) / WG)),
  );

  const nanA = keyType === 'f32' ? 'is_nan_f32(ka)' : 'false';
  const nanB = keyType === 'f32' ? 'is_nan_f32(kb)' : 'false';
  const cmp = descending ? '>' : '<';
  const stepCode = (): string => `${PARAMS_WGSL}${WGSL_MATH}
@group(0) @binding(1) var<storage, read_write> K: array<${keyType}>;
@group(0) @binding(2) var<storage, read_write> I: array<i32>;
// True when (ka, ia) must come before (kb, ib) in the final order.
fn before(ka: ${keyType}, ia: i32, kb: ${keyType}, ib: i32, n: i32) -> bool {
  let pa = ia >= n; let pb = ib >= n;
  if (pa || pb) { return select(pb, ia < ib, pa && pb); }
  let na = ${nanA}; let nb = ${nanB};
  if (na || nb) { return select(${descending ? 'na' : 'nb'}, ia < ib, na && nb); }
  return ka ${cmp} kb || (ka == kb && ia < ib);
}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let t = gidx * ${WG}u + lid;
  let P = pu(2u); let half = P >> 1u;
  if (t >= pu(0u) * half) { return; }
  let row = t / half; let q = t % half;
  let k = pu(6u); let j = pu(7u);
  let i = 2u * j * (q / j) + (q % j);
  let l = i + j;
  let a = row * P + i; let b = row * P + l;
  let ka = K[a]; let ia = I[a]; let kb = K[b]; let ib = I[b];
  let n = i32(pu(1u));
  let up = (i & k) == 0u;
  let swap = select(before(ka, ia, kb, ib, n), before(kb, ib, ka, ia, n), up);
  if (swap) { K[a] = kb; I[a] = ib; K[b] = ka; I[b] = ia; }
}`;
  const stepSpec = { key: `sort-step:${keyType}:${descending}`, bindings: ['uniform', 'rw', 'rw'] as const, code: stepCode };
  const pairs = grid(Math.ceil((outer * P) / 2 / WG));
  for (let k = 2; k <= P; k *= 2) {
    for (let j = k / 2; j >= 1; j /= 2) rt.dispatch('sort', stepSpec, base(k, j), [keysRef, idxRef], pairs);
  }

  const outCode = (): string => `${enables([values.dtype])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> K: array<${keyType}>;
@group(0) @binding(2) var<storage, read> I: array<i32>;
@group(0) @binding(3) var<storage, read_write> V: array<${wtype(values.dtype)}>;
@group(0) @binding(4) var<storage, read_write> J: array<${wtype(indices.dtype)}>;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let t = gidx * ${WG}u + lid;
  let n = pu(1u);
  if (t >= pu(0u) * n) { return; }
  let row = t / n; let j = t % n;
  let s = row * pu(2u) + j;
  V[pu(4u) + t] = ${convert(keyDtype, values.dtype, 'K[s]')};
  J[pu(5u) + t] = ${convert('int32', indices.dtype, 'I[s]')};
}`;
  rt.dispatch(
    'sort',
    { key: `sort-out:${keyType}:${values.dtype}:${indices.dtype}`, bindings: ['uniform', 'read', 'read', 'rw', 'rw'], code: outCode },
    base(),
    [keysRef, idxRef, storageRef(values.storage, 'sort', 'values'), storageRef(indices.storage, 'sort', 'indices')],
    grid(Math.ceil((outer * n) / WG)),
  );
  rt.release(keys);
  rt.release(idx);
}
