export { T5Config } from './config.js';
export type { T5ConfigFields } from './config.js';
export { MegatronT5Config } from './megatron-config.js';
export type { MegatronT5ConfigFields } from './megatron-config.js';
export { T5Tokenizer, t5TokenizerConfigFromJSON } from './tokenizer.js';
export type { ResolvedT5TokenizerConfig, T5TokenizerConfig } from './tokenizer.js';
export { conformance } from './conformance.js';
