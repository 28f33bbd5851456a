// The init arguments of the reference `BertTokenizer` (and `RealmTokenizer`, which takes the same),
// camelCase, with the reference's defaults; `bertTokenizerConfigFromJSON` is the one place that maps
// the snake_case keys of tokenizer_config.json / special_tokens_map.json onto them.

import { addedTokenContent } from './added-tokens.js';
import { TokenizerError } from './errors.js';

export interface BertTokenizerConfig {
  /** Lowercase (per character) and, unless `stripAccents === false`, strip accents. Default true. */
  doLowerCase?: boolean;
  /** Run the BasicTokenizer (cleaning, CJK, punctuation) before WordPiece. Default true. */
  doBasicTokenize?: boolean;
  /** Words the BasicTokenizer keeps whole and hands out as they are (special tokens always are kept whole). */
  neverSplit?: readonly string[] | null;
  unkToken?: string | null;
  sepToken?: string | null;
  padToken?: string | null;
  clsToken?: string | null;
  maskToken?: string | null;
  additionalSpecialTokens?: readonly string[];
  /** Surround CJK ideographs with spaces. Default true. */
  tokenizeChineseChars?: boolean;
  /** null (default): strip accents exactly when lowercasing; true / false force it on / off. */
  stripAccents?: boolean | null;
  /** Length used when truncation or max_length padding is asked for without `maxLength`. Default 1e30 (none). */
  modelMaxLength?: number;
  /** Words longer than this (in code points) become the unknown token. Default 100. */
  maxInputCharsPerWord?: number;
  paddingSide?: 'right' | 'left';
  truncationSide?: 'right' | 'left';
  /** Default of `decode`'s `cleanUpTokenizationSpaces`. Default true. */
  cleanUpTokenizationSpaces?: boolean;
}

/** `VERY_LARGE_INTEGER` of the reference: a model_max_length that means "no limit". */
export const VERY_LARGE_INTEGER = 1e30;
/** `LARGE_INTEGER` of the reference: above it, model_max_length is never used to truncate or pad. */
export const LARGE_INTEGER = 1e20;

export type ResolvedBertTokenizerConfig = Required<BertTokenizerConfig>;

export const BERT_TOKENIZER_DEFAULTS: ResolvedBertTokenizerConfig = {
  doLowerCase: true,
  doBasicTokenize: true,
  neverSplit: null,
  unkToken: '[UNK]',
  sepToken: '[SEP]',
  padToken: '[PAD]',
  clsToken: '[CLS]',
  maskToken: '[MASK]',
  additionalSpecialTokens: [],
  tokenizeChineseChars: true,
  stripAccents: null,
  modelMaxLength: VERY_LARGE_INTEGER,
  maxInputCharsPerWord: 100,
  paddingSide: 'right',
  truncationSide: 'right',
  cleanUpTokenizationSpaces: true,
};

export function resolveBertTokenizerConfig(config: BertTokenizerConfig = {}): ResolvedBertTokenizerConfig {
  const out = { ...BERT_TOKENIZER_DEFAULTS };
  for (const key of Object.keys(config) as (keyof BertTokenizerConfig)[]) {
    if (config[key] !== undefined) (out as Record<string, unknown>)[key] = config[key];
  }
  return out;
}

/** snake_case key -> camelCase field. */
const FIELDS: { readonly [K in keyof BertTokenizerConfig]-?: string } = {
  doLowerCase: 'do_lower_case',
  doBasicTokenize: 'do_basic_tokenize',
  neverSplit: 'never_split',
  unkToken: 'unk_token',
  sepToken: 'sep_token',
  padToken: 'pad_token',
  clsToken: 'cls_token',
  maskToken: 'mask_token',
  additionalSpecialTokens: 'additional_special_tokens',
  tokenizeChineseChars: 'tokenize_chinese_chars',
  stripAccents: 'strip_accents',
  modelMaxLength: 'model_max_length',
  maxInputCharsPerWord: 'max_input_chars_per_word',
  paddingSide: 'padding_side',
  truncationSide: 'truncation_side',
  cleanUpTokenizationSpaces: 'clean_up_tokenization_spaces',
};

const TOKEN_FIELDS = new Set<keyof BertTokenizerConfig>(['unkToken', 'sepToken', 'padToken', 'clsToken', 'maskToken']);

/** A special token as saved: a string, or an AddedToken object `{ content: "[MASK]", ... }`. */
function tokenContent(value: unknown, key: string): string | null {
  if (value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  throw new TokenizerError(`tokenizer config: ${key} must be a string or {content: string}, got ${JSON.stringify(value)}`);
}

/**
 * Reads tokenizer_config.json (and/or special_tokens_map.json: pass them merged, the map last, as
 * `from_pretrained` lets it override) into a `BertTokenizerConfig`. Keys this tokenizer does not
 * use (`tokenizer_class`, `name_or_path`, `added_tokens_decoder`, ...) are ignored.
 */
export function bertTokenizerConfigFromJSON(json: Record<string, unknown>): BertTokenizerConfig {
  const config: Record<string, unknown> = {};
  for (const field of Object.keys(FIELDS) as (keyof BertTokenizerConfig)[]) {
    const key = FIELDS[field];
    if (!(key in json) || json[key] === undefined) continue;
    const value = json[key];
    if (TOKEN_FIELDS.has(field)) config[field] = tokenContent(value, key);
    else if (field === 'additionalSpecialTokens' || field === 'neverSplit') {
      if (value === null) config[field] = field === 'neverSplit' ? null : [];
      else if (Array.isArray(value)) config[field] = value.map((token) => tokenContent(token, key));
      else throw new TokenizerError(`tokenizer config: ${key} must be a list, got ${JSON.stringify(value)}`);
    } else if (field === 'modelMaxLength') {
      // Saved configs often hold 1e30 written as a huge integer; anything non-numeric means "none".
      config[field] = typeof value === 'number' ? value : VERY_LARGE_INTEGER;
    } else config[field] = value;
  }
  return config as BertTokenizerConfig;
}

/**
 * The inverse of `bertTokenizerConfigFromJSON`: tokenizer_config.json's snake_case keys for every
 * field that differs from the reference default (`tokenizer_class` and `do_lower_case` always), so a
 * saved tokenizer reloads equal. A model_max_length of "none" (above LARGE_INTEGER) is left out.
 */
export function bertTokenizerConfigToJSON(config: ResolvedBertTokenizerConfig, tokenizerClass = 'BertTokenizer'): Record<string, unknown> {
  const json: Record<string, unknown> = { tokenizer_class: tokenizerClass, do_lower_case: config.doLowerCase };
  for (const field of Object.keys(FIELDS) as (keyof BertTokenizerConfig)[]) {
    const value = config[field];
    if (field === 'modelMaxLength' && value as number > LARGE_INTEGER) continue;
    if (JSON.stringify(value) !== JSON.stringify(BERT_TOKENIZER_DEFAULTS[field])) json[FIELDS[field]] = value;
  }
  return json;
}

/**
 * How `tokenizerConfigFromJSON` checks a value: a special token (a string or an AddedToken object, read
 * as its content), a list of them, a non-negative number, true/false, "left"/"right", or any JSON (an
 * `added_tokens_decoder`, checked where it is used).
 */
export type TokenizerConfigValueKind = 'token' | 'tokens' | 'count' | 'flag' | 'side' | 'json';

/** tokenizer_config.json key -> [the camelCase config field, how its value is checked]. */
export type TokenizerConfigKeys<C> = Readonly<Record<string, readonly [keyof C & string, TokenizerConfigValueKind]>>;

/**
 * Reads tokenizer_config.json (and/or special_tokens_map.json, merged, the map last) into the init
 * arguments of a slow tokenizer, `owner` naming it in errors: each key of `keys` is checked by its kind
 * and stored under its field; null values and keys not in `keys` are ignored (the reference's
 * `tokenizer_class`, `name_or_path`, ...). The SentencePiece tokenizers (T5, Reformer, ChatGLM) read
 * theirs with it.
 */
export function tokenizerConfigFromJSON<C>(owner: string, json: Record<string, unknown>, keys: TokenizerConfigKeys<C>): C {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const entry = Object.hasOwn(keys, key) ? keys[key] : undefined;
    if (entry === undefined || value === null || value === undefined) continue;
    const [field, kind] = entry;
    const bad = (want: string) => new TokenizerError(`${owner}: ${key} must be ${want}, got ${JSON.stringify(value)}`);
    if (kind === 'token') out[field] = addedTokenContent(value, key, owner);
    else if (kind === 'tokens') {
      if (!Array.isArray(value)) throw bad('a list');
      out[field] = value.map((v, i) => addedTokenContent(v, `${key}[${i}]`, owner));
    } else if (kind === 'count') {
      if (typeof value !== 'number' || !(value >= 0)) throw bad('a non-negative number');
      out[field] = value;
    } else if (kind === 'flag') {
      if (typeof value !== 'boolean') throw bad('true or false');
      out[field] = value;
    } else if (kind === 'side') {
      if (value !== 'left' && value !== 'right') throw bad('"left" or "right"');
      out[field] = value;
    } else out[field] = value;
  }
  return out as C;
}

/** The init arguments `from_pretrained` reads: tokenizer_config.json, then special_tokens_map.json over it. */
export function initArgumentsJSON(files: { tokenizerConfig?: Record<string, unknown>; specialTokensMap?: Record<string, unknown> }): Record<string, unknown> {
  return { ...(files.tokenizerConfig ?? {}), ...(files.specialTokensMap ?? {}) };
}
