// RealmRetriever: the text side of REALM's retrieval (transformers `models/realm/retrieval_realm.py`).
// It holds the block records (the evidence texts, row i of `block_emb` embeds record i) and the
// tokenizer; given the retrieved block ids it pairs the decoded question with each block's text as
// the reader reads them ([CLS] question [SEP] block [SEP], padded to the longest pair, truncated
// longest-first to max_length) and, given answer token ids, finds every occurrence of an answer
// inside each block (between the two [SEP]s) as the reader's gold spans.
//
// Block records are saved as block_records.json (a JSON array of strings) rather than the
// reference's pickled block_records.npy: JSON loads in a browser and cannot run code.

import { RealmError } from './errors.js';
import { RealmTokenizer } from './tokenizer.js';

export const BLOCK_RECORDS_FILE = 'block_records.json';

/** Where the answers are in each retrieved (question, block) pair; -1 pads rows to maxAnswers. */
export interface BlockAnswers {
  hasAnswers: boolean[];
  /** [numBlocks][maxAnswers] token index of each answer's first token. */
  startPos: number[][];
  /** [numBlocks][maxAnswers] token index of each answer's last token. */
  endPos: number[][];
  maxAnswers: number;
}

/** The reader's inputs for the retrieved blocks: [numBlocks][seq] each, padded to the longest pair. */
export interface RetrievedPairs {
  inputIds: number[][];
  attentionMask: number[][];
  tokenTypeIds: number[][];
  specialTokensMask: number[][];
  /** Present when answer ids were given. */
  answers: BlockAnswers | null;
}

/** Parses block_records.json: a JSON array of strings. */
export function parseBlockRecords(text: string, where = BLOCK_RECORDS_FILE): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new RealmError(`RealmRetriever: ${where} is not valid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new RealmError(`RealmRetriever: ${where} must be a JSON array of block texts`);
  const bad = parsed.findIndex((b) => typeof b !== 'string');
  if (bad >= 0) throw new RealmError(`RealmRetriever: ${where} entry ${bad} is not a string (${JSON.stringify(parsed[bad])?.slice(0, 40)})`);
  return parsed as string[];
}

export class RealmRetriever {
  readonly blockRecords: string[];
  readonly tokenizer: RealmTokenizer;

  constructor(blockRecords: readonly string[], tokenizer: RealmTokenizer) {
    if (tokenizer.sepTokenId === null) throw new RealmError('RealmRetriever: the tokenizer has no [SEP] token');
    this.blockRecords = [...blockRecords];
    this.tokenizer = tokenizer;
  }

  /**
   * Loads block_records.json and the tokenizer (vocab.txt / tokenizer files) from a folder (Node) or
   * a name -> content map; `tokenizerConfig` overrides tokenizer_config.json (e.g. `do_lower_case`).
   */
  static async fromPretrained(source: string | Record<string, string>, options: { tokenizerConfig?: Record<string, unknown> } = {}): Promise<RealmRetriever> {
    let recordsText: string;
    let files: Record<string, string | Record<string, unknown>>;
    if (typeof source === 'string') {
      const fs = await import(/* @vite-ignore */ 'node:fs/promises');
      const path = await import(/* @vite-ignore */ 'node:path');
      try {
        recordsText = await fs.readFile(path.join(source, BLOCK_RECORDS_FILE), 'utf8');
      } catch (e) {
        throw new RealmError(`RealmRetriever.fromPretrained: cannot read ${BLOCK_RECORDS_FILE} in ${source}: ${(e as Error).message}`);
      }
      files = {};
      for (const name of ['vocab.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
        try {
          const text = await fs.readFile(path.join(source, name), 'utf8');
          files[name] = name.endsWith('.json') ? (JSON.parse(text) as Record<string, unknown>) : text;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
    } else {
      if (source[BLOCK_RECORDS_FILE] === undefined) throw new RealmError(`RealmRetriever.fromPretrained: no ${BLOCK_RECORDS_FILE} among the files`);
      recordsText = source[BLOCK_RECORDS_FILE];
      files = Object.fromEntries(Object.entries(source).filter(([name]) => name !== BLOCK_RECORDS_FILE).map(([name, v]) => [name, name.endsWith('.json') ? (JSON.parse(v) as Record<string, unknown>) : v]));
    }
    if (options.tokenizerConfig) {
      files['tokenizer_config.json'] = { ...((files['tokenizer_config.json'] as Record<string, unknown> | undefined) ?? {}), ...options.tokenizerConfig };
    }
    const tokenizer = await RealmTokenizer.fromPretrained(files);
    return new RealmRetriever(parseBlockRecords(recordsText), tokenizer);
  }

  /** The files that `fromPretrained` reads back: block_records.json and the tokenizer's files. */
  files(): Record<string, string> {
    return { [BLOCK_RECORDS_FILE]: `${JSON.stringify(this.blockRecords)}\n`, ...this.tokenizer.save() };
  }

  /** Writes block_records.json and the tokenizer files into dir (Node). */
  async savePretrained(dir: string): Promise<void> {
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    const path = await import(/* @vite-ignore */ 'node:path');
    await fs.mkdir(dir, { recursive: true });
    for (const [name, text] of Object.entries(this.files())) await fs.writeFile(path.join(dir, name), text);
  }

  /**
   * The reference's `__call__`: the question (decoded from its ids, special tokens skipped) paired with
   * each retrieved block, tokenised with padding to the longest pair, longest-first truncation to
   * maxLength and the special-tokens mask; with answerIds, where each answer occurs in each block.
   */
  retrieve(retrievedBlockIds: readonly number[], questionInputIds: readonly number[], answerIds: readonly (readonly number[])[] | null, options: { maxLength?: number | null } = {}): RetrievedPairs {
    if (retrievedBlockIds.length === 0) throw new RealmError('RealmRetriever.retrieve: no block ids');
    for (const id of retrievedBlockIds) {
      if (!Number.isInteger(id) || id < 0 || id >= this.blockRecords.length) {
        throw new RealmError(`RealmRetriever.retrieve: block id ${id} is outside the ${this.blockRecords.length} block records`);
      }
    }
    const question = this.tokenizer.decode([...questionInputIds], { skipSpecialTokens: true });
    const pairs = retrievedBlockIds.map((id) => [question, this.blockRecords[id]] as const);
    const encoded = this.tokenizer.encodeBatch(pairs, {
      padding: true,
      truncation: true,
      maxLength: options.maxLength ?? null,
      returnSpecialTokensMask: true,
    });
    return {
      inputIds: encoded.inputIds,
      attentionMask: encoded.attentionMask!,
      tokenTypeIds: encoded.tokenTypeIds!,
      specialTokensMask: encoded.specialTokensMask!,
      answers: answerIds ? this.blockHasAnswer(encoded.inputIds, answerIds) : null,
    };
  }

  /** Every occurrence of each answer between the first and second [SEP] of each pair (`block_has_answer`). */
  blockHasAnswer(inputIds: readonly (readonly number[])[], answerIds: readonly (readonly number[])[]): BlockAnswers {
    const sep = this.tokenizer.sepTokenId!;
    // As the reference, an answer matches token for token (a -1 pad never matches a token).
    const answers = answerIds;
    answers.forEach((a, i) => {
      if (a.length === 0) throw new RealmError(`RealmRetriever: answer ${i} has no token ids`);
    });
    const hasAnswers: boolean[] = [];
    const startPos: number[][] = [];
    const endPos: number[][] = [];
    let maxAnswers = 0;
    inputIds.forEach((ids, row) => {
      const firstSep = ids.indexOf(sep);
      const secondSep = firstSep < 0 ? -1 : ids.indexOf(sep, firstSep + 1);
      if (secondSep < 0) throw new RealmError(`RealmRetriever: pair ${row} does not hold two [SEP] tokens (question [SEP] block [SEP])`);
      const starts: number[] = [];
      const ends: number[] = [];
      for (const answer of answers) {
        for (let idx = firstSep + 1; idx < secondSep; idx++) {
          // The match may run past the block's [SEP], as in the reference (it compares the raw slice).
          if (answer.every((id, j) => ids[idx + j] === id)) {
            starts.push(idx);
            ends.push(idx + answer.length - 1);
          }
        }
      }
      hasAnswers.push(starts.length > 0);
      maxAnswers = Math.max(maxAnswers, starts.length);
      startPos.push(starts);
      endPos.push(ends);
    });
    for (let i = 0; i < startPos.length; i++) {
      while (startPos[i].length < maxAnswers) {
        startPos[i].push(-1);
        endPos[i].push(-1);
      }
    }
    return { hasAnswers, startPos, endPos, maxAnswers };
  }
}
