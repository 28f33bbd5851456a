// Generation shared by the decoder models: the decoding loop (greedy, sampling, beam search,
// streaming), HF-compatible logits processors, and the cache plumbing the loop needs.

export { GenerationError } from './errors.js';
export {
  generate,
  stream,
  stepWithoutCache,
  sampleTokens,
  buildLogitsProcessor,
  type DecoderStep,
  type DecoderStepOutput,
  type GenerateOptions,
  type GenerateOutput,
  type StreamEvent,
  type FinishReason,
} from './generate.js';
export {
  composeProcessors,
  repetitionPenalty,
  noRepeatNgram,
  badWords,
  minNewTokens,
  forcedEos,
  temperature,
  topK,
  topP,
  bannedNgramTokens,
  type LogitsProcessor,
  type ProcessorContext,
  type FilterOptions,
} from './logits-process.js';
export { BeamHypotheses, BeamSearchScorer, type EarlyStopping, type BeamScorerOptions, type BeamStep } from './beam-search.js';
export {
  appendKV,
  cacheTensors,
  defaultCacheOps,
  disposeKVCache,
  kvCacheLength,
  reorderKVCache,
  treeCacheOps,
  type CacheOps,
  type KVCache,
  type KVPair,
} from './cache.js';
