// gather: out[..., j, ...] = x[..., index[..., j, ...], ...] along `axis`. One thread per output element
// (256 per workgroup, 2-D grid past 65535 groups); coordinates come from a div/mod loop over out's shape
// and are dotted with the strides of x (axis excluded), index and out, so every operand may be strided
// or broadcast. Bad indices are reported (index-check.ts) and the element is written as 0.

import type { View } from '../../../backend.js';
import { Params, storageRef, type Runtime } from '../runtime.js';
import { GROUP_ID_WGSL, MAIN_ARGS, MAX_RANK, PARAMS_WGSL, WG, assertU32, checkRank, convert, enables, grid, prod, wtype } from './common.js';
import { REPORT_WGSL } from './index-check.js';

/** Params of the indexed kernels: [0] n [1] rank [2..9] iteration shape [10] axis [11] axis size [12] check id,
 *  then views (offset + 8 strides) at 13 (data), 22 (index), 31 (out / src). */
export function indexedParams(shape: readonly number[], axis: number, axisSize: number, id: number, views: View[]): Params {
  const p = new Params().pushU(prod(shape)).pushU(shape.length);
  for (let d = 0; d < MAX_RANK; d++) p.pushU(shape[d] ?? 1);
  p.pushU(axis).pushU(axisSize).pushU(id);
  for (const v of views) {
    p.pushU(v.offset);
    for (let d = 0; d < MAX_RANK; d++) p.pushI(v.strides[d] ?? 0);
  }
  return p;
}

export const INDEXED_PROLOGUE = /* wgsl */ `
  ${GROUP_ID_WGSL}
  let idx = gidx * ${WG}u + lid;
  if (idx >= pu(0u)) { return; }
  let axis = pu(10u);
  var rem = idx;
  var od = pu(13u); var oi = pu(22u); var oo = pu(31u); var ca = 0u;
  for (var d = i32(pu(1u)) - 1; d >= 0; d--) {
    let du = u32(d);
    let s = pu(2u + du);
    let c = rem % s;
    rem = rem / s;
    if (du == axis) { ca = c; } else { od += c * pu(14u + du); }
    oi += c * pu(23u + du);
    oo += c * pu(32u + du);
  }
`;

export function runGather(rt: Runtime, x: View, index: View, axis: number, out: View, opName: string): void {
  const n = prod(out.shape);
  if (n === 0) return;
  assertU32(opName, n, 'size');
  checkRank(opName, out.shape);
  const axisSize = x.shape[axis];
  const id = rt.indexCheck({ opName, size: axisSize, axis });
  const p = indexedParams(out.shape, axis, axisSize, id, [x, index, out]);
  const key = `gather:${x.dtype}:${index.dtype}:${out.dtype}`;
  const code = (): string => `${enables([x.dtype, out.dtype])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> X: array<${wtype(x.dtype)}>;
@group(0) @binding(2) var<storage, read> I: array<${wtype(index.dtype)}>;
@group(0) @binding(3) var<storage, read_write> Y: array<${wtype(out.dtype)}>;
${REPORT_WGSL(4)}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${INDEXED_PROLOGUE}
  let iv = ${index.dtype === 'int32' ? 'I[oi]' : `i32(I[oi])`};
  if (iv < 0 || u32(iv) >= pu(11u)) {
    report_bad_index(pu(12u), iv);
    Y[oo] = ${wtype(out.dtype)}(0);
    return;
  }
  od += u32(iv) * pu(14u + axis);
  Y[oo] = ${convert(x.dtype, out.dtype, 'X[od]')};
}`;
  rt.dispatch(
    opName,
    { key, bindings: ['uniform', 'read', 'read', 'rw', 'rw'], code },
    p,
    [
      storageRef(x.storage, opName, 'x'),
      storageRef(index.storage, opName, 'index'),
      storageRef(out.storage, opName, 'out'),
      { pb: rt.errBuf, size: 16 },
    ],
    grid(Math.ceil(n / WG)),
  );
}
