// What the slow SentencePiece tokenizers of transformers (`T5Tokenizer`, `ReformerTokenizer`) share
// around `SentencePieceProcessor`, once a family has said which special tokens it has: the added-token
// table (`_added_tokens_encoder` / `_added_tokens_decoder`), text cut on the added tokens before
// SentencePiece sees it, ids <-> tokens, the strategies and `_pad` of the base class, and the base
// `_decode` around the family's `convert_tokens_to_string` (`sentencePieceTokensToString` is the shape
// both of theirs take). Families keep their init arguments, special-token rules and save.

import { AddedTokenTable } from './added-tokens.js';
import { MissingPadTokenError, TokenizerError } from './errors.js';
import type { SentencePieceProcessor } from './sentencepiece.js';
import { BasePadTokenizer, decodeTokens, resolveStrategies } from './slow-tokenizer.js';
import type { DecodeOptions, EncodeOptions, Strategies } from './slow-tokenizer.js';
import { pyStrip, splitOnAddedTokens } from './text.js';
import type { AddedTokenStrip } from './text.js';
import type { SpecialTokenIds } from './tokenizer.js';

/** The resolved init arguments the shared steps read. */
export interface SentencePieceSlowTokenizerConfig {
  eosToken: string;
  unkToken: string;
  padToken: string | null;
  additionalSpecialTokens: readonly string[];
  cleanUpTokenizationSpaces: boolean;
  modelMaxLength: number;
  paddingSide: 'left' | 'right';
  truncationSide: 'left' | 'right';
}

export abstract class SentencePieceSlowTokenizer extends BasePadTokenizer {
  abstract readonly config: SentencePieceSlowTokenizerConfig;
  /** `_added_tokens_encoder` / `_added_tokens_decoder`: the special tokens (their vocab ids, or new ids past it). */
  protected readonly added: AddedTokenTable;
  private specials: readonly string[] = [];
  private allSpecialIdSet = new Set<number>();
  private splitTokens = new Map<string, AddedTokenStrip>();

  /** `owner` names the tokenizer in errors (`T5Tokenizer`). */
  constructor(
    protected readonly owner: string,
    readonly sp: SentencePieceProcessor,
  ) {
    super();
    this.added = new AddedTokenTable(owner, sp);
  }

  /**
   * `all_special_tokens` (duplicates dropped): those not yet in the added-token table (entries the family
   * set first, a saved `added_tokens_decoder`) are registered at their SentencePiece id when the
   * vocabulary has the piece, else at the next id past everything (`_add_tokens`).
   */
  protected setSpecialTokens(tokens: readonly string[]): void {
    const specials: string[] = [];
    for (const token of tokens) if (!specials.includes(token)) specials.push(token);
    this.specials = specials;
    this.added.addSpecials(specials);
    this.splitTokens = this.added.splitTokens();
    this.allSpecialIdSet = new Set(specials.map((token) => this.tokenId(token)));
  }

  /** `all_special_tokens`, in the family's order (`setSpecialTokens`). */
  get allSpecialTokens(): readonly string[] {
    return this.specials;
  }

  /** The id of a registered special token. */
  protected tokenId(token: string): number {
    return this.added.encoder.get(token)!;
  }

  // ---- vocabulary --------------------------------------------------------------------------

  /** The SentencePiece vocabulary size (`vocab_size`); added tokens not in it sit at and above it. */
  get vocabSize(): number {
    return this.sp.pieceSize;
  }

  abstract get padTokenId(): number | null;

  get eosTokenId(): number {
    return this.tokenId(this.config.eosToken);
  }
  get unkTokenId(): number {
    return this.tokenId(this.config.unkToken);
  }
  /** eos, unk and pad; no bos, cls, sep or mask. */
  get specialTokenIds(): SpecialTokenIds {
    return { pad: this.padTokenId, unk: this.unkTokenId, bos: null, eos: this.eosTokenId, cls: null, sep: null, mask: null };
  }

  get allSpecialIds(): number[] {
    return this.allSpecialTokens.map((token) => this.tokenId(token));
  }

  /** `convert_tokens_to_ids`: added tokens first, then the SentencePiece vocabulary (unknown -> its unk id). */
  convertTokensToIds(tokens: readonly string[]): number[] {
    return this.added.tokensToIds(tokens);
  }

  /** Id -> token (`convert_ids_to_tokens`); an id past the vocabulary and the added tokens is an error naming it. */
  convertIdsToTokens(ids: Iterable<number> | ArrayLike<number>, skipSpecialTokens = false): string[] {
    return this.added.idsToTokens(ids, skipSpecialTokens ? this.allSpecialIdSet : null);
  }

  // ---- tokenize ----------------------------------------------------------------------------

  /** The base `tokenize`: cut the added tokens out (with their lstrip / rstrip), each other chunk through `encodeChunk` (`_tokenize`). */
  protected tokenizeAddedSplit(text: string, encodeChunk: (chunk: string) => string[] = (chunk) => this.sp.encodeAsPieces(chunk)): string[] {
    if (typeof text !== 'string') throw new TokenizerError(`${this.owner}.tokenize: expected a string, got ${typeof text}`);
    const out: string[] = [];
    for (const piece of splitOnAddedTokens(text, this.splitTokens)) {
      if (piece.isToken) out.push(piece.text);
      else out.push(...encodeChunk(piece.text));
    }
    return out;
  }

  // ---- encode (`encode` / `encodeBatch`: BasePadTokenizer) ---------------------------------

  protected strategies(options: EncodeOptions): Strategies {
    // The model inputs are input_ids and attention_mask: no token_type_ids unless asked.
    return resolveStrategies(options, {
      modelMaxLength: this.config.modelMaxLength,
      padTokenId: this.padTokenId,
      returnTokenTypeIds: false,
      missingPadToken: this.missingPadMessage(),
    });
  }

  private missingPadMessage(): string {
    return `${this.owner}.encode: asked to pad but the tokenizer has no pad_token; give one, e.g. { padToken: "<pad>" } or pad_token in tokenizer_config.json`;
  }

  protected get truncationSide(): 'left' | 'right' {
    return this.config.truncationSide;
  }

  protected get paddingSide(): 'left' | 'right' {
    return this.config.paddingSide;
  }

  protected padId(): number {
    const id = this.padTokenId;
    if (id === null) throw new MissingPadTokenError(this.missingPadMessage());
    return id;
  }

  // ---- decode ------------------------------------------------------------------------------

  /**
   * Ids -> text (`decode`): added tokens that are not special (and additional special tokens past the
   * vocabulary: T5's sentinels) come out as separate words, every other run through
   * `convertTokensToString`; the pieces are joined with spaces and, if asked, cleaned up.
   */
  decode(ids: Iterable<number> | ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? false;
    return decodeTokens(this.convertIdsToTokens(ids, skip), {
      skipSpecialTokens: skip,
      cleanUpTokenizationSpaces: options.cleanUpTokenizationSpaces ?? this.config.cleanUpTokenizationSpaces,
      ...this.added.decodeHooks(this.allSpecialTokens, this.config.additionalSpecialTokens, this.config.padToken),
      convertTokensToString: (tokens) => this.convertTokensToString(tokens),
    });
  }

  batchDecode(batch: readonly (Iterable<number> | ArrayLike<number>)[], options: DecodeOptions = {}): string[] {
    return batch.map((ids) => this.decode(ids, options));
  }

  /** The family's `convert_tokens_to_string`. */
  abstract convertTokensToString(tokens: readonly string[]): string;
}

/**
 * The `convert_tokens_to_string` of the SentencePiece slow tokenizers: each special token closes the
 * pieces before it (decoded by SentencePiece, so never decoded itself) and is appended verbatim, with a
 * space before it when `spaceBeforeSpecial` (T5) unless the previous token was special too; the result
 * is stripped.
 */
export function sentencePieceTokensToString(
  sp: SentencePieceProcessor,
  tokens: readonly string[],
  specialTokens: readonly string[],
  options: { spaceBeforeSpecial: boolean },
): string {
  let out = '';
  let pending: string[] = [];
  let prevIsSpecial = false;
  for (const token of tokens) {
    if (specialTokens.includes(token)) {
      if (options.spaceBeforeSpecial && !prevIsSpecial) out += ' ';
      out += sp.decodePieces(pending) + token;
      prevIsSpecial = true;
      pending = [];
    } else {
      pending.push(token);
      prevIsSpecial = false;
    }
  }
  out += sp.decodePieces(pending);
  return pyStrip(out);
}
