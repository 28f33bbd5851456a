// Loading a WordPiece tokenizer (@lm/layers' BertTokenizer) from a vocab.txt, a tokenizer.json, or a
// folder that holds either (a Hugging Face checkpoint folder): the loader of the BERT-style families.

import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { BertTokenizer, type BertTokenizerConfig } from '@lm/layers';
import { DataError } from '../core/errors.js';

/** A BertTokenizer class (BertTokenizer itself, or a family's subclass such as RealmTokenizer): its two builders. */
export interface WordPieceTokenizerClass<T extends BertTokenizer> {
  fromVocab(vocabText: string, config?: BertTokenizerConfig): T;
  fromTokenizerJSON(json: unknown, config?: BertTokenizerConfig): T;
}

/** Loads the tokenizer from a vocab.txt, a tokenizer.json, or a folder with one of them, as an instance of `kind`. */
export async function loadWordPieceTokenizer<T extends BertTokenizer = BertTokenizer>(
  path: string,
  options: { lowercase: boolean },
  kind: WordPieceTokenizerClass<T> = BertTokenizer as unknown as WordPieceTokenizerClass<T>,
): Promise<T> {
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
  let tokenizer: T;
  if (basename(file).endsWith('.json')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new DataError(`data.tokenizer: ${file} is not valid JSON (${(e as Error).message})`);
    }
    tokenizer = kind.fromTokenizerJSON(json, { doLowerCase: options.lowercase });
  } else {
    if (text.trim() === '') throw new DataError(`data.tokenizer: ${file} is empty`);
    tokenizer = kind.fromVocab(text, { doLowerCase: options.lowercase });
  }
  for (const [role, id] of Object.entries({ '[CLS]': tokenizer.clsTokenId, '[SEP]': tokenizer.sepTokenId, '[PAD]': tokenizer.padTokenId, '[MASK]': tokenizer.maskTokenId })) {
    if (id === null) throw new DataError(`data.tokenizer: ${file} has no ${role} token`);
  }
  return tokenizer;
}
