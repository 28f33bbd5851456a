// The corpus as the browser has it: files already in memory (the bundled corpus, or text / JSON-lines
// files dropped on the page), read by the same document parser as `lm-train`'s files
// (data/documents.ts). Files are taken in name order, as `lm-train` walks a folder, so the same files
// give the same documents, split and stream in both.

import type { DocumentSource } from '../core/data.js';
import { DataError } from '../core/errors.js';
import { JSONL_EXTENSIONS, TEXT_EXTENSIONS, documentsFromLines, extensionOf, formatOf, type DataFormat } from '../data/documents.js';

export interface CorpusText {
  name: string;
  /** The file's bytes (checked for text) or its text. */
  data: Uint8Array | string;
}

/** Decodes a file as UTF-8 text, or says why it is not a corpus file (binary, not UTF-8). */
function decodeText(file: CorpusText): string {
  if (typeof file.data === 'string') return file.data;
  const bytes = file.data;
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new DataError(`data: ${file.name} is not a text file (a zero byte at offset ${nul}); drop .txt or .jsonl files`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DataError(`data: ${file.name} is not UTF-8 text; drop .txt or .jsonl files`);
  }
}

/** The loop's document source over in-memory files; checks every file before any training. */
export function memoryCorpus(input: readonly CorpusText[], format: DataFormat, jsonlField: string): DocumentSource {
  if (input.length === 0) throw new DataError('data: no corpus files');
  const files = [...input]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => {
      const ext = extensionOf(f.name);
      if (format === 'auto' && !JSONL_EXTENSIONS.has(ext) && !TEXT_EXTENSIONS.has(ext)) {
        throw new DataError(`data: ${f.name}: not a corpus file (expected .txt or .text for text, .jsonl or .ndjson for JSON lines)`);
      }
      return { name: f.name, format: formatOf(f.name, format), text: decodeText(f) };
    });
  if (files.every((f) => f.text.trim() === '')) throw new DataError(`data: the corpus is empty (${files.length} file(s) without text: ${files.map((f) => f.name).join(', ')})`);
  return {
    fileCount: files.length,
    description: files.map((f) => f.name).join(', '),
    async *read(order) {
      for (const i of order) yield* documentsFromLines(files[i].text.split(/\r?\n/), { name: files[i].name, format: files[i].format, index: i }, jsonlField);
    },
  };
}
