// The sharded state dict: how each rank describes what it holds (after Megatron-core's
// dist_checkpointing/mapping.py). A ShardedTensor maps a local piece of data to a box of a global
// tensor (global shape, global offset of the piece, optional regular grid `axisFragmentations`) and
// says which copy it is (`replicaId`, all zeros = the main replica, the one that gets saved). With a
// `flattenedRange`, the local data is a contiguous slice of the flattened box (distributed-optimizer
// style sharding). A ShardedObject is non-tensor state (RNG state, step counters) sharded as atomic
// pieces on a grid.

import type { Tensor } from '@lm/tensor-gpu';

import { isDType, numel, type DType, type TensorDataInput } from '../format/dtypes.js';
import { DistCheckpointError } from './errors.js';

/** Replica coordinates; Megatron uses (pipeline-or-tie replica, tp replica, dp rank). All zeros = main. */
export type ReplicaId = readonly number[];

/** Local data: an @lm/tensor-gpu Tensor, a host typed array / number list, or a lazy producer of one. */
export type ShardData = Tensor | TensorDataInput | (() => Tensor | TensorDataInput | Promise<Tensor | TensorDataInput>);

export interface ShardedTensor {
  readonly kind: 'sharded-tensor';
  /** The global tensor's key in the checkpoint. */
  readonly key: string;
  /** Element type in the checkpoint (safetensors names). */
  readonly dtype: DType;
  /** The local piece (null: metadata only, or "allocate on load"). */
  readonly data: ShardData | null;
  /** Shape of the local piece (without prepended axes). */
  readonly localShape: readonly number[];
  readonly globalShape: readonly number[];
  /** Offset of the local piece in the global tensor, in elements per axis (prepended axes included). */
  readonly globalOffset: readonly number[];
  /** Regular grid: how many pieces each axis is cut into; null for irregular sharding. */
  readonly axisFragmentations: readonly number[] | null;
  readonly replicaId: ReplicaId;
  /** Leading global axes the local data does not have (as if unsqueezed), e.g. a stacked layer axis. */
  readonly prependAxisNum: number;
  /** On load, the stored global shape may differ (padded vocabularies); the overlap is loaded. */
  readonly allowShapeMismatch: boolean;
  /** [start, end) of the flattened local box that `data` holds; null = the whole box. */
  readonly flattenedRange: readonly [number, number] | null;
}

export interface ShardedObject {
  readonly kind: 'sharded-object';
  readonly key: string;
  /** JSON-like data: numbers, strings, booleans, null, bigints, typed arrays, arrays and plain objects. */
  readonly data: unknown;
  /** Grid of pieces (e.g. [tpSize, ppSize]); [] for a single object. */
  readonly globalShape: readonly number[];
  readonly globalOffset: readonly number[];
  readonly replicaId: ReplicaId;
}

export type ShardedBase = ShardedTensor | ShardedObject;

/**
 * A nested state dict whose leaves are ShardedTensors, ShardedObjects, or plain values (common state,
 * saved once by rank 0, e.g. `{ iteration: 100 }`). Nesting is by plain objects, arrays and Maps.
 */
export type ShardedStateDict = { [key: string]: unknown } | ReadonlyMap<string, unknown>;

export function isShardedTensor(v: unknown): v is ShardedTensor {
  return typeof v === 'object' && v !== null && (v as ShardedTensor).kind === 'sharded-tensor';
}

export function isShardedObject(v: unknown): v is ShardedObject {
  return typeof v === 'object' && v !== null && (v as ShardedObject).kind === 'sharded-object';
}

export function isShardedBase(v: unknown): v is ShardedBase {
  return isShardedTensor(v) || isShardedObject(v);
}

/** Megatron's is_main_replica: every coordinate zero. */
export function isMainReplica(replicaId: ReplicaId | number): boolean {
  return typeof replicaId === 'number' ? replicaId === 0 : replicaId.every((r) => r === 0);
}

/** Duck-typed @lm/tensor-gpu Tensor (robust to two copies of the package). */
export function isGpuTensor(v: unknown): v is Tensor {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as Tensor).copy_ === 'function' &&
    typeof (v as Tensor).data === 'function' &&
    Array.isArray((v as Tensor).shape)
  );
}

const TENSOR_DTYPE: Record<string, DType> = { float32: 'F32', float16: 'F16', int32: 'I32', bool: 'BOOL' };

/** The checkpoint dtype of an @lm/tensor-gpu tensor. */
export function gpuTensorDType(t: Tensor): DType {
  const d = TENSOR_DTYPE[t.dtype];
  if (!d) throw new DistCheckpointError(`tensor dtype '${t.dtype}' has no checkpoint dtype`);
  return d;
}

/** The dtype a host typed array stands for (Uint16Array is ambiguous: F16, BF16 or U16). */
export function hostArrayDType(data: unknown): DType | undefined {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof BigUint64Array) return 'U64';
  if (data instanceof Int16Array) return 'I16';
  if (data instanceof Int8Array) return 'I8';
  if (data instanceof Uint8Array) return 'U8';
  if (data instanceof Uint32Array) return 'U32';
  return undefined;
}

function fmt(t: { key: string; globalShape: readonly number[]; globalOffset: readonly number[]; localShape?: readonly number[] }): string {
  return (
    `'${t.key}' (global shape [${t.globalShape.join(',')}], offset [${t.globalOffset.join(',')}]` +
    `${t.localShape ? `, local shape [${t.localShape.join(',')}]` : ''})`
  );
}

function isIntList(v: unknown, min = 0): v is number[] {
  return Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= min);
}

/** Builds a ShardedTensor from all of its fields, checking them as Megatron's validate_metadata_integrity does. */
export function shardedTensor(init: {
  key: string;
  dtype: DType;
  data?: ShardData | null;
  localShape: readonly number[];
  globalShape: readonly number[];
  globalOffset: readonly number[];
  axisFragmentations?: readonly number[] | null;
  replicaId?: ReplicaId | number;
  prependAxisNum?: number;
  allowShapeMismatch?: boolean;
  flattenedRange?: readonly [number, number] | null;
}): ShardedTensor {
  const t: ShardedTensor = {
    kind: 'sharded-tensor',
    key: init.key,
    dtype: init.dtype,
    data: init.data ?? null,
    localShape: [...init.localShape],
    globalShape: [...init.globalShape],
    globalOffset: [...init.globalOffset],
    axisFragmentations: init.axisFragmentations ? [...init.axisFragmentations] : null,
    replicaId: typeof init.replicaId === 'number' ? [init.replicaId] : [...(init.replicaId ?? [0])],
    prependAxisNum: init.prependAxisNum ?? 0,
    allowShapeMismatch: init.allowShapeMismatch ?? false,
    flattenedRange: init.flattenedRange ? [init.flattenedRange[0], init.flattenedRange[1]] : null,
  };
  validateShardedTensor(t);
  return t;
}

/** Megatron's ShardedTensor.validate_metadata_integrity, plus bounds and data-size checks. */
export function validateShardedTensor(t: ShardedTensor): void {
  const fail = (msg: string): never => {
    throw new DistCheckpointError(`ShardedTensor ${fmt(t)}: ${msg}`, t.key);
  };
  if (typeof t.key !== 'string' || !t.key) fail('key must be a non-empty string');
  if (!isDType(t.dtype)) fail(`unknown dtype ${JSON.stringify(t.dtype)}`);
  if (!isIntList(t.localShape) || !isIntList(t.globalShape) || !isIntList(t.globalOffset)) {
    fail('shapes and offsets must be lists of non-negative integers');
  }
  if (t.globalShape.length !== t.globalOffset.length) fail('global offset and global shape have different ranks');
  if (!Number.isSafeInteger(t.prependAxisNum) || t.prependAxisNum < 0) fail('prependAxisNum must be a non-negative integer');
  if (t.localShape.length + t.prependAxisNum !== t.globalShape.length) {
    fail(`local shape rank ${t.localShape.length} + prependAxisNum ${t.prependAxisNum} != global rank ${t.globalShape.length}`);
  }
  if (!isIntList(t.replicaId as number[]) || t.replicaId.length === 0) fail('replicaId must be a non-empty list of non-negative integers');
  const box = boxShape(t);
  if (!t.allowShapeMismatch) {
    box.forEach((s, d) => {
      if (t.globalOffset[d] + s > t.globalShape[d]) fail(`the local piece runs past the global shape on axis ${d}`);
    });
  }
  if (t.axisFragmentations) {
    if (!isIntList(t.axisFragmentations, 1) || t.axisFragmentations.length !== t.globalShape.length) {
      fail('axisFragmentations must list a positive count per global axis');
    }
    t.localShape.forEach((s, i) => {
      const off = t.globalOffset[i + t.prependAxisNum];
      if (s !== 0 && off % s !== 0) fail(`global offset ${off} is not divisible by local shape ${s} (regular grid)`);
    });
  }
  const count = numel(t.localShape);
  if (t.flattenedRange) {
    const [a, b] = t.flattenedRange;
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || a < 0 || b < a || b > count) {
      fail(`flattenedRange [${a}, ${b}) is not inside the ${count} elements of the local shape`);
    }
  }
  const want = t.flattenedRange ? t.flattenedRange[1] - t.flattenedRange[0] : count;
  const d = t.data;
  if (d !== null && typeof d !== 'function') {
    if (isGpuTensor(d)) {
      const shape = t.flattenedRange ? [want] : t.localShape;
      if (d.shape.length !== shape.length || d.shape.some((s, i) => s !== shape[i])) {
        fail(`data has shape [${d.shape.join(',')}], expected [${shape.join(',')}]`);
      }
    } else if (!(d instanceof ArrayBuffer || d instanceof DataView || d instanceof Uint8Array) && 'length' in d) {
      if ((d as ArrayLike<unknown>).length !== want) {
        fail(`data has ${(d as ArrayLike<unknown>).length} elements, expected ${want}`);
      }
    }
  }
}

/** The local piece's box in global coordinates: prepended axes are size 1. */
export function boxShape(t: Pick<ShardedTensor, 'localShape' | 'prependAxisNum'>): number[] {
  return [...new Array<number>(t.prependAxisNum).fill(1), ...t.localShape];
}

function dataShapeAndDType(data: ShardData, dtype?: DType, shape?: readonly number[]): { dtype: DType; shape: readonly number[] } {
  if (isGpuTensor(data)) return { dtype: dtype ?? gpuTensorDType(data), shape: shape ?? data.shape };
  const d = dtype ?? hostArrayDType(data);
  if (!d) throw new DistCheckpointError('the dtype of host data (Uint16Array, plain arrays, lazy data) must be given');
  if (!shape) {
    if (typeof data !== 'function' && 'length' in data) return { dtype: d, shape: [(data as ArrayLike<unknown>).length] };
    throw new DistCheckpointError('the shape of host data must be given');
  }
  return { dtype: d, shape };
}

export interface FromRankOffsetsOptions {
  replicaId?: ReplicaId | number;
  prependAxisNum?: number;
  allowShapeMismatch?: boolean;
  /** Required for host data that is not a typed array of its dtype (Uint16Array halves, lazy data). */
  dtype?: DType;
  /** Local shape; required for host data (a typed array is flat) and with flattenedRange. */
  shape?: readonly number[];
  /** The data is this [start, end) slice of the flattened local box. */
  flattenedRange?: readonly [number, number];
}

/**
 * Megatron's ShardedTensor.from_rank_offsets: each `[axis, rankOffset, fragments]` says the global
 * tensor is cut into `fragments` pieces along `axis` and the local data is piece `rankOffset`.
 */
export function shardedTensorFromRankOffsets(
  key: string,
  data: ShardData | null,
  rankOffsets: ReadonlyArray<readonly [axis: number, rankOffset: number, fragments: number]>,
  options: FromRankOffsetsOptions = {},
): ShardedTensor {
  const { dtype, shape } =
    data === null
      ? { dtype: options.dtype, shape: options.shape }
      : dataShapeAndDType(data, options.dtype, options.flattenedRange ? options.shape : (options.shape ?? undefined));
  if (!dtype || !shape) throw new DistCheckpointError(`ShardedTensor '${key}': dtype and shape are needed without data`, key);
  if (options.flattenedRange && !options.shape) {
    throw new DistCheckpointError(`ShardedTensor '${key}': a flattenedRange needs the local shape`, key);
  }
  const p = options.prependAxisNum ?? 0;
  const globalShape = [...new Array<number>(p).fill(1), ...shape];
  const globalOffset = new Array<number>(p + shape.length).fill(0);
  const fragments = new Array<number>(p + shape.length).fill(1);
  const seen = new Set<number>();
  for (const [axis, rankOffset, frag] of rankOffsets) {
    if (
      !Number.isSafeInteger(axis) || axis < 0 || axis >= globalShape.length || seen.has(axis) ||
      !Number.isSafeInteger(frag) || frag < 1 || !Number.isSafeInteger(rankOffset) || rankOffset < 0 || rankOffset >= frag
    ) {
      throw new DistCheckpointError(`ShardedTensor '${key}': invalid rank offsets ${JSON.stringify(rankOffsets)}`, key);
    }
    seen.add(axis);
    const local = axis < p ? 1 : shape[axis - p];
    globalShape[axis] = frag * local;
    globalOffset[axis] = rankOffset * local;
    fragments[axis] = frag;
  }
  return shardedTensor({
    key,
    dtype,
    data,
    localShape: shape,
    globalShape,
    globalOffset,
    axisFragmentations: fragments,
    replicaId: options.replicaId,
    prependAxisNum: p,
    allowShapeMismatch: options.allowShapeMismatch,
    flattenedRange: options.flattenedRange,
  });
}

/** A tensor's parallel layout: cut into `worldSize` pieces along `axis`, this rank holds piece `rank`. */
export interface AxisLayout {
  axis: number;
  rank: number;
  worldSize: number;
}

/**
 * A ShardedTensor for local data under a parallel layout: `{ axis: 0, rank: tpRank, worldSize: tpSize }`
 * for column-parallel / vocab-parallel weights, `axis: 1` for row-parallel ones, and `null` for a
 * replicated tensor (global = local).
 */
export function shardedTensorFromLocal(
  key: string,
  data: ShardData,
  layout: AxisLayout | null,
  replicaId: ReplicaId | number = 0,
  options: Omit<FromRankOffsetsOptions, 'replicaId'> = {},
): ShardedTensor {
  const offsets: Array<[number, number, number]> =
    layout && layout.worldSize > 1 ? [[layout.axis + (options.prependAxisNum ?? 0), layout.rank, layout.worldSize]] : [];
  return shardedTensorFromRankOffsets(key, data, offsets, { ...options, replicaId });
}

/** A ShardedObject (non-tensor state). `globalShape` [] and offset [] for a single global object. */
export function shardedObject(
  key: string,
  data: unknown,
  globalShape: readonly number[] = [],
  globalOffset: readonly number[] = [],
  replicaId: ReplicaId | number = 0,
): ShardedObject {
  if (typeof key !== 'string' || !key || key.includes('/')) {
    throw new DistCheckpointError(`ShardedObject key ${JSON.stringify(key)} must be a non-empty string without '/'`, key);
  }
  if (!isIntList(globalShape, 1) || !isIntList(globalOffset) || globalShape.length !== globalOffset.length) {
    throw new DistCheckpointError(`ShardedObject '${key}': global shape and offset must be integer lists of one rank`, key);
  }
  globalOffset.forEach((o, i) => {
    if (o >= globalShape[i]) throw new DistCheckpointError(`ShardedObject '${key}': offset ${o} outside grid axis ${i} of ${globalShape[i]}`, key);
  });
  return {
    kind: 'sharded-object',
    key,
    data,
    globalShape: [...globalShape],
    globalOffset: [...globalOffset],
    replicaId: typeof replicaId === 'number' ? [replicaId] : [...replicaId],
  };
}

/** Megatron's ShardedObject.unique_key: `<key>/shard_<offset>_<shape>`. */
export function objectUniqueKey(o: Pick<ShardedObject, 'key' | 'globalOffset' | 'globalShape'>): string {
  return `${o.key}/shard_${o.globalOffset.join('.')}_${o.globalShape.join('.')}`;
}

// ---- nested traversal ------------------------------------------------------------------------------

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Every ShardedTensor / ShardedObject in a nested state dict, depth first, in insertion order. */
export function* nestedSharded(sd: unknown): Generator<ShardedBase> {
  if (isShardedBase(sd)) {
    yield sd;
  } else if (sd instanceof Map) {
    for (const v of sd.values()) yield* nestedSharded(v);
  } else if (Array.isArray(sd)) {
    for (const v of sd) yield* nestedSharded(v);
  } else if (isPlainObject(sd)) {
    for (const v of Object.values(sd)) yield* nestedSharded(v);
  }
}

/**
 * The same nesting with every sharded leaf replaced by `fn(leaf)` (leaves for which `fn` returns
 * `DROP` are removed); plain leaves are kept when `keepCommon`, dropped otherwise.
 */
export function mapSharded(sd: unknown, fn: (leaf: ShardedBase) => unknown, keepCommon = true): unknown {
  const visit = (v: unknown): unknown => {
    if (isShardedBase(v)) return fn(v);
    if (v instanceof Map) {
      const out = new Map<unknown, unknown>();
      for (const [k, x] of v) {
        const y = visit(x);
        if (y !== DROP) out.set(k, y);
      }
      return out;
    }
    if (Array.isArray(v)) return v.map(visit).filter((y) => y !== DROP);
    if (isPlainObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        const y = visit(x);
        if (y !== DROP) out[k] = y;
      }
      return out;
    }
    return keepCommon ? v : DROP;
  };
  return visit(sd);
}

/** Returned by a mapSharded callback to drop the leaf. */
export const DROP: unique symbol = Symbol('drop');

/** The plain (non-sharded) leaves of a state dict, with the same nesting: Megatron's common state dict. */
export function commonStateDict(sd: unknown): unknown {
  return mapSharded(sd, () => DROP, true);
}

/** The sharded leaves only, metadata without data (what ranks exchange before a save or load). */
export function withoutData<T extends ShardedBase>(t: T): T {
  return { ...t, data: null };
}
