// RealmTokenizer: BertTokenizer plus `batch_encode_candidates`, which encodes each batch row's
// candidate texts (the retriever's candidates) padded to max_length, so the result stacks into
// [batch, numCandidates, maxLength]. Mirrors transformers 4.37 `models/realm/tokenization_realm.py`.

import { BertTokenizer, TokenizerError } from '@lm/layers';
import type { EncodeOptions } from '@lm/layers';

export interface CandidatesEncodeOptions extends Omit<EncodeOptions, 'padding'> {
  /** Second texts, one per candidate: `textPair[b][c]` pairs with `textCandidates[b][c]`. */
  textPair?: readonly (readonly string[])[] | null;
}

/** `[batch][numCandidates][maxLength]` per field; only these three fields, as in the reference. */
export interface CandidatesEncoding {
  inputIds: number[][][];
  attentionMask?: number[][][];
  tokenTypeIds?: number[][][];
}

export class RealmTokenizer extends BertTokenizer {
  /**
   * `batch_encode_candidates(text, **kwargs)`: padding is forced to 'max_length'; each row of
   * candidates is one batched call. Fields the options turn off are absent (special_tokens_mask is
   * never returned, as in the reference).
   */
  batchEncodeCandidates(textCandidates: readonly (readonly string[])[], options: CandidatesEncodeOptions = {}): CandidatesEncoding {
    const { textPair = null, ...rest } = options;
    if (textPair !== null && textPair.length !== textCandidates.length) {
      throw new TokenizerError(`batchEncodeCandidates: ${textCandidates.length} candidate rows but ${textPair.length} textPair rows`);
    }
    const out: Required<CandidatesEncoding> = { inputIds: [], attentionMask: [], tokenTypeIds: [] };
    textCandidates.forEach((candidates, b) => {
      const pairs = textPair?.[b];
      if (pairs !== undefined && pairs.length !== candidates.length) {
        throw new TokenizerError(`batchEncodeCandidates: row ${b} has ${candidates.length} candidates but ${pairs.length} pairs`);
      }
      const inputs = pairs === undefined ? candidates : candidates.map((text, c) => [text, pairs[c]] as const);
      const encoded = this.encodeBatch(inputs, { ...rest, padding: 'max_length' });
      out.inputIds.push(encoded.inputIds);
      if (encoded.attentionMask) out.attentionMask.push(encoded.attentionMask);
      if (encoded.tokenTypeIds) out.tokenTypeIds.push(encoded.tokenTypeIds);
    });
    const result: CandidatesEncoding = { inputIds: out.inputIds };
    if (out.attentionMask.length > 0) result.attentionMask = out.attentionMask;
    if (out.tokenTypeIds.length > 0) result.tokenTypeIds = out.tokenTypeIds;
    return result;
  }
}
