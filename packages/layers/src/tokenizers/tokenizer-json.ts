// tokenizer.json (the `tokenizers` / `@huggingface/tokenizers` format) for a BERT WordPiece
// tokenizer: built from a vocab plus the BertTokenizer init arguments (what `BertTokenizerFast`'s
// converter writes for a vocab.txt checkpoint), and read back into them.

import { TokenizerError } from './errors.js';
import { resolveBertTokenizerConfig } from './tokenizer-config.js';
import type { BertTokenizerConfig } from './tokenizer-config.js';

/** The subset of the tokenizer.json schema this module writes and reads. */
export interface TokenizerJSON {
  version?: string;
  truncation?: unknown;
  padding?: unknown;
  added_tokens: TokenizerJSONAddedToken[];
  normalizer: Record<string, unknown> | null;
  pre_tokenizer: Record<string, unknown> | null;
  post_processor: Record<string, unknown> | null;
  decoder: Record<string, unknown> | null;
  model: Record<string, unknown> & { type?: string; vocab?: unknown };
}

export interface TokenizerJSONAddedToken {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

/** What the library needs to run one stage set: all stages, or WordPiece alone. */
export type TokenizerJSONStages = 'full' | 'basic' | 'wordpiece';

/**
 * A tokenizer.json equivalent to `BertTokenizer(vocab, **config)`: BertNormalizer, BertPreTokenizer,
 * WordPiece (`##`, max 100 chars), a TemplateProcessing `[CLS] A [SEP] (B [SEP])` post-processor and
 * the WordPiece decoder. `stages` 'basic' / 'wordpiece' drop what `BertTokenizer` does itself (special
 * tokens, post-processing, decoding; and for 'wordpiece' the normalizer and pre-tokenizer too).
 * `added` are the special tokens with their ids (vocab ids, or ids past the vocab).
 */
export function buildBertTokenizerJSON(
  vocab: ReadonlyMap<string, number>,
  config: BertTokenizerConfig = {},
  added: readonly { content: string; id: number }[] = [],
  stages: TokenizerJSONStages = 'full',
): TokenizerJSON {
  const c = resolveBertTokenizerConfig(config);
  const full = stages === 'full';
  const basic = stages !== 'wordpiece' && c.doBasicTokenize;
  const idOf = (token: string): number => added.find((t) => t.content === token)?.id ?? vocab.get(token) ?? -1;
  const cls = c.clsToken;
  const sep = c.sepToken;
  const special = (token: string) => ({ id: token, ids: [idOf(token)], tokens: [token] });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: full
      ? added.map(({ content, id }) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
      : [],
    normalizer: basic
      ? {
          type: 'BertNormalizer',
          clean_text: true,
          handle_chinese_chars: c.tokenizeChineseChars,
          strip_accents: c.stripAccents,
          lowercase: c.doLowerCase,
        }
      : full && c.doLowerCase
        ? { type: 'Lowercase' }
        : null,
    pre_tokenizer: basic ? { type: 'BertPreTokenizer' } : full ? { type: 'WhitespaceSplit' } : null,
    post_processor:
      full && cls !== null && sep !== null
        ? {
            type: 'TemplateProcessing',
            single: [
              { SpecialToken: { id: cls, type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { SpecialToken: { id: sep, type_id: 0 } },
            ],
            pair: [
              { SpecialToken: { id: cls, type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { SpecialToken: { id: sep, type_id: 0 } },
              { Sequence: { id: 'B', type_id: 1 } },
              { SpecialToken: { id: sep, type_id: 1 } },
            ],
            special_tokens: Object.fromEntries([cls, sep].map((token) => [token, special(token)])),
          }
        : null,
    decoder: full ? { type: 'WordPiece', prefix: '##', cleanup: c.cleanUpTokenizationSpaces } : null,
    model: {
      type: 'WordPiece',
      unk_token: c.unkToken,
      continuing_subword_prefix: '##',
      max_input_chars_per_word: c.maxInputCharsPerWord,
      // fromEntries defines own properties, so a token such as "__proto__" stays a plain key.
      vocab: Object.fromEntries(vocab),
    },
  };
}

/** A BERT WordPiece tokenizer.json taken apart into what `BertTokenizer`'s constructor takes. */
export interface BertTokenizerParts {
  vocab: Map<string, number>;
  config: BertTokenizerConfig;
  /** added_tokens whose content is not in the model vocab (they keep their ids). */
  added: { content: string; id: number }[];
}

/**
 * Reads a WordPiece tokenizer.json (BertNormalizer + BertPreTokenizer, or no normalizer and a
 * whitespace pre-tokenizer, optionally after a Lowercase normalizer) back into vocab and init arguments. `config` (tokenizer_config.json's
 * values) wins over what the file implies; special tokens default to BERT's.
 */
export function bertPartsFromTokenizerJSON(json: unknown, config: BertTokenizerConfig = {}): BertTokenizerParts {
  const where = 'tokenizer.json';
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new TokenizerError(`${where}: expected a JSON object`);
  }
  const tj = json as Partial<TokenizerJSON>;
  const model = tj.model;
  if (!model || typeof model !== 'object') throw new TokenizerError(`${where}: no "model"`);
  const isWordPiece = model.type === 'WordPiece' || (model.type === undefined && 'continuing_subword_prefix' in model && !('merges' in model));
  if (!isWordPiece) {
    throw new TokenizerError(`${where}: BertTokenizer needs a WordPiece model, got ${JSON.stringify(model.type)}`);
  }
  const prefix = model.continuing_subword_prefix ?? '##';
  if (prefix !== '##') throw new TokenizerError(`${where}: continuing_subword_prefix ${JSON.stringify(prefix)} is not "##"`);
  const rawVocab = model.vocab;
  if (!rawVocab || typeof rawVocab !== 'object' || Array.isArray(rawVocab)) {
    throw new TokenizerError(`${where}: model.vocab must be an object of token -> id`);
  }
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(rawVocab)) {
    if (!Number.isInteger(id)) throw new TokenizerError(`${where}: model.vocab[${JSON.stringify(token)}] is not an integer id`);
    vocab.set(token, id as number);
  }

  const implied: BertTokenizerConfig = {};
  if (typeof model.unk_token === 'string') implied.unkToken = model.unk_token;
  if (typeof model.max_input_chars_per_word === 'number') implied.maxInputCharsPerWord = model.max_input_chars_per_word;
  const normalizer = tj.normalizer ?? null;
  const preTokenizer = tj.pre_tokenizer ?? null;
  if (normalizer !== null && normalizer.type === 'BertNormalizer') {
    if (preTokenizer?.type !== 'BertPreTokenizer') {
      throw new TokenizerError(`${where}: BertNormalizer without BertPreTokenizer (got ${JSON.stringify(preTokenizer?.type)}) is not a BertTokenizer`);
    }
    implied.doBasicTokenize = true;
    implied.doLowerCase = normalizer.lowercase !== false;
    implied.stripAccents = (normalizer.strip_accents as boolean | null | undefined) ?? null;
    implied.tokenizeChineseChars = normalizer.handle_chinese_chars !== false;
  } else if ((normalizer === null || normalizer.type === 'Lowercase') && (preTokenizer === null || preTokenizer.type === 'WhitespaceSplit')) {
    implied.doBasicTokenize = false;
    implied.doLowerCase = normalizer !== null;
  } else {
    throw new TokenizerError(
      `${where}: normalizer ${JSON.stringify(normalizer?.type ?? null)} / pre_tokenizer ${JSON.stringify(preTokenizer?.type ?? null)} is not a BertTokenizer pipeline`,
    );
  }
  const template = tj.post_processor;
  if (template && template.type === 'BertProcessing') {
    const [sep] = template.sep as [string, number];
    const [cls] = template.cls as [string, number];
    implied.sepToken = sep;
    implied.clsToken = cls;
  }
  if (tj.decoder && typeof tj.decoder.cleanup === 'boolean') implied.cleanUpTokenizationSpaces = tj.decoder.cleanup;

  const added: { content: string; id: number }[] = [];
  for (const token of tj.added_tokens ?? []) {
    if (vocab.get(token.content) !== token.id) added.push({ content: token.content, id: token.id });
  }
  return { vocab, config: { ...implied, ...dropUndefined(config) }, added };
}

function dropUndefined<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
