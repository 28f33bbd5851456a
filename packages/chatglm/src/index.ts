export { ChatGLMConfig } from './config.js';
export type { ChatGLMConfigFields } from './config.js';
