// The tokenizer as model-agnostic code sees it (the trainer, pipelines, the playground): text to ids
// and back, the special ids, and the files that reload it. WordPiece (`BertTokenizer`) implements it;
// the SentencePiece tokenizers of T5 and ChatGLM implement the same, so code written against this
// interface takes any family's tokenizer.

/** The special tokens' ids; null where the tokenizer has no such token (BERT has no bos/eos, T5 no cls). */
export interface SpecialTokenIds {
  pad: number | null;
  unk: number | null;
  bos: number | null;
  eos: number | null;
  cls: number | null;
  sep: number | null;
  mask: number | null;
}

/**
 * A tokenizer's files by name: text (`vocab.txt`, `tokenizer_config.json`, ...) or bytes (a
 * SentencePiece `spiece.model` / `ice_text.model`).
 */
export type TokenizerSaveFiles = Record<string, string | Uint8Array>;

export interface Tokenizer {
  /** Size of the base vocabulary (ids of tokens added past it are >= vocabSize). */
  readonly vocabSize: number;
  /** Text (or a text pair) -> ids; `addSpecialTokens` (default true) adds the family's framing ([CLS]/[SEP], </s>, ...). */
  encode(text: string, pair?: string | null, options?: { addSpecialTokens?: boolean }): { inputIds: number[] };
  /** Ids -> text; `skipSpecialTokens` drops the special tokens. */
  decode(ids: Iterable<number> | ArrayLike<number>, options?: { skipSpecialTokens?: boolean }): string;
  readonly specialTokenIds: SpecialTokenIds;
  /** Every special id (those above plus any additional ones): never masked, corrupted or sampled as noise. */
  readonly allSpecialIds: readonly number[];
  /** The files that the family's `fromPretrained` reads back into an equal tokenizer; the caller writes them (no file system here). */
  save(): TokenizerSaveFiles;
}
