// The files every family reads and writes: a pretrained folder's config.json, and what an export
// writes beside its weights (the tokenizer's files, each written to a temporary name and renamed, so
// an interrupted export never leaves a half-written file under the real name).

import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JsonObject, Tokenizer } from '@lm/layers';
import { ConfigError } from '../core/errors.js';

/** `model.fromPretrained`'s config.json through the family's `fromJSON`; a missing or bad file is a ConfigError naming it. */
export async function readPretrainedConfig<C>(dir: string, fromJSON: (json: JsonObject) => C, expected = 'a Hugging Face-format folder'): Promise<C> {
  let text: string;
  try {
    text = await readFile(join(dir, 'config.json'), 'utf8');
  } catch {
    throw new ConfigError(`model.fromPretrained: ${dir} has no config.json (expected ${expected})`);
  }
  try {
    return fromJSON(JSON.parse(text) as JsonObject);
  } catch (e) {
    throw new ConfigError(`model.fromPretrained: ${join(dir, 'config.json')}: ${(e as Error).message}`);
  }
}

async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/**
 * The tokenizer's files into `dir`; with `maxLength`, tokenizer_config.json gains it as
 * model_max_length (so a pipeline truncates where the model's positions end). Returns the file names.
 */
export async function writeTokenizerFiles(dir: string, tokenizer: Tokenizer, maxLength: number | null = null): Promise<string[]> {
  const files = tokenizer.save();
  if (maxLength !== null) {
    const saved = files['tokenizer_config.json'];
    const tokenizerConfig = JSON.parse(typeof saved === 'string' ? saved : '{}') as Record<string, unknown>;
    files['tokenizer_config.json'] = `${JSON.stringify({ ...tokenizerConfig, model_max_length: maxLength }, null, 2)}\n`;
  }
  for (const [name, data] of Object.entries(files)) await writeAtomic(join(dir, name), data);
  return Object.keys(files);
}
