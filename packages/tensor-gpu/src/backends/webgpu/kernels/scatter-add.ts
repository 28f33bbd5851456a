// scatterAdd: out[..., index[..., j, ...], ...] += src[..., j, ...] along `axis` (out holds the base
// values). One thread per src element; WGSL has no float atomics, so float32 adds run a compare-exchange
// loop on the f32 bits through an atomic<u32> view of out, float16 does the same on the u32 word holding
// the half (pack2x16float), int32 uses atomicAdd and bool atomicOr. Bad indices are reported
// (index-check.ts) and skipped, never written out of bounds.

import type { View } from '../../../backend.js';
import type { DType } from '../../../dtype.js';
import { storageRef, type Runtime } from '../runtime.js';
import { MAIN_ARGS, PARAMS_WGSL, WG, assertU32, checkRank, enables, grid, prod, toF32, wtype } from './common.js';
import { INDEXED_PROLOGUE, indexedParams } from './gather.js';
import { REPORT_WGSL } from './index-check.js';

function atomicAddWgsl(dtype: DType): { decl: string; add: string } {
  switch (dtype) {
    case 'int32':
      return { decl: 'array<atomic<i32>>', add: 'atomicAdd(&Y[od], i32(v));' };
    case 'bool':
      return { decl: 'array<atomic<u32>>', add: 'if (v != 0.0) { atomicOr(&Y[od], 1u); }' };
    case 'float32':
      return {
        decl: 'array<atomic<u32>>',
        add: `loop {
    let old = atomicLoad(&Y[od]);
    let r = atomicCompareExchangeWeak(&Y[od], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
  }`,
      };
    case 'float16':
      return {
        decl: 'array<atomic<u32>>',
        add: `let w = od >> 1u;
  let hi = (od & 1u) == 1u;
  loop {
    let old = atomicLoad(&Y[w]);
    var h = unpack2x16float(old);
    if (hi) { h.y = h.y + v; } else { h.x = h.x + v; }
    let r = atomicCompareExchangeWeak(&Y[w], old, pack2x16float(h));
    if (r.exchanged) { break; }
  }`,
      };
  }
}

export function runScatterAdd(rt: Runtime, out: View, index: View, src: View, axis: number, opName: string): void {
  const n = prod(index.shape);
  if (n === 0) return;
  assertU32(opName, n, 'size');
  checkRank(opName, index.shape);
  const axisSize = out.shape[axis];
  const id = rt.indexCheck({ opName, size: axisSize, axis });
  // View order in the params: data (= out, written through atomics), index, src.
  const p = indexedParams(index.shape, axis, axisSize, id, [out, index, src]);
  const at = atomicAddWgsl(out.dtype);
  const key = `scatterAdd:${out.dtype}:${index.dtype}:${src.dtype}`;
  const code = (): string => `${enables([src.dtype])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> I: array<${wtype(index.dtype)}>;
@group(0) @binding(2) var<storage, read> S: array<${wtype(src.dtype)}>;
@group(0) @binding(3) var<storage, read_write> Y: ${at.decl};
${REPORT_WGSL(4)}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${INDEXED_PROLOGUE}
  let iv = ${index.dtype === 'int32' ? 'I[oi]' : `i32(I[oi])`};
  if (iv < 0 || u32(iv) >= pu(11u)) {
    report_bad_index(pu(12u), iv);
    return;
  }
  od += u32(iv) * pu(14u + axis);
  let v = ${toF32(src.dtype, 'S[oo]')};
  ${at.add}
}`;
  rt.dispatch(
    opName,
    { key, bindings: ['uniform', 'read', 'read', 'rw', 'rw'], code },
    p,
    [
      storageRef(index.storage, opName, 'index'),
      storageRef(src.storage, opName, 'src'),
      storageRef(out.storage, opName, 'out'),
      { pb: rt.errBuf, size: 16 },
    ],
    grid(Math.ceil(n / WG)),
  );
}
