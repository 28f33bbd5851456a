// WebGPUBackend: the Backend contract (src/backend.ts) on a WebGPU device. Compute ops only encode
// into the runtime's open command encoder (synchronous); read()/sync() submit and wait. Storage lives in
// pooled GPU buffers: float32 -> f32, int32 -> i32, bool -> u32 (0/1), float16 -> f16 (needs the
// adapter's shader-f16 feature).

import type { Backend, FusedKernels, MemoryInfo, RandomKind, ReduceOpName, Storage, View } from '../../backend.js';
import { numberToFloat16Bits, storageBytesPerElement, type AnyHostArray, type DType } from '../../dtype.js';
import { BackendError } from '../../errors.js';
import { contiguousStrides, isContiguous } from '../../layout.js';
import { BINARY, FUSED_BINARY, biasActivationOp, type BinaryOpName, type UnaryOpName } from '../../elementwise-math.js';
import { GPUStorage, Runtime, storageRef } from './runtime.js';
import { prod } from './kernels/common.js';
import { runAdamStep } from './kernels/adam.js';
import { runDequantizeWeight, runQuantizedMatmul } from './kernels/quantized-matmul.js';
import { runMatmulTopk } from './kernels/matmul-topk.js';
import { runArange } from './kernels/arange.js';
import { runAttention } from './kernels/attention.js';
import { flashAttentionFits, runFlashAttention } from './kernels/flash-attention.js';
import { runFlashAttentionBackward } from './kernels/flash-attention-backward.js';
import { runBinary } from './kernels/binary.js';
import { runCopy } from './kernels/copy.js';
import { runCumsum } from './kernels/cumsum.js';
import { runFill } from './kernels/fill.js';
import { runGather } from './kernels/gather.js';
import { runLayerNorm } from './kernels/layer-norm.js';
import { runLayerNormBackward } from './kernels/layer-norm-backward.js';
import { runMatmul, type MatmulKernel } from './kernels/matmul.js';
import { runRandom } from './kernels/random.js';
import { runReduce } from './kernels/reduce.js';
import { runScatterAdd } from './kernels/scatter-add.js';
import { runSoftmax } from './kernels/softmax.js';
import { runSoftmaxBackward } from './kernels/softmax-backward.js';
import { runCrossEntropy, runCrossEntropyBackward } from './kernels/cross-entropy.js';
import { runSort } from './kernels/sort.js';
import { runUnary } from './kernels/unary.js';
import { runWhere } from './kernels/where.js';

export interface WebGPUBackendConfig {
  adapterInfo: string;
  isSoftware: boolean;
  /** Matmul kernel choice: 'auto' picks 'regblock' on software adapters and 'tiled' on hardware. */
  matmulKernel?: MatmulKernel | 'auto';
  /** Attention kernel choice: 'auto' picks 'rowwise' on software adapters and 'flash' on hardware. */
  attentionKernel?: AttentionKernel | 'auto';
  /** Row reductions with subgroup operations where the device has them (default true); see WebGPUBackendOptions. */
  subgroups?: boolean | 'linear';
}

/**
 * 'rowwise': a thread per query row walks the keys (kernels/attention.ts; no barriers, for SwiftShader);
 * 'flash': a workgroup per block of query rows shares key/value tiles (kernels/flash-attention.ts).
 */
export type AttentionKernel = 'rowwise' | 'flash';

export class WebGPUBackend implements Backend {
  readonly name = 'webgpu' as const;
  readonly adapterInfo: string;
  readonly isSoftware: boolean;
  readonly supportsFloat16: boolean;
  readonly maxBindingBytes: number;
  /** The matmul kernel family in use ('regblock' = no shared memory, 'tiled' = shared-memory tiles). */
  readonly matmulKernel: MatmulKernel;
  /** The attention kernel family in use (head dims above 128 always run 'rowwise'). */
  readonly attentionKernel: AttentionKernel;
  /** Whether the row kernels reduce with subgroup operations (the device's `subgroups` feature). */
  get subgroups(): boolean {
    return this.rt.subgroups !== false;
  }
  /** @internal */
  readonly rt: Runtime;
  private liveStorages = 0;
  private liveBytes = 0;

  constructor(readonly device: GPUDevice, config: WebGPUBackendConfig) {
    this.rt = new Runtime(device, config.subgroups ?? true);
    this.adapterInfo = config.adapterInfo;
    this.isSoftware = config.isSoftware;
    this.supportsFloat16 = this.rt.hasF16;
    this.maxBindingBytes = this.rt.maxBindingBytes;
    const mk = config.matmulKernel ?? 'auto';
    this.matmulKernel = mk === 'auto' ? (this.isSoftware ? 'regblock' : 'tiled') : mk;
    const ak = config.attentionKernel ?? 'auto';
    this.attentionKernel = ak === 'auto' ? (this.isSoftware ? 'rowwise' : 'flash') : ak;
  }

  /** The fused kernels, one line each pointing at its kernel file (kernels/*.ts). */
  readonly fused: FusedKernels = {
    softmax: (x, out, log) => runSoftmax(this.live('softmax'), x, out, log),
    softmaxBackward: (y, g, gradIn, log) => runSoftmaxBackward(this.live(log ? 'logSoftmax backward' : 'softmax backward'), y, g, gradIn, log),
    crossEntropy: (x, t, loss, lse, ignore, eps) => runCrossEntropy(this.live('crossEntropy'), x, t, loss, lse, ignore, eps),
    crossEntropyBackward: (x, t, lse, g, gradIn, ignore, eps) => runCrossEntropyBackward(this.live('crossEntropy backward'), x, t, lse, g, gradIn, ignore, eps),
    layerNorm: (x, w, b, out, eps, rms) => runLayerNorm(this.live('layerNorm'), x, w, b, out, eps, rms),
    layerNormBackward: (x, w, g, gradIn, gx, eps, rms) => runLayerNormBackward(this.live(rms ? 'rmsNorm backward' : 'layerNorm backward'), x, w, g, gradIn, gx, eps, rms),
    adamStep: (p, g, m, v, vmax, h) => runAdamStep(this.live('adamStep'), p, g, m, v, vmax, h),
    matmulTopk: (q, blocks, values, indices, k, tileRows) => runMatmulTopk(this.live('matmulTopk'), q, blocks, values, indices, k, tileRows),
    attention: (q, k, v, mask, out, scale, causal) =>
      (this.attentionKernel === 'flash' && flashAttentionFits(q, v) ? runFlashAttention : runAttention)(this.live('attention'), q, k, v, mask, out, scale, causal),
    // Only the flash family has a fused backward; the row kernel's is the op's composite.
    attentionBackward: (q, k, v, mask, g, gq, gk, gv, scale, causal) => {
      if (this.attentionKernel !== 'flash' || !flashAttentionFits(q, v) || q.shape[2] === 0 || v.shape[2] === 0) return false;
      runFlashAttentionBackward(this.live('attention backward'), q, k, v, mask, g, gq, gk, gv, scale, causal);
      return true;
    },
    quantizedMatmul: (x, w, s, out, bits, inF) => runQuantizedMatmul(this.live('quantizedMatmul'), x, w, s, out, bits, inF),
    dequantizeWeight: (w, s, out, bits, inF) => runDequantizeWeight(this.live('dequantizeWeight'), w, s, out, bits, inF),
    geluBackward: (g, x, out, approximate) => {
      const op = approximate === 'tanh' ? 'geluTanhBackward' : 'geluBackward';
      runBinary(this.live(op), op, FUSED_BINARY, g, x, out);
    },
    siluBackward: (g, x, out) => runBinary(this.live('siluBackward'), 'siluBackward', FUSED_BINARY, g, x, out),
    biasActivation: (act, x, bias, out) => runBinary(this.live(biasActivationOp(act)), biasActivationOp(act), FUSED_BINARY, x, bias, out),
  };

  /** The runtime, after checking the device is still usable for `op`. */
  private live(op: string): Runtime {
    this.rt.check(op);
    return this.rt;
  }

  // ---- storage -------------------------------------------------------------------------------

  alloc(dtype: DType, size: number): Storage {
    this.rt.check('alloc');
    if (!Number.isInteger(size) || size < 0) throw new BackendError(`alloc: invalid size ${size}`);
    if (dtype === 'float16' && !this.supportsFloat16) {
      throw new BackendError(`alloc: float16 storage needs the 'shader-f16' feature, which this adapter (${this.adapterInfo}) lacks`);
    }
    const bytes = size * storageBytesPerElement(dtype, 'webgpu');
    if (bytes > this.rt.maxBufferBytes) {
      throw new BackendError(
        `alloc: ${dtype}[${size}] needs ${bytes} bytes, more than this adapter's maxBufferSize (${this.rt.maxBufferBytes} bytes)`,
      );
    }
    const pb = this.rt.acquire(Math.max(4, bytes));
    this.liveStorages++;
    this.liveBytes += bytes;
    return new GPUStorage(this, dtype, size, bytes, pb);
  }

  upload(data: AnyHostArray, dtype: DType): Storage {
    const s = this.alloc(dtype, data.length) as GPUStorage;
    if (data.length === 0) return s;
    let host: ArrayBufferView;
    switch (dtype) {
      case 'float32':
        host = data instanceof Float32Array ? data : Float32Array.from(data);
        break;
      case 'int32':
        host = data instanceof Int32Array ? data : Int32Array.from(data, (v) => Math.trunc(v));
        break;
      case 'bool':
        host = Uint32Array.from(data, (v) => (v !== 0 ? 1 : 0));
        break;
      case 'float16': {
        const h = new Uint16Array(data.length);
        for (let i = 0; i < data.length; i++) h[i] = numberToFloat16Bits(data[i]);
        host = h;
        break;
      }
    }
    this.rt.write(s.buf, host);
    return s;
  }

  async read(view: View): Promise<AnyHostArray> {
    this.rt.check('read');
    const n = prod(view.shape);
    const dtype = view.dtype;
    const hostDtype: DType = dtype === 'float16' ? 'float32' : dtype;
    if (n === 0) return emptyHost(hostDtype);
    const src = storageRef(view.storage, 'read', 'the view');
    let srcPb = src.pb;
    let srcOffset = view.offset * 4;
    let temp: GPUStorage | null = null;
    if (dtype === 'float16' || !isContiguous(view.shape, view.strides)) {
      temp = this.alloc(hostDtype, n) as GPUStorage;
      runCopy(this.rt, view, { storage: temp, dtype: hostDtype, shape: view.shape, strides: contiguousStrides(view.shape), offset: 0 }, 'read');
      srcPb = temp.buf;
      srcOffset = 0;
    }
    const bytes = n * 4;
    const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      this.rt.copyBuffer(srcPb, srcOffset, staging, 0, bytes);
      await this.rt.settle('read', undefined, staging);
      const raw = staging.getMappedRange().slice(0);
      staging.unmap();
      if (hostDtype === 'float32') return new Float32Array(raw);
      if (hostDtype === 'int32') return new Int32Array(raw);
      return Uint8Array.from(new Uint32Array(raw));
    } finally {
      staging.destroy();
      if (temp) this.free(temp);
    }
  }

  free(storage: Storage): void {
    const s = storage as GPUStorage;
    if (s.freed || this.rt.destroyed) return;
    s.freed = true;
    this.liveStorages--;
    this.liveBytes -= s.byteLength;
    this.rt.release(s.buf);
  }

  flush(): void {
    this.rt.check('flush');
    this.rt.flush();
  }

  async sync(): Promise<void> {
    await this.rt.settle('sync');
  }

  /** Releases every pooled (free) buffer back to the device. */
  trim(): void {
    this.rt.trim();
  }

  /** Caps the bytes the buffer pool keeps for reuse (default 512 MiB). */
  set poolLimitBytes(bytes: number) {
    this.rt.poolLimitBytes = bytes;
  }
  get poolLimitBytes(): number {
    return this.rt.poolLimitBytes;
  }

  memory(): MemoryInfo {
    return { storages: this.liveStorages, bytes: this.liveBytes, pooledBytes: this.rt.pooledBytes };
  }

  destroy(): void {
    this.rt.destroy();
    this.liveStorages = 0;
    this.liveBytes = 0;
  }

  // ---- kernels -------------------------------------------------------------------------------

  fill(out: View, value: number): void {
    this.rt.check('fill');
    runFill(this.rt, out, value);
  }

  arange(out: View, start: number, step: number): void {
    this.rt.check('arange');
    runArange(this.rt, out, start, step);
  }

  random(out: View, kind: RandomKind, seed: number, offset: number, p0: number, p1: number): void {
    this.rt.check('random');
    runRandom(this.rt, out, kind, seed, offset, p0, p1);
  }

  copy(src: View, dst: View): void {
    this.rt.check('copy');
    runCopy(this.rt, src, dst);
  }

  unary(op: UnaryOpName, x: View, out: View, p0: number, p1: number): void {
    this.rt.check(op);
    runUnary(this.rt, op, x, out, p0, p1);
  }

  binary(op: BinaryOpName, a: View, b: View, out: View): void {
    this.rt.check(op);
    runBinary(this.rt, op, BINARY, a, b, out);
  }

  where(cond: View, a: View, b: View, out: View): void {
    this.rt.check('where');
    runWhere(this.rt, cond, a, b, out);
  }

  reduce(op: ReduceOpName, x: View, out: View): void {
    this.rt.check(op);
    runReduce(this.rt, op, x, out);
  }

  matmul(a: View, b: View, out: View): void {
    this.rt.check('matmul');
    runMatmul(this.rt, a, b, out, this.matmulKernel);
  }

  gather(x: View, index: View, axis: number, out: View, opName: string): void {
    this.rt.check(opName);
    runGather(this.rt, x, index, axis, out, opName);
  }

  scatterAdd(out: View, index: View, src: View, axis: number, opName: string): void {
    this.rt.check(opName);
    runScatterAdd(this.rt, out, index, src, axis, opName);
  }

  cumsum(x: View, out: View): void {
    this.rt.check('cumsum');
    runCumsum(this.rt, x, out);
  }

  sort(x: View, values: View, indices: View, descending: boolean): void {
    this.rt.check('sort');
    runSort(this.rt, x, values, indices, descending);
  }
}

function emptyHost(dtype: DType): AnyHostArray {
  return dtype === 'int32' ? new Int32Array(0) : dtype === 'bool' ? new Uint8Array(0) : new Float32Array(0);
}

