// Megatron's T5 tokenizer setup: a WordPiece vocabulary (vocab.txt) plus `extraIds` sentinel tokens
// `<extra_id_0>` ... (`--vocab-extra-ids 100`), framing text as tokens + eos ([SEP]) with [PAD] as pad
// and decoder start. This is what `lm-train`'s t5 families train with and export; the SentencePiece
// `T5Tokenizer` of real T5 checkpoints is a separate class. Where the sentinels sit differs by origin:
// Hugging Face's T5 vocabulary counts them down from the top (`<extra_id_0>` is the last id), while
// Megatron's `_BertWordPieceTokenizer` appends them in order (`<extra_id_0>` right after the WordPiece
// vocabulary). vocab.txt lists them in id order, so a saved folder keeps its order.
import { BertTokenizer, TokenizerError, type SpecialTokenIds, type Tokenizer } from '@lm/layers';

const SENTINEL = /^<extra_id_(\d+)>$/;
const DEFAULT_EXTRA_IDS = 100;

/** Where `<extra_id_k>` sits after the WordPiece vocabulary: counted down from the top (Hugging Face T5) or up in order (Megatron). */
export type SentinelOrder = 'descending' | 'ascending';

/** A WordPiece tokenizer with `extraIds` sentinels appended (Megatron's `--vocab-extra-ids`), framing text as tokens + eos. */
export class ExtraIdsTokenizer implements Tokenizer {
  constructor(
    readonly base: BertTokenizer,
    readonly extraIds: number,
    readonly order: SentinelOrder = 'descending',
  ) {
    if (base.padTokenId === null || base.sepTokenId === null) throw new TokenizerError('ExtraIdsTokenizer: the vocabulary needs [PAD] (pad, decoder start) and [SEP] (eos)');
    if (!Number.isInteger(extraIds) || extraIds < 1) throw new TokenizerError(`ExtraIdsTokenizer: extraIds must be an integer >= 1, got ${extraIds}`);
  }

  /**
   * From vocab.txt's text: trailing `<extra_id_*>` lines are the sentinels in the order they are listed,
   * else 100 are added in `options.order` (default descending).
   */
  static fromVocab(text: string, options: { lowercase?: boolean; order?: SentinelOrder } = {}): ExtraIdsTokenizer {
    const lines = text.split('\n');
    while (lines.length && lines[lines.length - 1] === '') lines.pop();
    const listed: number[] = []; // the trailing sentinels' k, in id order
    while (lines.length && SENTINEL.test(lines[lines.length - 1])) listed.unshift(Number(SENTINEL.exec(lines.pop()!)![1]));
    if (lines.length === 0) throw new TokenizerError('vocab.txt holds no WordPiece vocabulary');
    const n = listed.length;
    let order = options.order ?? 'descending';
    if (n > 1) {
      if (listed.every((k, i) => k === i)) order = 'ascending';
      else if (listed.every((k, i) => k === n - 1 - i)) order = 'descending';
      else throw new TokenizerError(`vocab.txt: the trailing sentinels must run <extra_id_0>..<extra_id_${n - 1}> or <extra_id_${n - 1}>..<extra_id_0>, got ${listed.slice(0, 4).map((k) => `<extra_id_${k}>`).join(', ')}${n > 4 ? ', ...' : ''}`);
    } else if (n === 1 && listed[0] !== 0) throw new TokenizerError(`vocab.txt: a single trailing sentinel must be <extra_id_0>, got <extra_id_${listed[0]}>`);
    return new ExtraIdsTokenizer(BertTokenizer.fromVocab(`${lines.join('\n')}\n`, { doLowerCase: options.lowercase ?? true }), n || DEFAULT_EXTRA_IDS, order);
  }

  /** Every id: the WordPiece vocabulary, then the sentinels. */
  get vocabSize(): number {
    return this.base.vocabSize + this.extraIds;
  }

  /** The id of `<extra_id_k>`: counted down from the last id, or up from the end of the WordPiece vocabulary. */
  sentinelId(k: number): number {
    return this.order === 'descending' ? this.vocabSize - 1 - k : this.base.vocabSize + k;
  }

  /** The ids of `<extra_id_0>`, `<extra_id_1>`, ... in that order (span corruption's sentinels), as `T5Tokenizer.sentinelIds`. */
  get sentinelIds(): number[] {
    return Array.from({ length: this.extraIds }, (_, k) => this.sentinelId(k));
  }

  /** k of the sentinel `id` (an id >= the WordPiece vocabulary size). */
  sentinelIndex(id: number): number {
    return this.order === 'descending' ? this.vocabSize - 1 - id : id - this.base.vocabSize;
  }

  encode(text: string, pair: string | null = null, options: { addSpecialTokens?: boolean } = {}): { inputIds: number[] } {
    const ids = [text, pair ?? ''].flatMap((part) =>
      // `<extra_id_k>` in the text is the sentinel itself; the rest is WordPiece.
      part.split(/(<extra_id_\d+>)/).flatMap((piece) => {
        const m = SENTINEL.exec(piece);
        if (m && Number(m[1]) < this.extraIds) return [this.sentinelId(Number(m[1]))];
        return piece.trim() ? this.base.encode(piece, null, { addSpecialTokens: false }).inputIds : [];
      }),
    );
    return { inputIds: options.addSpecialTokens === false ? ids : [...ids, this.base.sepTokenId!] };
  }

  decode(ids: Iterable<number> | ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    const parts: string[] = [];
    let run: number[] = [];
    const flush = () => {
      if (run.length) parts.push(this.base.decode(run, options));
      run = [];
    };
    for (const id of Array.from(ids as ArrayLike<number>)) {
      if (id >= this.base.vocabSize) {
        flush();
        if (!options.skipSpecialTokens) parts.push(`<extra_id_${this.sentinelIndex(id)}>`);
      } else run.push(id);
    }
    flush();
    return parts.filter(Boolean).join(' ');
  }

  get specialTokenIds(): SpecialTokenIds {
    const s = this.base.specialTokenIds;
    return { ...s, pad: this.base.padTokenId, eos: this.base.sepTokenId, bos: null };
  }

  get allSpecialIds(): number[] {
    return [...this.base.allSpecialIds, ...this.sentinelIds];
  }

  /** vocab.txt (the WordPiece vocabulary, then the sentinels in id order) and tokenizer_config.json. */
  save(): Record<string, string> {
    const files = this.base.save();
    const sentinels = Array.from({ length: this.extraIds }, (_, i) => `<extra_id_${this.sentinelIndex(this.base.vocabSize + i)}>`);
    const vocab = files['vocab.txt'];
    if (vocab === undefined) throw new TokenizerError('ExtraIdsTokenizer.save: the WordPiece tokenizer saved no vocab.txt');
    files['vocab.txt'] = `${vocab.replace(/\n?$/, '\n')}${sentinels.join('\n')}\n`;
    const config = JSON.parse(files['tokenizer_config.json'] ?? '{}') as Record<string, unknown>;
    files['tokenizer_config.json'] = `${JSON.stringify({ ...config, extra_ids: this.extraIds, eos_token: '[SEP]', pad_token: '[PAD]' }, null, 2)}\n`;
    return files;
  }
}
