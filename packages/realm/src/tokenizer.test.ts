import { describe, expect, it } from 'vitest';
import { RealmTokenizer } from './tokenizer.js';

const TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'cat', 'sat', 'on', 'mat', 'a', 'dog'];
const VOCAB = TOKENS.join('\n');
const id = (token: string) => TOKENS.indexOf(token);

describe('RealmTokenizer.batchEncodeCandidates', () => {
  it('encodes each row of candidates padded to maxLength: [batch, numCandidates, maxLength]', () => {
    const tok = RealmTokenizer.fromVocab(VOCAB);
    const out = tok.batchEncodeCandidates(
      [
        ['the cat', 'a dog sat on the mat'],
        ['dog', ''],
      ],
      { maxLength: 5, truncation: true },
    );
    expect(out).toEqual({
      inputIds: [
        [
          [2, id('the'), id('cat'), 3, 0],
          [2, id('a'), id('dog'), id('sat'), 3],
        ],
        [
          [2, id('dog'), 3, 0, 0],
          [2, 3, 0, 0, 0],
        ],
      ],
      attentionMask: [
        [
          [1, 1, 1, 1, 0],
          [1, 1, 1, 1, 1],
        ],
        [
          [1, 1, 1, 0, 0],
          [1, 1, 0, 0, 0],
        ],
      ],
      tokenTypeIds: [
        [
          [0, 0, 0, 0, 0],
          [0, 0, 0, 0, 0],
        ],
        [
          [0, 0, 0, 0, 0],
          [0, 0, 0, 0, 0],
        ],
      ],
    });
  });

  it('pairs each candidate with its textPair entry; never returns specialTokensMask', () => {
    const tok = RealmTokenizer.fromVocab(VOCAB);
    const out = tok.batchEncodeCandidates([['the cat']], { textPair: [['a dog']], maxLength: 8, returnSpecialTokensMask: true });
    expect(out.inputIds).toEqual([[[2, id('the'), id('cat'), 3, id('a'), id('dog'), 3, 0]]]);
    expect(out.tokenTypeIds).toEqual([[[0, 0, 0, 0, 1, 1, 1, 0]]]);
    expect(Object.keys(out).sort()).toEqual(['attentionMask', 'inputIds', 'tokenTypeIds']);
    expect(() => tok.batchEncodeCandidates([['a']], { textPair: [['a', 'b']] })).toThrow(/pairs/);
  });

  it('drops the fields turned off', () => {
    const tok = RealmTokenizer.fromVocab(VOCAB, { modelMaxLength: 4 });
    const out = tok.batchEncodeCandidates([['cat']], { returnTokenTypeIds: false, returnAttentionMask: false });
    expect(out).toEqual({ inputIds: [[[2, id('cat'), 3, 0]]] });
  });
});
