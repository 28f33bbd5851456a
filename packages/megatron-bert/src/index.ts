// @lm/megatron-bert: Megatron-BERT (pre-LayerNorm BERT) mirroring Hugging Face `MegatronBert*`.

export { MegatronBertConfig } from './config.js';
export type { MegatronBertConfigFields } from './config.js';
export * from './modeling.js';
export { fillMask, type FillMaskCandidate, type FillMaskModel, type FillMaskOptions } from './pipelines.js';
export {
  convertMegatronCheckpoint,
  convertMegatronCheckpointToDirectory,
  convertMegatronState,
  fixQueryKeyValueOrdering,
  MegatronConversionError,
  MEGATRON_CHECKPOINT_ENTRY,
  type ConvertMegatronOptions,
  type ConvertedMegatronCheckpoint,
  type ConvertedTensor,
} from './convert-megatron.js';
export { conformance } from './conformance.js';
