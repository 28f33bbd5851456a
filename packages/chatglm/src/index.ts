export { ChatGLMConfig } from './config.js';
export type { ChatGLMConfigFields } from './config.js';
export { ChatGLMRotaryEmbedding, applyChatGLMRotary2D, type ChatGLMRotaryEmbeddingOptions } from './rotary.js';
export { ChatGLMTokenizer, chatGLMTokenizerConfigFromJSON, preprocessWhitespace } from './tokenizer.js';
export type { ChatGLMBatchEncoding, ChatGLMEncoding, ChatGLMTokenizerConfig, ResolvedChatGLMTokenizerConfig } from './tokenizer.js';
export {
  ChatGLMModel,
  ChatGLMForConditionalGeneration,
  ChatGLMPreTrainedModel,
  ChatGLMInputError,
  GLMBlock,
  GLU,
  SelfAttention,
  PrefixEncoder,
  Tanh,
  GLM_BLOCK_DEFAULT_NUM_LAYERS,
  CHATGLM_CLASSES,
  type LayerPast,
  type PastKeyValues,
  type ChatGLMModelInputs,
  type ChatGLMModelOptions,
  type ChatGLMModelOutput,
  type ChatGLMForConditionalGenerationInputs,
  type ChatGLMCausalLMOutput,
  type SelfAttentionOptions,
  type SelfAttentionOutput,
  type GLMBlockOutput,
} from './modeling.js';
export {
  greedySearch,
  rowSpecialPositions,
  chatglmDecoderStep,
  chatglmCacheOps,
  type ChatGLMCache,
  type GreedySearchOptions,
  type GreedySearchResult,
} from './generation.js';
export { conformance } from './conformance.js';
export { Float16Embedding, Float16Linear, Float16Table } from './float16.js';
export { QuantizedLinear, quantizeWeight, compressInt4, type QuantizedValues, type QuantizedLinearOptions, type QuantizationRounding } from './quantization.js';
export {
  chat,
  streamChat,
  generate,
  buildPrompt,
  processResponse,
  invalidScoreLogitsProcessor,
  type ChatHistory,
  type ChatTokenizer,
  type ChatOptions,
} from './chat.js';
