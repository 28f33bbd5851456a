// The tokenizer the data pipeline needs, loaded from a vocab.txt, a tokenizer.json, or a folder that
// holds either (a Hugging Face checkpoint folder): @lm/layers' BertTokenizer (WordPiece).

import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { BertTokenizer } from '@lm/layers';
import { DataError } from './sources.js';

/** What packing and masking use; BertTokenizer supplies it. */
export interface PretrainingTokenizer {
  /** Text -> token ids, no special tokens. */
  encode(text: string): number[];
  readonly vocabSize: number;
  readonly clsTokenId: number;
  readonly sepTokenId: number;
  readonly padTokenId: number;
  readonly maskTokenId: number;
  readonly specialIds: ReadonlySet<number>;
  /** The underlying tokenizer (exported next to the model). */
  readonly bert: BertTokenizer;
  /** vocab.txt text, for export. */
  readonly vocabText: string;
  readonly lowercase: boolean;
}

function requireId(id: number | null, what: string, source: string): number {
  if (id === null) throw new DataError(`data.tokenizer: ${source} has no ${what} token`);
  return id;
}

export function wrapTokenizer(bert: BertTokenizer, vocabText: string, source: string, lowercase = true): PretrainingTokenizer {
  const tok: PretrainingTokenizer = {
    encode: (text) => bert.encode(text, null, { addSpecialTokens: false, returnTokenTypeIds: false, returnAttentionMask: false }).inputIds,
    vocabSize: bert.vocabSize,
    clsTokenId: requireId(bert.clsTokenId, '[CLS]', source),
    sepTokenId: requireId(bert.sepTokenId, '[SEP]', source),
    padTokenId: requireId(bert.padTokenId, '[PAD]', source),
    maskTokenId: requireId(bert.maskTokenId, '[MASK]', source),
    specialIds: new Set(bert.allSpecialIds),
    bert,
    vocabText,
    lowercase,
  };
  return tok;
}

/** Loads the tokenizer from a vocab.txt, a tokenizer.json, or a folder with one of them. */
export async function loadTokenizer(path: string, options: { lowercase: boolean }): Promise<PretrainingTokenizer> {
  let file = path;
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new DataError(`data.tokenizer: ${path} does not exist`);
  }
  if (st.isDirectory()) {
    const candidates = ['vocab.txt', 'tokenizer.json'].map((n) => join(path, n));
    const found = [];
    for (const c of candidates) if (await stat(c).then(() => true, () => false)) found.push(c);
    if (found.length === 0) throw new DataError(`data.tokenizer: ${path} holds neither vocab.txt nor tokenizer.json`);
    file = found[0];
  }
  const text = await readFile(file, 'utf8');
  if (basename(file).endsWith('.json')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new DataError(`data.tokenizer: ${file} is not valid JSON (${(e as Error).message})`);
    }
    const bert = BertTokenizer.fromTokenizerJSON(json, { doLowerCase: options.lowercase });
    const vocab = [...bert.getVocab().entries()].sort((a, b) => a[1] - b[1]).map(([t]) => t);
    return wrapTokenizer(bert, `${vocab.join('\n')}\n`, file, options.lowercase);
  }
  if (text.trim() === '') throw new DataError(`data.tokenizer: ${file} is empty`);
  return wrapTokenizer(BertTokenizer.fromVocab(text, { doLowerCase: options.lowercase }), text, file, options.lowercase);
}
