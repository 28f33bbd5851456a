// Reading a corpus as a stream of documents, one file and one line at a time: nothing is ever loaded
// whole. The formats (text, jsonl) are parsed by documents.ts, which the browser worker shares.
// Folders are walked recursively in name order (hidden files skipped). Each document carries a
// stable id (file index in that order, ordinal in the file), so the validation split and the
// shuffled order do not depend on the order files are read in.

import { createReadStream, type Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { createInterface } from 'node:readline';

import type { DocumentSource, SourceDocument } from '../core/data.js';
import { DataError } from '../core/errors.js';
import { JSONL_EXTENSIONS, TEXT_EXTENSIONS, documentsFromLines, formatOf, type DataFormat } from './documents.js';

export { DataError };
export { splitSentences, type DataFormat } from './documents.js';
export type { SourceDocument };

export interface CorpusFile {
  path: string;
  format: 'text' | 'jsonl';
  size: number;
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

async function* lines(path: string): AsyncGenerator<string> {
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  try {
    for await (const line of rl) yield line;
  } finally {
    rl.close();
  }
}

/** Documents of one file, streamed. */
export function readFileDocuments(file: CorpusFile, fileIndex: number, jsonlField: string): AsyncGenerator<SourceDocument> {
  return documentsFromLines(lines(file.path), { name: file.path, format: file.format, index: fileIndex }, jsonlField);
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
