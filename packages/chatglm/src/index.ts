export { ChatGLMConfig } from './config.js';
export type { ChatGLMConfigFields } from './config.js';
export { ChatGLMRotaryEmbedding, applyChatGLMRotary2D, type ChatGLMRotaryEmbeddingOptions } from './rotary.js';
