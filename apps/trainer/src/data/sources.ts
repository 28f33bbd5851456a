// Reading a corpus as a stream of documents, one file and one line at a time: nothing is ever loaded
// whole. Formats:
//   text  - one sentence per line, blank lines between documents (BERT's pretraining format); a file
//           boundary also ends a document.
//   jsonl - one JSON object per line, its `jsonlField` (default "text") a document, split into
//           sentences at . ! ? followed by whitespace.
// Folders are walked recursively in name order (hidden files skipped). Each document carries a
// stable id (file index in that order, ordinal in the file), so the validation split and the
// shuffled order do not depend on the order files are read in.

import { createReadStream, type Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { createInterface } from 'node:readline';

import type { DocumentSource, SourceDocument } from '../core/data.js';
import { DataError } from '../core/errors.js';

export { DataError };
export type { SourceDocument };

export type DataFormat = 'auto' | 'text' | 'jsonl';

export interface CorpusFile {
  path: string;
  format: 'text' | 'jsonl';
  size: number;
}

const JSONL_EXTENSIONS = new Set(['.jsonl', '.ndjson']);
const TEXT_EXTENSIONS = new Set(['.txt', '.text', '']);

function formatOf(path: string, format: DataFormat): 'text' | 'jsonl' {
  if (format !== 'auto') return format;
  return JSONL_EXTENSIONS.has(extname(path).toLowerCase()) ? 'jsonl' : 'text';
}

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (e.isFile()) out.push(p);
  }
}

/**
 * Lists the corpus's files (paths in the given order; folders expanded in name order), checking that
 * each exists. In folders, files whose extension fits no format (.txt/.text/none for text,
 * .jsonl/.ndjson for jsonl) are skipped.
 */
export async function listCorpus(paths: readonly string[], format: DataFormat): Promise<CorpusFile[]> {
  const files: CorpusFile[] = [];
  for (const p of paths) {
    let st: Stats;
    try {
      st = await stat(p);
    } catch {
      throw new DataError(`data.paths: ${p} does not exist`);
    }
    if (st.isDirectory()) {
      const found: string[] = [];
      await walk(p, found);
      for (const f of found) {
        const ext = extname(f).toLowerCase();
        const known = format === 'jsonl' ? JSONL_EXTENSIONS.has(ext) : format === 'text' ? TEXT_EXTENSIONS.has(ext) : JSONL_EXTENSIONS.has(ext) || TEXT_EXTENSIONS.has(ext);
        if (known) files.push({ path: f, format: formatOf(f, format), size: (await stat(f)).size });
      }
    } else {
      files.push({ path: p, format: formatOf(p, format), size: st.size });
    }
  }
  if (files.length === 0) throw new DataError(`data.paths: no corpus files (.txt, .jsonl) in ${paths.join(', ')}`);
  return files;
}

/** Sentences of free text: split after . ! ? followed by whitespace; newlines split too. */
export function splitSentences(text: string): string[] {
  return text
    .split(/(?<=[.!?])\s+|\n+/u)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

async function* lines(path: string): AsyncGenerator<string> {
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  try {
    for await (const line of rl) yield line;
  } finally {
    rl.close();
  }
}

/** Documents of one file, streamed. */
export async function* readFileDocuments(file: CorpusFile, fileIndex: number, jsonlField: string): AsyncGenerator<SourceDocument> {
  let ordinal = 0;
  if (file.format === 'jsonl') {
    let lineNo = 0;
    for await (const line of lines(file.path)) {
      lineNo++;
      if (line.trim() === '') continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        throw new DataError(`${file.path}:${lineNo}: not valid JSON (${(e as Error).message})`);
      }
      const text = rec && typeof rec === 'object' ? (rec as Record<string, unknown>)[jsonlField] : undefined;
      if (typeof text !== 'string') throw new DataError(`${file.path}:${lineNo}: expected an object with a string field "${jsonlField}" (data.jsonlField)`);
      const sentences = splitSentences(text);
      if (sentences.length) yield { file: fileIndex, ordinal: ordinal++, sentences };
    }
    return;
  }
  let sentences: string[] = [];
  for await (const line of lines(file.path)) {
    const s = line.trim();
    if (s === '') {
      if (sentences.length) yield { file: fileIndex, ordinal: ordinal++, sentences };
      sentences = [];
    } else {
      sentences.push(s);
    }
  }
  if (sentences.length) yield { file: fileIndex, ordinal: ordinal++, sentences };
}

/** Every document of the corpus, files in the given order. */
export async function* readDocuments(files: readonly CorpusFile[], jsonlField: string, order?: readonly number[]): AsyncGenerator<SourceDocument> {
  for (const i of order ?? files.map((_, k) => k)) yield* readFileDocuments(files[i], i, jsonlField);
}

/** The corpus as the loop's data reads it: files listed and checked now, documents streamed later. */
export async function corpusSource(paths: readonly string[], format: DataFormat, jsonlField: string): Promise<DocumentSource> {
  const files = await listCorpus(paths, format);
  if (files.every((f) => f.size === 0)) throw new DataError(`data.paths: the corpus is empty (${files.length} file(s), 0 bytes): ${paths.join(', ')}`);
  return { fileCount: files.length, description: paths.join(', '), read: (order) => readDocuments(files, jsonlField, order) };
}
