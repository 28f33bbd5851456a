// Fill-mask on an exported model folder: the check a person runs after pretraining. Loads the model
// and tokenizer the way the playground does and runs @lm/megatron-bert's `fillMask` pipeline.

import { BertTokenizer } from '@lm/layers';
import { MegatronBertForMaskedLM, fillMask as runFillMask, type MegatronBertConfig } from '@lm/megatron-bert';
import type { Backend } from '@lm/tensor-gpu';

export interface FillMaskPrediction {
  token: string;
  score: number;
}

export interface FillMaskResult {
  text: string;
  /** One list per [MASK] in the text, best first. */
  predictions: FillMaskPrediction[][];
}

export async function fillMask(dir: string, texts: readonly string[], options: { topK?: number; backend?: Backend } = {}): Promise<FillMaskResult[]> {
  const tokenizer = await BertTokenizer.fromPretrained(dir);
  const model = await MegatronBertForMaskedLM.fromPretrained<MegatronBertForMaskedLM, MegatronBertConfig>(dir, { backend: options.backend });
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
