// The cpu backend: typed arrays on the host, strided JS loops for the memory-bound kernels, and a
// WebAssembly SIMD + threads GEMM for matmul. It is also the numerical reference in tests.
// float16 tensors are stored widened in Float32Array and rounded to half precision on every write.

import type { Backend, FusedKernels, MemoryInfo, RandomKind, ReduceOpName, Storage, View } from '../../backend.js';
import { hostArrayFor, type AnyHostArray, type DType } from '../../dtype.js';
import { BINARY, FUSED_BINARY, UNARY, biasActivationOp, type BinaryOpName, type BinaryRow, type UnaryOpName } from '../../elementwise-math.js';
import { IndexError } from '../../errors.js';
import { philoxFill } from '../../random.js';
import { arr, contiguousRows, converter, roundFloat16Output, type CpuStorage } from './common.js';
import { cpuAdamStep } from './kernels/adam.js';
import { cpuDequantizeWeight, cpuQuantizedMatmul } from './kernels/quantized-matmul.js';
import { cpuMatmulTopk } from './kernels/matmul-topk.js';
import { cpuAttention } from './kernels/attention.js';
import { cpuLayerNorm } from './kernels/layer-norm.js';
import { cpuLayerNormBackward } from './kernels/layer-norm-backward.js';
import { cpuSoftmax } from './kernels/softmax.js';
import { cpuSoftmaxBackward } from './kernels/softmax-backward.js';
import { cpuCrossEntropy, cpuCrossEntropyBackward } from './kernels/cross-entropy.js';
import { arrayKinds, binaryLoop, copyLoop, unaryLoop } from './loops.js';
import { matmulKernel, releaseStorage } from './matmul.js';
import { tryAddInPlace, trySimdRow, trySimdUnary } from './simd/eltwise.js';
import { runRowTask } from './simd/rows.js';
import { collapse, forEachRow, offsetsOf } from './strided.js';

export type { CpuStorage } from './common.js';

/**
 * True when the index varies only along `axis` (stride 0 elsewhere, as indexSelect and embedding
 * build it) and both data views are contiguous: then whole slices move at once.
 */
function selectsWholeSlices(index: View, axis: number, data: View, other: View): boolean {
  if (!index.strides.every((st, d) => d === axis || st === 0 || index.shape[d] === 1)) return false;
  const contiguous = (v: View) => {
    let expect = 1;
    for (let d = v.shape.length - 1; d >= 0; d--) {
      if (v.shape[d] !== 1 && v.strides[d] !== expect) return false;
      expect *= v.shape[d];
    }
    return true;
  };
  // the non-axis dims of data and other must agree (gather may read a prefix of x otherwise)
  return contiguous(data) && contiguous(other) && data.shape.every((d, i) => i === axis || d === other.shape[i]);
}

function sliceGeometry(shape: readonly number[], axis: number): { outer: number; inner: number; n: number } {
  let outer = 1;
  let inner = 1;
  for (let d = 0; d < axis; d++) outer *= shape[d];
  for (let d = axis + 1; d < shape.length; d++) inner *= shape[d];
  return { outer, inner, n: shape[axis] };
}

class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  readonly isSoftware = false;
  readonly supportsFloat16 = true;
  readonly maxBindingBytes = 2 ** 31 - 1;
  // the GEMM and the attention kernel take a view's offset and three strides as they are
  readonly readsStridedBatches = true;
  private live = 0;
  private liveBytes = 0;
  /**
   * Freed arrays kept for reuse, by dtype and length: a training step allocates the same shapes every
   * time, and a fresh typed array costs zeroing plus garbage collection of the old one (about a tenth
   * of a small model's step). Capped like the WebGPU buffer pool; `trim()` empties it.
   */
  private pool = new Map<string, AnyHostArray[]>();
  private pooledBytes = 0;
  poolLimitBytes = 256 * 1024 * 1024;
  // Arrays below this size are cheap to allocate and not worth a pool lookup.
  private static readonly POOL_MIN_BYTES = 4096;

  /** The fused kernels, one line each (kernels/*.ts; the GELU and bias rows run on the elementwise loop). */
  readonly fused: FusedKernels = {
    softmax: cpuSoftmax,
    softmaxBackward: cpuSoftmaxBackward,
    crossEntropy: cpuCrossEntropy,
    crossEntropyBackward: cpuCrossEntropyBackward,
    layerNorm: cpuLayerNorm,
    layerNormBackward: cpuLayerNormBackward,
    adamStep: cpuAdamStep,
    attention: cpuAttention,
    quantizedMatmul: cpuQuantizedMatmul,
    dequantizeWeight: cpuDequantizeWeight,
    matmulTopk: (q, blocks, values, indices, k, tileRows) => cpuMatmulTopk(this, q, blocks, values, indices, k, tileRows),
    geluBackward: (g, x, out, approximate) =>
      (approximate !== 'tanh' && trySimdRow('geluBackward', g, x, out)) || this.binaryRow(approximate === 'tanh' ? 'geluTanhBackward' : 'geluBackward', FUSED_BINARY, g, x, out),
    siluBackward: (g, x, out) => trySimdRow('siluBackward', g, x, out) || this.binaryRow('siluBackward', FUSED_BINARY, g, x, out),
    biasActivation: (act, x, bias, out) => (act === 'gelu' && trySimdRow('addGelu', x, bias, out)) || this.binaryRow(biasActivationOp(act), FUSED_BINARY, x, bias, out),
  };

  get adapterInfo(): string {
    return `cpu (${matmulKernel.describe()})`;
  }

  /**
   * Float storages from this size up live in the GEMM's shared wasm memory, where its threads read a
   * weight in place (decision 0015); smaller ones are ordinary typed arrays.
   */
  static readonly SHARED_MIN_BYTES = 256 * 1024;

  alloc(dtype: DType, size: number): CpuStorage {
    const shared = (dtype === 'float32' || dtype === 'float16') && size * 4 >= CpuBackend.SHARED_MIN_BYTES;
    const data = this.takePooled(dtype, size) ?? (shared ? matmulKernel.alloc(size) : null) ?? hostArrayFor(dtype, size);
    this.live++;
    this.liveBytes += data.byteLength;
    return { backend: this, dtype, size, byteLength: data.byteLength, refs: 1, data };
  }

  upload(data: AnyHostArray, dtype: DType): CpuStorage {
    const s = this.alloc(dtype, data.length);
    const conv = converter(dtype);
    if (conv && dtype !== 'int32' && !(dtype === 'bool' && data instanceof Uint8Array)) {
      for (let i = 0; i < data.length; i++) s.data[i] = conv(data[i]);
    } else if (dtype === 'bool') {
      for (let i = 0; i < data.length; i++) s.data[i] = data[i] !== 0 ? 1 : 0;
    } else s.data.set(data);
    return s;
  }

  readSync(view: View): AnyHostArray {
    const out = hostArrayFor(view.dtype, view.shape.reduce((n, d) => n * d, 1));
    const src = arr(view);
    let i = 0;
    forEachRow(view.shape, [view], ([base], n, [s]) => {
      if (s === 1) {
        out.set(src.subarray(base, base + n), i);
        i += n;
      } else for (let j = 0; j < n; j++) out[i++] = src[base + j * s];
    });
    return out;
  }

  async read(view: View): Promise<AnyHostArray> {
    return this.readSync(view);
  }

  free(storage: Storage): void {
    this.live--;
    this.liveBytes -= storage.byteLength;
    const data = (storage as CpuStorage).data;
    (storage as CpuStorage).data = new Float32Array(0);
    if (data.byteLength >= CpuBackend.POOL_MIN_BYTES && this.pooledBytes + data.byteLength <= this.poolLimitBytes) {
      const key = `${storage.dtype}:${data.length}`;
      let list = this.pool.get(key);
      if (!list) this.pool.set(key, (list = []));
      list.push(data);
      this.pooledBytes += data.byteLength;
    } else if (data instanceof Float32Array) releaseStorage(data);
  }

  private takePooled(dtype: DType, size: number): AnyHostArray | null {
    const data = this.pool.get(`${dtype}:${size}`)?.pop();
    if (!data) return null;
    this.pooledBytes -= data.byteLength;
    return data;
  }

  trim(): void {
    for (const list of this.pool.values()) for (const a of list) if (a instanceof Float32Array) releaseStorage(a);
    this.pool.clear();
    this.pooledBytes = 0;
  }

  flush(): void {}
  async sync(): Promise<void> {}

  memory(): MemoryInfo {
    return { storages: this.live, bytes: this.liveBytes, pooledBytes: this.pooledBytes };
  }

  destroy(): void {
    this.trim();
    matmulKernel.dispose();
  }

  fill(out: View, value: number): void {
    const conv = converter(out.dtype);
    const v = conv ? conv(value) : value;
    const o = arr(out);
    forEachRow(out.shape, [out], ([base], n, [s]) => {
      if (s === 1) o.fill(v, base, base + n);
      else for (let j = 0; j < n; j++) o[base + j * s] = v;
    });
  }

  arange(out: View, start: number, step: number): void {
    const o = arr(out);
    const conv = converter(out.dtype);
    const n = out.shape.reduce((a, d) => a * d, 1);
    for (let i = 0; i < n; i++) {
      const v = start + i * step;
      o[out.offset + i] = conv ? conv(v) : v;
    }
  }

  random(out: View, kind: RandomKind, seed: number, offset: number, p0: number, p1: number): void {
    const n = out.shape.reduce((a, d) => a * d, 1);
    const o = arr(out);
    if (out.dtype === 'float32') {
      philoxFill((o as Float32Array).subarray(out.offset, out.offset + n), kind, seed, offset, p0, p1);
      return;
    }
    const tmp = new Float32Array(n);
    philoxFill(tmp, kind, seed, offset, p0, p1);
    const conv = converter(out.dtype);
    for (let i = 0; i < n; i++) o[out.offset + i] = conv ? conv(tmp[i]) : tmp[i];
  }

  copy(src: View, dst: View): void {
    const s = arr(src);
    const d = arr(dst);
    const conv = src.dtype === dst.dtype ? null : converter(dst.dtype);
    if (dst.shape.some((n) => n === 0)) return;
    const c = collapse(dst.shape, [src, dst]);
    const n = c.shape[c.shape.length - 1];
    if (!conv && c.shape.length === 1 && c.strides[0][0] === 1 && c.strides[1][0] === 1) {
      d.set(s.subarray(src.offset, src.offset + n), dst.offset);
      return;
    }
    // a transpose into a contiguous output (src strides [1, S], S >= 0, 4 | rows) in the GEMM's shared memory: in place on both
    // threads (the wasm reads S unsigned: a negative stride would trap in a worker)
    const [rows, srcStride] = [c.shape[0], c.strides[0][1]];
    if (!conv && c.shape.length === 2 && srcStride >= 0 && c.strides[0][0] === 1 && c.strides[1][1] === 1 && c.strides[1][0] === n && rows % 4 === 0 && s instanceof Float32Array && d instanceof Float32Array) {
      const operands = [{ data: s, offset: src.offset, step: 4 }, { data: d, offset: dst.offset, step: 4 * n, out: true }];
      if (runRowTask('transpose4', rows / 4, n, operands, srcStride * 4)) return;
    }
    copyLoop(conv, arrayKinds(s, d))(s, src.offset, c.strides[0], d, dst.offset, c.strides[1], c.shape);
  }

  unary(op: UnaryOpName, x: View, out: View, p0: number, p1: number): void {
    if ((op === 'gelu' || op === 'silu') && trySimdUnary(op, x, out)) return;
    const xs = arr(x);
    const o = arr(out);
    const loop = unaryLoop(op, UNARY[op].cpu, converter(out.dtype), arrayKinds(xs, o));
    forEachRow(out.shape, [x, out], ([bx, bo], n, [sx, so]) => loop(xs, bx, sx, o, bo, so, n, p0, p1));
  }

  binary(op: BinaryOpName, a: View, b: View, out: View): void {
    // the residual add on tensors in the GEMM's shared memory: SIMD rows in place on both threads
    if (op === 'add' && tryAddInPlace(a, b, out)) return;
    this.binaryRow(op, BINARY, a, b, out);
  }

  /** out = table[op](a, b) on the elementwise loop compiled for that row. */
  private binaryRow<K extends string>(op: K, table: Record<K, BinaryRow>, a: View, b: View, out: View): void {
    const as = arr(a);
    const bs = arr(b);
    const o = arr(out);
    const loop = binaryLoop(op, table[op].cpu, converter(out.dtype), arrayKinds(as, bs, o));
    forEachRow(out.shape, [a, b, out], ([ba, bb, bo], n, [sa, sb, so]) => loop(as, ba, sa, bs, bb, sb, o, bo, so, n));
  }

  where(cond: View, a: View, b: View, out: View): void {
    const cs = arr(cond);
    const as = arr(a);
    const bs = arr(b);
    const o = arr(out);
    const conv = converter(out.dtype);
    forEachRow(out.shape, [cond, a, b, out], ([bc, ba, bb, bo], n, [sc, sa, sb, so]) => {
      for (let j = 0; j < n; j++) {
        const v = cs[bc + j * sc] !== 0 ? as[ba + j * sa] : bs[bb + j * sb];
        o[bo + j * so] = conv ? conv(v) : v;
      }
    });
  }

  reduce(op: ReduceOpName, x: View, out: View): void {
    const { rows, inner, base } = contiguousRows(x);
    const xs = arr(x);
    const o = arr(out);
    const conv = converter(out.dtype);
    for (let r = 0; r < rows; r++) {
      const start = base + r * inner;
      let acc: number;
      switch (op) {
        case 'sum': {
          acc = 0;
          for (let j = 0; j < inner; j++) acc += xs[start + j];
          break;
        }
        case 'prod': {
          acc = 1;
          for (let j = 0; j < inner; j++) acc *= xs[start + j];
          break;
        }
        case 'max':
        case 'min': {
          acc = xs[start];
          const isMax = op === 'max';
          for (let j = 1; j < inner && !Number.isNaN(acc); j++) {
            const v = xs[start + j];
            if (Number.isNaN(v) || (isMax ? v > acc : v < acc)) acc = v;
          }
          break;
        }
        case 'argmax':
        case 'argmin': {
          let best = xs[start];
          let bi = 0;
          const isMax = op === 'argmax';
          for (let j = 1; j < inner && !Number.isNaN(best); j++) {
            const v = xs[start + j];
            if (Number.isNaN(v) || (isMax ? v > best : v < best)) {
              best = v;
              bi = j;
            }
          }
          acc = bi;
          break;
        }
      }
      o[out.offset + r] = conv ? conv(acc) : acc;
    }
  }

  matmul(a: View, b: View, out: View): void {
    matmulKernel.run(a, arr(a) as Float32Array, b, arr(b) as Float32Array, arr(out) as Float32Array, out.offset);
    roundFloat16Output(out);
  }

  gather(x: View, index: View, axis: number, out: View, opName: string): void {
    const xs = arr(x);
    const idx = arr(index);
    const o = arr(out);
    const size = x.shape[axis];
    if (selectsWholeSlices(index, axis, x, out)) {
      // indexSelect / embedding: copy contiguous runs of `inner` elements.
      const { outer, inner, n } = sliceGeometry(out.shape, axis);
      const xn = x.shape[axis];
      for (let j = 0; j < n; j++) {
        const k = idx[index.offset + j * index.strides[axis]];
        if (k < 0 || k >= size) throw new IndexError(`${opName}: index ${k} is out of range for dimension ${axis} of size ${size}`);
      }
      for (let a = 0; a < outer; a++) {
        for (let j = 0; j < n; j++) {
          const k = idx[index.offset + j * index.strides[axis]];
          const src = x.offset + (a * xn + k) * inner;
          o.set(xs.subarray(src, src + inner), out.offset + (a * n + j) * inner);
        }
      }
      return;
    }
    const idxOffsets = offsetsOf(out.shape, index);
    // Walk out in row-major order; track the coordinate along `axis` to swap in the index.
    const shape = out.shape;
    const rank = shape.length;
    const coord = new Array<number>(rank).fill(0);
    const n = idxOffsets.length;
    let xBase = x.offset;
    for (let i = 0; i < n; i++) {
      const k = idx[idxOffsets[i]];
      if (k < 0 || k >= size) throw new IndexError(`${opName}: index ${k} is out of range for dimension ${axis} of size ${size}`);
      o[out.offset + i] = xs[xBase - coord[axis] * x.strides[axis] + k * x.strides[axis]];
      for (let d = rank - 1; d >= 0; d--) {
        coord[d]++;
        xBase += x.strides[d];
        if (coord[d] < shape[d]) break;
        xBase -= x.strides[d] * shape[d];
        coord[d] = 0;
      }
    }
  }

  scatterAdd(out: View, index: View, src: View, axis: number, opName: string): void {
    const o = arr(out);
    const idx = arr(index);
    const ss = arr(src);
    const size = out.shape[axis];
    if (out.dtype === 'float32' && selectsWholeSlices(index, axis, out, src)) {
      // embedding backward: add contiguous runs of `inner` elements.
      const { outer, inner, n } = sliceGeometry(src.shape, axis);
      for (let j = 0; j < n; j++) {
        const k = idx[index.offset + j * index.strides[axis]];
        if (k < 0 || k >= size) throw new IndexError(`${opName}: index ${k} is out of range for dimension ${axis} of size ${size}`);
      }
      for (let a = 0; a < outer; a++) {
        for (let j = 0; j < n; j++) {
          const k = idx[index.offset + j * index.strides[axis]];
          const d = out.offset + (a * size + k) * inner;
          const sBase = src.offset + (a * n + j) * inner;
          for (let i = 0; i < inner; i++) o[d + i] += ss[sBase + i];
        }
      }
      return;
    }
    const shape = index.shape;
    const rank = shape.length;
    const idxOffsets = offsetsOf(shape, index);
    const srcOffsets = offsetsOf(shape, src);
    const coord = new Array<number>(rank).fill(0);
    let oBase = out.offset;
    const conv = converter(out.dtype);
    for (let i = 0; i < idxOffsets.length; i++) {
      const k = idx[idxOffsets[i]];
      if (k < 0 || k >= size) throw new IndexError(`${opName}: index ${k} is out of range for dimension ${axis} of size ${size}`);
      const at = oBase - coord[axis] * out.strides[axis] + k * out.strides[axis];
      const v = o[at] + ss[srcOffsets[i]];
      o[at] = conv ? conv(v) : v;
      for (let d = rank - 1; d >= 0; d--) {
        coord[d]++;
        oBase += out.strides[d];
        if (coord[d] < shape[d]) break;
        oBase -= out.strides[d] * shape[d];
        coord[d] = 0;
      }
    }
  }

  cumsum(x: View, out: View): void {
    const [outer, n, inner] = x.shape;
    const xs = arr(x);
    const o = arr(out);
    const conv = converter(out.dtype);
    for (let a = 0; a < outer; a++) {
      for (let c = 0; c < inner; c++) {
        let acc = 0;
        for (let j = 0; j < n; j++) {
          const at = a * n * inner + j * inner + c;
          acc += xs[x.offset + at];
          o[out.offset + at] = conv ? conv(acc) : acc;
        }
      }
    }
  }

  sort(x: View, values: View, indices: View, descending: boolean): void {
    const { rows, inner, base } = contiguousRows(x);
    const xs = arr(x);
    const vs = arr(values);
    const is = arr(indices);
    const order = new Array<number>(inner);
    for (let r = 0; r < rows; r++) {
      const s = base + r * inner;
      for (let j = 0; j < inner; j++) order[j] = j;
      // NaN sorts last ascending and first descending, as in PyTorch; Array.prototype.sort is stable.
      order.sort((i, j) => {
        const a = xs[s + i];
        const b = xs[s + j];
        const an = Number.isNaN(a);
        const bn = Number.isNaN(b);
        if (an || bn) return an === bn ? 0 : (an ? 1 : -1) * (descending ? -1 : 1);
        return descending ? b - a : a - b;
      });
      for (let j = 0; j < inner; j++) {
        vs[values.offset + r * inner + j] = xs[s + order[j]];
        is[indices.offset + r * inner + j] = order[j];
      }
    }
  }
}

export type { CpuBackend };

export function createCpuBackend(): Backend {
  return new CpuBackend();
}
