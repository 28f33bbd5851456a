// Attention building blocks shared by the model families: masks, position schemes (absolute,
// relative_key(_query), relative buckets), rotary math, the attention core and head pruning,
// feed-forward building blocks and chunked feed-forward. Each family writes its attention and MLP
// modules on these, under its reference's names.

export {
  FLOAT32_MIN,
  FLOAT16_MIN,
  getExtendedAttentionMask,
  invertAttentionMask,
  causalMask,
  prefixLMMask,
  getHeadMask,
  type MaskDType,
  type MaskFormat,
  type MaskBuildOptions,
  type ExtendedAttentionMaskOptions,
  type HeadMaskOptions,
} from './masks.js';
export {
  relativePositionBucket,
  relativePositionBuckets,
  relativePositionBucketTensor,
  t5PositionBias,
  relativeDistanceIds,
  relativeKeyScores,
  absolutePositionIds,
  sinusoidalPositionEmbedding,
  type RelativePositionBucketOptions,
  type T5PositionBiasOptions,
  type RelativeKeyType,
  type RelativeKeyScoresOptions,
} from './position.js';
export {
  rotaryInvFreq,
  rotaryAngles,
  cosSinTensors,
  rotateHalf,
  rotateInterleaved,
  applyRotaryPosEmb,
  RotaryEmbedding,
  applyRotaryPosEmbIndex,
  type CosSin,
  type InvFreqOptions,
  type RotaryEmbeddingOptions,
} from './rotary.js';
export {
  attentionCore,
  findPruneableHeadsAndIndices,
  pruneLinearLayer,
  type AttentionImplementation,
  type AttentionCoreOptions,
  type AttentionCoreResult,
} from './attention.js';
export {
  linearAct,
  geglu,
  resolveActivation,
  applyChunkingToForward,
  ChunkingError,
  type ActivationSpec,
} from './feed-forward.js';
