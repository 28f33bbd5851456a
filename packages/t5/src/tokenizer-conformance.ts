// The tokenizer classes of the t5 family for the conformance runner (../shared/fixtures/
// tokenizers-sentencepiece, read its CASES.md): T5Tokenizer built from the case folder's spiece.model
// and init arguments, every call of the case run through `runTokenizerCase`. Derived fields, as the
// fixtures define them: `tokens` = tokenize(text), `decoded` = decode(ids, skip_special_tokens=True),
// `decoded_with_special` = decode(ids); for `decode_ids`: `tokens` = convert_ids_to_tokens,
// `decoded` / `decoded_skip_special` = decode without / with skip_special_tokens, `reencoded_input_ids`
// = tokenizer(decoded).input_ids.

import { BERT_CALL_KWARGS, callOptions, runTokenizerCase, sentencePieceCaseFiles, snakeKeys } from '@lm/layers/testing';
import type { CaseTokenizer, ConformanceCase, ConformanceClassRunner } from '@lm/layers/testing';
import type { EncodeOptions, TextInput } from '@lm/layers';
import { T5Tokenizer, t5TokenizerConfigFromJSON } from './tokenizer.js';

/** A T5Tokenizer for a case folder (`T5Tokenizer.from_pretrained(folder, **init_kwargs)`). */
export async function t5TokenizerForCase(c: ConformanceCase): Promise<T5Tokenizer> {
  const { name, bytes, init } = await sentencePieceCaseFiles(c, ['spiece.model']);
  return new T5Tokenizer(bytes, t5TokenizerConfigFromJSON(init), name);
}

export function t5CaseTokenizer(tok: T5Tokenizer): CaseTokenizer<EncodeOptions> {
  const tokens = (item: TextInput) => (typeof item === 'string' ? tok.tokenize(item) : item.map((text) => tok.tokenize(text)));
  const decodeSkipping = (ids: unknown) => tok.decode(ids as number[], { skipSpecialTokens: true });
  return {
    encode: (item, options) => snakeKeys(typeof item === 'string' ? tok.encode(item, null, options) : tok.encode(item[0], item[1], options)),
    encodeBatch: (items, options) => snakeKeys(tok.encodeBatch(items, options)),
    withoutPadding: ({ padding: _padding, ...rest }) => rest,
    itemFields: {
      tokens: (item) => tokens(item),
      decoded: (_item, encoding) => decodeSkipping(encoding.input_ids),
      decoded_with_special: (_item, encoding) => tok.decode(encoding.input_ids as number[]),
    },
    batchFields: {
      tokens: (items) => items.map(tokens),
      batch_decoded: (_items, batch) => (batch.input_ids as number[][]).map(decodeSkipping),
    },
    decodeFields: {
      ids: (ids) => ids,
      tokens: (ids) => tok.convertIdsToTokens(ids),
      decoded: (ids) => tok.decode(ids),
      decoded_skip_special: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
      reencoded_input_ids: (ids) => tok.encode(tok.decode(ids)).inputIds,
    },
  };
}

const runT5Tokenizer: ConformanceClassRunner = async (c) => {
  const tok = await t5TokenizerForCase(c);
  return runTokenizerCase(t5CaseTokenizer(tok), c.spec, callOptions(c.spec.kwargs, BERT_CALL_KWARGS, 'T5Tokenizer') as EncodeOptions);
};

/** The t5 family's tokenizer classes, by reference class name (merged into the package's `conformance`). */
export const tokenizerClasses: Record<string, ConformanceClassRunner> = {
  T5Tokenizer: runT5Tokenizer,
};
