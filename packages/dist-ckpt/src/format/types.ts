// The shape every opened checkpoint shares, whatever its format.

import type { DType, HostArray, NativeArray, ReadAs } from './dtypes.js';

export type CheckpointFormat = 'safetensors' | 'torch-zip' | 'torch-legacy' | 'sharded';

/** A tensor's metadata, known without reading its data. */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
}

/** A decoded tensor: dtype as stored, shape, and data as a typed array (see {@link ReadAs}). */
export interface TensorData<A = NativeArray | HostArray> {
  dtype: DType;
  shape: number[];
  data: A;
}

export interface ReadTensorOptions<A extends ReadAs = ReadAs> {
  /** Host type to return. Default `'host'`: floats -> Float32Array, ints -> Int32Array, BOOL -> Uint8Array. */
  as?: A;
}

/** The typed array `readTensor` returns for each `as` option. */
export type DataFor<A extends ReadAs> = A extends 'native'
  ? NativeArray
  : A extends 'float32'
    ? Float32Array
    : A extends 'int32'
      ? Int32Array
      : HostArray;

/** An opened checkpoint: metadata up front, tensor data read one tensor at a time on request. */
export interface Checkpoint {
  readonly format: CheckpointFormat;
  /** The file (or index file) path or name. */
  readonly name: string;
  /** Every tensor, in file order. */
  readonly tensors: readonly TensorInfo[];
  /** `__metadata__` of a safetensors file (merged over shards); {} for PyTorch files. */
  readonly metadata: Readonly<Record<string, string>>;
  has(name: string): boolean;
  /** Throws TensorNotFoundError for an unknown name. */
  info(name: string): TensorInfo;
  /** Contiguous row-major little-endian bytes of the tensor, in its stored dtype. */
  readRaw(name: string): Promise<Uint8Array>;
  readTensor<A extends ReadAs = 'host'>(name: string, options?: ReadTensorOptions<A>): Promise<TensorData<DataFor<A>>>;
  /** Releases file handles. The checkpoint cannot be read afterwards. */
  close(): Promise<void>;
}
