export { RealmConfig } from './config.js';
export type { RealmConfigFields } from './config.js';
export { RealmTokenizer } from './tokenizer.js';
export type { CandidatesEncodeOptions, CandidatesEncoding } from './tokenizer.js';
export { conformance } from './conformance.js';
