// Documents from the lines of one corpus file, in either format; no file system, so `lm-train`
// (sources.ts, lines read with node:readline) and the browser worker (lines of a dropped or bundled
// file) split and number documents the same way:
//   text  - one sentence per line, blank lines between documents (BERT's pretraining format); the
//           end of the file also ends a document.
//   jsonl - one JSON object per line, its `jsonlField` (default "text") a document, split into
//           sentences at . ! ? followed by whitespace.

import type { SourceDocument } from '../core/data.js';
import { DataError } from '../core/errors.js';

export type DataFormat = 'auto' | 'text' | 'jsonl';

export const JSONL_EXTENSIONS = new Set(['.jsonl', '.ndjson']);
export const TEXT_EXTENSIONS = new Set(['.txt', '.text', '']);

/** The extension of a file name, lowercased, with its dot ('' when none). */
export function extensionOf(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? name;
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot).toLowerCase() : '';
}

export function formatOf(path: string, format: DataFormat): 'text' | 'jsonl' {
  if (format !== 'auto') return format;
  return JSONL_EXTENSIONS.has(extensionOf(path)) ? 'jsonl' : 'text';
}

/** Sentences of free text: split after . ! ? followed by whitespace; newlines split too. */
export function splitSentences(text: string): string[] {
  return text
    .split(/(?<=[.!?])\s+|\n+/u)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Documents of one file (`name` in errors, `fileIndex` its place in the corpus), from its lines. */
export async function* documentsFromLines(
  lines: AsyncIterable<string> | Iterable<string>,
  file: { name: string; format: 'text' | 'jsonl'; index: number },
  jsonlField: string,
): AsyncGenerator<SourceDocument> {
  let ordinal = 0;
  if (file.format === 'jsonl') {
    let lineNo = 0;
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        throw new DataError(`${file.name}:${lineNo}: not valid JSON (${(e as Error).message})`);
      }
      const text = rec && typeof rec === 'object' ? (rec as Record<string, unknown>)[jsonlField] : undefined;
      if (typeof text !== 'string') throw new DataError(`${file.name}:${lineNo}: expected an object with a string field "${jsonlField}" (data.jsonlField)`);
      const sentences = splitSentences(text);
      if (sentences.length) yield { file: file.index, ordinal: ordinal++, sentences };
    }
    return;
  }
  let sentences: string[] = [];
  for await (const line of lines) {
    const s = line.trim();
    if (s === '') {
      if (sentences.length) yield { file: file.index, ordinal: ordinal++, sentences };
      sentences = [];
    } else {
      sentences.push(s);
    }
  }
  if (sentences.length) yield { file: file.index, ordinal: ordinal++, sentences };
}
