// BertTokenizer: BERT's WordPiece tokenizer with the call semantics of the slow (pure Python)
// Hugging Face `BertTokenizer` (transformers 4.37, `models/bert/tokenization_bert.py` plus the
// `PreTrainedTokenizer` / `PreTrainedTokenizerBase` machinery it inherits: special tokens, text
// pairs, truncation, padding, decode). MegatronBERT and REALM checkpoints use it as is.
//
// The tokenizing itself (lowercase + accent stripping, punctuation splitting, greedy WordPiece) is
// done by `@huggingface/tokenizers`, run on a tokenizer.json built from vocab.txt. Around it sits a
// thin layer for what the library does differently from the slow tokenizer (see README-notes.md):
// special tokens are split out first, lowercasing is one character at a time (Σ -> σ, never ς),
// cleaning / CJK padding / NFC / whitespace splitting follow Python exactly, and everything after
// tokenize (ids, [CLS]/[SEP], token types, truncation, padding, decode) is written here.

import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from './errors.js';
import { cleanText, lowercaseOutsideTokens, padChineseChars, pySplit, pyStrip, splitOnTokens } from './text.js';
import { BasePadTokenizer, cleanUpTokenization, resolveStrategies } from './slow-tokenizer.js';
import type { DecodeOptions, EncodeOptions, Strategies } from './slow-tokenizer.js';
import { bertTokenizerConfigFromJSON, bertTokenizerConfigToJSON, resolveBertTokenizerConfig } from './tokenizer-config.js';
import type { BertTokenizerConfig, ResolvedBertTokenizerConfig } from './tokenizer-config.js';
import { bertPartsFromTokenizerJSON, buildBertTokenizerJSON } from './tokenizer-json.js';
import type { TokenizerJSON } from './tokenizer-json.js';
import { readTokenizerFiles } from './pretrained-files.js';
import type { SpecialTokenIds, Tokenizer as TokenizerInterface } from './tokenizer.js';
import type { LoadedTokenizerFiles, TokenizerFiles } from './pretrained-files.js';
import { invertVocab, parseVocab } from './vocab.js';

export type { BatchEncoding, DecodeOptions, EncodeOptions, Encoding, Padding, TextInput, Truncation } from './slow-tokenizer.js';

/** A token outside the vocab file (a special token it lacks, or a tokenizer.json added token), with its id. */
export interface AddedToken {
  content: string;
  id: number;
}

type Ctor<T> = new (vocab: ReadonlyMap<string, number>, config?: BertTokenizerConfig, added?: readonly AddedToken[]) => T;

export class BertTokenizer extends BasePadTokenizer implements TokenizerInterface {
  /** token -> id, as read from vocab.txt (without tokens added past it). */
  readonly vocab: ReadonlyMap<string, number>;
  readonly config: ResolvedBertTokenizerConfig;

  private readonly idsToTokens: Map<number, string>;
  /** `_added_tokens_encoder`: every special token (vocab id or an id past the vocab) plus added tokens. */
  private readonly addedEncoder = new Map<string, number>();
  private readonly addedDecoder = new Map<number, string>();
  /** `all_special_tokens`: unk, sep, pad, cls, mask, then the additional ones; no duplicates. */
  readonly allSpecialTokens: readonly string[];
  private readonly allSpecialIdSet: Set<number>;
  /** Tokens cut out of the text before anything else (the reference's added-token trie). */
  private readonly noSplitTokens: string[];
  /** `basic_tokenizer.never_split` (the init argument, not the special tokens). */
  private readonly neverSplit: Set<string>;
  /** The library pipeline: BertNormalizer + BertPreTokenizer + WordPiece. */
  private readonly basic: Tokenizer;
  /** The library pipeline with WordPiece alone. */
  private readonly wordpiece: Tokenizer;

  constructor(vocab: ReadonlyMap<string, number>, config: BertTokenizerConfig = {}, added: readonly AddedToken[] = []) {
    super();
    this.vocab = vocab;
    this.config = resolveBertTokenizerConfig(config);
    const c = this.config;
    this.idsToTokens = invertVocab(vocab);
    this.neverSplit = new Set(c.neverSplit ?? []);

    // Special tokens first (`SpecialTokensMixin` order), then tokenizer.json added tokens; a token the
    // vocab lacks gets the next id past everything so far, like `_add_tokens`.
    const specials: string[] = [];
    for (const token of [c.unkToken, c.sepToken, c.padToken, c.clsToken, c.maskToken, ...c.additionalSpecialTokens]) {
      if (token !== null && !specials.includes(token)) specials.push(token);
    }
    this.allSpecialTokens = specials;
    for (const { content, id } of added) {
      this.addedEncoder.set(content, id);
      this.addedDecoder.set(id, content);
    }
    let nextId = Math.max(vocab.size, ...[...this.addedDecoder.keys()].map((id) => id + 1));
    for (const token of specials) {
      if (this.addedEncoder.has(token)) continue;
      const id = vocab.get(token) ?? nextId++;
      this.addedEncoder.set(token, id);
      this.addedDecoder.set(id, token);
    }
    this.noSplitTokens = [...this.addedEncoder.keys()];
    this.allSpecialIdSet = new Set(specials.map((token) => this.addedEncoder.get(token)!));

    this.basic = new Tokenizer(buildBertTokenizerJSON(vocab, c, [], 'basic'), {});
    this.wordpiece = new Tokenizer(buildBertTokenizerJSON(vocab, c, [], 'wordpiece'), {});
  }

  /** From the text of a vocab.txt and the init arguments (tokenizer_config.json's, camelCase). */
  static fromVocab<T extends BertTokenizer>(this: Ctor<T>, vocabText: string, config: BertTokenizerConfig = {}): T {
    return new this(parseVocab(vocabText), config);
  }

  /** From a WordPiece tokenizer.json object; `config` (tokenizer_config.json's values) takes precedence. */
  static fromTokenizerJSON<T extends BertTokenizer>(this: Ctor<T>, json: unknown, config: BertTokenizerConfig = {}): T {
    const parts = bertPartsFromTokenizerJSON(json, config);
    return new this(parts.vocab, parts.config, parts.added);
  }

  /**
   * Loads vocab.txt (preferred: the slow tokenizer's own file) or tokenizer.json, with
   * tokenizer_config.json and special_tokens_map.json when present (the map overrides the config,
   * as in `from_pretrained`). `source`: a directory path (Node), File objects, or a name -> content map.
   */
  static async fromPretrained<T extends BertTokenizer>(this: Ctor<T>, source: TokenizerFiles): Promise<T> {
    const files: LoadedTokenizerFiles = await readTokenizerFiles(source);
    const config = bertTokenizerConfigFromJSON({ ...(files.tokenizerConfig ?? {}), ...(files.specialTokensMap ?? {}) });
    if (files.vocabTxt !== undefined) return new this(parseVocab(files.vocabTxt), config);
    const parts = bertPartsFromTokenizerJSON(files.tokenizerJson, config);
    return new this(parts.vocab, parts.config, parts.added);
  }

  /** The equivalent tokenizer.json (fast-tokenizer format), e.g. to save next to the weights. */
  toTokenizerJSON(): TokenizerJSON {
    const added = this.allSpecialTokens.map((content) => ({ content, id: this.addedEncoder.get(content)! }));
    return buildBertTokenizerJSON(this.vocab, this.config, added, 'full');
  }

  // ---- vocabulary --------------------------------------------------------------------------

  /** Size of the vocab file (`vocab_size`; tokens added past it are not counted). */
  get vocabSize(): number {
    return this.vocab.size;
  }

  /** The vocab plus the tokens added past it (`get_vocab()`). */
  getVocab(): Map<string, number> {
    return new Map([...this.vocab, ...this.addedEncoder]);
  }

  get unkTokenId(): number | null {
    return this.specialId(this.config.unkToken);
  }
  get sepTokenId(): number | null {
    return this.specialId(this.config.sepToken);
  }
  get padTokenId(): number | null {
    return this.specialId(this.config.padToken);
  }
  get clsTokenId(): number | null {
    return this.specialId(this.config.clsToken);
  }
  get maskTokenId(): number | null {
    return this.specialId(this.config.maskToken);
  }
  /** The `Tokenizer` interface's special ids (BERT has no bos / eos). */
  get specialTokenIds(): SpecialTokenIds {
    return { pad: this.padTokenId, unk: this.unkTokenId, bos: null, eos: null, cls: this.clsTokenId, sep: this.sepTokenId, mask: this.maskTokenId };
  }

  /**
   * vocab.txt (tokens in id order, `save_vocabulary`) and tokenizer_config.json (the init arguments
   * that differ from the defaults): what `fromPretrained` reads back into an equal tokenizer.
   */
  save(): Record<string, string> {
    const tokens = [...this.vocab].sort((a, b) => a[1] - b[1]).map(([token]) => token);
    return {
      'vocab.txt': `${tokens.join('\n')}\n`,
      'tokenizer_config.json': `${JSON.stringify(bertTokenizerConfigToJSON(this.config, this.constructor.name), null, 2)}\n`,
    };
  }

  /** `all_special_ids`, in `allSpecialTokens` order. */
  get allSpecialIds(): number[] {
    return this.allSpecialTokens.map((token) => this.addedEncoder.get(token)!);
  }

  private specialId(token: string | null): number | null {
    return token === null ? null : (this.addedEncoder.get(token) ?? null);
  }

  /** Token -> id; a token outside the vocab maps to the unknown token's id. */
  convertTokensToIds(tokens: string): number;
  convertTokensToIds(tokens: readonly string[]): number[];
  convertTokensToIds(tokens: string | readonly string[]): number | number[] {
    if (typeof tokens === 'string') return this.tokenToId(tokens);
    return tokens.map((token) => this.tokenToId(token));
  }

  private tokenToId(token: string): number {
    const id = this.addedEncoder.get(token) ?? this.vocab.get(token) ?? this.unkTokenId;
    if (id === null) throw new TokenizerError(`convertTokensToIds: "${token}" is not in the vocab and there is no unknown token`);
    return id;
  }

  /** Id -> token; an id outside the vocab maps to the unknown token. */
  convertIdsToTokens(ids: number, skipSpecialTokens?: boolean): string;
  convertIdsToTokens(ids: Iterable<number> | ArrayLike<number>, skipSpecialTokens?: boolean): string[];
  convertIdsToTokens(ids: number | Iterable<number> | ArrayLike<number>, skipSpecialTokens = false): string | string[] {
    if (typeof ids === 'number') return this.idToToken(ids);
    const out: string[] = [];
    for (const id of Array.from(ids)) {
      if (skipSpecialTokens && this.allSpecialIdSet.has(id)) continue;
      out.push(this.idToToken(id));
    }
    return out;
  }

  private idToToken(id: number): string {
    const token = this.addedDecoder.get(id) ?? this.idsToTokens.get(id) ?? this.config.unkToken;
    if (token === null) throw new TokenizerError(`convertIdsToTokens: id ${id} is not in the vocab and there is no unknown token`);
    return token;
  }

  // ---- tokenize ----------------------------------------------------------------------------

  /** Text -> WordPiece tokens, no [CLS]/[SEP] (`tokenizer.tokenize(text)`). */
  tokenize(text: string): string[] {
    const c = this.config;
    // PreTrainedTokenizer.tokenize: lowercase outside special tokens, then cut the special tokens out.
    const lowered = c.doLowerCase ? lowercaseOutsideTokens(text, [...this.allSpecialTokens, ...this.noSplitTokens]) : text;
    const out: string[] = [];
    for (const piece of splitOnTokens(lowered, this.noSplitTokens)) {
      if (piece.isToken) out.push(piece.text);
      else out.push(...this.tokenizeWords(piece.text));
    }
    return out;
  }

  /** BertTokenizer._tokenize on text free of special tokens. */
  private tokenizeWords(text: string): string[] {
    const c = this.config;
    const out: string[] = [];
    if (!c.doBasicTokenize) {
      for (const word of pySplit(text)) out.push(...this.runLibrary(this.wordpiece, word));
      return out;
    }
    // BasicTokenizer up to the whitespace split, written to the Python semantics: _clean_text,
    // _tokenize_chinese_chars, NFC (the library has no NFC step and pads only BMP ideographs).
    let cleaned = cleanText(text);
    if (c.tokenizeChineseChars) cleaned = padChineseChars(cleaned);
    const words = pySplit(cleaned.normalize('NFC'));
    // Runs of ordinary words go to the library (lowercase, strip accents, punctuation, WordPiece);
    // never-split words skip the basic steps, as `BasicTokenizer.tokenize(never_split=...)` does.
    let run: string[] = [];
    const flush = () => {
      if (run.length > 0) out.push(...this.runLibrary(this.basic, run.join(' ')));
      run = [];
    };
    for (const word of words) {
      if (this.neverSplit.has(word)) {
        flush();
        out.push(word);
      } else if (this.allSpecialTokens.includes(word)) {
        flush();
        out.push(...this.runLibrary(this.wordpiece, word));
      } else run.push(word);
    }
    flush();
    return out;
  }

  private runLibrary(tokenizer: Tokenizer, text: string): string[] {
    if (text.length === 0) return [];
    const tokens = tokenizer.tokenize(text, { add_special_tokens: false });
    if (tokens.some((token) => typeof token !== 'string')) {
      throw new TokenizerError(`tokenize: a word of ${JSON.stringify(text)} is unknown and the tokenizer has no unknown token`);
    }
    return tokens;
  }

  // ---- special tokens ----------------------------------------------------------------------

  /** `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`. */
  buildInputsWithSpecialTokens(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    const cls = this.requireId('clsToken');
    const sep = this.requireId('sepToken');
    return pairIds === null ? [cls, ...ids, sep] : [cls, ...ids, sep, ...pairIds, sep];
  }

  /** 0 over `[CLS] A [SEP]`, 1 over `B [SEP]`. */
  createTokenTypeIdsFromSequences(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    const first = new Array<number>(ids.length + 2).fill(0);
    return pairIds === null ? first : first.concat(new Array<number>(pairIds.length + 1).fill(1));
  }

  /** 1 where `buildInputsWithSpecialTokens` puts a special token (or, if already added, where ids are special). */
  getSpecialTokensMask(ids: readonly number[], pairIds: readonly number[] | null = null, alreadyHasSpecialTokens = false): number[] {
    if (alreadyHasSpecialTokens) {
      if (pairIds !== null) throw new TokenizerError('getSpecialTokensMask: pairIds must be null when alreadyHasSpecialTokens');
      return ids.map((id) => (this.allSpecialIdSet.has(id) ? 1 : 0));
    }
    const mask = [1, ...new Array<number>(ids.length).fill(0), 1];
    return pairIds === null ? mask : mask.concat(new Array<number>(pairIds.length).fill(0), [1]);
  }

  /** How many special tokens `buildInputsWithSpecialTokens` adds. */
  numSpecialTokensToAdd(pair = false): number {
    return pair ? 3 : 2;
  }

  private requireId(field: 'clsToken' | 'sepToken' | 'padToken'): number {
    const token = this.config[field];
    const id = token === null ? undefined : this.addedEncoder.get(token);
    if (id === undefined) throw new TokenizerError(`BertTokenizer: ${field} is not set`);
    return id;
  }

  // ---- encode ------------------------------------------------------------------------------

  /** `_get_padding_truncation_strategies`, with the reference's defaults and checks. */
  protected strategies(options: EncodeOptions): Strategies {
    return resolveStrategies(options, { modelMaxLength: this.config.modelMaxLength, padTokenId: this.padTokenId, returnTokenTypeIds: true });
  }

  protected get truncationSide(): 'left' | 'right' {
    return this.config.truncationSide;
  }

  protected get paddingSide(): 'left' | 'right' {
    return this.config.paddingSide;
  }

  protected padId(): number {
    return this.requireId('padToken');
  }

  // ---- decode ------------------------------------------------------------------------------

  /**
   * Ids -> text, as the slow tokenizer's `decode`: tokens joined by spaces, " ##" removed, stripped;
   * then (by default) no space before . ? ! , and around ' in contractions.
   */
  decode(ids: Iterable<number> | ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? false;
    const tokens = this.convertIdsToTokens(ids, skip);
    // Additional special tokens past the vocab are decoded as separate pieces (`legacy_added_tokens`).
    const pieces: string[] = [];
    let current: string[] = [];
    for (const token of tokens) {
      const id = this.addedEncoder.get(token);
      if (id !== undefined && id >= this.vocabSize && this.config.additionalSpecialTokens.includes(token)) {
        if (current.length > 0) pieces.push(this.convertTokensToString(current));
        current = [];
        pieces.push(token);
      } else current.push(token);
    }
    if (current.length > 0) pieces.push(this.convertTokensToString(current));
    const text = pieces.join(' ');
    return (options.cleanUpTokenizationSpaces ?? this.config.cleanUpTokenizationSpaces) ? cleanUpTokenization(text) : text;
  }

  /** `decode` of each row. */
  batchDecode(batch: readonly (Iterable<number> | ArrayLike<number>)[], options: DecodeOptions = {}): string[] {
    return batch.map((ids) => this.decode(ids, options));
  }

  /** Tokens -> text: joined by spaces, continuation pieces glued back (`" ##"` removed). */
  convertTokensToString(tokens: readonly string[]): string {
    return pyStrip(tokens.join(' ').replaceAll(' ##', ''));
  }
}

export { cleanUpTokenization };
