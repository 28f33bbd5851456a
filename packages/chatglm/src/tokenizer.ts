// ChatGLMTokenizer: ChatGLM-6B's tokenizer with the semantics of THUDM's `tokenization_chatglm.py`
// (final v1 revision, 2023-05-08: `SPTokenizer` + `ChatGLMTokenizer`) on transformers 4.57:
// before SentencePiece, `\n` -> `<n>`, `\t` -> `<|tab|>`, runs of 2..80 spaces -> `<|blank_k|>`;
// every SentencePiece id is shifted by `num_image_tokens` (ids below are `<image_k>`); inputs end in
// `[gMASK] <sop>` (pairs: `A [gMASK] <sop> B <eop>`); padding is on the left and `_pad` builds the
// GLM attention mask (bool [1, L, L], True = masked: the context attends bidirectionally, the rest
// causally) and the 2-D position ids (positions after the context all point at the mask token;
// block positions count from `<sop>`). The SentencePiece model runs in `@lm/layers`.

import {
  decodeTokens,
  encodeOne,
  initArgumentsJSON,
  padBatch,
  padTarget,
  prepareForModel,
  pySplit,
  pyStrip,
  readTokenizerFiles,
  resolveStrategies,
  SentencePieceProcessor,
  SlowTokenizer,
  splitOnAddedTokens,
  tokenizerConfigFromJSON,
  TokenizerError,
  VERY_LARGE_INTEGER,
} from '@lm/layers';
import type {
  AddedTokenStrip,
  DecodeOptions,
  EncodeOptions,
  Encoding,
  PaddingStrategy,
  SpecialTokenIds,
  Strategies,
  TextInput,
  Tokenizer,
  TokenizerConfigKeys,
  TokenizerFiles,
  TokenizerSaveFiles,
} from '@lm/layers';

/** The init arguments (tokenizer_config.json, camelCase). */
export interface ChatGLMTokenizerConfig {
  doLowerCase?: boolean;
  removeSpace?: boolean;
  bosToken?: string;
  eosToken?: string;
  endToken?: string;
  maskToken?: string;
  gmaskToken?: string;
  padToken?: string;
  unkToken?: string;
  /** Ids below this are `<image_k>`; SentencePiece ids are shifted by it. The class default is 20000; THUDM's shipped config says 0. */
  numImageTokens?: number;
  /** Default false (transformers 4.57's default; THUDM's checkpoints ran on versions whose default was true). */
  cleanUpTokenizationSpaces?: boolean;
  /** Default 1e30 (no limit). */
  modelMaxLength?: number;
  /** Only 'left' (the reference asserts it). */
  paddingSide?: 'left';
  truncationSide?: 'right' | 'left';
}

export type ResolvedChatGLMTokenizerConfig = Required<ChatGLMTokenizerConfig>;

/** One encoding: `attentionMask` and `positionIds` exist once `_pad` ran (padding was asked for). */
export interface ChatGLMEncoding {
  inputIds: number[];
  /** [1, L, L], true = masked (not attended). */
  attentionMask?: boolean[][][];
  /** [2, L]: positions (after the context: the mask token's), block positions (from `<sop>`: 1, 2, ...). */
  positionIds?: number[][];
  tokenTypeIds?: number[];
  specialTokensMask?: number[];
  length?: number;
}

/** A batch, field by field (`attentionMask` [b, 1, L, L], `positionIds` [b, 2, L]). */
export interface ChatGLMBatchEncoding {
  inputIds: number[][];
  attentionMask?: boolean[][][][];
  positionIds?: number[][][];
  tokenTypeIds?: number[][];
  specialTokensMask?: number[][];
  length?: number[];
}

/** `SPTokenizer.max_blank_length`. */
const MAX_BLANK_LENGTH = 80;
const TAB_TOKEN = '<|tab|>';
const blankToken = (k: number) => `<|blank_${k}|>`;

/** tokenizer_config.json key -> config field, and how its value is checked. */
const CONFIG_KEYS: TokenizerConfigKeys<ChatGLMTokenizerConfig> = {
  do_lower_case: ['doLowerCase', 'flag'],
  remove_space: ['removeSpace', 'flag'],
  bos_token: ['bosToken', 'token'],
  eos_token: ['eosToken', 'token'],
  end_token: ['endToken', 'token'],
  mask_token: ['maskToken', 'token'],
  gmask_token: ['gmaskToken', 'token'],
  pad_token: ['padToken', 'token'],
  unk_token: ['unkToken', 'token'],
  num_image_tokens: ['numImageTokens', 'count'],
  clean_up_tokenization_spaces: ['cleanUpTokenizationSpaces', 'flag'],
  model_max_length: ['modelMaxLength', 'count'],
  padding_side: ['paddingSide', 'json'], // any value but "left" gets ChatGLM's own message below
  truncation_side: ['truncationSide', 'side'],
};

/** tokenizer_config.json (+ special_tokens_map.json) values -> ChatGLMTokenizerConfig; unknown keys are ignored. */
export function chatGLMTokenizerConfigFromJSON(json: Record<string, unknown>): ChatGLMTokenizerConfig {
  const config = tokenizerConfigFromJSON<ChatGLMTokenizerConfig>('ChatGLMTokenizer', json, CONFIG_KEYS);
  if (config.paddingSide !== undefined && config.paddingSide !== 'left') {
    throw new TokenizerError(`ChatGLMTokenizer: padding_side must be "left" (ChatGLM pads on the left only), got ${JSON.stringify(json.padding_side)}`);
  }
  return config;
}

export class ChatGLMTokenizer extends SlowTokenizer implements Tokenizer {
  readonly sp: SentencePieceProcessor;
  readonly config: ResolvedChatGLMTokenizerConfig;
  /** `all_special_tokens`: bos, eos, unk, pad, mask. */
  readonly allSpecialTokens: readonly string[];
  private readonly allSpecialIdSet: Set<number>;
  private readonly splitTokens: Map<string, AddedTokenStrip>;

  /** The ice_text.model it was loaded from (what save() writes back). */
  private readonly modelBytes: Uint8Array;

  constructor(modelBytes: Uint8Array, config: ChatGLMTokenizerConfig = {}, fileName = 'ice_text.model') {
    super();
    this.sp = new SentencePieceProcessor(modelBytes, { fileName });
    this.modelBytes = modelBytes;
    const numImageTokens = config.numImageTokens ?? 20000;
    if (!Number.isInteger(numImageTokens) || numImageTokens < 0) throw new TokenizerError(`ChatGLMTokenizer: numImageTokens must be a non-negative integer, got ${numImageTokens}`);
    if (config.paddingSide !== undefined && config.paddingSide !== 'left') throw new TokenizerError(`ChatGLMTokenizer: paddingSide must be "left", got ${JSON.stringify(config.paddingSide)}`);
    this.config = {
      doLowerCase: config.doLowerCase ?? false,
      removeSpace: config.removeSpace ?? false,
      bosToken: config.bosToken ?? '<sop>',
      eosToken: config.eosToken ?? '<eop>',
      endToken: config.endToken ?? '</s>',
      maskToken: config.maskToken ?? '[MASK]',
      gmaskToken: config.gmaskToken ?? '[gMASK]',
      padToken: config.padToken ?? '<pad>',
      unkToken: config.unkToken ?? '<unk>',
      numImageTokens,
      cleanUpTokenizationSpaces: config.cleanUpTokenizationSpaces ?? false,
      modelMaxLength: config.modelMaxLength ?? VERY_LARGE_INTEGER,
      paddingSide: 'left',
      truncationSide: config.truncationSide ?? 'right',
    };
    const c = this.config;
    const specials: string[] = [];
    for (const token of [c.bosToken, c.eosToken, c.unkToken, c.padToken, c.maskToken]) if (!specials.includes(token)) specials.push(token);
    for (const token of [...specials, c.gmaskToken]) {
      if (this.sp.idToPiece(this.sp.pieceToId(token)) !== token) throw new TokenizerError(`ChatGLMTokenizer: ${fileName} has no piece ${JSON.stringify(token)}`);
    }
    this.allSpecialTokens = specials;
    this.allSpecialIdSet = new Set(specials.map((token) => this.tokenToId(token)));
    // The special tokens are cut out of the text verbatim, eating no whitespace (transformers >= 4.34).
    this.splitTokens = new Map(specials.map((token) => [token, { lstrip: false, rstrip: false }]));
  }

  /** Loads `ice_text.model` with tokenizer_config.json / special_tokens_map.json; `overrides` win (`from_pretrained(dir, **kwargs)`). */
  static async fromPretrained(source: TokenizerFiles, overrides: ChatGLMTokenizerConfig = {}): Promise<ChatGLMTokenizer> {
    const files = await readTokenizerFiles(source, { modelFiles: ['ice_text.model'] });
    if (files.model === undefined) throw new TokenizerError('ChatGLMTokenizer.fromPretrained: ice_text.model is required');
    const config = chatGLMTokenizerConfigFromJSON(initArgumentsJSON(files));
    return new ChatGLMTokenizer(files.model.bytes, { ...config, ...overrides }, files.model.name);
  }

  // ---- vocabulary --------------------------------------------------------------------------

  /** `vocab_size`: the image tokens plus the SentencePiece pieces. */
  get vocabSize(): number {
    return this.config.numImageTokens + this.sp.pieceSize;
  }

  /** `SPTokenizer[token]`: `<image_k>` -> k, a piece -> its id + numImageTokens. */
  tokenToId(token: string): number {
    const image = /^<image_(\d+)>$/.exec(token);
    if (image) return Number(image[1]);
    return this.sp.pieceToId(token) + this.config.numImageTokens;
  }

  /** `SPTokenizer[id]`: below numImageTokens `<image_k>`, else the piece. */
  idToToken(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new TokenizerError(`ChatGLMTokenizer: id ${id} is out of range [0, ${this.vocabSize})`);
    return id < this.config.numImageTokens ? `<image_${id}>` : this.sp.idToPiece(id - this.config.numImageTokens);
  }

  convertTokensToIds(tokens: readonly string[]): number[] {
    return tokens.map((token) => this.tokenToId(token));
  }

  convertIdsToTokens(ids: Iterable<number> | ArrayLike<number>, skipSpecialTokens = false): string[] {
    return Array.from(ids)
      .filter((id) => !(skipSpecialTokens && this.allSpecialIdSet.has(id)))
      .map((id) => this.idToToken(id));
  }

  get padTokenId(): number {
    return this.tokenToId(this.config.padToken);
  }
  get bosTokenId(): number {
    return this.tokenToId(this.config.bosToken);
  }
  get eosTokenId(): number {
    return this.tokenToId(this.config.eosToken);
  }
  get maskTokenId(): number {
    return this.tokenToId(this.config.maskToken);
  }
  get gmaskTokenId(): number {
    return this.tokenToId(this.config.gmaskToken);
  }
  get specialTokenIds(): SpecialTokenIds {
    return { pad: this.padTokenId, unk: this.tokenToId(this.config.unkToken), bos: this.bosTokenId, eos: this.eosTokenId, cls: null, sep: null, mask: this.maskTokenId };
  }
  /** The special tokens' ids plus `[gMASK]` (never sampled as noise or masked). */
  get allSpecialIds(): number[] {
    return [...this.allSpecialIdSet, this.gmaskTokenId];
  }

  // ---- tokenize ----------------------------------------------------------------------------

  /** Text -> pieces, no `[gMASK]` / `<sop>` (`tokenizer.tokenize(text)`). */
  tokenize(text: string): string[] {
    if (typeof text !== 'string') throw new TokenizerError(`ChatGLMTokenizer.tokenize: expected a string, got ${typeof text}`);
    const out: string[] = [];
    for (const piece of splitOnAddedTokens(text, this.splitTokens)) {
      if (piece.isToken) out.push(piece.text);
      else out.push(...this.sp.encodeAsPieces(preprocessWhitespace(this.preprocessText(piece.text))));
    }
    return out;
  }

  /** `preprocess_text`: remove_space, do_lower_case. */
  private preprocessText(text: string): string {
    let out = this.config.removeSpace ? pySplit(pyStrip(text)).join(' ') : text;
    if (this.config.doLowerCase) out = out.toLowerCase();
    return out;
  }

  // ---- special tokens ----------------------------------------------------------------------

  /** `A [gMASK] <sop>`; pairs `A [gMASK] <sop> B <eop>`. */
  buildInputsWithSpecialTokens(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    const first = [...ids, this.gmaskTokenId, this.bosTokenId];
    return pairIds === null ? first : [...first, ...pairIds, this.eosTokenId];
  }

  /** The base class's: 0 per id of A, 1 per id of B (special tokens not counted, as there). */
  createTokenTypeIdsFromSequences(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    return [...new Array<number>(ids.length).fill(0), ...new Array<number>(pairIds?.length ?? 0).fill(1)];
  }

  /** The base class's: all zeros over A and B. */
  getSpecialTokensMask(ids: readonly number[], pairIds: readonly number[] | null = null): number[] {
    return new Array<number>(ids.length + (pairIds?.length ?? 0)).fill(0);
  }

  numSpecialTokensToAdd(pair = false): number {
    return pair ? 3 : 2;
  }

  // ---- encode ------------------------------------------------------------------------------

  /**
   * One text or text pair, as `tokenizer(text, textPair, **options)`. `attentionMask` and
   * `positionIds` are built only when padding is asked for (the reference's `_pad` builds them only then).
   */
  encode(text: string, pair: string | null = null, options: EncodeOptions = {}): ChatGLMEncoding {
    const s = this.strategies(options);
    const [ids, pairIds] = this.inputIds(pair === null ? text : [text, pair]);
    return encodeOne(this.hooks(), ids, pairIds, s, (e, maxLength, strategy) => this.pad(e, maxLength, strategy, s) as Encoding) as ChatGLMEncoding;
  }

  /** Texts and/or text pairs, as `tokenizer(batch, **options)`: each encoded, then left-padded together. */
  encodeBatch(inputs: readonly TextInput[], options: EncodeOptions = {}): ChatGLMBatchEncoding {
    const s = this.strategies(options);
    const encodings = inputs.map((input) => prepareForModel(this.hooks(), ...this.inputIds(input), { ...s, padding: 'do_not_pad', returnAttentionMask: false }));
    const padded = padBatch(encodings, s, (e, maxLength, strategy) => this.pad(e, maxLength, strategy, s));
    const batch: ChatGLMBatchEncoding = { inputIds: padded.map((e) => e.inputIds) };
    if (padded.every((e) => e.attentionMask)) batch.attentionMask = padded.map((e) => e.attentionMask!);
    if (padded.every((e) => e.positionIds)) batch.positionIds = padded.map((e) => e.positionIds!);
    if (s.returnTokenTypeIds) batch.tokenTypeIds = padded.map((e) => e.tokenTypeIds!);
    if (s.returnSpecialTokensMask) batch.specialTokensMask = padded.map((e) => e.specialTokensMask!);
    if (s.returnLength) batch.length = encodings.map((e) => e.inputIds.length);
    return batch;
  }

  protected strategies(options: EncodeOptions): Strategies {
    return resolveStrategies(options, { modelMaxLength: this.config.modelMaxLength, padTokenId: this.padTokenId, returnTokenTypeIds: false });
  }

  protected get truncationSide(): 'left' | 'right' {
    return this.config.truncationSide;
  }

  /**
   * ChatGLM's `_pad`. With a target length (padding asked for), on the UNPADDED sequence of length L:
   * context = everything before the first `<sop>` (all of it if none); attention_mask = NOT
   * (lower-triangular ones with the context columns set), i.e. True = masked; position_ids row 0 =
   * 0..L-1 with every position from the context on set to the index of the first `[MASK]` (else of the
   * first `[gMASK]`, else left as is), row 1 = 0 over the context then 1, 2, ... Then pad on the left:
   * `<pad>`, mask rows/columns True, position ids 0.
   */
  private pad(encoding: Encoding, maxLength: number | null, strategy: PaddingStrategy, s: Strategies): ChatGLMEncoding {
    const ids = encoding.inputIds;
    const L = ids.length;
    const target = padTarget(L, maxLength, strategy, s.padToMultipleOf);
    const { attentionMask: _none, ...rest } = encoding;
    const out: ChatGLMEncoding = rest;
    if (target === null) return out;
    const bos = ids.indexOf(this.bosTokenId);
    const context = bos >= 0 ? bos : L;
    // [1, L, L]: row i attends column j when j < context or j <= i.
    out.attentionMask = [Array.from({ length: L }, (_, i) => Array.from({ length: L }, (_, j) => !(j < context || j <= i)))];
    const positions = Array.from({ length: L }, (_, i) => i);
    const maskToken = ids.includes(this.maskTokenId) ? this.maskTokenId : this.gmaskTokenId;
    const maskPosition = ids.indexOf(maskToken);
    if (maskPosition >= 0) for (let i = context; i < L; i++) positions[i] = maskPosition;
    const block = Array.from({ length: L }, (_, i) => (i < context ? 0 : i - context + 1));
    out.positionIds = [positions, block];

    const difference = strategy !== 'do_not_pad' ? target - L : 0;
    if (difference > 0) {
      const size = L + difference;
      out.attentionMask = [Array.from({ length: size }, (_, i) => Array.from({ length: size }, (_, j) => (i < difference || j < difference ? true : out.attentionMask![0][i - difference][j - difference])))];
      const zeros = new Array<number>(difference).fill(0);
      out.positionIds = out.positionIds.map((row) => [...zeros, ...row]);
      if (out.tokenTypeIds) out.tokenTypeIds = [...zeros, ...out.tokenTypeIds];
      if (out.specialTokensMask) out.specialTokensMask = [...new Array<number>(difference).fill(1), ...out.specialTokensMask];
      out.inputIds = [...new Array<number>(difference).fill(this.padTokenId), ...ids];
    }
    return out;
  }

  // ---- decode ------------------------------------------------------------------------------

  /**
   * Ids -> text: `<pad>` ids dropped, special tokens skipped if asked, then ONE SentencePiece
   * DecodePieces over all tokens (control pieces vanish, `<image_k>` stays as text), `<n>` / `<|tab|>`
   * / `<|blank_k|>` back to whitespace, then the clean-up if configured.
   */
  decode(ids: Iterable<number> | ArrayLike<number>, options: DecodeOptions = {}): string {
    const list = Array.from(ids).filter((id) => id !== this.padTokenId);
    if (list.length === 0) return '';
    return decodeTokens(this.convertIdsToTokens(list, options.skipSpecialTokens ?? false), {
      skipSpecialTokens: options.skipSpecialTokens ?? false,
      cleanUpTokenizationSpaces: options.cleanUpTokenizationSpaces ?? this.config.cleanUpTokenizationSpaces,
      isSpecial: (token) => this.allSpecialTokens.includes(token),
      isLegacyAdded: () => false,
      padToken: this.config.padToken,
      convertTokensToString: (tokens) => this.convertTokensToString(tokens),
    });
  }

  batchDecode(batch: readonly (Iterable<number> | ArrayLike<number>)[], options: DecodeOptions = {}): string[] {
    return batch.map((ids) => this.decode(ids, options));
  }

  /** `SPTokenizer.decode_tokens`: DecodePieces, then the whitespace markers back to whitespace. */
  convertTokensToString(tokens: readonly string[]): string {
    let text = this.sp.decodePieces(tokens).replaceAll('<n>', '\n').replaceAll(TAB_TOKEN, '\t');
    for (let k = 2; k <= MAX_BLANK_LENGTH; k++) text = text.replaceAll(blankToken(k), ' '.repeat(k));
    return text;
  }

  // ---- save --------------------------------------------------------------------------------

  /** ice_text.model (the bytes it was loaded from) and tokenizer_config.json: what `fromPretrained` reads back. */
  save(): TokenizerSaveFiles {
    const c = this.config;
    const config: Record<string, unknown> = {
      tokenizer_class: 'ChatGLMTokenizer',
      vocab_file: 'ice_text.model',
      bos_token: c.bosToken,
      eos_token: c.eosToken,
      end_token: c.endToken,
      mask_token: c.maskToken,
      gmask_token: c.gmaskToken,
      pad_token: c.padToken,
      unk_token: c.unkToken,
      padding_side: c.paddingSide,
      truncation_side: c.truncationSide,
      do_lower_case: c.doLowerCase,
      remove_space: c.removeSpace,
      num_image_tokens: c.numImageTokens,
      clean_up_tokenization_spaces: c.cleanUpTokenizationSpaces,
    };
    if (c.modelMaxLength < VERY_LARGE_INTEGER) config.model_max_length = c.modelMaxLength;
    return { 'ice_text.model': this.modelBytes, 'tokenizer_config.json': `${JSON.stringify(config, null, 2)}\n` };
  }
}

/** `SPTokenizer._preprocess`: `\n` -> `<n>`, `\t` -> `<|tab|>`, runs of k = 80 down to 2 spaces -> `<|blank_k|>`. */
export function preprocessWhitespace(text: string): string {
  let out = text.replaceAll('\n', '<n>').replaceAll('\t', TAB_TOKEN);
  for (let k = MAX_BLANK_LENGTH; k >= 2; k--) out = out.replaceAll(' '.repeat(k), blankToken(k));
  return out;
}
