// T5Tokenizer: T5's SentencePiece (Unigram) tokenizer with the call semantics of Hugging Face's slow
// `T5Tokenizer` (transformers 4.57 `models/t5/tokenization_t5.py`, the last sentencepiece-based one):
// `extra_ids` sentinels `<extra_id_0>`.. at the top of the id range (lstrip/rstrip added tokens),
// `</s>` appended (not twice), `<pad>` 0, the `legacy` flag (False: no `▁` after special tokens), text
// pairs, truncation, padding and the base `_decode` with T5's `convert_tokens_to_string`. The
// SentencePiece model itself runs in `@lm/layers` (SentencePieceProcessor).

import {
  initArgumentsJSON,
  readTokenizerFiles,
  SentencePieceProcessor,
  sentencePieceModelFromTokenizerJSON,
  SentencePieceSlowTokenizer,
  sentencePieceTokensToString,
  SPIECE_UNDERLINE,
  tokenizerConfigFromJSON,
  TokenizerError,
  VERY_LARGE_INTEGER,
} from '@lm/layers';
import type { AddedTokensDecoderJSON, SentencePieceModelProto, Tokenizer, TokenizerConfigKeys, TokenizerFiles, TokenizerSaveFiles } from '@lm/layers';

/** The init arguments (tokenizer_config.json / special_tokens_map.json, camelCase). */
export interface T5TokenizerConfig {
  eosToken?: string;
  unkToken?: string;
  padToken?: string;
  /** Sentinels `<extra_id_0>`..`<extra_id_{n-1}>`. Default 100. */
  extraIds?: number;
  /** Default: the sentinels. */
  additionalSpecialTokens?: string[] | null;
  /** Default true (what every released T5 checkpoint gets: its config has no `legacy`). */
  legacy?: boolean;
  /** legacy=False only: prepend `▁` to the text. Default true. */
  addPrefixSpace?: boolean;
  /** Default false (transformers 4.57's default). */
  cleanUpTokenizationSpaces?: boolean;
  /** Default 1e30 (no limit). */
  modelMaxLength?: number;
  paddingSide?: 'right' | 'left';
  truncationSide?: 'right' | 'left';
  /** `added_tokens_decoder` as saved by save_pretrained: id -> token; overrides the computed sentinel ids. */
  addedTokensDecoder?: AddedTokensDecoderJSON;
}

export type ResolvedT5TokenizerConfig = Required<Omit<T5TokenizerConfig, 'addedTokensDecoder' | 'additionalSpecialTokens'>> & { additionalSpecialTokens: string[] };

/** tokenizer_config.json key -> config field, and how its value is checked. */
const CONFIG_KEYS: TokenizerConfigKeys<T5TokenizerConfig> = {
  eos_token: ['eosToken', 'token'],
  unk_token: ['unkToken', 'token'],
  pad_token: ['padToken', 'token'],
  extra_ids: ['extraIds', 'count'],
  additional_special_tokens: ['additionalSpecialTokens', 'tokens'],
  legacy: ['legacy', 'flag'],
  add_prefix_space: ['addPrefixSpace', 'flag'],
  clean_up_tokenization_spaces: ['cleanUpTokenizationSpaces', 'flag'],
  model_max_length: ['modelMaxLength', 'count'],
  padding_side: ['paddingSide', 'side'],
  truncation_side: ['truncationSide', 'side'],
  added_tokens_decoder: ['addedTokensDecoder', 'json'],
};

/** tokenizer_config.json (+ special_tokens_map.json) values -> T5TokenizerConfig; unknown keys are ignored. */
export function t5TokenizerConfigFromJSON(json: Record<string, unknown>): T5TokenizerConfig {
  return tokenizerConfigFromJSON('T5Tokenizer', json, CONFIG_KEYS);
}

export class T5Tokenizer extends SentencePieceSlowTokenizer implements Tokenizer {
  readonly config: ResolvedT5TokenizerConfig;
  /** The tokenizer.json it was built from, when it was (saved back instead of a spiece.model). */
  private readonly tokenizerJson: unknown;
  /** How many pieces `<unk>` encodes to (legacy=False strips that prefix again). */
  private readonly unkTokenLength: number;

  /**
   * `model`: the spiece.model file's bytes (or the SentencePiece model read from a tokenizer.json:
   * `fromTokenizerJSON`). With legacy=False the model is loaded with `add_dummy_prefix` off, as the
   * reference does.
   */
  constructor(model: Uint8Array | SentencePieceModelProto, config: T5TokenizerConfig = {}, fileName = 'spiece.model', tokenizerJson: unknown = null) {
    const extraIds = config.extraIds ?? 100;
    if (!Number.isInteger(extraIds) || extraIds < 0) throw new TokenizerError(`T5Tokenizer: extraIds must be a non-negative integer, got ${extraIds}`);
    const legacy = config.legacy ?? true;
    super('T5Tokenizer', new SentencePieceProcessor(model, { fileName, ...(legacy ? {} : { addDummyPrefix: false }) }));
    this.tokenizerJson = tokenizerJson;
    const sentinels = Array.from({ length: extraIds }, (_, i) => `<extra_id_${i}>`);
    let additional = config.additionalSpecialTokens ?? null;
    if (additional !== null) {
      const given = additional.filter((t) => t.includes('<extra_id_'));
      if (given.length < 1) additional = [...additional, ...sentinels];
      else if (extraIds > 0 && extraIds !== given.length) {
        throw new TokenizerError(`T5Tokenizer: extraIds is ${extraIds} but additionalSpecialTokens holds ${given.length} <extra_id_*> tokens; they must agree`);
      }
    } else additional = sentinels;
    this.config = {
      eosToken: config.eosToken ?? '</s>',
      unkToken: config.unkToken ?? '<unk>',
      padToken: config.padToken ?? '<pad>',
      extraIds,
      additionalSpecialTokens: additional,
      legacy,
      addPrefixSpace: config.addPrefixSpace ?? true,
      cleanUpTokenizationSpaces: config.cleanUpTokenizationSpaces ?? false,
      modelMaxLength: config.modelMaxLength ?? VERY_LARGE_INTEGER,
      paddingSide: config.paddingSide ?? 'right',
      truncationSide: config.truncationSide ?? 'right',
    };
    const c = this.config;

    // Sentinels at the top, in reverse: <extra_id_i> = pieces + extraIds - 1 - i; then a saved
    // added_tokens_decoder (it wins), then the special tokens the model has, then any other at the next id.
    sentinels.forEach((content, i) => this.added.set(this.sp.pieceSize + extraIds - 1 - i, { content, lstrip: true, rstrip: true, special: true }));
    this.added.setSaved(config.addedTokensDecoder);
    this.setSpecialTokens([c.eosToken, c.unkToken, c.padToken, ...c.additionalSpecialTokens]);
    this.unkTokenLength = this.sp.encodeAsIds(c.unkToken).length;
  }

  /**
   * Loads `spiece.model` with tokenizer_config.json and special_tokens_map.json when present
   * (`from_pretrained`): a directory path (Node), File objects, or a name -> content map (the model
   * as a Uint8Array / ArrayBuffer / Blob). `overrides` win over the files (`from_pretrained(dir, **kwargs)`).
   */
  static async fromPretrained(source: TokenizerFiles, overrides: T5TokenizerConfig = {}): Promise<T5Tokenizer> {
    const files = await readTokenizerFiles(source, { modelFiles: ['spiece.model'] });
    const config = { ...t5TokenizerConfigFromJSON(initArgumentsJSON(files)), ...overrides };
    if (files.model !== undefined) return new T5Tokenizer(files.model.bytes, config, files.model.name);
    return T5Tokenizer.fromTokenizerJSON(files.tokenizerJson, config);
  }

  /**
   * From a T5 fast tokenizer.json alone (what `T5TokenizerFast` saves: the Unigram vocabulary with
   * scores, the precompiled charsmap, the sentinels as added tokens), tokenizing with the slow
   * semantics above. The sentinels the converter appended to the vocab become added tokens again.
   */
  static fromTokenizerJSON(json: unknown, config: T5TokenizerConfig = {}): T5Tokenizer {
    const added = (json as { added_tokens?: unknown } | null)?.added_tokens;
    const sentinelIds = (Array.isArray(added) ? added : [])
      .filter((t: { content?: unknown; id?: unknown }) => typeof t?.content === 'string' && /^<extra_id_\d+>$/.test(t.content) && typeof t.id === 'number')
      .map((t: { id: number }) => t.id);
    const pieceCount = sentinelIds.length > 0 ? Math.min(...sentinelIds) : undefined;
    const model = sentencePieceModelFromTokenizerJSON(json, pieceCount);
    return new T5Tokenizer(model, { extraIds: sentinelIds.length, ...config }, 'tokenizer.json', json);
  }

  // ---- vocabulary (`vocabSize`, eos / unk ids, `specialTokenIds`, ids <-> tokens: SentencePieceSlowTokenizer)

  get padTokenId(): number {
    return this.tokenId(this.config.padToken);
  }
  /** The ids of `<extra_id_0>`, `<extra_id_1>`, ... in that order (span corruption's sentinels). */
  get sentinelIds(): number[] {
    return Array.from({ length: this.config.extraIds }, (_, i) => this.tokenId(`<extra_id_${i}>`));
  }

  // ---- tokenize ----------------------------------------------------------------------------

  /** Text -> pieces, no `</s>` (`tokenizer.tokenize(text)`). */
  tokenize(text: string): string[] {
    if (this.config.legacy || typeof text !== 'string' || text.length === 0) return this.tokenizeAddedSplit(text, (chunk) => this.tokenizeChunk(chunk));
    // legacy=False: `▁` in the text is a space; one `▁` goes in front of the whole text.
    text = text.replaceAll(SPIECE_UNDERLINE, ' ');
    if (this.config.addPrefixSpace) text = SPIECE_UNDERLINE + text;
    const tokens = this.tokenizeAddedSplit(text, (chunk) => this.tokenizeChunk(chunk));
    if (tokens.length > 1 && tokens[0] === SPIECE_UNDERLINE && this.allSpecialTokens.includes(tokens[1])) return tokens.slice(1);
    return tokens;
  }

  /**
   * `_tokenize`. legacy=True: the chunk gets its own dummy prefix. legacy=False (model without dummy
   * prefix): a chunk starting with a space is encoded behind `<unk>`, whose pieces are then dropped, so
   * the space becomes a `▁` exactly as inside a sentence; any other chunk (text right after a special
   * token) gets no `▁`.
   */
  private tokenizeChunk(text: string): string[] {
    if (this.config.legacy || !(text.startsWith(SPIECE_UNDERLINE) || text.startsWith(' '))) return this.sp.encodeAsPieces(text);
    const tokens = this.sp.encodeAsPieces(this.config.unkToken + text);
    return tokens.length >= this.unkTokenLength ? tokens.slice(this.unkTokenLength) : tokens;
  }

  // ---- special tokens ----------------------------------------------------------------------

  private addEosIfNotPresent(ids: readonly number[]): number[] {
    // A sequence that already ends in </s> is left alone (the reference warns).
    return ids.length > 0 && ids[ids.length - 1] === this.eosTokenId ? [...ids] : [...ids, this.eosTokenId];
  }

  /** `X </s>`, pairs `A </s> B </s>`. */
  buildInputsWithSpecialTokens(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    const first = this.addEosIfNotPresent(ids);
    return pairIds === null ? first : [...first, ...this.addEosIfNotPresent(pairIds)];
  }

  /** All zeros, one per id plus one per `</s>` (counted even where none was added, as the reference does). */
  createTokenTypeIdsFromSequences(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    return new Array<number>(ids.length + 1 + (pairIds === null ? 0 : pairIds.length + 1)).fill(0);
  }

  /** 1 on the appended `</s>` only (special tokens typed in the text count as 0). */
  getSpecialTokensMask(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    const mask = [...new Array<number>(ids.length).fill(0), 1];
    return pairIds === null ? mask : [...mask, ...new Array<number>(pairIds.length).fill(0), 1];
  }

  numSpecialTokensToAdd(pair = false): number {
    return pair ? 2 : 1;
  }

  // ---- encode and decode: SentencePieceSlowTokenizer ---------------------------------------

  /**
   * T5's `convert_tokens_to_string`: the first piece loses its `▁`; each `</s>` / `<pad>` / `<unk>`
   * closes the pieces before it (decoded by SentencePiece, preceded by a space unless the previous
   * token was special too) and is appended verbatim; the result is stripped.
   */
  convertTokensToString(tokens: readonly string[]): string {
    const list = [...tokens];
    if (list.length > 0 && list[0].startsWith(SPIECE_UNDERLINE) && this.config.addPrefixSpace) list[0] = list[0].slice(1);
    return sentencePieceTokensToString(this.sp, list, this.allSpecialTokens, { spaceBeforeSpecial: true });
  }

  // ---- save --------------------------------------------------------------------------------

  /**
   * spiece.model (the bytes it was loaded from; the tokenizer.json when built from one) and
   * tokenizer_config.json: what `fromPretrained` reads back.
   */
  save(): TokenizerSaveFiles {
    const c = this.config;
    const sentinels = Array.from({ length: c.extraIds }, (_, i) => `<extra_id_${i}>`);
    const config: Record<string, unknown> = {
      tokenizer_class: 'T5Tokenizer',
      eos_token: c.eosToken,
      unk_token: c.unkToken,
      pad_token: c.padToken,
      extra_ids: c.extraIds,
      additional_special_tokens: c.additionalSpecialTokens,
      legacy: c.legacy,
      add_prefix_space: c.addPrefixSpace,
      clean_up_tokenization_spaces: c.cleanUpTokenizationSpaces,
      padding_side: c.paddingSide,
      truncation_side: c.truncationSide,
    };
    if (c.modelMaxLength < VERY_LARGE_INTEGER) config.model_max_length = c.modelMaxLength;
    // Ids that differ from the computed layout (a saved added_tokens_decoder) are written back.
    const decoder = this.added.toJSON((id, t) => id !== (sentinels.includes(t.content) ? this.sp.pieceSize + c.extraIds - 1 - sentinels.indexOf(t.content) : this.sp.pieceToId(t.content)));
    if (Object.keys(decoder).length > 0) config.added_tokens_decoder = decoder;
    const model: TokenizerSaveFiles = this.sp.modelBytes ? { 'spiece.model': this.sp.modelBytes } : { 'tokenizer.json': JSON.stringify(this.tokenizerJson) };
    return { ...model, 'tokenizer_config.json': `${JSON.stringify(config, null, 2)}\n` };
  }
}
