// What every slow (pure Python) Hugging Face tokenizer inherits from `PreTrainedTokenizerBase` once its
// text is ids: the padding / truncation strategies, `prepare_for_model` (truncate, add the family's
// special tokens, token types, special-tokens mask), `truncate_sequences`, `_pad`, the batched call
// (each item prepared, then all padded to one length) and `clean_up_tokenization`. BertTokenizer,
// T5Tokenizer and ChatGLMTokenizer differ only in the hooks: their special tokens and (ChatGLM) padding.
// Reference: transformers 4.57 `tokenization_utils_base.py`.

import { MissingPadTokenError, TokenizerError } from './errors.js';
import { LARGE_INTEGER } from './tokenizer-config.js';

/** `padding`: true = 'longest' (pad to the longest in the batch), 'max_length' = to `maxLength`. */
export type Padding = boolean | 'longest' | 'max_length' | 'do_not_pad';
/** `truncation`: true = 'longest_first'. */
export type Truncation = boolean | 'longest_first' | 'only_first' | 'only_second' | 'do_not_truncate';

export interface EncodeOptions {
  /** Add the family's special tokens ([CLS]/[SEP], </s>, [gMASK] <sop>). Default true. */
  addSpecialTokens?: boolean;
  /** Default false. */
  padding?: Padding;
  /** Default: none, except 'longest_first' when `maxLength` is given without padding (as the reference). */
  truncation?: Truncation;
  /** Truncate / pad to this length; default `modelMaxLength` when truncation or 'max_length' padding asks for one. */
  maxLength?: number | null;
  /** Round the padded length up to a multiple of this. */
  padToMultipleOf?: number | null;
  /** Default: whether the family's model takes token_type_ids (BERT yes, T5 no). */
  returnTokenTypeIds?: boolean;
  /** Default true. */
  returnAttentionMask?: boolean;
  /** Default false. */
  returnSpecialTokensMask?: boolean;
  /** Default false. The length of input_ids: padded for `encode`, unpadded for `encodeBatch` (as the reference). */
  returnLength?: boolean;
}

export interface DecodeOptions {
  /** Drop the special tokens. Default false. */
  skipSpecialTokens?: boolean;
  /** Remove the spaces before punctuation and around contractions. Default: the tokenizer's setting. */
  cleanUpTokenizationSpaces?: boolean;
}

/** One encoded text or text pair; optional fields are present exactly when asked for. */
export interface Encoding {
  inputIds: number[];
  tokenTypeIds?: number[];
  attentionMask?: number[];
  specialTokensMask?: number[];
  length?: number;
}

/** A batch of encodings, field by field: `inputIds[b]` is row b. */
export interface BatchEncoding {
  inputIds: number[][];
  tokenTypeIds?: number[][];
  attentionMask?: number[][];
  specialTokensMask?: number[][];
  length?: number[];
}

/** A single text, or a (text, textPair) pair. */
export type TextInput = string | readonly [string, string];

export type PaddingStrategy = 'do_not_pad' | 'longest' | 'max_length';
export type TruncationStrategy = 'do_not_truncate' | 'longest_first' | 'only_first' | 'only_second';

export interface Strategies {
  padding: PaddingStrategy;
  truncation: TruncationStrategy;
  maxLength: number | null;
  padToMultipleOf: number | null;
  addSpecialTokens: boolean;
  returnTokenTypeIds: boolean;
  returnAttentionMask: boolean;
  returnSpecialTokensMask: boolean;
  returnLength: boolean;
}

/** What a family's tokenizer tells the shared steps. */
export interface SlowTokenizerHooks {
  /** `build_inputs_with_special_tokens`. */
  buildInputsWithSpecialTokens(ids: readonly number[], pairIds: readonly number[] | null): number[];
  /** `create_token_type_ids_from_sequences`. */
  createTokenTypeIdsFromSequences(ids: readonly number[], pairIds: readonly number[] | null): number[];
  /** `get_special_tokens_mask` (already_has_special_tokens=False). */
  getSpecialTokensMask(ids: readonly number[], pairIds: readonly number[] | null): number[];
  /** `num_special_tokens_to_add`. */
  numSpecialTokensToAdd(pair: boolean): number;
  readonly truncationSide: 'left' | 'right';
}

/** The settings `resolveStrategies` needs from the tokenizer. */
export interface StrategyDefaults {
  modelMaxLength: number;
  padTokenId: number | null;
  /** Whether `token_type_ids` is in the model's input names (the default of `returnTokenTypeIds`). */
  returnTokenTypeIds: boolean;
  /** The message of the MissingPadTokenError thrown when padding is asked for and `padTokenId` is null (default: a generic one). */
  missingPadToken?: string;
}

/** `_get_padding_truncation_strategies`, with the reference's defaults and checks. */
export function resolveStrategies(options: EncodeOptions, defaults: StrategyDefaults): Strategies {
  const { padding = false, padToMultipleOf = null } = options;
  let { truncation, maxLength = null } = options;
  // "If you only set max_length, it activates truncation for max_length."
  if (maxLength !== null && padding === false && truncation === undefined) truncation = 'longest_first';

  let paddingStrategy: PaddingStrategy;
  if (padding === true) paddingStrategy = 'longest';
  else if (padding === false) paddingStrategy = 'do_not_pad';
  else if (padding === 'longest' || padding === 'max_length' || padding === 'do_not_pad') paddingStrategy = padding;
  else throw new TokenizerError(`encode: padding ${JSON.stringify(padding)} is not one of true, false, 'longest', 'max_length', 'do_not_pad'`);

  let truncationStrategy: TruncationStrategy;
  if (truncation === true) truncationStrategy = 'longest_first';
  else if (truncation === false || truncation === undefined) truncationStrategy = 'do_not_truncate';
  else if (['longest_first', 'only_first', 'only_second', 'do_not_truncate'].includes(truncation)) truncationStrategy = truncation;
  else throw new TokenizerError(`encode: truncation ${JSON.stringify(truncation)} is not one of true, false, 'longest_first', 'only_first', 'only_second', 'do_not_truncate'`);

  if (maxLength !== null && !(Number.isInteger(maxLength) && maxLength >= 0)) {
    throw new TokenizerError(`encode: maxLength must be a non-negative integer, got ${maxLength}`);
  }
  if (maxLength === null) {
    const modelMax = defaults.modelMaxLength;
    if (paddingStrategy === 'max_length') {
      if (modelMax > LARGE_INTEGER) paddingStrategy = 'do_not_pad';
      else maxLength = modelMax;
    }
    if (truncationStrategy !== 'do_not_truncate') {
      if (modelMax > LARGE_INTEGER) truncationStrategy = 'do_not_truncate';
      else maxLength = modelMax;
    }
  }
  if (paddingStrategy !== 'do_not_pad' && defaults.padTokenId === null) {
    throw new MissingPadTokenError(defaults.missingPadToken ?? 'encode: asked to pad but the tokenizer has no padding token');
  }
  if (padToMultipleOf !== null && !(Number.isInteger(padToMultipleOf) && padToMultipleOf > 0)) {
    throw new TokenizerError(`encode: padToMultipleOf must be a positive integer, got ${padToMultipleOf}`);
  }
  if (truncationStrategy !== 'do_not_truncate' && paddingStrategy !== 'do_not_pad' && padToMultipleOf !== null && maxLength !== null && maxLength % padToMultipleOf !== 0) {
    throw new TokenizerError(`encode: truncation and padding are both on, but maxLength ${maxLength} is not a multiple of padToMultipleOf ${padToMultipleOf}`);
  }
  const addSpecialTokens = options.addSpecialTokens ?? true;
  if (options.returnTokenTypeIds === true && !addSpecialTokens) {
    throw new TokenizerError('encode: returnTokenTypeIds with addSpecialTokens false is undefined behaviour in the reference; leave returnTokenTypeIds unset');
  }
  return {
    padding: paddingStrategy,
    truncation: truncationStrategy,
    maxLength,
    padToMultipleOf,
    addSpecialTokens,
    returnTokenTypeIds: options.returnTokenTypeIds ?? defaults.returnTokenTypeIds,
    returnAttentionMask: options.returnAttentionMask ?? true,
    returnSpecialTokensMask: options.returnSpecialTokensMask ?? false,
    returnLength: options.returnLength ?? false,
  };
}

/** `prepare_for_model` without the padding step: truncate, add special tokens, type ids, masks. */
export function prepareForModel(hooks: SlowTokenizerHooks, ids: number[], pairIds: number[] | null, s: Strategies): Encoding {
  const total = ids.length + (pairIds?.length ?? 0) + (s.addSpecialTokens ? hooks.numSpecialTokensToAdd(pairIds !== null) : 0);
  if (s.truncation !== 'do_not_truncate' && s.maxLength && total > s.maxLength) {
    [ids, pairIds] = truncateSequences(ids, pairIds, total - s.maxLength, s.truncation, hooks.truncationSide);
  }
  const encoding: Encoding = s.addSpecialTokens
    ? { inputIds: hooks.buildInputsWithSpecialTokens(ids, pairIds) }
    : { inputIds: pairIds === null ? [...ids] : [...ids, ...pairIds] };
  if (s.returnTokenTypeIds) {
    encoding.tokenTypeIds = s.addSpecialTokens ? hooks.createTokenTypeIdsFromSequences(ids, pairIds) : new Array<number>(encoding.inputIds.length).fill(0);
  }
  if (s.returnSpecialTokensMask) {
    encoding.specialTokensMask = s.addSpecialTokens ? hooks.getSpecialTokensMask(ids, pairIds) : new Array<number>(encoding.inputIds.length).fill(0);
  }
  return encoding;
}

/**
 * `truncate_sequences`. 'longest_first' removes one token at a time from the longer sequence (from
 * the pair on ties). As in the reference, a strategy that cannot remove enough from the sequence it
 * may cut (only_first / only_second, or a single text) leaves both untouched.
 */
export function truncateSequences(
  ids: number[],
  pairIds: number[] | null,
  numToRemove: number,
  strategy: TruncationStrategy,
  side: 'left' | 'right',
): [number[], number[] | null] {
  const cut = (seq: number[], n: number) => (side === 'left' ? seq.slice(n) : seq.slice(0, seq.length - n));
  if (numToRemove <= 0) return [ids, pairIds];
  if (strategy === 'only_first' || (strategy === 'longest_first' && pairIds === null)) {
    if (ids.length > numToRemove) ids = cut(ids, numToRemove);
  } else if (strategy === 'longest_first' && pairIds !== null) {
    for (let i = 0; i < numToRemove; i++) {
      if (ids.length > pairIds.length) ids = cut(ids, 1);
      else pairIds = cut(pairIds, 1);
    }
  } else if (strategy === 'only_second' && pairIds !== null) {
    if (pairIds.length > numToRemove) pairIds = cut(pairIds, numToRemove);
  }
  return [ids, pairIds];
}

/** The target length of `_pad`: `maxLength` (or the sequence's own for 'longest'), rounded up to `padToMultipleOf`. */
export function padTarget(length: number, maxLength: number | null, strategy: PaddingStrategy, padToMultipleOf: number | null): number | null {
  if (strategy === 'longest') maxLength = length;
  if (maxLength !== null && padToMultipleOf !== null && maxLength % padToMultipleOf !== 0) {
    maxLength = (Math.floor(maxLength / padToMultipleOf) + 1) * padToMultipleOf;
  }
  return maxLength;
}

/** The base `_pad`: pad one encoding on `side` with `padId` (attention 0, token type 0, special-tokens mask 1). */
export function padEncoding(
  encoding: Encoding,
  maxLength: number | null,
  strategy: PaddingStrategy,
  padToMultipleOf: number | null,
  returnAttentionMask: boolean,
  side: 'left' | 'right',
  padId: number,
): Encoding {
  const length = encoding.inputIds.length;
  maxLength = padTarget(length, maxLength, strategy, padToMultipleOf);
  const out: Encoding = { ...encoding };
  if (returnAttentionMask && out.attentionMask === undefined) out.attentionMask = new Array<number>(length).fill(1);
  const difference = strategy !== 'do_not_pad' && maxLength !== null ? maxLength - length : 0;
  if (difference <= 0) return out;
  const pad = (seq: number[], value: number) => {
    const fill = new Array<number>(difference).fill(value);
    return side === 'left' ? fill.concat(seq) : seq.concat(fill);
  };
  if (out.attentionMask !== undefined) out.attentionMask = pad(out.attentionMask, 0);
  if (out.tokenTypeIds !== undefined) out.tokenTypeIds = pad(out.tokenTypeIds, 0);
  if (out.specialTokensMask !== undefined) out.specialTokensMask = pad(out.specialTokensMask, 1);
  out.inputIds = pad(out.inputIds, padId);
  return out;
}

/**
 * The batched call's padding step (`pad` on a batch): 'longest' becomes 'max_length' to the longest
 * row, then each row is padded by `padOne`.
 */
export function padBatch<E extends { inputIds: number[] }, P>(
  encodings: readonly E[],
  s: Strategies,
  padOne: (e: E, maxLength: number | null, strategy: PaddingStrategy) => P,
): P[] {
  let padding = s.padding;
  let maxLength = s.maxLength;
  if (padding === 'longest') {
    maxLength = Math.max(0, ...encodings.map((e) => e.inputIds.length));
    padding = 'max_length';
  }
  return encodings.map((e) => padOne(e, maxLength, padding));
}

/** Field-by-field batch of encodings (`BatchEncoding` layout); `lengths` = the unpadded lengths. */
export function collateEncodings(padded: readonly Encoding[], s: Strategies, lengths: readonly number[]): BatchEncoding {
  const batch: BatchEncoding = { inputIds: padded.map((e) => e.inputIds) };
  if (s.returnTokenTypeIds) batch.tokenTypeIds = padded.map((e) => e.tokenTypeIds!);
  if (s.returnSpecialTokensMask) batch.specialTokensMask = padded.map((e) => e.specialTokensMask!);
  if (s.returnAttentionMask) batch.attentionMask = padded.map((e) => e.attentionMask!);
  if (s.returnLength) batch.length = [...lengths];
  return batch;
}

/** Pads one prepared encoding to `maxLength` under `strategy` (the family's `_pad`). */
export type PadOne<E, P> = (encoding: E, maxLength: number | null, strategy: PaddingStrategy) => P;

/**
 * `tokenizer(text, textPair)` once the texts are ids: `prepare_for_model`, then `pad` (asked for, or
 * for the attention mask; an empty encoding is left as is), then the length.
 */
export function encodeOne(hooks: SlowTokenizerHooks, ids: number[], pairIds: number[] | null, s: Strategies, padOne: PadOne<Encoding, Encoding>): Encoding {
  let encoding = prepareForModel(hooks, ids, pairIds, s);
  if (s.padding !== 'do_not_pad' || s.returnAttentionMask) {
    if (encoding.inputIds.length === 0) {
      if (s.returnAttentionMask) encoding.attentionMask = [];
    } else encoding = padOne(encoding, s.maxLength, s.padding);
  }
  if (s.returnLength) encoding.length = encoding.inputIds.length;
  return encoding;
}

/** `tokenizer(batch)` once the texts are ids: each item prepared unpadded, then all padded together. */
export function encodeMany(hooks: SlowTokenizerHooks, items: readonly (readonly [number[], number[] | null])[], s: Strategies, padOne: PadOne<Encoding, Encoding>): BatchEncoding {
  const encodings = items.map(([ids, pairIds]) => prepareForModel(hooks, ids, pairIds, { ...s, padding: 'do_not_pad', returnAttentionMask: false }));
  return collateEncodings(padBatch(encodings, s, padOne), s, encodings.map((e) => e.inputIds.length));
}

/** What the base `_decode` needs from a tokenizer, its tokens already looked up. */
export interface DecodeTokensHooks {
  skipSpecialTokens: boolean;
  cleanUpTokenizationSpaces: boolean;
  isSpecial(token: string): boolean;
  /**
   * `legacy_added_tokens`: added tokens that are not special, and additional special tokens past the
   * base vocabulary (T5's sentinels): each is decoded as its own piece of text.
   */
  isLegacyAdded(token: string): boolean;
  padToken: string | null;
  /** The family's `convert_tokens_to_string` on a run of ordinary tokens. */
  convertTokensToString(tokens: string[]): string;
}

/**
 * The base `_decode` on tokens: skip special tokens if asked, decode runs of ordinary tokens with
 * `convertTokensToString`, keep legacy added tokens as separate pieces, join the pieces with single
 * spaces (`spaces_between_special_tokens`), then `clean_up_tokenization` if asked.
 */
export function decodeTokens(tokens: readonly string[], h: DecodeTokensHooks): string {
  const subTexts: string[] = [];
  let current: string[] = [];
  for (const token of tokens) {
    if (h.skipSpecialTokens && (h.isSpecial(token) || (token !== h.padToken && h.isLegacyAdded(token)))) continue;
    if (h.isLegacyAdded(token)) {
      if (current.length > 0) {
        const text = h.convertTokensToString(current);
        if (text.length > 0) subTexts.push(text);
        current = [];
      }
      subTexts.push(token);
    } else current.push(token);
  }
  if (current.length > 0) subTexts.push(h.convertTokensToString(current));
  const text = subTexts.join(' ');
  return h.cleanUpTokenizationSpaces ? cleanUpTokenization(text) : text;
}

/** `clean_up_tokenization`: the reference's fixed list of replacements, in its order. */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

/**
 * A slow tokenizer: text -> tokens -> ids and the family's special-token rules (`tokenize`,
 * `convert_tokens_to_ids`, `build_inputs_with_special_tokens`, ...), which the shared steps above
 * call back. Families add their encode (with their `_pad`) and decode.
 */
export abstract class SlowTokenizer {
  abstract tokenize(text: string): string[];
  abstract convertTokensToIds(tokens: readonly string[]): number[];
  abstract buildInputsWithSpecialTokens(ids: readonly number[], pairIds?: readonly number[] | null): number[];
  abstract createTokenTypeIdsFromSequences(ids: readonly number[], pairIds?: readonly number[] | null): number[];
  abstract getSpecialTokensMask(ids: readonly number[], pairIds?: readonly number[] | null): number[];
  abstract numSpecialTokensToAdd(pair?: boolean): number;
  /** Which end truncation cuts (`truncation_side`). */
  protected abstract get truncationSide(): 'left' | 'right';
  /** `_get_padding_truncation_strategies` with this tokenizer's defaults (`resolveStrategies`). */
  protected abstract strategies(options: EncodeOptions): Strategies;

  /** A text's ids: `convert_tokens_to_ids(tokenize(text))`. */
  protected idsOf(text: string): number[] {
    return this.convertTokensToIds(this.tokenize(text));
  }

  /** An input's ids and its pair's (null for a single text). */
  protected inputIds(input: TextInput): readonly [number[], number[] | null] {
    return typeof input === 'string' ? [this.idsOf(input), null] : [this.idsOf(input[0]), this.idsOf(input[1])];
  }

  protected hooks(): SlowTokenizerHooks {
    return {
      buildInputsWithSpecialTokens: (ids, pairIds) => this.buildInputsWithSpecialTokens(ids, pairIds),
      createTokenTypeIdsFromSequences: (ids, pairIds) => this.createTokenTypeIdsFromSequences(ids, pairIds),
      getSpecialTokensMask: (ids, pairIds) => this.getSpecialTokensMask(ids, pairIds),
      numSpecialTokensToAdd: (pair) => this.numSpecialTokensToAdd(pair),
      truncationSide: this.truncationSide,
    };
  }
}

/** A slow tokenizer padded by the base `_pad` (BERT, T5): `encode` and `encodeBatch` are complete here. */
export abstract class BasePadTokenizer extends SlowTokenizer {
  protected abstract get paddingSide(): 'left' | 'right';
  /** The padding token's id; throws, naming it, when the tokenizer has none. */
  protected abstract padId(): number;

  /** One text or text pair, as `tokenizer(text, textPair, **options)` (`encode_plus`). */
  encode(text: string, pair: string | null = null, options: EncodeOptions = {}): Encoding {
    const s = this.strategies(options);
    const [ids, pairIds] = this.inputIds(pair === null ? text : [text, pair]);
    return encodeOne(this.hooks(), ids, pairIds, s, this.padder(s));
  }

  /** Texts and/or text pairs, as `tokenizer(batch, **options)`: each encoded, then padded together. */
  encodeBatch(inputs: readonly TextInput[], options: EncodeOptions = {}): BatchEncoding {
    const s = this.strategies(options);
    return encodeMany(this.hooks(), inputs.map((input) => this.inputIds(input)), s, this.padder(s));
  }

  /** `_pad` on one encoding, on `paddingSide`. */
  private padder(s: Strategies): PadOne<Encoding, Encoding> {
    return (encoding, maxLength, strategy) => {
      const padId = strategy === 'do_not_pad' ? -1 : this.padId();
      return padEncoding(encoding, maxLength, strategy, s.padToMultipleOf, s.returnAttentionMask, this.paddingSide, padId);
    };
  }
}
