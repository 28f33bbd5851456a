// cumsum: inclusive cumulative sum along the middle dim of contiguous [outer, n, inner].
// Threading: one thread per (outer, chunk, inner) column scans its chunk sequentially (no barriers,
// coalesced across inner). Short scans (n <= 1024) or wide ones (outer * inner >= 4096) use one chunk.
// Otherwise chunks of 256: pass 1 scans each chunk and writes its total, the totals are scanned
// recursively, pass 3 adds the preceding chunks' total to every element. int32/bool accumulate in i32.

import type { View } from '../../../backend.js';
import type { DType } from '../../../dtype.js';
import { Params, storageRef, tempStorage, type BufferRef, type Runtime } from '../runtime.js';
import { GROUP_ID_WGSL, MAIN_ARGS, PARAMS_WGSL, WG, convert, enables, grid, prod, wtype } from './common.js';

const CHUNK = 256;

export function runCumsum(rt: Runtime, x: View, out: View): void {
  const [outer, n, inner] = x.shape.length === 3 ? x.shape : [1, x.shape[0] ?? 1, 1];
  if (prod(x.shape) === 0) return;
  const acc: DType = x.dtype === 'int32' || x.dtype === 'bool' ? 'int32' : 'float32';
  const chunked = n > 1024 && outer * inner < 4096;
  const nChunks = chunked ? Math.ceil(n / CHUNK) : 1;
  const chunkLen = chunked ? CHUNK : n;
  const totals = chunked ? tempStorage(rt, acc, outer * nChunks * inner) : null;
  const wa = wtype(acc);
  // params: [0] outer [1] n [2] inner [3] xOff [4] yOff [5] chunkLen [6] nChunks
  const p = new Params().pushU(outer).pushU(n).pushU(inner).pushU(x.offset).pushU(out.offset).pushU(chunkLen).pushU(nChunks);
  const scanCode = (): string => `${enables([x.dtype, out.dtype])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> X: array<${wtype(x.dtype)}>;
@group(0) @binding(2) var<storage, read_write> Y: array<${wtype(out.dtype)}>;
@group(0) @binding(3) var<storage, read_write> T: array<${wa}>;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let t = gidx * ${WG}u + lid;
  let inner = pu(2u); let nChunks = pu(6u);
  if (t >= pu(0u) * nChunks * inner) { return; }
  let i = t % inner;
  let rest = t / inner;
  let chunk = rest % nChunks;
  let o = rest / nChunks;
  let n = pu(1u);
  let j0 = chunk * pu(5u);
  let j1 = min(n, j0 + pu(5u));
  var s = ${wa}(0);
  for (var j = j0; j < j1; j++) {
    let e = (o * n + j) * inner + i;
    s += ${convert(x.dtype, acc, 'X[pu(3u) + e]')};
    Y[pu(4u) + e] = ${convert(acc, out.dtype, 's')};
  }
  ${chunked ? 'T[(o * nChunks + chunk) * inner + i] = s;' : ''}
}`;
  const key = `cumsum-scan:${x.dtype}:${out.dtype}:${chunked}`;
  const outRef = storageRef(out.storage, 'cumsum', 'out');
  const tRef: BufferRef = totals ? storageRef(totals, 'cumsum', 'totals') : { pb: rt.dummyRw, size: 16 };
  rt.dispatch(
    'cumsum',
    { key, bindings: ['uniform', 'read', 'rw', 'rw'], code: scanCode },
    p,
    [storageRef(x.storage, 'cumsum', 'x'), outRef, tRef],
    grid(Math.ceil((outer * nChunks * inner) / WG)),
  );
  if (!totals) return;
  const scanned = tempStorage(rt, acc, outer * nChunks * inner);
  const tShape = [outer, nChunks, inner];
  const tStrides = [nChunks * inner, inner, 1];
  runCumsum(
    rt,
    { storage: totals, dtype: acc, shape: tShape, strides: tStrides, offset: 0 },
    { storage: scanned, dtype: acc, shape: tShape, strides: tStrides, offset: 0 },
  );
  const addCode = (): string => `${enables([out.dtype])}${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> T: array<${wa}>;
@group(0) @binding(2) var<storage, read_write> Y: array<${wtype(out.dtype)}>;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_ID_WGSL}
  let e = gidx * ${WG}u + lid;
  let n = pu(1u); let inner = pu(2u); let nChunks = pu(6u);
  if (e >= pu(0u) * n * inner) { return; }
  let i = e % inner;
  let j = (e / inner) % n;
  let o = e / (inner * n);
  let chunk = j / pu(5u);
  if (chunk == 0u) { return; }
  let add = T[(o * nChunks + chunk - 1u) * inner + i];
  let y = pu(4u) + e;
  Y[y] = ${convert(acc, out.dtype, `${convert(out.dtype, acc, 'Y[y]')} + add`)};
}`;
  rt.dispatch(
    'cumsum',
    { key: `cumsum-add:${acc}:${out.dtype}`, bindings: ['uniform', 'read', 'rw'], code: addCode },
    p,
    [storageRef(scanned, 'cumsum', 'totals'), outRef],
    grid(Math.ceil((outer * n * inner) / WG)),
  );
  rt.release(totals.buf);
  rt.release(scanned.buf);
}
