export { ChatGLMConfig } from './config.js';
export type { ChatGLMConfigFields } from './config.js';
export { ChatGLMRotaryEmbedding, applyChatGLMRotary2D, type ChatGLMRotaryEmbeddingOptions } from './rotary.js';
export { ChatGLMTokenizer, chatGLMTokenizerConfigFromJSON, preprocessWhitespace } from './tokenizer.js';
export type { ChatGLMBatchEncoding, ChatGLMEncoding, ChatGLMTokenizerConfig, ResolvedChatGLMTokenizerConfig } from './tokenizer.js';
export { conformance } from './conformance.js';
