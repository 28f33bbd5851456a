// reduce: sum/prod/max/min/argmax/argmin over the last dim of a contiguous [outer, inner] view.
// Tiling: rows of <= 32 elements use one thread per row (no barriers: SwiftShader barriers are slow);
// longer rows use one workgroup per row (64 threads, 256 from 2048 elements) with a strided per-thread
// pass and one workgroup reduction (subgroup shuffles where the device has them, workgroup-reduce.ts). Very long rows with few of them (inner > 65536, outer < 64) are split
// into chunks reduced in parallel into partial (value, index) pairs, then reduced again.
// Semantics: int32/bool inputs accumulate in i32 (exact), floats in f32. max/min propagate NaN;
// argmax/argmin treat NaN as the extreme (PyTorch) and return the FIRST index on ties.

import type { ReduceOpName, View } from '../../../backend.js';
import type { DType } from '../../../dtype.js';
import { Params, storageRef, type BufferRef, type Runtime } from '../runtime.js';
import { GROUP_ID_WGSL, MAIN_ARGS, PARAMS_WGSL, convert, enables, grid, prod, wtype } from './common.js';
import { WGSL_MATH } from './wgsl-math.js';
import { enableSubgroups, subgroupArgs, workgroupReduce, type SubgroupMode } from './workgroup-reduce.js';

type Acc = 'f32' | 'i32';

function combineWgsl(op: ReduceOpName, acc: Acc): string {
  const nanA = acc === 'f32' ? 'is_nan_f32(a.v)' : 'false';
  const nanB = acc === 'f32' ? 'is_nan_f32(b.v)' : 'false';
  switch (op) {
    case 'sum':
      return 'return Acc(a.v + b.v, 0);';
    case 'prod':
      return 'return Acc(a.v * b.v, 0);';
    case 'max':
      return `if (${nanA}) { return a; } if (${nanB}) { return b; } return Acc(max(a.v, b.v), 0);`;
    case 'min':
      return `if (${nanA}) { return a; } if (${nanB}) { return b; } return Acc(min(a.v, b.v), 0);`;
    case 'argmax':
    case 'argmin': {
      const cmp = op === 'argmax' ? '>' : '<';
      return `let na = ${nanA}; let nb = ${nanB};
  var takeB = false;
  if (na || nb) { takeB = (nb && !na) || (na && nb && b.i < a.i); }
  else { takeB = (b.v ${cmp} a.v) || (b.v == a.v && b.i < a.i); }
  if (takeB) { return b; }
  return a;`;
    }
  }
}

function identity(op: ReduceOpName, acc: Acc): string {
  const big = acc === 'f32' ? 'inf_f32()' : '2147483647i';
  const small = acc === 'f32' ? '-inf_f32()' : '(-2147483647i - 1i)';
  const v = op === 'sum' ? `${acc}(0)` : op === 'prod' ? `${acc}(1)` : op === 'max' || op === 'argmax' ? small : big;
  return `Acc(${v}, 2147483647i)`;
}

interface Stage {
  inDtype: DType;
  hasIdx: boolean;
  /** Final stage writes out (value in outDtype or index); partial stage writes (acc value, index). */
  final: boolean;
  outDtype: DType;
  rowMode: boolean;
  wg: number;
}

/** Whether a workgroup stage reduces with subgroup shuffles (row mode has no workgroup reduction). */
const subOf = (rt: Runtime, s: Stage): SubgroupMode => !s.rowMode && rt.subgroups;

function code(op: ReduceOpName, acc: Acc, s: Stage, sub: SubgroupMode): string {
  const isArg = op === 'argmax' || op === 'argmin';
  const red = workgroupReduce({ name: 'rowAcc', type: 'Acc', fields: ['v', 'i'], combine: 'combine(a, b)', identity: identity(op, acc), wg: s.wg, subgroups: sub });
  const yvType = s.final ? wtype(s.outDtype) : acc;
  const write = s.final
    ? isArg
      ? 'YI[pu(5u) + k] = r.i;'
      : `YV[pu(5u) + k] = ${convert(acc === 'f32' ? 'float32' : 'int32', s.outDtype, 'r.v')};`
    : 'YV[k] = r.v; YI[k] = r.i;';
  const load = `fn load(row: u32, j: u32) -> Acc {
  let o = pu(2u) + row * pu(1u) + j;
  return Acc(${acc}(X[o]), ${s.hasIdx ? 'XI[row * pu(1u) + j]' : 'i32(j)'});
}`;
  const head = `${enableSubgroups(sub)}${enables([s.inDtype, s.outDtype])}${PARAMS_WGSL}${WGSL_MATH}
@group(0) @binding(1) var<storage, read> X: array<${wtype(s.inDtype)}>;
@group(0) @binding(2) var<storage, read> XI: array<i32>;
@group(0) @binding(3) var<storage, read_write> YV: array<${yvType}>;
@group(0) @binding(4) var<storage, read_write> YI: array<i32>;
struct Acc { v: ${acc}, i: i32 }
fn combine(a: Acc, b: Acc) -> Acc {
  ${combineWgsl(op, acc)}
}
${load}
`;
  // params: [0] outer [1] inner [2] xOffset [3] chunkLen [4] nChunks [5] outOffset
  if (s.rowMode) {
    return `${head}
@compute @workgroup_size(${s.wg})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let k = gidx * ${s.wg}u + lid;
  if (k >= pu(0u)) { return; }
  var r = ${identity(op, acc)};
  for (var j = 0u; j < pu(1u); j++) { r = combine(r, load(k, j)); }
  ${write}
}`;
  }
  return `${head}
${red.decl}
@compute @workgroup_size(${s.wg})
fn main(${MAIN_ARGS}${subgroupArgs(sub)}) {
  ${GROUP_ID_WGSL}
  let nChunks = pu(4u);
  let row = gidx / nChunks;
  let chunk = gidx % nChunks;
  if (row >= pu(0u)) { return; }
  let start = chunk * pu(3u);
  let end = min(pu(1u), start + pu(3u));
  var acc = ${identity(op, acc)};
  for (var j = start + lid; j < end; j += ${s.wg}u) { acc = combine(acc, load(row, j)); }
  let r = ${red.call('acc')};
  if (lid == 0u) {
    let k = gidx;
    ${write}
  }
}`;
}

function dispatchStage(
  rt: Runtime,
  op: ReduceOpName,
  acc: Acc,
  s: Stage,
  outer: number,
  inner: number,
  xOffset: number,
  chunkLen: number,
  nChunks: number,
  outOffset: number,
  bufs: BufferRef[],
): void {
  const p = new Params().pushU(outer).pushU(inner).pushU(xOffset).pushU(chunkLen).pushU(nChunks).pushU(outOffset);
  const sub = subOf(rt, s);
  const key = `reduce:${op}:${acc}:${s.inDtype}:${s.outDtype}:${s.hasIdx}:${s.final}:${s.rowMode}:${s.wg}:${sub}`;
  const groups = s.rowMode ? Math.ceil(outer / s.wg) : outer * nChunks;
  rt.dispatch(op, { key, bindings: ['uniform', 'read', 'read', 'rw', 'rw'], code: () => code(op, acc, s, sub) }, p, bufs, grid(groups));
}

export function runReduce(rt: Runtime, op: ReduceOpName, x: View, out: View): void {
  const inner = x.shape[x.shape.length - 1] ?? 1;
  const outer = prod(out.shape);
  if (outer === 0) return;
  const acc: Acc = x.dtype === 'int32' || x.dtype === 'bool' ? 'i32' : 'f32';
  const isArg = op === 'argmax' || op === 'argmin';
  const xr = storageRef(x.storage, op, 'x');
  const outr = storageRef(out.storage, op, 'out');
  const dummy: BufferRef = { pb: rt.dummy, size: 16 };
  const dummyRw: BufferRef = { pb: rt.dummyRw, size: 16 };
  const finalBufs = (xin: BufferRef, idx: BufferRef): BufferRef[] =>
    isArg ? [xin, idx, dummyRw, outr] : [xin, idx, outr, dummyRw];

  if (inner <= 32) {
    const s: Stage = { inDtype: x.dtype, hasIdx: false, final: true, outDtype: out.dtype, rowMode: true, wg: 64 };
    dispatchStage(rt, op, acc, s, outer, inner, x.offset, inner, 1, out.offset, finalBufs(xr, dummy));
    return;
  }
  const wg = inner >= 2048 ? 256 : 64;
  if (inner > 65536 && outer < 64) {
    const nChunks = Math.min(1024, Math.ceil(inner / 16384));
    const chunkLen = Math.ceil(inner / nChunks);
    const pv = rt.acquire(outer * nChunks * 4);
    const pi = rt.acquire(outer * nChunks * 4);
    const pvr: BufferRef = { pb: pv, size: outer * nChunks * 4 };
    const pir: BufferRef = { pb: pi, size: outer * nChunks * 4 };
    const s1: Stage = { inDtype: x.dtype, hasIdx: false, final: false, outDtype: x.dtype, rowMode: false, wg: 256 };
    dispatchStage(rt, op, acc, s1, outer, inner, x.offset, chunkLen, nChunks, 0, [xr, dummy, pvr, pir]);
    const accDtype: DType = acc === 'f32' ? 'float32' : 'int32';
    const s2: Stage = { inDtype: accDtype, hasIdx: true, final: true, outDtype: out.dtype, rowMode: false, wg: nChunks >= 256 ? 256 : 64 };
    dispatchStage(rt, op, acc, s2, outer, nChunks, 0, nChunks, 1, out.offset, finalBufs(pvr, pir));
    rt.release(pv);
    rt.release(pi);
    return;
  }
  const s: Stage = { inDtype: x.dtype, hasIdx: false, final: true, outDtype: out.dtype, rowMode: false, wg };
  dispatchStage(rt, op, acc, s, outer, inner, x.offset, inner, 1, out.offset, finalBufs(xr, dummy));
}
