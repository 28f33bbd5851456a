// Shared pieces of the WGSL kernels: storage types per dtype, conversions, the params block accessors,
// the 2-D dispatch grid and the strided "map" kernel generator behind fill/copy/unary/binary/where.
//
// Params block (binding 0): up to 64 u32 words, read with pu/pi/pf. Strided map kernels use
//   [0] n  [1] rank  [2..9] shape  then per view k: [10+9k] offset, [11+9k..18+9k] strides
// followed by kernel scalars at SC = 10 + 9 * views. Strides are stored as i32 bit patterns and the
// offset arithmetic wraps in u32, so negative strides work too.

import type { DType } from '../../../dtype.js';
import { BackendError, ShapeError, fmtShape } from '../../../errors.js';
import type { View } from '../../../backend.js';
import { Params, storageRef, type BufferRef, type KernelSpec, type Runtime } from '../runtime.js';

export const MAX_RANK = 8;
export const WG = 256;

export type WType = 'f32' | 'i32' | 'u32' | 'f16';

export function wtype(dtype: DType): WType {
  switch (dtype) {
    case 'float32':
      return 'f32';
    case 'int32':
      return 'i32';
    case 'bool':
      return 'u32';
    case 'float16':
      return 'f16';
  }
}

/** `enable f16;` when any of the dtypes is float16. */
export function enables(dtypes: readonly DType[]): string {
  return dtypes.includes('float16') ? 'enable f16;\n' : '';
}

export const PARAMS_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> P: array<vec4<u32>, 16>;
fn pu(i: u32) -> u32 { return P[i >> 2u][i & 3u]; }
fn pi(i: u32) -> i32 { return bitcast<i32>(P[i >> 2u][i & 3u]); }
fn pf(i: u32) -> f32 { return bitcast<f32>(P[i >> 2u][i & 3u]); }
`;

/** Linear workgroup index over a 2-D grid (see `grid`). */
export const GROUP_ID_WGSL = 'let gidx = wid.y * nwg.x + wid.x;';
export const MAIN_ARGS =
  '@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32';

/** Folds a workgroup count into a 2-D grid (each dimension <= 65535). */
export function grid(groups: number): [number, number] {
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** WGSL converting a value of storage dtype `dtype` to f32. */
export function toF32(dtype: DType, e: string): string {
  return dtype === 'float32' ? e : `f32(${e})`;
}

/** WGSL storing an f32 value as `dtype` (bool: nonzero; int32: truncation toward zero). */
export function fromF32(dtype: DType, e: string): string {
  switch (dtype) {
    case 'float32':
      return e;
    case 'float16':
      return `f16(${e})`;
    case 'int32':
      return `i32(${e})`;
    case 'bool':
      return `u32((${e}) != 0.0)`;
  }
}

/** WGSL converting between storage dtypes, exact when they agree. */
export function convert(from: DType, to: DType, e: string): string {
  if (from === to) return e;
  if (to === 'bool') return from === 'int32' ? `u32(${e} != 0i)` : `u32(${e} != ${wtype(from)}(0))`;
  if (from === 'bool' || from === 'int32') return `${wtype(to)}(${e})`;
  if (to === 'int32') return `i32(${e})`;
  return `${wtype(to)}(${e})`; // f32 <-> f16
}

export function prod(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Merges dims that are laid out contiguously in every view, drops size-1 dims. Returns the collapsed
 * shape and each view's strides for it (rank >= 1).
 */
export function collapse(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const r = outShape.length;
    if (
      r > 0 &&
      strides.every((s, k) => outStrides[k][r - 1] === s[d] * shape[d])
    ) {
      outShape[r - 1] *= shape[d];
      strides.forEach((s, k) => (outStrides[k][r - 1] = s[d]));
    } else {
      outShape.push(shape[d]);
      strides.forEach((s, k) => outStrides[k].push(s[d]));
    }
  }
  if (outShape.length === 0) return { shape: [1], strides: strides.map(() => [1]) };
  return { shape: outShape, strides: outStrides };
}

export function checkRank(op: string, shape: readonly number[]): void {
  if (shape.length > MAX_RANK) {
    throw new ShapeError(`${op}: rank ${shape.length} ${fmtShape(shape)} exceeds the webgpu backend's limit of ${MAX_RANK} dims after merging contiguous dims`);
  }
}

export function assertU32(op: string, n: number, what: string): void {
  if (n > 0xffffffff) throw new BackendError(`${op}: ${what} ${n} exceeds 2^32 - 1 elements`);
}

/**
 * Strided map kernel: one thread per element of `out`, every input a strided view of out's shape.
 * Variant key: `key` + dtypes + rank-1-contiguous flag.
 */
export function runMap(
  rt: Runtime,
  op: string,
  spec: { key: string; body: string; decl?: string; scalars?: (p: Params) => void },
  inputs: readonly View[],
  out: View,
): void {
  const n = prod(out.shape);
  if (n === 0) return;
  assertU32(op, n, 'size');
  const views = [...inputs, out];
  const c = collapse(out.shape, views.map((v) => v.strides));
  checkRank(op, c.shape);
  const contig = c.shape.length === 1 && c.strides.every((s) => s[0] === 1);
  const nv = views.length;
  const sc = 10 + 9 * nv;
  const p = new Params();
  p.pushU(n).pushU(c.shape.length);
  for (let d = 0; d < MAX_RANK; d++) p.pushU(c.shape[d] ?? 1);
  views.forEach((v, k) => {
    p.pushU(v.offset);
    for (let d = 0; d < MAX_RANK; d++) p.pushI(c.strides[k][d] ?? 0);
  });
  spec.scalars?.(p);
  const dtypes = views.map((v) => v.dtype);
  const key = `map:${spec.key}:${dtypes.join(',')}:${contig ? 'c' : 's'}`;
  const kernel: KernelSpec = {
    key,
    bindings: ['uniform', ...inputs.map(() => 'read' as const), 'rw'],
    code: () => {
      const decls = inputs
        .map((v, k) => `@group(0) @binding(${k + 1}) var<storage, read> X${k}: array<${wtype(v.dtype)}>;`)
        .join('\n');
      const offs = views.map((_, k) => `var o${k} = pu(${10 + 9 * k}u);`).join(' ');
      const steps = views.map((_, k) => `o${k} += c * pu(${11 + 9 * k}u + du);`).join(' ');
      const contigOffs = views.map((_, k) => `let o${k} = pu(${10 + 9 * k}u) + idx;`).join(' ');
      const loads = inputs.map((_, k) => `let v${k} = X${k}[o${k}];`).join(' ');
      return `${enables(dtypes)}${PARAMS_WGSL}
${decls}
@group(0) @binding(${nv}) var<storage, read_write> Y: array<${wtype(out.dtype)}>;
const SC: u32 = ${sc}u;
${spec.decl ?? ''}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let idx = gidx * ${WG}u + lid;
  if (idx >= pu(0u)) { return; }
  ${
    contig
      ? contigOffs
      : `${offs}
  var rem = idx;
  for (var d = i32(pu(1u)) - 1; d >= 0; d--) {
    let du = u32(d);
    let s = pu(2u + du);
    let c = rem % s;
    rem = rem / s;
    ${steps}
  }`
  }
  let oy = o${nv - 1};
  ${loads}
  ${spec.body}
}`;
    },
  };
  const refs: BufferRef[] = [
    ...inputs.map((v, k) => storageRef(v.storage, op, `input ${k}`)),
    storageRef(out.storage, op, 'out'),
  ];
  rt.dispatch(op, kernel, p, dedupe(rt, op, refs), grid(Math.ceil(n / WG)));
}

/**
 * A read binding of the buffer that is also written in the same dispatch is invalid in WebGPU; copy such
 * inputs to a temporary first (in-place ops).
 */
export function dedupe(rt: Runtime, op: string, refs: BufferRef[]): BufferRef[] {
  const out = refs[refs.length - 1];
  return refs.map((r, i) => {
    if (i === refs.length - 1 || r.pb !== out.pb) return r;
    const tmp = rt.acquire(r.size);
    rt.copyBuffer(r.pb, 0, tmp.buffer, 0, r.size);
    rt.releaseAfterDispatch(tmp);
    void op;
    return { ...r, pb: tmp };
  });
}
