export { ReformerConfig } from './config.js';
export type { ReformerAttentionType, ReformerConfigFields } from './config.js';
export * from './modeling.js';
export { conformance } from './conformance.js';
export { CharTokenizer, CharTokenizerError } from './tokenizer.js';
export type { CharTokenizerOptions } from './tokenizer.js';
export { ReformerTokenizer, reformerTokenizerConfigFromJSON } from './reformer-tokenizer.js';
export type { ReformerTokenizerConfig, ResolvedReformerTokenizerConfig } from './reformer-tokenizer.js';
