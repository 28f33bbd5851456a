// quantizedMatmul: out[r, n] = scale[n] * sum_c x[r, c] * q[n, c] with q int8 or packed int4 rows in
// int32 words (layout: ops/quantized-matmul.ts), dequantized in registers (shift the byte / nibble to
// the top of an i32, arithmetic-shift it back), float32 accumulation. One workgroup of 64 threads per
// output feature: the threads walk the row's words with stride 64 (consecutive threads, consecutive
// words: coalesced reads of the weight, which is what decoding is bound by) and merge their partial sums
// in one workgroup reduction (subgroup shuffles where the device has them, workgroup-reduce.ts), once per
// row of x. A weight larger than one storage binding is bound in
// windows of whole rows (offsets aligned to 256 bytes), one dispatch per window.
// dequantizeWeight: one thread per element of the float32 [out, in] result.
// Measured: correctness only (SwiftShader); decode throughput on hardware is the bench's job.

import type { View } from '../../../backend.js';
import { Params, storageRef, type GPUStorage, type Runtime } from '../runtime.js';
import { enableSubgroups, subgroupArgs, workgroupReduce } from './workgroup-reduce.js';
import { GROUP_ID_WGSL, MAIN_ARGS, PARAMS_WGSL, assertU32, grid } from './common.js';

const WGQ = 64;
const OFFSET_ALIGN = 256;

/** q of column j (0-3 for int8, 0-7 for int4, 0-1 for float16) of a word, as f32 (two's complement, sign-extended; float16 widened). */
const DECODE_WGSL = /* wgsl */ `
fn q8(w: i32, j: u32) -> f32 { return f32((w << (24u - 8u * j)) >> 24u); }
fn q4(w: i32, j: u32) -> f32 {
  let sh = 8u * (j >> 1u) + select(0u, 4u, (j & 1u) == 0u);
  return f32((w << (28u - sh)) >> 28u);
}
fn q16(w: i32, j: u32) -> f32 { return unpack2x16float(bitcast<u32>(w))[j]; }
`;

export function runQuantizedMatmul(rt: Runtime, x: View, weight: View, scale: View, out: View, bits: 4 | 8 | 16, inFeatures: number, windowBytes = rt.maxBindingBytes): void {
  const rows = x.shape[0];
  const outFeatures = weight.shape[0];
  const rowWords = weight.shape[1];
  if (rows === 0 || outFeatures === 0) return;
  assertU32('quantizedMatmul', rows * inFeatures, 'x size');
  assertU32('quantizedMatmul', rows * outFeatures, 'out size');
  const perWord = bits === 16 ? 2 : bits === 8 ? 4 : 8;
  const sub = rt.subgroups;
  const red = workgroupReduce({ name: 'dotSum', type: 'f32', combine: 'a + b', identity: '0.0', wg: WGQ, subgroups: sub, repeated: true });
  const code = (): string => `${enableSubgroups(sub)}${PARAMS_WGSL}${DECODE_WGSL}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<i32>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
${red.decl}
@compute @workgroup_size(${WGQ})
fn main(${MAIN_ARGS}${subgroupArgs(sub)}) {
  ${GROUP_ID_WGSL}
  let n = gidx;
  if (n >= pu(1u)) { return; }
  let rows = pu(0u);
  let inF = pu(2u);
  let rw = pu(3u);
  let wb = pu(5u) + n * rw;
  let sc = S[pu(6u) + pu(9u) + n];
  for (var r = 0u; r < rows; r++) {
    let xb = pu(4u) + r * inF;
    var acc = 0.0;
    for (var k = lid; k < rw; k += ${WGQ}u) {
      let word = W[wb + k];
      let c0 = k * ${perWord}u;
      if (c0 + ${perWord}u <= inF) {
        for (var j = 0u; j < ${perWord}u; j++) { acc += X[xb + c0 + j] * q${bits}(word, j); }
      } else {
        for (var j = 0u; c0 + j < inF; j++) { acc += X[xb + c0 + j] * q${bits}(word, j); }
      }
    }
    let dot = ${red.call('acc')};
    if (lid == 0u) { Y[pu(7u) + r * pu(8u) + pu(9u) + n] = dot * sc; }
  }
}`;
  const spec = { key: `qmm:${bits}:${sub}`, bindings: ['uniform', 'read', 'read', 'read', 'rw'] as const, code };
  const xRef = storageRef(x.storage, 'quantizedMatmul', 'x');
  const sRef = storageRef(scale.storage, 'quantizedMatmul', 'scale');
  const yRef = storageRef(out.storage, 'quantizedMatmul', 'out');
  const wRef = storageRef(weight.storage, 'quantizedMatmul', 'weight');
  const rowBytes = rowWords * 4;
  // Whole rows per window, leaving room for the alignment slack at its start.
  const rowsPerWindow = wRef.size <= windowBytes ? outFeatures : Math.floor((windowBytes - OFFSET_ALIGN) / rowBytes);
  if (rowsPerWindow < 1) throw new RangeError(`quantizedMatmul: one weight row (${rowBytes} bytes) does not fit a storage binding of ${windowBytes} bytes`);
  const bufferBytes = (weight.storage as GPUStorage).buf.bytes;
  for (let n0 = 0; n0 < outFeatures; n0 += rowsPerWindow) {
    const count = Math.min(rowsPerWindow, outFeatures - n0);
    const firstWord = weight.offset + n0 * rowWords;
    const windowStart = rowsPerWindow === outFeatures ? 0 : Math.floor((firstWord * 4) / OFFSET_ALIGN) * OFFSET_ALIGN;
    const wOffset = firstWord - windowStart / 4;
    const size = rowsPerWindow === outFeatures ? wRef.size : Math.min(bufferBytes - windowStart, (wOffset + count * rowWords) * 4);
    // params: [0] rows [1] count [2] in [3] rowWords [4] x offset [5] weight offset in the window
    //         [6] scale offset [7] out offset [8] out row stride [9] first output feature of the window
    const p = new Params().pushU(rows).pushU(count).pushU(inFeatures).pushU(rowWords).pushU(x.offset).pushU(wOffset).pushU(scale.offset).pushU(out.offset).pushU(outFeatures).pushU(n0);
    rt.dispatch('quantizedMatmul', spec, p, [xRef, { ...wRef, offset: windowStart, size }, sRef, yRef], grid(count));
  }
}

export function runDequantizeWeight(rt: Runtime, weight: View, scale: View, out: View, bits: 4 | 8 | 16, inFeatures: number): void {
  const outFeatures = weight.shape[0];
  const n = outFeatures * inFeatures;
  if (n === 0) return;
  assertU32('dequantizeWeight', n, 'size');
  const perWord = bits === 16 ? 2 : bits === 8 ? 4 : 8;
  const code = (): string => `${PARAMS_WGSL}${DECODE_WGSL}
@group(0) @binding(1) var<storage, read> W: array<i32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(256)
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let i = gidx * 256u + lid;
  if (i >= pu(0u)) { return; }
  let inF = pu(1u);
  let row = i / inF;
  let c = i % inF;
  let word = W[pu(3u) + row * pu(2u) + c / ${perWord}u];
  Y[pu(5u) + i] = q${bits}(word, c % ${perWord}u) * S[pu(4u) + row];
}`;
  // params: [0] n [1] in [2] rowWords [3] weight offset [4] scale offset [5] out offset
  const p = new Params().pushU(n).pushU(inFeatures).pushU(weight.shape[1]).pushU(weight.offset).pushU(scale.offset).pushU(out.offset);
  rt.dispatch(
    'dequantizeWeight',
    { key: `dequant:${bits}`, bindings: ['uniform', 'read', 'read', 'rw'], code },
    p,
    [storageRef(weight.storage, 'dequantizeWeight', 'weight'), storageRef(scale.storage, 'dequantizeWeight', 'scale'), storageRef(out.storage, 'dequantizeWeight', 'out')],
    grid(Math.ceil(n / 256)),
  );
}
