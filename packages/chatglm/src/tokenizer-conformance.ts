// The tokenizer classes of the chatglm family for the conformance runner (../shared/fixtures/
// tokenizers-sentencepiece, read its CASES.md): ChatGLMTokenizer built from the case folder's
// ice_text.model and init arguments. Derived fields, as the fixtures define them: `tokens` =
// tokenize(text), `decoded` = decode(ids), `decoded_skip_special` = decode(ids, skip_special_tokens=True);
// the boolean attention masks ([1, L, L] per text, [b, 1, L, L] batched) are compared with
// expected.safetensors only (case.json leaves them out).

import { BERT_CALL_KWARGS, callOptions, runTokenizerCase, sentencePieceCaseFiles, slowCaseTokenizer } from '@lm/layers/testing';
import type { CaseTokenizer, ConformanceCase, ConformanceClassRunner } from '@lm/layers/testing';
import type { EncodeOptions } from '@lm/layers';
import { ChatGLMTokenizer, chatGLMTokenizerConfigFromJSON } from './tokenizer.js';

/** A ChatGLMTokenizer for a case folder (`ChatGLMTokenizer.from_pretrained(folder, **init_kwargs)`). */
export async function chatGLMTokenizerForCase(c: ConformanceCase): Promise<ChatGLMTokenizer> {
  const { name, bytes, init } = await sentencePieceCaseFiles(c, ['ice_text.model']);
  return new ChatGLMTokenizer(bytes, chatGLMTokenizerConfigFromJSON(init), name);
}

/** Booleans -> 1 / 0 at any depth (BOOL outputs are compared as numbers). */
const numeric = (v: unknown): unknown => (Array.isArray(v) ? v.map(numeric) : typeof v === 'boolean' ? Number(v) : v);

function withNumericMask(encoding: Record<string, unknown>): Record<string, unknown> {
  return encoding.attention_mask === undefined ? encoding : { ...encoding, attention_mask: numeric(encoding.attention_mask) };
}

/** The slow-tokenizer case calls, except that ChatGLM's `decoded` keeps the special tokens. */
export function chatGLMCaseTokenizer(tok: ChatGLMTokenizer): CaseTokenizer<EncodeOptions> {
  const base = slowCaseTokenizer(tok);
  const decode = (ids: unknown) => tok.decode(ids as number[]);
  return {
    ...base,
    encode: (item, options) => withNumericMask(base.encode(item, options)),
    encodeBatch: (items, options) => withNumericMask(base.encodeBatch(items, options)),
    itemFields: {
      tokens: base.itemFields.tokens,
      decoded: (_item, encoding) => decode(encoding.input_ids),
      decoded_skip_special: (_item, encoding) => tok.decode(encoding.input_ids as number[], { skipSpecialTokens: true }),
    },
    batchFields: { tokens: base.batchFields.tokens, batch_decoded: (_items, batch) => (batch.input_ids as number[][]).map(decode) },
    outputOnlyFields: ['attention_mask'],
  };
}

const runChatGLMTokenizer: ConformanceClassRunner = async (c) => {
  const tok = await chatGLMTokenizerForCase(c);
  return runTokenizerCase(chatGLMCaseTokenizer(tok), c.spec, callOptions(c.spec.kwargs, BERT_CALL_KWARGS, 'ChatGLMTokenizer') as EncodeOptions);
};

/** The chatglm family's tokenizer classes, by reference class name (merged into the package's `conformance`). */
export const tokenizerClasses: Record<string, ConformanceClassRunner> = {
  ChatGLMTokenizer: runChatGLMTokenizer,
};
