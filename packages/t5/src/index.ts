export { T5Config } from './config.js';
export type { T5ConfigFields } from './config.js';
export { MegatronT5Config } from './megatron-config.js';
export type { MegatronT5ConfigFields } from './megatron-config.js';
export * from './modeling.js';
export { conformance } from './conformance.js';
export * from './megatron-modeling.js';
export { Text2TextGenerationPipeline, type Text2TextOutput, type Text2TextTask } from './pipelines.js';
export { ExtraIdsTokenizer, type SentinelOrder } from './extra-ids-tokenizer.js';
