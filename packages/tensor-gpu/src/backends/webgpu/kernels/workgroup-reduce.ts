// A workgroup-wide reduction for the row kernels (softmax and its backward, layer/RMS norm and its
// backward, the reductions, the fused cross-entropy, the quantized GEMV): every thread passes its partial
// value and gets the whole workgroup's combination back.
// - Without subgroups: a shared-memory tree, log2(wg) + 1 barriers.
// - With subgroups (the adapter's `subgroups` feature, `Runtime.subgroups`): a butterfly of
//   subgroupShuffleXor inside each subgroup, one shared slot per subgroup, then every subgroup combines
//   the slots with the same butterfly: one barrier. This is how GPU inference engines reduce rows
//   (WebLLM/TVM, ONNX Runtime's WebGPU EP): barriers and shared-memory round trips are what a row
//   reduction costs on hardware.
// Both apply the same `combine` to the same values, so NaN and -inf handling are the kernel's own; only
// the order of combination differs (float sums may differ in the last bits). In the butterfly both
// partners evaluate combine(lower lane, upper lane), so every lane ends with bitwise the same value even
// for a combine that is commutative only up to rounding (Welford's merge).
// A subgroup's slot is its `subgroup_id` where the WGSL language feature `subgroup_id` exists ('ids');
// elsewhere ('linear') it is lid / subgroup_size, the layout every driver we know gives a 1-D workgroup
// and what the engines above assume. A lane whose butterfly partner lies beyond the workgroup (a
// subgroup wider than the workgroup) skips it.

import { GROUP_ID_WGSL, MAIN_ARGS } from './common.js';

/** How a shader reduces: no subgroups, or subgroups with slots from `subgroup_id` or from lid / size. */
export type SubgroupMode = false | 'ids' | 'linear';

export interface ReduceSpec {
  /** Prefix of the generated names (one per reduction in a shader). */
  name: string;
  /** WGSL type of the value: 'f32', 'i32' or a struct name. */
  type: string;
  /** The struct's fields (each f32, i32 or u32), to shuffle field by field; omit for a scalar. */
  fields?: readonly string[];
  /** WGSL expression combining `a` and `b` (both of `type`): associative and commutative. */
  combine: string;
  /** WGSL expression of the identity of `combine`. */
  identity: string;
  /** Workgroup size (a power of two: the kernels' 1-D workgroups). */
  wg: number;
  /** Whether (and how) the shader uses subgroups: `enableSubgroups` and `subgroupArgs` with the same mode. */
  subgroups: SubgroupMode;
  /** Called more than once per invocation (e.g. once per row): adds a barrier before returning. */
  repeated?: boolean;
}

export interface WorkgroupReduce {
  /** Module-scope WGSL: the shared array and the functions. */
  decl: string;
  /** The call expression for `value`; every thread of the workgroup must reach it (uniform control flow). */
  call(value: string): string;
}

/** The directives a subgroup reduction needs (before every other declaration). */
export function enableSubgroups(mode: SubgroupMode): string {
  return mode === 'ids' ? 'enable subgroups;\nrequires subgroup_id;\n' : mode ? 'enable subgroups;\n' : '';
}

/** Extra `main` parameters a subgroup reduction needs (after MAIN_ARGS). */
export function subgroupArgs(mode: SubgroupMode): string {
  const lane = ', @builtin(subgroup_invocation_id) sgl: u32, @builtin(subgroup_size) sgs: u32';
  return mode === 'ids' ? `${lane}, @builtin(subgroup_id) sgid: u32, @builtin(num_subgroups) nsg: u32` : mode ? lane : '';
}

/**
 * The entry point of a workgroup-per-row kernel (GROUP_ID_WGSL and MAIN_ARGS from common.ts, plus the
 * subgroup builtins for `mode`): `row` is the workgroup's row, and workgroups past the last row (params
 * word 0) return before any barrier.
 */
export function rowMain(wg: number, mode: SubgroupMode): string {
  return `@compute @workgroup_size(${wg})
fn main(${MAIN_ARGS}${subgroupArgs(mode)}) {
  ${GROUP_ID_WGSL}
  let row = gidx;
  if (row >= pu(0u)) { return; }`;
}

export function workgroupReduce(s: ReduceSpec): WorkgroupReduce {
  const { name, type, wg } = s;
  if (wg < 1 || (wg & (wg - 1)) !== 0) throw new RangeError(`workgroupReduce ${name}: workgroup size ${wg} is not a power of two`);
  const op = `fn ${name}_op(a: ${type}, b: ${type}) -> ${type} { return ${s.combine}; }`;
  const tail = s.repeated ? '\n  workgroupBarrier();' : '';
  if (!s.subgroups) {
    return {
      decl: `${op}
var<workgroup> ${name}_sh: array<${type}, ${wg}>;
fn ${name}(v: ${type}, lid: u32) -> ${type} {
  ${name}_sh[lid] = v;
  workgroupBarrier();
  for (var h = ${wg / 2}u; h > 0u; h = h >> 1u) {
    if (lid < h) { ${name}_sh[lid] = ${name}_op(${name}_sh[lid], ${name}_sh[lid + h]); }
    workgroupBarrier();
  }
  let r = ${name}_sh[0];${tail}
  return r;
}`,
      call: (value) => `${name}(${value}, lid)`,
    };
  }
  const shuffle = s.fields?.length
    ? `${type}(${s.fields.map((f) => `subgroupShuffleXor(v.${f}, o)`).join(', ')})`
    : 'subgroupShuffleXor(v, o)';
  // Subgroups are at least 4 lanes wide (WebGPU's subgroupMinSize), so wg / 4 slots cover every subgroup.
  const slots = Math.max(1, wg / 4);
  const where = s.subgroups === 'ids' ? 'sgid, nsg' : `lid / sgs, (${wg}u + sgs - 1u) / sgs`;
  return {
    decl: `${op}
var<workgroup> ${name}_sh: array<${type}, ${slots}>;
fn ${name}_lanes(v0: ${type}, sgl: u32, sgs: u32) -> ${type} {
  var v = v0;
  for (var o = sgs >> 1u; o > 0u; o = o >> 1u) {
    let w = ${shuffle};
    // both partners combine (lower lane, upper lane): the same bits in both
    if ((sgl ^ o) < ${wg}u) {
      if ((sgl & o) == 0u) { v = ${name}_op(v, w); } else { v = ${name}_op(w, v); }
    }
  }
  return v;
}
fn ${name}(v: ${type}, sgl: u32, sgs: u32, slot: u32, count: u32) -> ${type} {
  let part = ${name}_lanes(v, sgl, sgs);
  if (sgl == 0u) { ${name}_sh[slot] = part; }
  workgroupBarrier();
  var acc = ${s.identity};
  for (var i = sgl; i < count; i += sgs) { acc = ${name}_op(acc, ${name}_sh[i]); }
  let r = ${name}_lanes(acc, sgl, sgs);${tail}
  return r;
}`,
    call: (value) => `${name}(${value}, sgl, sgs, ${where})`,
  };
}
