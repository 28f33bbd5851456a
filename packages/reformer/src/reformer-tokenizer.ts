// ReformerTokenizer: the SentencePiece tokenizer of Reformer checkpoints (`spiece.model`, e.g.
// google/reformer-crime-and-punishment) with the call semantics of Hugging Face's slow
// `ReformerTokenizer` (transformers 4.37 `models/reformer/tokenization_reformer.py`): `</s>` and
// `<unk>` special, no padding token unless the config gives one, `additional_special_tokens`, and NO
// special tokens added to an encoding (the reference keeps the base `build_inputs_with_special_tokens`).
// The SentencePiece model itself runs in `@lm/layers` (SentencePieceProcessor).

import {
  initArgumentsJSON,
  readTokenizerFiles,
  SentencePieceProcessor,
  SentencePieceSlowTokenizer,
  sentencePieceTokensToString,
  tokenizerConfigFromJSON,
  TokenizerError,
  VERY_LARGE_INTEGER,
} from '@lm/layers';
import type { AddedTokensDecoderJSON, Tokenizer, TokenizerConfigKeys, TokenizerFiles, TokenizerSaveFiles } from '@lm/layers';

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

/** tokenizer_config.json key -> config field, and how its value is checked. */
const CONFIG_KEYS: TokenizerConfigKeys<ReformerTokenizerConfig> = {
  eos_token: ['eosToken', 'token'],
  unk_token: ['unkToken', 'token'],
  pad_token: ['padToken', 'token'],
  additional_special_tokens: ['additionalSpecialTokens', 'tokens'],
  clean_up_tokenization_spaces: ['cleanUpTokenizationSpaces', 'flag'],
  model_max_length: ['modelMaxLength', 'count'],
  padding_side: ['paddingSide', 'side'],
  truncation_side: ['truncationSide', 'side'],
  added_tokens_decoder: ['addedTokensDecoder', 'json'],
};

/** tokenizer_config.json (+ special_tokens_map.json) values -> ReformerTokenizerConfig; unknown keys are ignored. */
export function reformerTokenizerConfigFromJSON(json: Record<string, unknown>): ReformerTokenizerConfig {
  return tokenizerConfigFromJSON('ReformerTokenizer', json, CONFIG_KEYS);
}

export class ReformerTokenizer extends SentencePieceSlowTokenizer implements Tokenizer {
  readonly config: ResolvedReformerTokenizerConfig;

  /** `model`: the spiece.model file's bytes (a file that is not one is refused by the loader, naming `fileName`). */
  constructor(model: Uint8Array, config: ReformerTokenizerConfig = {}, fileName = 'spiece.model') {
    super('ReformerTokenizer', new SentencePieceProcessor(model, { fileName }));
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
    this.added.setSaved(config.addedTokensDecoder);
    this.setSpecialTokens([c.eosToken, c.unkToken, ...(c.padToken === null ? [] : [c.padToken]), ...c.additionalSpecialTokens]);
  }

  /**
   * Loads `spiece.model` with tokenizer_config.json and special_tokens_map.json when present
   * (`from_pretrained`): a directory path (Node), File objects, or a name -> content map (the model
   * as a Uint8Array / ArrayBuffer / Blob). `overrides` win over the files (`from_pretrained(dir, **kwargs)`).
   */
  static async fromPretrained(source: TokenizerFiles, overrides: ReformerTokenizerConfig = {}): Promise<ReformerTokenizer> {
    const files = await readTokenizerFiles(source, { modelFiles: ['spiece.model'] });
    if (files.model === undefined) throw new TokenizerError('ReformerTokenizer.fromPretrained: no spiece.model among the files');
    const config = { ...reformerTokenizerConfigFromJSON(initArgumentsJSON(files)), ...overrides };
    return new ReformerTokenizer(files.model.bytes, config, files.model.name);
  }

  // ---- vocabulary (`vocabSize`, eos / unk ids, `specialTokenIds`, ids <-> tokens: SentencePieceSlowTokenizer)

  get padTokenId(): number | null {
    return this.config.padToken === null ? null : this.tokenId(this.config.padToken);
  }

  // ---- tokenize ----------------------------------------------------------------------------

  /** Text -> pieces (`tokenizer.tokenize(text)`): split on the added tokens, each chunk encoded by SentencePiece on its own. */
  tokenize(text: string): string[] {
    return this.tokenizeAddedSplit(text);
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

  // ---- encode and decode: SentencePieceSlowTokenizer (no pad_token: padding is a MissingPadTokenError) ----

  /**
   * Reformer's `convert_tokens_to_string`: each special token closes the pieces before it (decoded by
   * SentencePiece, so never decoded itself) and is appended verbatim, with no space; the result is stripped.
   */
  convertTokensToString(tokens: readonly string[]): string {
    return sentencePieceTokensToString(this.sp, tokens, this.allSpecialTokens, { spaceBeforeSpecial: false });
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
