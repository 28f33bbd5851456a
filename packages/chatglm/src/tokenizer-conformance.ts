// The tokenizer classes of the chatglm family for the conformance runner (../shared/fixtures/
// tokenizers-sentencepiece, read its CASES.md): ChatGLMTokenizer built from the case folder's
// ice_text.model and init arguments. Derived fields, as the fixtures define them: `tokens` =
// tokenize(text), `decoded` = decode(ids), `decoded_skip_special` = decode(ids, skip_special_tokens=True);
// the boolean attention masks ([1, L, L] per text, [b, 1, L, L] batched) are compared with
// expected.safetensors only (case.json leaves them out).

import { BERT_CALL_KWARGS, callOptions, runTokenizerCase, sentencePieceCaseFiles, snakeKeys } from '@lm/layers/testing';
import type { CaseTokenizer, ConformanceCase, ConformanceClassRunner } from '@lm/layers/testing';
import type { EncodeOptions, TextInput } from '@lm/layers';
import { ChatGLMTokenizer, chatGLMTokenizerConfigFromJSON } from './tokenizer.js';

/** A ChatGLMTokenizer for a case folder (`ChatGLMTokenizer.from_pretrained(folder, **init_kwargs)`). */
export async function chatGLMTokenizerForCase(c: ConformanceCase): Promise<ChatGLMTokenizer> {
  const { name, bytes, init } = await sentencePieceCaseFiles(c, ['ice_text.model']);
  return new ChatGLMTokenizer(bytes, chatGLMTokenizerConfigFromJSON(init), name);
}

/** Booleans -> 1 / 0 at any depth (BOOL outputs are compared as numbers). */
const numeric = (v: unknown): unknown => (Array.isArray(v) ? v.map(numeric) : typeof v === 'boolean' ? Number(v) : v);

function withNumericMask<T extends object>(encoding: T): Record<string, unknown> {
  const out = snakeKeys(encoding);
  if (out.attention_mask !== undefined) out.attention_mask = numeric(out.attention_mask);
  return out;
}

export function chatGLMCaseTokenizer(tok: ChatGLMTokenizer): CaseTokenizer<EncodeOptions> {
  const tokens = (item: TextInput) => (typeof item === 'string' ? tok.tokenize(item) : item.map((text) => tok.tokenize(text)));
  return {
    encode: (item, options) => withNumericMask(typeof item === 'string' ? tok.encode(item, null, options) : tok.encode(item[0], item[1], options)),
    encodeBatch: (items, options) => withNumericMask(tok.encodeBatch(items, options)),
    withoutPadding: ({ padding: _padding, ...rest }) => rest,
    itemFields: {
      tokens: (item) => tokens(item),
      decoded: (_item, encoding) => tok.decode(encoding.input_ids as number[]),
      decoded_skip_special: (_item, encoding) => tok.decode(encoding.input_ids as number[], { skipSpecialTokens: true }),
    },
    batchFields: {
      tokens: (items) => items.map(tokens),
      batch_decoded: (_items, batch) => (batch.input_ids as number[][]).map((ids) => tok.decode(ids)),
    },
    decodeFields: {
      ids: (ids) => ids,
      tokens: (ids) => tok.convertIdsToTokens(ids),
      decoded: (ids) => tok.decode(ids),
      decoded_skip_special: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
    },
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
