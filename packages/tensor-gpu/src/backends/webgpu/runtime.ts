// The WebGPU runtime under the backend: buffer pool, pipeline cache, the open command encoder, the
// per-batch uniform arena and the device error state. Kernels only encode; `flush()` submits.
//
// Hazards handled here:
// - queue.writeBuffer runs at the next submit BEFORE the commands still in the open encoder, so an
//   upload into a pooled buffer that a pending command touches flushes first (tracked per buffer).
// - Uniform parameters of the whole batch live in one arena buffer written just before its submit; the
//   queue orders that write after every earlier submit, so the arena can be reused batch after batch.
// - Bind groups are cached by (layout, params slot, buffers with offsets and sizes): a decode step
//   repeats the previous step's dispatches on the same pooled buffers, so it reuses their bind groups.
//   Buffers are keyed by a number given once per GPUBuffer, never reused, so an entry naming a
//   destroyed buffer can never match again; it only waits for the LRU bound to drop it.

import type { DType } from '../../dtype.js';
import { BackendError, DeviceLostError, DisposedError, IndexError } from '../../errors.js';
import type { Backend, Storage } from '../../backend.js';
import { hasWgslFeature } from './device.js';
import type { SubgroupMode } from './kernels/workgroup-reduce.js';

export type BindKind = 'uniform' | 'read' | 'rw';

/** A compiled-once kernel variant: `key` names the variant (kernel + dtypes + static params). */
export interface KernelSpec {
  key: string;
  /** Binding kinds for @group(0) @binding(i), in order; binding 0 is always the params uniform. */
  bindings: readonly BindKind[];
  code: () => string;
}

export interface PooledBuffer {
  buffer: GPUBuffer;
  /** Bucket size in bytes (the GPUBuffer's size). */
  bytes: number;
  /** Batch number of the last encoder that used it; equal to the open batch means "pending". */
  lastBatch: number;
}

export class GPUStorage implements Storage {
  // The contract (backend.ts): a new storage starts owned by the tensor about to wrap it.
  refs = 1;
  freed = false;
  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    readonly size: number,
    readonly byteLength: number,
    public buf: PooledBuffer,
  ) {}
}

/** A binding of (part of) a buffer for one dispatch. */
export interface BufferRef {
  pb: PooledBuffer;
  /** Bytes to bind (multiple of 4). */
  size: number;
  /** Byte offset of the bound window (a multiple of minStorageBufferOffsetAlignment); default 0. */
  offset?: number;
  /** For error messages. */
  what?: string;
}

/** Builds the params block of one dispatch: u32 words, with i32/f32 written by bit pattern. */
export class Params {
  static readonly MAX_WORDS = 64;
  readonly u = new Uint32Array(Params.MAX_WORDS);
  readonly i = new Int32Array(this.u.buffer);
  readonly f = new Float32Array(this.u.buffer);
  n = 0;
  private next(): number {
    if (this.n >= Params.MAX_WORDS) throw new Error(`webgpu: kernel params exceed ${Params.MAX_WORDS} words`);
    return this.n++;
  }
  pushU(v: number): this {
    this.u[this.next()] = v >>> 0;
    return this;
  }
  pushI(v: number): this {
    this.i[this.next()] = v | 0;
    return this;
  }
  pushF(v: number): this {
    this.f[this.next()] = v;
    return this;
  }
}

const SLOT_BYTES = 256;
/** Params slots of one batch's uniform arena: the most dispatches one submit can carry. */
const ARENA_SLOTS = 1024;

function bucketBytes(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 4) * 4);
  if (b <= 4096) return 2 ** Math.ceil(Math.log2(b));
  // 4 size classes per power of two: at most 25% waste.
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 4;
  return Math.ceil(b / step) * step;
}

export interface IndexCheck {
  opName: string;
  size: number;
  axis: number;
}

export class Runtime {
  readonly queue: GPUQueue;
  readonly maxBindingBytes: number;
  readonly maxBufferBytes: number;
  readonly hasF16: boolean;
  /**
   * How the row kernels reduce (kernels/workgroup-reduce.ts): with subgroup operations when the device has
   * the `subgroups` feature and the backend did not turn them off ('ids' when WGSL's `subgroup_id` builtin
   * exists, else 'linear'), else false. Fixed for the runtime's life; the kernels' pipeline keys name it.
   */
  readonly subgroups: SubgroupMode;

  /**
   * Dispatches per submit, at most (a read-back, a sync or an upload into a buffer the open batch uses
   * submits earlier). Larger batches mean fewer submits; smaller ones let the GPU start sooner.
   */
  batchDispatches = 64;
  /** Submits and dispatches so far (benchmarks count them per step). */
  submits = 0;
  dispatchCount = 0;
  /**
   * Bind groups kept for reuse (least recently used dropped first); 0 turns the cache off. Settable, as
   * `bench/webgpu-submits.mjs` does to count the bind groups created per step with and without it.
   */
  bindGroupCacheLimit = 4096;
  /** Bind groups created so far (benchmarks count them per step). */
  bindGroupsCreated = 0;
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;

  private batch = 1;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  private readonly arena: GPUBuffer;
  private readonly arenaData = new Uint32Array((ARENA_SLOTS * SLOT_BYTES) / 4);
  private arenaSlots = 0;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  private readonly pool = new Map<number, PooledBuffer[]>();
  pooledBytes = 0;
  /** Every live pooled-or-owned buffer (to destroy them all at the end). */
  private readonly all = new Set<PooledBuffer>();

  // Index errors: [flag, checkId, badIndex, unused]; checks registered since the last read.
  readonly errBuf: PooledBuffer;
  private readonly checks = new Map<number, IndexCheck>();
  private nextCheck = 1;
  /** 16-byte buffers bound where an optional input (read) or output (rw) is absent. */
  readonly dummy: PooledBuffer;
  readonly dummyRw: PooledBuffer;

  lostMessage: string | null = null;
  destroyed = false;
  private uncaptured: string | null = null;

  constructor(readonly device: GPUDevice, useSubgroups: boolean | 'linear' = true) {
    this.queue = device.queue;
    this.maxBindingBytes = device.limits.maxStorageBufferBindingSize;
    this.maxBufferBytes = device.limits.maxBufferSize;
    this.hasF16 = device.features.has('shader-f16');
    const sub = useSubgroups && device.features.has('subgroups' as GPUFeatureName);
    this.subgroups = !sub ? false : useSubgroups !== 'linear' && hasWgslFeature('subgroup_id') ? 'ids' : 'linear';
    this.arena = device.createBuffer({
      size: ARENA_SLOTS * SLOT_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.errBuf = this.acquire(16);
    this.dummy = this.acquire(16);
    this.dummyRw = this.acquire(16);
    void device.lost.then((info) => {
      if (!this.destroyed) this.lostMessage = `webgpu: device lost (${info.reason}): ${info.message}`;
    });
    const onError = (ev: Event) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      this.uncaptured ??= err?.message ?? String(err);
    };
    if (typeof device.addEventListener === 'function') device.addEventListener('uncapturederror', onError);
    else (device as { onuncapturederror: unknown }).onuncapturederror = onError;
  }

  /** Throws if the device is gone or an earlier command raised an error. */
  check(op: string): void {
    if (this.destroyed) throw new BackendError(`${op}: the webgpu backend was destroyed`);
    if (this.lostMessage) throw new DeviceLostError(`${op}: ${this.lostMessage}`);
    if (this.uncaptured) {
      const m = this.uncaptured;
      this.uncaptured = null;
      throw new BackendError(`${op}: an earlier WebGPU command failed: ${m}`);
    }
  }

  // ---- buffers -----------------------------------------------------------------------------

  acquire(bytes: number): PooledBuffer {
    const size = bucketBytes(bytes);
    if (size > this.maxBufferBytes && bytes <= this.maxBufferBytes) return this.create(Math.ceil(bytes / 4) * 4);
    const list = this.pool.get(size);
    const pb = list?.pop();
    if (pb) {
      this.pooledBytes -= pb.bytes;
      return pb;
    }
    return this.create(size);
  }

  private create(size: number): PooledBuffer {
    const buffer = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const pb = { buffer, bytes: size, lastBatch: 0 };
    this.all.add(pb);
    return pb;
  }

  private deferred: PooledBuffer[] = [];
  /** Returns a temporary to the pool once the next dispatch has been encoded. */
  releaseAfterDispatch(pb: PooledBuffer): void {
    this.deferred.push(pb);
  }

  /**
   * Most bytes the pool keeps for reuse; buffers released beyond it are destroyed once the work that
   * may still use them has been submitted. A long run whose shapes vary cannot grow the pool forever.
   */
  poolLimitBytes = 512 * 1024 * 1024;
  private toDestroy: PooledBuffer[] = [];

  release(pb: PooledBuffer): void {
    if (this.pooledBytes + pb.bytes > this.poolLimitBytes) {
      this.all.delete(pb);
      this.toDestroy.push(pb);
      return;
    }
    let list = this.pool.get(pb.bytes);
    if (!list) this.pool.set(pb.bytes, (list = []));
    list.push(pb);
    this.pooledBytes += pb.bytes;
  }

  /** Writes host bytes into a buffer at offset 0, flushing first if a pending command uses it. */
  write(pb: PooledBuffer, data: ArrayBufferView): void {
    if (pb.lastBatch === this.batch) this.flush();
    const bytes = data.byteLength;
    const aligned = Math.floor(bytes / 4) * 4;
    if (aligned > 0) this.queue.writeBuffer(pb.buffer, 0, data.buffer, data.byteOffset, aligned);
    if (aligned < bytes) {
      const tail = new Uint8Array(4);
      tail.set(new Uint8Array(data.buffer, data.byteOffset + aligned, bytes - aligned));
      this.queue.writeBuffer(pb.buffer, aligned, tail);
    }
  }

  // ---- encoding ----------------------------------------------------------------------------

  private encoderOrNew(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): GPUCommandEncoder {
    const enc = this.encoderOrNew();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return enc;
  }

  pipeline(spec: KernelSpec): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; layoutKey: string } {
    const layoutKey = spec.bindings.join(',');
    let layout = this.layouts.get(layoutKey);
    if (!layout) {
      layout = this.device.createBindGroupLayout({
        entries: spec.bindings.map((kind, binding) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: {
            type: kind === 'uniform' ? 'uniform' : kind === 'read' ? 'read-only-storage' : 'storage',
            hasDynamicOffset: false,
          },
        })),
      });
      this.layouts.set(layoutKey, layout);
    }
    let pipeline = this.pipelines.get(spec.key);
    if (!pipeline) {
      const module = this.device.createShaderModule({ code: spec.code(), label: spec.key });
      pipeline = this.device.createComputePipeline({
        label: spec.key,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: 'main' },
      });
      this.pipelines.set(spec.key, pipeline);
    }
    return { pipeline, layout, layoutKey };
  }

  /**
   * Encodes one dispatch. `buffers` bind to @binding(1..) in order (binding 0 is the params block).
   * `groups` is the workgroup grid; use `grid()` to fold large 1-D counts into 2-D.
   */
  dispatch(op: string, spec: KernelSpec, params: Params, buffers: readonly BufferRef[], groups: readonly number[]): void {
    if (groups.some((g) => g === 0)) return;
    for (const b of buffers) {
      if (b.size > this.maxBindingBytes) {
        throw new BackendError(
          `${op}: ${b.what ?? 'a storage'} of ${b.size} bytes exceeds this adapter's maxStorageBufferBindingSize ` +
            `(${this.maxBindingBytes} bytes)`,
        );
      }
    }
    const { pipeline, layout, layoutKey } = this.pipeline(spec);
    const slots = Math.max(1, Math.ceil((params.n * 4) / SLOT_BYTES));
    if (this.arenaSlots + slots > ARENA_SLOTS || this.dispatches >= this.batchDispatches) this.flush();
    const slot = this.arenaSlots;
    this.arenaData.set(params.u.subarray(0, params.n), (slot * SLOT_BYTES) / 4);
    this.arenaSlots += slots;
    for (const b of buffers) b.pb.lastBatch = this.batch;
    const bindGroup = this.bindGroup(layoutKey, layout, slot * SLOT_BYTES, buffers);
    const enc = this.encoderOrNew();
    if (!this.pass) this.pass = enc.beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
    this.dispatches++;
    this.dispatchCount++;
    for (const pb of this.deferred) this.release(pb);
    this.deferred = [];
  }

  /** The bind group of the params slot at `paramsOffset` and `buffers`, from the cache or created (and cached). */
  private bindGroup(layoutKey: string, layout: GPUBindGroupLayout, paramsOffset: number, buffers: readonly BufferRef[]): GPUBindGroup {
    const limit = this.bindGroupCacheLimit;
    let key = '';
    if (limit > 0) {
      key = `${layoutKey}|${paramsOffset}`;
      for (const b of buffers) {
        let id = this.bufferIds.get(b.pb.buffer);
        if (id === undefined) this.bufferIds.set(b.pb.buffer, (id = this.nextBufferId++));
        key += `|${id}:${b.offset ?? 0}:${b.size}`;
      }
      const hit = this.bindGroups.get(key);
      if (hit) {
        // most recently used last
        this.bindGroups.delete(key);
        this.bindGroups.set(key, hit);
        return hit;
      }
    }
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.arena, offset: paramsOffset, size: SLOT_BYTES } }];
    buffers.forEach((b, i) => {
      entries.push({ binding: i + 1, resource: { buffer: b.pb.buffer, offset: b.offset ?? 0, size: Math.max(4, b.size) } });
    });
    const group = this.device.createBindGroup({ layout, entries });
    this.bindGroupsCreated++;
    if (limit > 0) {
      this.bindGroups.set(key, group);
      while (this.bindGroups.size > limit) this.bindGroups.delete(this.bindGroups.keys().next().value!);
    }
    return group;
  }

  copyBuffer(src: PooledBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    src.lastBatch = this.batch;
    this.endPass().copyBufferToBuffer(src.buffer, srcOffset, dst, dstOffset, size);
  }

  /** Submits the open encoder (with this batch's params). */
  flush(): void {
    if (!this.encoder) {
      // Nothing unsubmitted can reference these.
      for (const pb of this.toDestroy) pb.buffer.destroy();
      this.toDestroy = [];
      return;
    }
    const enc = this.endPass();
    if (this.arenaSlots > 0) {
      this.queue.writeBuffer(this.arena, 0, this.arenaData.buffer, 0, this.arenaSlots * SLOT_BYTES);
    }
    this.queue.submit([enc.finish()]);
    this.submits++;
    this.encoder = null;
    this.dispatches = 0;
    this.arenaSlots = 0;
    this.batch++;
    // Work already submitted may still read these; destroy() lets it finish.
    for (const pb of this.toDestroy) pb.buffer.destroy();
    this.toDestroy = [];
  }

  /** Destroys every pooled buffer (after submitting pending work that might use them). */
  trim(): void {
    this.flush();
    for (const list of this.pool.values()) {
      for (const pb of list) {
        this.all.delete(pb);
        pb.buffer.destroy();
      }
    }
    this.pool.clear();
    this.pooledBytes = 0;
    for (const pb of this.toDestroy) pb.buffer.destroy();
    this.toDestroy = [];
  }

  // ---- index errors ------------------------------------------------------------------------

  /** Registers an index-checked dispatch; the returned id goes into its params. */
  indexCheck(check: IndexCheck): number {
    const id = this.nextCheck++;
    if (this.nextCheck > 0x7fffffff) this.nextCheck = 1;
    this.checks.set(id, check);
    return id;
  }

  /**
   * Flushes; when index-checked work was encoded since the last call, also reads back the error flag
   * (and clears it). `extra` lets `read()` schedule its staging copy in the same submit.
   */
  async settle(op: string, extra?: (enc: GPUCommandEncoder) => void, staging?: GPUBuffer): Promise<void> {
    this.check(op);
    let errStaging: GPUBuffer | null = null;
    const pending = this.checks.size > 0;
    if (extra || pending) {
      const enc = this.endPass();
      extra?.(enc);
      if (pending) {
        errStaging = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        enc.copyBufferToBuffer(this.errBuf.buffer, 0, errStaging, 0, 16);
        enc.clearBuffer(this.errBuf.buffer);
        this.errBuf.lastBatch = this.batch;
      }
    }
    this.flush();
    const checks = new Map(this.checks);
    this.checks.clear();
    try {
      const maps: Promise<void>[] = [];
      if (staging) maps.push(staging.mapAsync(GPUMapMode.READ));
      if (errStaging) maps.push(errStaging.mapAsync(GPUMapMode.READ));
      if (maps.length === 0) maps.push(this.queue.onSubmittedWorkDone());
      try {
        await Promise.all(maps);
      } catch (e) {
        this.check(op);
        throw new BackendError(`${op}: mapping a read-back buffer failed: ${(e as Error).message}`);
      }
      this.check(op);
      if (errStaging) {
        const w = new Int32Array(errStaging.getMappedRange().slice(0));
        errStaging.unmap();
        if (w[0] !== 0) {
          const c = checks.get(w[1] >>> 0);
          const name = c?.opName ?? 'gather/scatterAdd';
          const range = c ? `[0, ${c.size}) along axis ${c.axis}` : 'the valid range';
          throw new IndexError(`${name}: index ${w[2]} is out of range ${range}`);
        }
      }
    } finally {
      errStaging?.destroy();
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.pass) this.pass.end();
    this.pass = null;
    this.encoder = null;
    for (const pb of this.all) pb.buffer.destroy();
    this.all.clear();
    this.pool.clear();
    this.pooledBytes = 0;
    this.bindGroups.clear();
    this.arena.destroy();
    this.device.destroy();
  }

  forget(pb: PooledBuffer): void {
    this.all.delete(pb);
  }
}

/** A storage over a runtime-owned temporary (not counted by memory()); give it back with rt.release(s.buf). */
export function tempStorage(rt: Runtime, dtype: DType, size: number): GPUStorage {
  const bytes = Math.max(4, size * (dtype === 'float16' ? 2 : 4));
  return new GPUStorage(undefined as unknown as Backend, dtype, size, bytes, rt.acquire(bytes));
}

export function storageRef(s: Storage, op: string, what: string): BufferRef {
  const st = s as GPUStorage;
  if (!(st instanceof GPUStorage)) throw new BackendError(`${op}: ${what} is not a webgpu storage`);
  if (st.freed) throw new DisposedError(`${op}: ${what} was used after its storage was freed`);
  return { pb: st.buf, size: Math.max(4, Math.ceil(st.byteLength / 4) * 4), what: `${what} (${st.dtype}[${st.size}])` };
}
