// The weights-IO format layer: safetensors, PyTorch .bin (zip and legacy), sharded indexes, and one
// front door (openCheckpoint / loadStateDict) over all of them.

export {
  CheckpointFormatError,
  DTypeConversionError,
  SafetensorsError,
  ShardIndexError,
  TensorNotFoundError,
  TorchCheckpointError,
  UnsafePickleError,
  ZipFormatError,
} from './errors.js';
export {
  DTYPE_SIZE,
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  isDType,
  isFloatDType,
  numel,
  type DType,
  type HostArray,
  type NativeArray,
  type ReadAs,
  type TensorDataInput,
} from './dtypes.js';
export { blobSource, bytesSource, openFileSource, type ByteSource, type SourceInput } from './byte-source.js';
export type { Checkpoint, CheckpointFormat, DataFor, ReadTensorOptions, TensorData, TensorInfo } from './types.js';
export {
  MAX_HEADER_SIZE,
  SafetensorsFile,
  openSafetensorsBytes,
  parseSafetensorsHeader,
  planSafetensors,
  readSafetensorsHeader,
  serializeSafetensors,
  writeSafetensors,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type SafetensorsWriteOptions,
  type StateDictInput,
  type TensorToWrite,
} from './safetensors.js';
export {
  ShardedCheckpoint,
  parseShardIndex,
  parseShardSize,
  planShards,
  shardFileName,
  writeShardedSafetensors,
  type ShardIndex,
  type ShardedWriteOptions,
  type ShardedWriteResult,
} from './sharded.js';
export {
  TORCH_DTYPE_NAMES,
  TORCH_STORAGE_DTYPES,
  TorchCheckpoint,
  isTorchTensorRef,
  torchFindClass,
  type TorchTensorRef,
} from './torch.js';
export {
  DTYPE_TORCH_STORAGE,
  PyFloat,
  pyFloat,
  serializeTorchCheckpoint,
  torchArchiveName,
  writeTorchCheckpoint,
  type TorchSaveValue,
  type TorchWriteOptions,
} from './torch-writer.js';
export { unpickle, PyCallable, PyClassRef, PyDict, PyObject, PySet, PyTuple, type PyValue, type UnpickleOptions } from './pickle.js';
export { ZipReader, type ZipEntry } from './zip.js';
export {
  CHECKPOINT_FILE_NAMES,
  detectFormat,
  loadStateDict,
  openCheckpoint,
  type CheckpointInput,
  type DetectedFormat,
  type LoadStateDictOptions,
  type OpenCheckpointOptions,
} from './checkpoint.js';
