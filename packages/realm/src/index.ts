export { RealmConfig } from './config.js';
export type { RealmConfigFields } from './config.js';
