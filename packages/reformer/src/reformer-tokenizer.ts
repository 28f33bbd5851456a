// ReformerTokenizer: the SentencePiece tokenizer of Reformer checkpoints (`spiece.model`, e.g.
// google/reformer-crime-and-punishment) with the call semantics of Hugging Face's slow
// `ReformerTokenizer` (transformers 4.37 `models/reformer/tokenization_reformer.py`): `</s>` and
// `<unk>` special, no padding token unless the config gives one, `additional_special_tokens`, and NO
// special tokens added to an encoding (the reference keeps the base `build_inputs_with_special_tokens`).
// The SentencePiece model itself runs in `@lm/layers` (SentencePieceProcessor).

import {
  AddedTokenTable,
  addedTokenContent,
  BasePadTokenizer,
  decodeTokens,
  pyStrip,
  readTokenizerFiles,
  resolveStrategies,
  SentencePieceProcessor,
  splitOnAddedTokens,
  TokenizerError,
} from '@lm/layers';
import type { AddedTokensDecoderJSON, AddedTokenStrip, DecodeOptions, EncodeOptions, SpecialTokenIds, Strategies, Tokenizer, TokenizerFiles, TokenizerSaveFiles } from '@lm/layers';

/** The init arguments (tokenizer_config.json / special_tokens_map.json, camelCase). */
export interface ReformerTokenizerConfig {
  /** Default `</s>`. */
  eosToken?: string;
  /** Default `<unk>`. */
  unkToken?: string;
  /** Default none: padding is then an error, as in the reference. */
  padToken?: string | null;
  /** Default []. */
  additionalSpecialTokens?: string[];
  /** Default true (transformers 4.37's default). */
  cleanUpTokenizationSpaces?: boolean;
  /** Default 1e30 (no limit). */
  modelMaxLength?: number;
  paddingSide?: 'right' | 'left';
  truncationSide?: 'right' | 'left';
  /** `added_tokens_decoder` as save_pretrained writes it: id -> token; its ids win. */
  addedTokensDecoder?: AddedTokensDecoderJSON;
}

export type ResolvedReformerTokenizerConfig = Required<Omit<ReformerTokenizerConfig, 'addedTokensDecoder' | 'padToken'>> & { padToken: string | null };

const VERY_LARGE_INTEGER = 1e30;

/** tokenizer_config.json key -> config field. */
const CONFIG_KEYS: Record<string, keyof ReformerTokenizerConfig> = {
  eos_token: 'eosToken',
  unk_token: 'unkToken',
  pad_token: 'padToken',
  additional_special_tokens: 'additionalSpecialTokens',
  clean_up_tokenization_spaces: 'cleanUpTokenizationSpaces',
  model_max_length: 'modelMaxLength',
  padding_side: 'paddingSide',
  truncation_side: 'truncationSide',
  added_tokens_decoder: 'addedTokensDecoder',
};

const tokenString = (value: unknown, key: string) => addedTokenContent(value, key, 'ReformerTokenizer');

/** tokenizer_config.json (+ special_tokens_map.json) values -> ReformerTokenizerConfig; unknown keys are ignored. */
export function reformerTokenizerConfigFromJSON(json: Record<string, unknown>): ReformerTokenizerConfig {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const field = CONFIG_KEYS[key];
    if (field === undefined || value === null || value === undefined) continue;
    if (field === 'eosToken' || field === 'unkToken' || field === 'padToken') out[field] = tokenString(value, key);
    else if (field === 'additionalSpecialTokens') {
      if (!Array.isArray(value)) throw new TokenizerError(`ReformerTokenizer: additional_special_tokens must be a list, got ${JSON.stringify(value)}`);
      out[field] = value.map((v, i) => tokenString(v, `additional_special_tokens[${i}]`));
    } else if (field === 'modelMaxLength') {
      if (typeof value !== 'number' || !(value >= 0)) throw new TokenizerError(`ReformerTokenizer: ${key} must be a non-negative number, got ${JSON.stringify(value)}`);
      out[field] = value;
    } else if (field === 'cleanUpTokenizationSpaces') {
      if (typeof value !== 'boolean') throw new TokenizerError(`ReformerTokenizer: ${key} must be true or false, got ${JSON.stringify(value)}`);
      out[field] = value;
    } else if (field === 'paddingSide' || field === 'truncationSide') {
      if (value !== 'left' && value !== 'right') throw new TokenizerError(`ReformerTokenizer: ${key} must be "left" or "right", got ${JSON.stringify(value)}`);
      out[field] = value;
    } else out[field] = value;
  }
  return out as ReformerTokenizerConfig;
}

export class ReformerTokenizer extends BasePadTokenizer implements Tokenizer {
  readonly sp: SentencePieceProcessor;
  readonly config: ResolvedReformerTokenizerConfig;
  /** `_added_tokens_encoder` / `_added_tokens_decoder`: the special tokens (their vocab ids, or new ids past it). */
  private readonly added: AddedTokenTable;
  /** `all_special_tokens`: eos, unk, pad (if any), then the additional ones. */
  readonly allSpecialTokens: readonly string[];
  private readonly allSpecialIdSet: Set<number>;
  private readonly splitTokens: Map<string, AddedTokenStrip>;

  /** `model`: the spiece.model file's bytes (a file that is not one is refused by the loader, naming `fileName`). */
  constructor(model: Uint8Array, config: ReformerTokenizerConfig = {}, fileName = 'spiece.model') {
    super();
    this.sp = new SentencePieceProcessor(model, { fileName });
    this.config = {
      eosToken: config.eosToken ?? '</s>',
      unkToken: config.unkToken ?? '<unk>',
      padToken: config.padToken ?? null,
      additionalSpecialTokens: config.additionalSpecialTokens ?? [],
      cleanUpTokenizationSpaces: config.cleanUpTokenizationSpaces ?? true,
      modelMaxLength: config.modelMaxLength ?? VERY_LARGE_INTEGER,
      paddingSide: config.paddingSide ?? 'right',
      truncationSide: config.truncationSide ?? 'right',
    };
    const c = this.config;

    // A saved added_tokens_decoder first (its ids win); then each special token not yet added: its
    // SentencePiece id when the vocabulary has the piece, else the next id past everything (`_add_tokens`).
    this.added = new AddedTokenTable('ReformerTokenizer', this.sp);
    this.added.setSaved(config.addedTokensDecoder);
    const specials: string[] = [];
    for (const token of [c.eosToken, c.unkToken, ...(c.padToken === null ? [] : [c.padToken]), ...c.additionalSpecialTokens]) if (!specials.includes(token)) specials.push(token);
    this.allSpecialTokens = specials;
    this.added.addSpecials(specials);
    this.splitTokens = this.added.splitTokens();
    this.allSpecialIdSet = new Set(specials.map((token) => this.added.encoder.get(token)!));
  }

  /**
   * Loads `spiece.model` with tokenizer_config.json and special_tokens_map.json when present
   * (`from_pretrained`): a directory path (Node), File objects, or a name -> content map (the model
   * as a Uint8Array / ArrayBuffer / Blob). `overrides` win over the files (`from_pretrained(dir, **kwargs)`).
   */
  static async fromPretrained(source: TokenizerFiles, overrides: ReformerTokenizerConfig = {}): Promise<ReformerTokenizer> {
    const files = await readTokenizerFiles(source, { modelFiles: ['spiece.model'] });
    if (files.model === undefined) throw new TokenizerError('ReformerTokenizer.fromPretrained: no spiece.model among the files');
    const config = { ...reformerTokenizerConfigFromJSON({ ...(files.tokenizerConfig ?? {}), ...(files.specialTokensMap ?? {}) }), ...overrides };
    return new ReformerTokenizer(files.model.bytes, config, files.model.name);
  }

  // ---- vocabulary --------------------------------------------------------------------------

  /** The SentencePiece vocabulary size (`vocab_size`); added tokens not in it sit at and above it. */
  get vocabSize(): number {
    return this.sp.pieceSize;
  }

  get eosTokenId(): number {
    return this.added.encoder.get(this.config.eosToken)!;
  }
  get unkTokenId(): number {
    return this.added.encoder.get(this.config.unkToken)!;
  }
  get padTokenId(): number | null {
    return this.config.padToken === null ? null : this.added.encoder.get(this.config.padToken)!;
  }
  get specialTokenIds(): SpecialTokenIds {
    return { pad: this.padTokenId, unk: this.unkTokenId, bos: null, eos: this.eosTokenId, cls: null, sep: null, mask: null };
  }
  get allSpecialIds(): number[] {
    return this.allSpecialTokens.map((token) => this.added.encoder.get(token)!);
  }

  convertTokensToIds(tokens: readonly string[]): number[] {
    return this.added.tokensToIds(tokens);
  }

  /** Id -> token (`convert_ids_to_tokens`); an id past the vocabulary and the added tokens is an error naming it. */
  convertIdsToTokens(ids: Iterable<number> | ArrayLike<number>, skipSpecialTokens = false): string[] {
    return this.added.idsToTokens(ids, skipSpecialTokens ? this.allSpecialIdSet : null);
  }

  // ---- tokenize ----------------------------------------------------------------------------

  /** Text -> pieces (`tokenizer.tokenize(text)`): split on the added tokens, each chunk encoded by SentencePiece on its own. */
  tokenize(text: string): string[] {
    if (typeof text !== 'string') throw new TokenizerError(`ReformerTokenizer.tokenize: expected a string, got ${typeof text}`);
    const out: string[] = [];
    for (const piece of splitOnAddedTokens(text, this.splitTokens)) {
      if (piece.isToken) out.push(piece.text);
      else out.push(...this.sp.encodeAsPieces(piece.text));
    }
    return out;
  }

  // ---- special tokens: none added (the base class's rules) --------------------------------

  /** `X` and `A B`: the base `build_inputs_with_special_tokens` concatenates. */
  buildInputsWithSpecialTokens(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    return pairIds === null ? [...ids] : [...ids, ...pairIds];
  }

  /** 0 for the first sequence, 1 for the pair (the base rule). */
  createTokenTypeIdsFromSequences(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    return [...new Array<number>(ids.length).fill(0), ...new Array<number>(pairIds === null ? 0 : pairIds.length).fill(1)];
  }

  /** Nothing is added, so nothing is marked. */
  getSpecialTokensMask(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    return new Array<number>(ids.length + (pairIds === null ? 0 : pairIds.length)).fill(0);
  }

  numSpecialTokensToAdd(): number {
    return 0;
  }

  // ---- encode (`encode` / `encodeBatch`: BasePadTokenizer) ---------------------------------

  protected strategies(options: EncodeOptions): Strategies {
    // Reformer's model inputs are input_ids and attention_mask.
    try {
      return resolveStrategies(options, { modelMaxLength: this.config.modelMaxLength, padTokenId: this.padTokenId, returnTokenTypeIds: false });
    } catch (e) {
      if (this.padTokenId === null && /no padding token/.test((e as Error).message)) {
        throw new TokenizerError('ReformerTokenizer.encode: asked to pad but the tokenizer has no pad_token (ReformerTokenizer has none by default); give one, e.g. { padToken: "<pad>" } or pad_token in tokenizer_config.json');
      }
      throw e;
    }
  }

  protected get truncationSide(): 'left' | 'right' {
    return this.config.truncationSide;
  }

  protected get paddingSide(): 'left' | 'right' {
    return this.config.paddingSide;
  }

  protected padId(): number {
    const id = this.padTokenId;
    if (id === null) throw new TokenizerError('ReformerTokenizer.encode: asked to pad but the tokenizer has no pad_token');
    return id;
  }

  // ---- decode ------------------------------------------------------------------------------

  /**
   * Ids -> text (`decode`): added tokens that are not special (and additional special tokens past the
   * vocabulary) come out as separate words, every other run through `convertTokensToString`; the pieces
   * are joined with spaces and, if asked (default true), cleaned up.
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

  /**
   * Reformer's `convert_tokens_to_string`: each special token closes the pieces before it (decoded by
   * SentencePiece, so never decoded itself) and is appended verbatim, with no space; the result is stripped.
   */
  convertTokensToString(tokens: readonly string[]): string {
    let out = '';
    let pending: string[] = [];
    for (const token of tokens) {
      if (this.allSpecialTokens.includes(token)) {
        out += this.sp.decodePieces(pending) + token;
        pending = [];
      } else pending.push(token);
    }
    out += this.sp.decodePieces(pending);
    return pyStrip(out);
  }

  // ---- save --------------------------------------------------------------------------------

  /** spiece.model (the bytes it was loaded from) and tokenizer_config.json: what `fromPretrained` reads back. */
  save(): TokenizerSaveFiles {
    const c = this.config;
    const config: Record<string, unknown> = {
      tokenizer_class: 'ReformerTokenizer',
      eos_token: c.eosToken,
      unk_token: c.unkToken,
      additional_special_tokens: c.additionalSpecialTokens,
      clean_up_tokenization_spaces: c.cleanUpTokenizationSpaces,
      padding_side: c.paddingSide,
      truncation_side: c.truncationSide,
    };
    if (c.padToken !== null) config.pad_token = c.padToken;
    if (c.modelMaxLength < VERY_LARGE_INTEGER) config.model_max_length = c.modelMaxLength;
    // Every added token with its id, as save_pretrained writes added_tokens_decoder.
    config.added_tokens_decoder = this.added.toJSON();
    if (!this.sp.modelBytes) throw new TokenizerError('ReformerTokenizer.save: the SentencePiece model has no file bytes to save');
    return { 'spiece.model': this.sp.modelBytes, 'tokenizer_config.json': `${JSON.stringify(config, null, 2)}\n` };
  }
}
