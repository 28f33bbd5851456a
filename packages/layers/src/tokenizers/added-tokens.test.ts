// AddedTokenTable on the T5 fixture's SentencePiece model (800 pieces: <pad> 0, </s> 1, <unk> 2): the
// ids transformers' `_add_tokens` gives (a piece the vocabulary has keeps its id, others go past the
// largest id so far, a saved added_tokens_decoder wins), and the errors naming the bad key or id.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { AddedTokenTable, addedTokenContent } from './added-tokens.js';
import { SentencePieceProcessor } from './sentencepiece.js';

const fixtures = findSharedFixtures(import.meta.url);
const model = fixtures ? join(fixtures, 'tokenizers-sentencepiece', 't5_single_texts', 'spiece.model') : null;
const have = model !== null && existsSync(model);

describe.skipIf(!have)('AddedTokenTable', () => {
  const sp = () => new SentencePieceProcessor(new Uint8Array(readFileSync(model!)), { fileName: 'spiece.model' });

  it('keeps vocabulary ids, numbers new tokens past the largest id, lets saved ids win', () => {
    const table = new AddedTokenTable('Tok', sp());
    table.setSaved({ 900: { content: '<x>', lstrip: true } });
    table.addSpecials(['</s>', '<unk>', '<sep>', '<x>', '<cls>']);
    expect(table.tokensToIds(['</s>', '<unk>', '<x>', '<sep>', '<cls>'])).toEqual([1, 2, 900, 901, 902]);
    expect(table.splitTokens().get('<x>')).toEqual({ content: '<x>', lstrip: true, rstrip: false, special: true });
    expect(table.idsToTokens([1, 5, 901, 2], new Set([2]))).toEqual(['</s>', sp().idToPiece(5), '<sep>']);
    expect(Object.keys(table.toJSON((id) => id >= 800))).toEqual(['900', '901', '902']);
    const hooks = table.decodeHooks(['</s>', '<unk>', '<sep>'], ['<sep>'], null);
    // `<x>` is added but not special, `<sep>` an additional special token past the vocabulary: both decode as separate words.
    expect(['</s>', '<x>', '<sep>', '<unk>'].map((t) => hooks.isLegacyAdded(t))).toEqual([false, true, true, false]);
  });

  it('names the bad added_tokens_decoder key, the out-of-range id and the bad token value', () => {
    const table = new AddedTokenTable('Tok', sp());
    expect(() => table.setSaved({ x: { content: '<x>' } })).toThrow(/Tok: added_tokens_decoder key "x" is not an id/);
    expect(() => table.setSaved({ 900: {} as { content: string } })).toThrow(/Tok: added_tokens_decoder\["900"\]\.content must be a string, got undefined/);
    expect(() => table.idsToTokens([3, 800], null)).toThrow(/Tok: id 800 is out of range \(vocabulary of 800 pieces and 0 added tokens\)/);
    expect(addedTokenContent({ content: '<s>', lstrip: false }, 'bos_token', 'Tok')).toBe('<s>');
    expect(() => addedTokenContent(3, 'bos_token', 'Tok')).toThrow(/Tok: bos_token must be a string or an AddedToken object, got 3/);
  });
});
