// @lm/layers: what each model package is written with.

export { Module, ModuleList, StateDictError, type StateDict, type LoadStateDictResult, type ModuleOptions } from './module.js';
export * from './nn/index.js';
export { withoutInit, isInitSkipped, initTensor, initInPlace, type Init } from './init.js';
export { checkpoint } from './checkpoint.js';
export { ACTIVATION_NAMES, getActivation, UnknownActivationError } from './activations.js';
export type { Activation } from './activations.js';
export {
  ConfigError,
  PRETRAINED_CONFIG_FIELDS,
  PretrainedConfig,
  readConfigJSON,
  writeConfigJSON,
} from './pretrained-config.js';
export type { FieldTable, JsonObject, PretrainedConfigFields } from './pretrained-config.js';
export {
  PreTrainedModel,
  PretrainedLoadError,
  checkpointKeyOf,
  type PreTrainedModelClass,
  type PretrainedSource,
  type FromPretrainedOptions,
  type SavePretrainedOptions,
  type SavedTensor,
  type GradientCheckpointable,
} from './pretrained-model.js';
export * from './attention/index.js';
export * from './optim/index.js';
export * from './tokenizers/index.js';
export * from './generation/index.js';
export { BertPredictionHeadTransform, BertLMPredictionHead, BertOnlyMLMHead, type BertHeadConfig } from './heads/bert.js';
