// The conformance runners of the realm family (../shared/fixtures; format in its README.md). Today:
// RealmTokenizer (../shared/fixtures/tokenizers-wordpiece, read its CASES.md): every call of the
// BertTokenizer it extends, plus `batch_encode_candidates` for cases whose `inputs.text` holds rows
// of candidate texts (with `inputs.text_pair` rows when given). The REALM model classes join here.

import {
  BERT_CALL_KWARGS,
  callOptions,
  numericOutputs,
  snakeKeys,
  TokenizerCaseError,
  wordPieceCaseRunner,
  wordPieceTokenizerForCase,
  type ConformanceCase,
  type ConformanceFamily,
} from '@lm/layers/testing';
import { RealmTokenizer, type CandidatesEncodeOptions } from './tokenizer.js';

const isRows = (v: unknown): v is string[][] => Array.isArray(v) && v.length > 0 && v.every((row) => Array.isArray(row) && row.every((s) => typeof s === 'string'));

/** `batch_encode_candidates(text, text_pair=None, **kwargs)`: padding is the method's own (max_length). */
function candidatesCase(tok: RealmTokenizer, c: ConformanceCase) {
  const inputs = c.spec.inputs ?? {};
  const textPair = inputs.text_pair;
  if (textPair !== undefined && !isRows(textPair)) throw new TokenizerCaseError('case.json inputs.text_pair: expected rows of candidate texts');
  // The method sets padding to max_length itself and pops return_tensors (the values are the same lists).
  const { padding: _forced, return_tensors: _tensors, ...kwargs } = c.spec.kwargs ?? {};
  const options = callOptions(kwargs, BERT_CALL_KWARGS, 'RealmTokenizer.batch_encode_candidates') as CandidatesEncodeOptions;
  const encoded = snakeKeys(tok.batchEncodeCandidates(inputs.text as string[][], { ...options, textPair: textPair ?? null }));
  return { outputs: numericOutputs(encoded), values: { expected_ids: encoded } };
}

/** Every other call: the BertTokenizer case runner, on a RealmTokenizer. */
const bertCalls = wordPieceCaseRunner(RealmTokenizer);

export const conformance: ConformanceFamily = {
  family: 'realm',
  classes: {
    RealmTokenizer: async (c) => (isRows(c.spec.inputs?.text) ? candidatesCase(await wordPieceTokenizerForCase(RealmTokenizer, c), c) : bertCalls(c)),
  },
};
