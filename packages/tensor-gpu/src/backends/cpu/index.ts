// The cpu backend: typed arrays on the host, strided JS loops for the memory-bound kernels, and a
// WebAssembly SIMD + threads GEMM for matmul. It is also the numerical reference in tests.
// float16 tensors are stored widened in Float32Array and rounded to half precision on every write.

import type { AdamStepParams, Backend, MemoryInfo, RandomKind, ReduceOpName, Storage, View } from '../../backend.js';
import { hostArrayFor, roundToFloat16, type AnyHostArray, type DType } from '../../dtype.js';
import { IndexError } from '../../errors.js';
import { BINARY, UNARY, type BinaryOpName, type UnaryOpName } from '../../ops/elementwise-table.js';
import { philoxFill } from '../../random.js';
import { collapse, forEachRow, offsetsOf } from './strided.js';
import { matmulKernel } from './matmul.js';
import { arrayKinds, binaryLoop, copyLoop, unaryLoop } from './loops.js';

export interface CpuStorage extends Storage {
  data: AnyHostArray;
}

function arr(v: View): AnyHostArray {
  return (v.storage as CpuStorage).data;
}

const toInt32 = function toInt32(v: number) {
  return Number.isFinite(v) ? Math.trunc(v) : 0;
};
const toBool = function toBool(v: number) {
  return v !== 0 ? 1 : 0;
};

/** Converts a float result to what a dtype stores. */
function converter(dtype: DType): ((v: number) => number) | null {
  switch (dtype) {
    case 'int32':
      return toInt32;
    case 'bool':
      return toBool;
    case 'float16':
      return roundToFloat16;
    default:
      return null;
  }
}

function contiguousRows(v: View): { rows: number; inner: number; base: number } {
  const inner = v.shape[v.shape.length - 1] ?? 1;
  const rows = v.shape.length > 1 ? v.shape[0] : 1;
  return { rows, inner, base: v.offset };
}

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

/** Mean of xs[s .. s + n). */
function rowMean(xs: AnyHostArray, s: number, n: number): number {
  let sum = 0;
  for (let j = 0; j < n; j++) sum += xs[s + j];
  return sum / n;
}

/** 1 / sqrt(mean((x - mean)^2) + eps) over xs[s .. s + n): layer norm's (and, with mean 0, RMS norm's) scale. */
function rowRstd(xs: AnyHostArray, s: number, n: number, mean: number, eps: number): number {
  let v = 0;
  for (let j = 0; j < n; j++) {
    const c = xs[s + j] - mean;
    v += c * c;
  }
  return 1 / Math.sqrt(v / n + eps);
}

class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  readonly isSoftware = false;
  readonly supportsFloat16 = true;
  readonly maxBindingBytes = 2 ** 31 - 1;
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

  get adapterInfo(): string {
    return `cpu (${matmulKernel.describe()})`;
  }

  alloc(dtype: DType, size: number): CpuStorage {
    const data = this.takePooled(dtype, size) ?? hostArrayFor(dtype, size);
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
    }
  }

  private takePooled(dtype: DType, size: number): AnyHostArray | null {
    const data = this.pool.get(`${dtype}:${size}`)?.pop();
    if (!data) return null;
    this.pooledBytes -= data.byteLength;
    return data;
  }

  trim(): void {
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
    copyLoop(conv, arrayKinds(s, d))(s, src.offset, c.strides[0], d, dst.offset, c.strides[1], c.shape);
  }

  unary(op: UnaryOpName, x: View, out: View, p0: number, p1: number): void {
    const xs = arr(x);
    const o = arr(out);
    const loop = unaryLoop(op, UNARY[op].cpu, converter(out.dtype), arrayKinds(xs, o));
    forEachRow(out.shape, [x, out], ([bx, bo], n, [sx, so]) => loop(xs, bx, sx, o, bo, so, n, p0, p1));
  }

  binary(op: BinaryOpName, a: View, b: View, out: View): void {
    const as = arr(a);
    const bs = arr(b);
    const o = arr(out);
    const loop = binaryLoop(op, BINARY[op].cpu, converter(out.dtype), arrayKinds(as, bs, o));
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

  softmax(x: View, out: View, log: boolean): void {
    const { rows, inner, base } = contiguousRows(x);
    const xs = arr(x);
    const o = arr(out);
    const conv = converter(out.dtype);
    for (let r = 0; r < rows; r++) {
      const s = base + r * inner;
      const d = out.offset + r * inner;
      let m = -Infinity;
      for (let j = 0; j < inner; j++) if (xs[s + j] > m) m = xs[s + j];
      if (m === -Infinity) m = 0; // fully -inf row: exp gives 0s, sum 0 -> NaN like PyTorch
      let sum = 0;
      if (log) {
        for (let j = 0; j < inner; j++) sum += Math.exp(xs[s + j] - m);
        const lse = Math.log(sum);
        for (let j = 0; j < inner; j++) o[d + j] = xs[s + j] - m - lse;
      } else {
        for (let j = 0; j < inner; j++) {
          const e = Math.exp(xs[s + j] - m);
          o[d + j] = e;
          sum += e;
        }
        const inv = 1 / sum;
        for (let j = 0; j < inner; j++) o[d + j] *= inv;
      }
      if (conv) for (let j = 0; j < inner; j++) o[d + j] = conv(o[d + j]);
    }
  }

  softmaxBackward(y: View, gradOut: View, gradIn: View, log: boolean): void {
    const { rows, inner, base } = contiguousRows(y);
    const ys = arr(y);
    const gs = arr(gradOut);
    const o = arr(gradIn);
    const conv = converter(gradIn.dtype);
    for (let r = 0; r < rows; r++) {
      const s = base + r * inner;
      const g = gradOut.offset + r * inner;
      const d = gradIn.offset + r * inner;
      let dot = 0;
      if (log) for (let j = 0; j < inner; j++) dot += gs[g + j];
      else for (let j = 0; j < inner; j++) dot += gs[g + j] * ys[s + j];
      for (let j = 0; j < inner; j++) {
        const v = log ? gs[g + j] - Math.exp(ys[s + j]) * dot : ys[s + j] * (gs[g + j] - dot);
        o[d + j] = conv ? conv(v) : v;
      }
    }
  }

  layerNorm(x: View, weight: View | null, bias: View | null, out: View, eps: number, rms: boolean): void {
    const { rows, inner, base } = contiguousRows(x);
    const xs = arr(x);
    const o = arr(out);
    const w = weight ? arr(weight) : null;
    const b = bias ? arr(bias) : null;
    const wo = weight?.offset ?? 0;
    const bo = bias?.offset ?? 0;
    const conv = converter(out.dtype);
    for (let r = 0; r < rows; r++) {
      const s = base + r * inner;
      const d = out.offset + r * inner;
      const mean = rms ? 0 : rowMean(xs, s, inner);
      const rstd = rowRstd(xs, s, inner, mean, eps);
      for (let j = 0; j < inner; j++) {
        let y = (xs[s + j] - mean) * rstd;
        if (w) y *= w[wo + j];
        if (b) y += b[bo + j];
        o[d + j] = conv ? conv(y) : y;
      }
    }
  }

  layerNormBackward(x: View, weight: View | null, gradOut: View, gradIn: View, gradOutXhat: View | null, eps: number, rms: boolean): void {
    const { rows, inner, base } = contiguousRows(x);
    const xs = arr(x);
    const gs = arr(gradOut);
    const dx = arr(gradIn);
    const gx = gradOutXhat ? arr(gradOutXhat) : null;
    // The weight as a contiguous [inner] array (ones when absent), so the row loops have no branches.
    const w = new Float64Array(inner).fill(1);
    if (weight) {
      const wa = arr(weight);
      const ws = weight.strides[weight.strides.length - 1];
      for (let j = 0; j < inner; j++) w[j] = wa[weight.offset + j * ws];
    }
    const xhat = new Float64Array(inner);
    const conv = converter(gradIn.dtype);
    const convX = gradOutXhat ? converter(gradOutXhat.dtype) : null;
    for (let r = 0; r < rows; r++) {
      const s = base + r * inner;
      const gb = gradOut.offset + r * inner;
      const mean = rms ? 0 : rowMean(xs, s, inner);
      const rstd = rowRstd(xs, s, inner, mean, eps);
      // mean(gw) and mean(gw * xhat) over the row
      let sumGw = 0;
      let sumGwXhat = 0;
      for (let j = 0; j < inner; j++) {
        const xh = (xs[s + j] - mean) * rstd;
        xhat[j] = xh;
        const gw = gs[gb + j] * w[j];
        sumGw += gw;
        sumGwXhat += gw * xh;
      }
      const meanGw = rms ? 0 : sumGw / inner;
      const meanGwXhat = sumGwXhat / inner;
      const d = gradIn.offset + r * inner;
      for (let j = 0; j < inner; j++) {
        const y = rstd * (gs[gb + j] * w[j] - meanGw - xhat[j] * meanGwXhat);
        dx[d + j] = conv ? conv(y) : y;
      }
      if (gx) {
        const e = gradOutXhat!.offset + r * inner;
        for (let j = 0; j < inner; j++) {
          const y = gs[gb + j] * xhat[j];
          gx[e + j] = convX ? convX(y) : y;
        }
      }
    }
  }

  matmul(a: View, b: View, out: View): void {
    matmulKernel.run(a, arr(a) as Float32Array, b, arr(b) as Float32Array, arr(out) as Float32Array, out.offset);
    if (out.dtype === 'float16') {
      const o = arr(out);
      const n = out.shape.reduce((p, d) => p * d, 1);
      for (let i = 0; i < n; i++) o[out.offset + i] = roundToFloat16(o[out.offset + i]);
    }
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

  adamStep(param: View, grad: View, expAvg: View, expAvgSq: View, maxExpAvgSq: View | null, h: AdamStepParams): void {
    const p = arr(param);
    const g = arr(grad);
    const m = arr(expAvg);
    const v = arr(expAvgSq);
    const vmax = maxExpAvgSq ? arr(maxExpAvgSq) : null;
    const f = Math.fround;
    const n = param.shape.reduce((a, d) => a * d, 1);
    const [po, go, mo, vo, xo] = [param.offset, grad.offset, expAvg.offset, expAvgSq.offset, maxExpAvgSq?.offset ?? 0];
    const decay = f(1 - h.lr * h.weightDecay);
    const wd = f(h.weightDecay);
    const b1 = f(h.beta1);
    const b2 = f(h.beta2);
    const c1 = f(1 - h.beta1);
    const c2 = f(1 - h.beta2);
    const invBc2Sqrt = f(1 / Math.sqrt(h.biasCorrection2));
    const eps = f(h.eps);
    const stepSize = f(h.lr / h.biasCorrection1);
    for (let i = 0; i < n; i++) {
      const pv = p[po + i];
      let gv = h.maximize ? -g[go + i] : g[go + i];
      let base = pv;
      if (h.weightDecay !== 0) {
        if (h.decoupled) base = f(pv * decay);
        else gv = f(gv + f(pv * wd));
      }
      const mv = f(f(m[mo + i] * b1) + f(gv * c1));
      const vv = f(f(v[vo + i] * b2) + f(f(gv * gv) * c2));
      m[mo + i] = mv;
      v[vo + i] = vv;
      let second = vv;
      if (vmax) {
        second = Math.max(vmax[xo + i], vv);
        vmax[xo + i] = second;
      }
      const denom = f(f(f(Math.sqrt(second)) * invBc2Sqrt) + eps);
      p[po + i] = f(base - f(f(mv / denom) * stepSize));
    }
  }

  /**
   * Attention in query blocks: S = Q_blk K^T and O_blk = P V run on the GEMM engine; masking and the
   * softmax run per row in between. Memory beyond the inputs is one [block, Lk] score tile.
   */
  attention(q: View, k: View, v: View, mask: View | null, out: View, scale: number, causal: boolean): void {
    const [B, Lq, D] = q.shape;
    const Lk = k.shape[1];
    const Dv = v.shape[2];
    const ms = mask ? arr(mask) : null;
    const o = arr(out) as Float32Array;
    const boolMask = mask?.dtype === 'bool';
    // Work in tiles of (batch group) x (query block) whose scores fit a fixed budget: short sequences
    // batch many heads into one GEMM call, long ones split the queries.
    const budget = 1 << 22;
    const block = Math.max(1, Math.min(Lq, Math.floor(budget / Math.max(Lk, 1))));
    const group = block === Lq ? Math.max(1, Math.min(B, Math.floor(budget / Math.max(Lq * Lk, 1)))) : 1;
    const scores = new Float32Array(group * block * Lk);
    const shift = Lk - Lq;
    const NEG = -3.4028234663852886e38;
    const view = (base: View, shape: number[], strides: number[], offset: number): View => ({ storage: base.storage, dtype: 'float32', shape, strides, offset });
    for (let b0 = 0; b0 < B; b0 += group) {
      const g = Math.min(group, B - b0);
      // K^T: [g, D, Lk] by swapping k's strides.
      const kT = view(k, [g, D, Lk], [k.strides[0], k.strides[2], k.strides[1]], k.offset + b0 * k.strides[0]);
      const vb = view(v, [g, Lk, Dv], [v.strides[0], v.strides[1], v.strides[2]], v.offset + b0 * v.strides[0]);
      for (let i0 = 0; i0 < Lq; i0 += block) {
        const rows = Math.min(block, Lq - i0);
        const qBlk = view(q, [g, rows, D], [q.strides[0], q.strides[1], q.strides[2]], q.offset + b0 * q.strides[0] + i0 * q.strides[1]);
        matmulKernel.run(qBlk, arr(q) as Float32Array, kT, arr(k) as Float32Array, scores, 0);
        for (let bi = 0; bi < g; bi++) {
          const bt = b0 + bi;
          for (let r = 0; r < rows; r++) {
            const i = i0 + r;
            const srow = (bi * rows + r) * Lk;
            let m = -Infinity;
            const mBase = mask ? mask.offset + bt * mask.strides[0] + i * mask.strides[1] : 0;
            const ms2 = mask ? mask.strides[2] : 0;
            for (let j = 0; j < Lk; j++) {
              let sc = scores[srow + j] * scale;
              if (ms) {
                const mv = ms[mBase + j * ms2];
                if (boolMask) {
                  if (mv === 0) sc = NEG;
                } else sc += mv;
              }
              if (causal && j > i + shift) sc = NEG;
              sc = Math.fround(sc);
              scores[srow + j] = sc;
              if (sc > m) m = sc;
            }
            let sum = 0;
            for (let j = 0; j < Lk; j++) {
              const e = Math.exp(scores[srow + j] - m);
              scores[srow + j] = e;
              sum += e;
            }
            const inv = 1 / sum;
            for (let j = 0; j < Lk; j++) scores[srow + j] *= inv;
          }
        }
        const p = { storage: out.storage, dtype: 'float32' as const, shape: [g, rows, Lk], strides: [rows * Lk, Lk, 1], offset: 0 };
        if (rows === Lq) {
          matmulKernel.run(p, scores, vb, arr(v) as Float32Array, o, out.offset + b0 * Lq * Dv);
        } else {
          // g is 1 when queries are split; the output rows of this block are contiguous.
          matmulKernel.run(p, scores, vb, arr(v) as Float32Array, o, out.offset + (b0 * Lq + i0) * Dv);
        }
      }
    }
    if (out.dtype === 'float16') {
      const n = B * Lq * Dv;
      for (let i = 0; i < n; i++) o[out.offset + i] = roundToFloat16(o[out.offset + i]);
    }
  }
}

export type { CpuBackend };

export function createCpuBackend(): Backend {
  return new CpuBackend();
}
