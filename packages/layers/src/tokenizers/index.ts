export type { SpecialTokenIds, Tokenizer, TokenizerSaveFiles } from './tokenizer.js';
export { BertTokenizer } from './bert-tokenizer.js';
export type { AddedToken } from './bert-tokenizer.js';
export {
  BasePadTokenizer,
  SlowTokenizer,
  cleanUpTokenization,
  collateEncodings,
  decodeTokens,
  encodeMany,
  encodeOne,
  padBatch,
  padEncoding,
  padTarget,
  prepareForModel,
  resolveStrategies,
  truncateSequences,
} from './slow-tokenizer.js';
export type {
  BatchEncoding,
  DecodeOptions,
  DecodeTokensHooks,
  EncodeOptions,
  Encoding,
  Padding,
  PaddingStrategy,
  PadOne,
  SlowTokenizerHooks,
  Strategies,
  StrategyDefaults,
  TextInput,
  Truncation,
  TruncationStrategy,
} from './slow-tokenizer.js';
export { MissingPadTokenError, TokenizerError } from './errors.js';
export { BERT_TOKENIZER_DEFAULTS, bertTokenizerConfigFromJSON, bertTokenizerConfigToJSON, initArgumentsJSON, tokenizerConfigFromJSON, VERY_LARGE_INTEGER } from './tokenizer-config.js';
export type { BertTokenizerConfig, TokenizerConfigKeys, TokenizerConfigValueKind } from './tokenizer-config.js';
export { bertPartsFromTokenizerJSON, buildBertTokenizerJSON } from './tokenizer-json.js';
export type { TokenizerJSON } from './tokenizer-json.js';
export { readTokenizerFiles } from './pretrained-files.js';
export type { LoadedTokenizerFiles, TokenizerFiles } from './pretrained-files.js';
export { parseVocab } from './vocab.js';
export { SentencePieceProcessor, SPIECE_UNDERLINE } from './sentencepiece.js';
export type { EncodedPiece, SentencePieceOptions } from './sentencepiece.js';
export { parseSentencePieceModel, PieceType, sentencePieceModelFromTokenizerJSON } from './sentencepiece-model.js';
export type { NormalizerSpec, SentencePieceModelProto, SentencePieceModelType, SentencePiecePiece } from './sentencepiece-model.js';
export { pyLstrip, pyRstrip, pySplit, pyStrip, splitOnAddedTokens, splitOnTokens } from './text.js';
export type { AddedTokenStrip, TextPiece } from './text.js';
export { AddedTokenTable, addedTokenContent } from './added-tokens.js';
export type { AddedTokenEntry, AddedTokensDecoderJSON } from './added-tokens.js';
export { SentencePieceSlowTokenizer, sentencePieceTokensToString } from './sentencepiece-slow-tokenizer.js';
export type { SentencePieceSlowTokenizerConfig } from './sentencepiece-slow-tokenizer.js';
