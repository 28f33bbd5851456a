// The tokenizer classes of the t5 family for the conformance runner (../shared/fixtures/
// tokenizers-sentencepiece, read its CASES.md): T5Tokenizer built from the case folder's spiece.model
// and init arguments, every call of the case run through `runTokenizerCase` with the slow-tokenizer
// fields (`slowCaseTokenizer`: tokens, decoded with / without special tokens, re-encoded ids).

import { BERT_CALL_KWARGS, callOptions, runTokenizerCase, sentencePieceCaseFiles, slowCaseTokenizer } from '@lm/layers/testing';
import type { ConformanceCase, ConformanceClassRunner } from '@lm/layers/testing';
import type { EncodeOptions } from '@lm/layers';
import { T5Tokenizer, t5TokenizerConfigFromJSON } from './tokenizer.js';

/** A T5Tokenizer for a case folder (`T5Tokenizer.from_pretrained(folder, **init_kwargs)`). */
export async function t5TokenizerForCase(c: ConformanceCase): Promise<T5Tokenizer> {
  const { name, bytes, init } = await sentencePieceCaseFiles(c, ['spiece.model']);
  return new T5Tokenizer(bytes, t5TokenizerConfigFromJSON(init), name);
}

const runT5Tokenizer: ConformanceClassRunner = async (c) => {
  const tok = await t5TokenizerForCase(c);
  return runTokenizerCase(slowCaseTokenizer(tok), c.spec, callOptions(c.spec.kwargs, BERT_CALL_KWARGS, 'T5Tokenizer') as EncodeOptions);
};

/** The t5 family's tokenizer classes, by reference class name (merged into the package's `conformance`). */
export const tokenizerClasses: Record<string, ConformanceClassRunner> = {
  T5Tokenizer: runT5Tokenizer,
};
