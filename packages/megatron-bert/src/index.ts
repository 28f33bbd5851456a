export { MegatronBertConfig } from './config.js';
export type { MegatronBertConfigFields } from './config.js';
