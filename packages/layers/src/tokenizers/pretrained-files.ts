// Reading a checkpoint's tokenizer files from wherever they are: a directory (Node; node:fs is
// imported only on this path, so browser bundles never touch it), browser File objects (a FileList
// or an array of File, named by `file.name`), or a map of file name -> text / Blob / parsed JSON.

import type * as NodeFs from 'node:fs/promises';
import type * as NodePath from 'node:path';
import { TokenizerError } from './errors.js';

/** The tokenizer files `fromPretrained` looks for; any may be missing. */
export const TOKENIZER_FILE_NAMES = ['vocab.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json'] as const;
type TokenizerFileName = string;

/** A file's content: text, parsed JSON, a Blob / File, or bytes (a SentencePiece model). */
export type TokenizerFileValue = string | Blob | Record<string, unknown> | Uint8Array | ArrayBuffer;

/** A directory path (Node), File objects, or `{ 'vocab.txt': text, 'tokenizer_config.json': {...}, ... }`. */
export type TokenizerFiles = string | Iterable<File> | ArrayLike<File> | Partial<Record<string, TokenizerFileValue>>;

/** The files found: vocab.txt as text, the JSON files parsed, a binary model file as bytes. */
export interface LoadedTokenizerFiles {
  vocabTxt?: string;
  tokenizerJson?: Record<string, unknown>;
  tokenizerConfig?: Record<string, unknown>;
  specialTokensMap?: Record<string, unknown>;
  addedTokens?: Record<string, unknown>;
  /** The first of `options.modelFiles` found (`spiece.model`, `ice_text.model`, ...). */
  model?: { name: string; bytes: Uint8Array };
}

export interface ReadTokenizerFilesOptions {
  /**
   * Binary model files to look for, in order of preference (SentencePiece tokenizers). When given,
   * one of them or tokenizer.json must be present instead of vocab.txt.
   */
  modelFiles?: readonly string[];
}

export async function readTokenizerFiles(source: TokenizerFiles, options: ReadTokenizerFilesOptions = {}): Promise<LoadedTokenizerFiles> {
  const modelFiles = options.modelFiles ?? [];
  const names: readonly string[] = [...TOKENIZER_FILE_NAMES, ...modelFiles];
  const raw = new Map<TokenizerFileName, TokenizerFileValue>();
  if (typeof source === 'string') {
    // Specifiers in variables: browser bundlers then leave these Node-only imports alone.
    const fsModule = 'node:fs/promises';
    const pathModule = 'node:path';
    const fs = (await import(/* @vite-ignore */ fsModule)) as typeof NodeFs;
    const path = (await import(/* @vite-ignore */ pathModule)) as typeof NodePath;
    for (const name of names) {
      try {
        raw.set(name, modelFiles.includes(name) ? new Uint8Array(await fs.readFile(path.join(source, name))) : await fs.readFile(path.join(source, name), 'utf8'));
      } catch (err) {
        if ((err as { code?: string }).code !== 'ENOENT') throw err;
      }
    }
    if (raw.size === 0) throw new TokenizerError(`fromPretrained: none of ${names.join(', ')} in ${source}`);
  } else if (isFileList(source)) {
    for (const file of Array.from(source as ArrayLike<File>)) {
      const name = baseName(file.name);
      if (names.includes(name)) raw.set(name, file);
    }
  } else {
    const map = source as Partial<Record<string, TokenizerFileValue>>;
    for (const [key, value] of Object.entries(map)) {
      const name = baseName(key);
      if (value !== undefined && names.includes(name)) raw.set(name, value);
    }
  }

  const out: LoadedTokenizerFiles = {};
  const vocab = raw.get('vocab.txt');
  if (vocab !== undefined) {
    if (typeof vocab !== 'string' && !isBlob(vocab)) throw new TokenizerError('fromPretrained: vocab.txt must be text or a Blob');
    out.vocabTxt = typeof vocab === 'string' ? vocab : await vocab.text();
  }
  const json = async (name: TokenizerFileName) => {
    const value = raw.get(name);
    if (value === undefined) return undefined;
    if (value instanceof Uint8Array || value instanceof ArrayBuffer) throw new TokenizerError(`fromPretrained: ${name} must be text, a Blob or parsed JSON, not bytes`);
    const text = typeof value === 'string' ? value : isBlob(value) ? await value.text() : null;
    if (text === null) return value as Record<string, unknown>;
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new TokenizerError(`fromPretrained: ${name} is not valid JSON: ${(err as Error).message}`);
    }
  };
  out.tokenizerJson = await json('tokenizer.json');
  out.tokenizerConfig = await json('tokenizer_config.json');
  out.specialTokensMap = await json('special_tokens_map.json');
  out.addedTokens = await json('added_tokens.json');
  for (const name of modelFiles) {
    const value = raw.get(name);
    if (value === undefined) continue;
    if (typeof value === 'string') throw new TokenizerError(`fromPretrained: ${name} must be bytes (a Uint8Array, ArrayBuffer or Blob), not a string`);
    const bytes = value instanceof Uint8Array ? value : value instanceof ArrayBuffer ? new Uint8Array(value) : isBlob(value) ? new Uint8Array(await value.arrayBuffer()) : null;
    if (bytes === null) throw new TokenizerError(`fromPretrained: ${name} must be bytes (a Uint8Array, ArrayBuffer or Blob)`);
    out.model = { name, bytes };
    break;
  }
  for (const key of Object.keys(out) as (keyof LoadedTokenizerFiles)[]) if (out[key] === undefined) delete out[key];
  if (modelFiles.length > 0) {
    if (out.model === undefined && out.tokenizerJson === undefined) {
      throw new TokenizerError(`fromPretrained: need ${modelFiles.join(' or ')} (or tokenizer.json), found none`);
    }
  } else if (out.vocabTxt === undefined && out.tokenizerJson === undefined) {
    throw new TokenizerError('fromPretrained: need vocab.txt or tokenizer.json, found neither');
  }
  return out;
}

function isBlob(value: unknown): value is Blob {
  return typeof Blob !== 'undefined' && value instanceof Blob;
}

function isFileList(source: object): boolean {
  if (Array.isArray(source)) return true;
  if (typeof FileList !== 'undefined' && source instanceof FileList) return true;
  return Symbol.iterator in source;
}

/** "some/dir/vocab.txt" -> "vocab.txt" (File names from a directory picker carry no path; map keys might). */
function baseName(name: string): string {
  return name.slice(Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) + 1);
}
