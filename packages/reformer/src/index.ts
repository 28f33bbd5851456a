export { ReformerConfig } from './config.js';
export type { ReformerAttentionType, ReformerConfigFields } from './config.js';
