// A character-level tokenizer for character-level Reformer language models (the paper's enwik8 and
// Crime-and-Punishment character runs): one id per Unicode character, a vocabulary saved as
// `vocab.json` ({ token: id }) beside `tokenizer_config.json`, read back by `fromPretrained`. Like the
// reference's ReformerTokenizer it adds no special tokens to an encoding; it has a pad, an unk and an
// eos token (the causal-LM objective frames documents with eos). It lives here while Reformer is the
// only family that trains on characters.

import type { SpecialTokenIds, Tokenizer, TokenizerSaveFiles } from '@lm/layers';

export class CharTokenizerError extends Error {
  override name = 'CharTokenizerError';
}

export interface CharTokenizerOptions {
  padToken?: string;
  unkToken?: string;
  eosToken?: string;
}

const DEFAULTS = { padToken: '<pad>', unkToken: '<unk>', eosToken: '</s>' } as const;

/** Characters to ids and back; unknown characters become the unk token. */
export class CharTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specialTokenIds: SpecialTokenIds;
  readonly allSpecialIds: readonly number[];
  private readonly ids: Map<string, number>;
  private readonly tokens: string[];
  private readonly special: Required<CharTokenizerOptions>;

  /** From a vocabulary { token: id } with ids 0..n-1; the special tokens must be in it. */
  constructor(vocab: Readonly<Record<string, number>>, options: CharTokenizerOptions = {}) {
    this.special = { ...DEFAULTS, ...options };
    this.ids = new Map(Object.entries(vocab));
    this.tokens = [];
    for (const [token, id] of this.ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.ids.size || this.tokens[id] !== undefined) {
        throw new CharTokenizerError(`CharTokenizer: vocab id ${JSON.stringify(id)} of ${JSON.stringify(token)} is not a distinct integer in [0, ${this.ids.size})`);
      }
      if ([...token].length !== 1 && !Object.values(this.special).includes(token)) {
        throw new CharTokenizerError(`CharTokenizer: vocab token ${JSON.stringify(token)} is neither one character nor a special token`);
      }
      this.tokens[id] = token;
    }
    const idOf = (field: keyof CharTokenizerOptions): number => {
      const id = this.ids.get(this.special[field]);
      if (id === undefined) throw new CharTokenizerError(`CharTokenizer: the ${field} ${JSON.stringify(this.special[field])} is not in the vocab`);
      return id;
    };
    this.vocabSize = this.tokens.length;
    this.specialTokenIds = { pad: idOf('padToken'), unk: idOf('unkToken'), bos: null, eos: idOf('eosToken'), cls: null, sep: null, mask: null };
    this.allSpecialIds = [this.specialTokenIds.pad!, this.specialTokenIds.unk!, this.specialTokenIds.eos!];
  }

  /** The special tokens then every character of the texts, in code point order. */
  static fromTexts(texts: Iterable<string>, options: CharTokenizerOptions = {}): CharTokenizer {
    const special = { ...DEFAULTS, ...options };
    const chars = new Set<string>();
    for (const text of texts) for (const c of text) chars.add(c);
    const tokens = [special.padToken, special.unkToken, special.eosToken, ...[...chars].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!)];
    return new CharTokenizer(Object.fromEntries(tokens.map((t, i) => [t, i])), options);
  }

  /**
   * From saved files: a folder holding `vocab.json` (and optionally `tokenizer_config.json`, Node), or
   * the files' texts by name.
   */
  static async fromPretrained(source: string | Readonly<Record<string, string>>): Promise<CharTokenizer> {
    let files: Readonly<Record<string, string>>;
    if (typeof source === 'string') {
      const fs = await import(/* @vite-ignore */ 'node:fs/promises');
      const path = await import(/* @vite-ignore */ 'node:path');
      const read = (name: string) => fs.readFile(path.join(source, name), 'utf8').catch(() => null);
      const vocab = await read('vocab.json');
      if (vocab === null) throw new CharTokenizerError(`CharTokenizer.fromPretrained: ${source} has no vocab.json`);
      const config = await read('tokenizer_config.json');
      files = { 'vocab.json': vocab, ...(config !== null ? { 'tokenizer_config.json': config } : {}) };
    } else files = source;
    const parse = (name: string): Record<string, unknown> => {
      try {
        return JSON.parse(files[name]) as Record<string, unknown>;
      } catch (e) {
        throw new CharTokenizerError(`CharTokenizer.fromPretrained: ${name} is not valid JSON (${(e as Error).message})`);
      }
    };
    if (files['vocab.json'] === undefined) throw new CharTokenizerError('CharTokenizer.fromPretrained: no vocab.json among the files');
    const config = files['tokenizer_config.json'] !== undefined ? parse('tokenizer_config.json') : {};
    const options: CharTokenizerOptions = {};
    for (const [field, key] of [['padToken', 'pad_token'], ['unkToken', 'unk_token'], ['eosToken', 'eos_token']] as const) {
      if (typeof config[key] === 'string') options[field] = config[key];
    }
    return new CharTokenizer(parse('vocab.json') as Record<string, number>, options);
  }

  /** One id per character (a pair is appended as it is); no special tokens are added. */
  encode(text: string, pair: string | null = null): { inputIds: number[] } {
    const unk = this.specialTokenIds.unk!;
    const inputIds: number[] = [];
    for (const c of pair === null ? text : text + pair) inputIds.push(this.ids.get(c) ?? unk);
    return { inputIds };
  }

  decode(ids: Iterable<number> | ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    let out = '';
    for (const id of Array.from(ids)) {
      const token = this.tokens[id];
      if (token === undefined) throw new CharTokenizerError(`CharTokenizer.decode: id ${id} is outside the vocab of ${this.vocabSize}`);
      if (options.skipSpecialTokens && this.allSpecialIds.includes(id)) continue;
      out += token;
    }
    return out;
  }

  save(): TokenizerSaveFiles {
    const vocab = Object.fromEntries(this.tokens.map((t, i) => [t, i]));
    const config = { tokenizer_class: 'CharTokenizer', pad_token: this.special.padToken, unk_token: this.special.unkToken, eos_token: this.special.eosToken };
    return { 'vocab.json': `${JSON.stringify(vocab, null, 2)}\n`, 'tokenizer_config.json': `${JSON.stringify(config, null, 2)}\n` };
  }
}
