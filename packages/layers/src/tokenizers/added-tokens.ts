// The added-token table of a slow SentencePiece tokenizer (`_added_tokens_encoder` /
// `_added_tokens_decoder` of transformers' PreTrainedTokenizer): a saved `added_tokens_decoder` first,
// then each special token at its SentencePiece id when the vocabulary has the piece, else at the next id
// past everything (`_add_tokens`); the split of text on them, id -> token lookup, the base `_decode`'s
// hooks and the `added_tokens_decoder` that save_pretrained writes. T5Tokenizer and ReformerTokenizer
// differ only in which tokens they register and in their `convert_tokens_to_string`.

import { TokenizerError } from './errors.js';
import type { SentencePieceProcessor } from './sentencepiece.js';
import type { DecodeTokensHooks } from './slow-tokenizer.js';
import type { AddedTokenStrip } from './text.js';

export interface AddedTokenEntry extends AddedTokenStrip {
  content: string;
  special: boolean;
}

/** `added_tokens_decoder` as tokenizer_config.json holds it: id -> token. */
export type AddedTokensDecoderJSON = Record<string, { content: string; lstrip?: boolean; rstrip?: boolean; special?: boolean }>;

/** A token given as a string or as an AddedToken object (`{ content, ... }`) -> its string; `owner` names the tokenizer in the error. */
export function addedTokenContent(value: unknown, key: string, owner: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  throw new TokenizerError(`${owner}: ${key} must be a string or an AddedToken object, got ${JSON.stringify(value)}`);
}

export class AddedTokenTable {
  readonly encoder = new Map<string, number>();
  readonly decoder = new Map<number, AddedTokenEntry>();

  /** `owner` names the tokenizer in errors; `sp` is its SentencePiece model (the ids below its size). */
  constructor(
    private readonly owner: string,
    private readonly sp: SentencePieceProcessor,
  ) {}

  set(id: number, token: AddedTokenEntry): void {
    this.encoder.set(token.content, id);
    this.decoder.set(id, token);
  }

  /** A saved `added_tokens_decoder`: its ids win over the computed ones. */
  setSaved(saved: AddedTokensDecoderJSON | undefined): void {
    for (const [key, t] of Object.entries(saved ?? {})) {
      const id = Number(key);
      if (!Number.isInteger(id) || id < 0) throw new TokenizerError(`${this.owner}: added_tokens_decoder key ${JSON.stringify(key)} is not an id`);
      const content: unknown = (t as { content?: unknown } | null)?.content;
      if (typeof content !== 'string') throw new TokenizerError(`${this.owner}: added_tokens_decoder[${JSON.stringify(key)}].content must be a string, got ${JSON.stringify(content)}`);
      this.set(id, { content: t.content, lstrip: t.lstrip ?? false, rstrip: t.rstrip ?? false, special: t.special ?? true });
    }
  }

  /** Special tokens not yet registered: at their SentencePiece id when the vocabulary has the piece, else at the next free id. */
  addSpecials(tokens: readonly string[]): void {
    for (const token of tokens) {
      if (this.encoder.has(token)) continue;
      const inVocab = this.sp.pieceToId(token);
      const id = this.sp.idToPiece(inVocab) === token ? inVocab : Math.max(this.sp.pieceSize, ...[...this.decoder.keys()].map((k) => k + 1));
      this.set(id, { content: token, lstrip: false, rstrip: false, special: true });
    }
  }

  /** What `splitOnAddedTokens` cuts the text on. */
  splitTokens(): Map<string, AddedTokenStrip> {
    return new Map([...this.encoder].map(([content, id]) => [content, this.decoder.get(id)!]));
  }

  /** `convert_tokens_to_ids`: added tokens first, then the SentencePiece vocabulary (unknown -> its unk id). */
  tokensToIds(tokens: readonly string[]): number[] {
    return tokens.map((token) => this.encoder.get(token) ?? this.sp.pieceToId(token));
  }

  /** `convert_ids_to_tokens`, dropping `skip` ids; an id neither added nor in the vocabulary is an error naming it. */
  idsToTokens(ids: Iterable<number> | ArrayLike<number>, skip: ReadonlySet<number> | null): string[] {
    const out: string[] = [];
    for (const id of Array.from(ids)) {
      if (skip?.has(id)) continue;
      const added = this.decoder.get(id);
      if (added) out.push(added.content);
      else if (Number.isInteger(id) && id >= 0 && id < this.sp.pieceSize) out.push(this.sp.idToPiece(id));
      else throw new TokenizerError(`${this.owner}: id ${id} is out of range (vocabulary of ${this.sp.pieceSize} pieces and ${this.decoder.size} added tokens)`);
    }
    return out;
  }

  /**
   * The base `_decode`'s view of the tokens: special ones, and the `legacy_added_tokens` decoded as
   * separate words (added tokens that are not special, and additional special tokens past the vocabulary).
   */
  decodeHooks(allSpecial: readonly string[], additionalSpecial: readonly string[], padToken: string | null): Pick<DecodeTokensHooks, 'isSpecial' | 'isLegacyAdded' | 'padToken'> {
    return {
      isSpecial: (token) => allSpecial.includes(token),
      isLegacyAdded: (token) => {
        const id = this.encoder.get(token);
        if (id === undefined) return false;
        return !allSpecial.includes(token) || (additionalSpecial.includes(token) && id >= this.sp.pieceSize);
      },
      padToken,
    };
  }

  /** `added_tokens_decoder` for tokenizer_config.json, in id order; `keep` picks the entries written (default all). */
  toJSON(keep: (id: number, token: AddedTokenEntry) => boolean = () => true): AddedTokensDecoderJSON {
    const out: AddedTokensDecoderJSON = {};
    for (const [id, t] of [...this.decoder].sort((a, b) => a[0] - b[0])) if (keep(id, t)) out[String(id)] = { content: t.content, lstrip: t.lstrip, rstrip: t.rstrip, special: t.special };
    return out;
  }
}
