// Distributed (sharded) checkpoints: sharded state dicts, save / load with resharding, validation,
// conversion to and from Hugging Face folders, and the model integration.

export { CorruptCheckpointError, DistCheckpointError, ShardingIntegrityError, StrictLoadError } from './errors.js';
export {
  DROP,
  boxShape,
  commonStateDict,
  isMainReplica,
  isShardedBase,
  isShardedObject,
  isShardedTensor,
  mapSharded,
  nestedSharded,
  objectUniqueKey,
  shardedObject,
  shardedTensor,
  shardedTensorFromLocal,
  shardedTensorFromRankOffsets,
  type AxisLayout,
  type FromRankOffsetsOptions,
  type ReplicaId,
  type ShardData,
  type ShardedBase,
  type ShardedObject,
  type ShardedStateDict,
  type ShardedTensor,
} from './mapping.js';
export { localProcessGroups, singleProcessGroup, type ProcessGroup, type RankCoords } from './group.js';
export { intersectRuns, type Piece, type Run } from './geometry.js';
export {
  STRICT_HANDLING,
  parseStrict,
  validateShardingIntegrity,
  type StrictHandling,
} from './validation.js';
export {
  DIST_FORMAT,
  DIST_VERSION,
  DistCheckpoint,
  METADATA_FILE,
  POINTER_FILE,
  load,
  parseDistMetadata,
  resolveCheckpoint,
  save,
  saveAsync,
  shardTensorName,
  type AsyncSaveRequest,
  type DistMetadata,
  type LoadOptions,
  type LoadResult,
  type LoadedTensor,
  type ObjectMeta,
  type SaveOptions,
  type SaveResult,
  type TensorMeta,
  type TensorShardMeta,
} from './serialization.js';
export {
  MEGATRON_BERT_RULES,
  PARALLEL_AXIS,
  moduleShardedStateDict,
  parallelKind,
  tpSlice,
  type ModuleShardingOptions,
  type ParallelKind,
  type ParallelLayout,
  type ShardingRule,
  type StateDictEntry,
} from './model.js';
export {
  consolidateToHuggingFace,
  inspectCheckpoint,
  isDistCheckpoint,
  splitFromHuggingFace,
  type ConsolidateOptions,
  type SplitOptions,
} from './convert.js';
