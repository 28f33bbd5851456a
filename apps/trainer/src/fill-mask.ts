// Fill-mask on an exported model folder: the check a person runs after pretraining. Loads the model
// and tokenizer the way the playground does and runs @lm/megatron-bert's `fillMask` pipeline.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BertTokenizer } from '@lm/layers';
import { MegatronBertForMaskedLM, fillMask as runFillMask, type MegatronBertConfig } from '@lm/megatron-bert';
import type { Backend } from '@lm/tensor-gpu';
import { DataError } from './core/errors.js';

export interface FillMaskPrediction {
  token: string;
  score: number;
}

export interface FillMaskResult {
  text: string;
  /** One list per [MASK] in the text, best first. */
  predictions: FillMaskPrediction[][];
}

/** The folder is an export (config.json, weights, vocab.txt or tokenizer.json) and every text has a [MASK]; else a DataError naming what is wrong. */
async function checkInput(dir: string, texts: readonly string[]): Promise<void> {
  const kind = await stat(dir).then((s) => (s.isDirectory() ? 'dir' : 'file'), () => null);
  if (kind === null) throw new DataError(`fill-mask: ${dir} does not exist (expected a folder written by --export)`);
  if (kind === 'file') throw new DataError(`fill-mask: ${dir} is a file, not a folder written by --export`);
  const has = async (name: string) => stat(join(dir, name)).then(() => true, () => false);
  if (!(await has('config.json'))) throw new DataError(`fill-mask: ${dir} has no config.json (expected a folder written by --export)`);
  if (!(await has('vocab.txt')) && !(await has('tokenizer.json'))) throw new DataError(`fill-mask: ${dir} has neither vocab.txt nor tokenizer.json`);
  const bad = texts.find((t) => !t.includes('[MASK]'));
  if (bad !== undefined) throw new DataError(`fill-mask: ${JSON.stringify(bad)} has no [MASK]`);
}

export async function fillMask(dir: string, texts: readonly string[], options: { topK?: number; backend?: Backend } = {}): Promise<FillMaskResult[]> {
  await checkInput(dir, texts);
  let tokenizer: BertTokenizer;
  let model: MegatronBertForMaskedLM;
  try {
    tokenizer = await BertTokenizer.fromPretrained(dir);
    model = await MegatronBertForMaskedLM.fromPretrained<MegatronBertForMaskedLM, MegatronBertConfig>(dir, { backend: options.backend });
  } catch (e) {
    throw new DataError(`fill-mask: ${dir}: ${(e as Error).message}`);
  }
  try {
    const results: FillMaskResult[] = [];
    for (const text of texts) {
      const perMask = await runFillMask(model, tokenizer, text, { topK: options.topK ?? 5 });
      results.push({ text, predictions: perMask.map((cands) => cands.map((c) => ({ token: c.tokenStr, score: c.score }))) });
    }
    return results;
  } finally {
    model.dispose();
  }
}

export function formatFillMask(r: FillMaskResult): string {
  const answers = r.predictions.map((p) => p.map((x) => `${x.token} (${(100 * x.score).toFixed(1)}%)`).join(', '));
  return `  ${r.text}\n    -> ${answers.join('\n    -> ')}`;
}
