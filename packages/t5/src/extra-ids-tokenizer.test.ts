// ExtraIdsTokenizer: Megatron's WordPiece + --vocab-extra-ids setup, both sentinel orders.
import { describe, expect, it } from 'vitest';
import { ExtraIdsTokenizer } from './index.js';

const WORDS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'cow', 'says', 'moo', '.'];
const vocab = (sentinels: string[]) => `${[...WORDS, ...sentinels].join('\n')}\n`;

describe('ExtraIdsTokenizer', () => {
  it('reads the sentinels in the order vocab.txt lists them, and adds 100 in the asked order when none are listed', () => {
    const down = ExtraIdsTokenizer.fromVocab(vocab(['<extra_id_2>', '<extra_id_1>', '<extra_id_0>']));
    expect([down.order, down.vocabSize, down.sentinelId(0), down.sentinelId(2)]).toEqual(['descending', 13, 12, 10]);
    const up = ExtraIdsTokenizer.fromVocab(vocab(['<extra_id_0>', '<extra_id_1>', '<extra_id_2>']), { order: 'descending' });
    expect([up.order, up.sentinelId(0), up.sentinelId(2)]).toEqual(['ascending', 10, 12]);
    const megatron = ExtraIdsTokenizer.fromVocab(vocab([]), { order: 'ascending' });
    expect([megatron.extraIds, megatron.sentinelId(0), megatron.sentinelId(99)]).toEqual([100, 10, 109]);
    expect(ExtraIdsTokenizer.fromVocab(vocab([])).sentinelId(0)).toBe(109);
  });

  it('lists the sentinel ids as <extra_id_0>, <extra_id_1>, ... in either order, as T5Tokenizer.sentinelIds does', () => {
    // 10 WordPiece ids (0..9), then the sentinels.
    expect(ExtraIdsTokenizer.fromVocab(vocab(['<extra_id_2>', '<extra_id_1>', '<extra_id_0>'])).sentinelIds).toEqual([12, 11, 10]);
    const up = ExtraIdsTokenizer.fromVocab(vocab(['<extra_id_0>', '<extra_id_1>', '<extra_id_2>']));
    expect(up.sentinelIds).toEqual([10, 11, 12]);
    // Each id encodes back to its sentinel's text.
    expect(up.sentinelIds.map((id) => up.decode([id]))).toEqual(['<extra_id_0>', '<extra_id_1>', '<extra_id_2>']);
    expect(up.encode('<extra_id_1>', null, { addSpecialTokens: false }).inputIds).toEqual([up.sentinelIds[1]]);
    const megatron = ExtraIdsTokenizer.fromVocab(vocab([]), { order: 'ascending' });
    expect([megatron.sentinelIds.length, megatron.sentinelIds[0], megatron.sentinelIds[99]]).toEqual([100, 10, 109]);
    expect(ExtraIdsTokenizer.fromVocab(vocab([])).sentinelIds.slice(0, 2)).toEqual([109, 108]);
  });

  it('encodes sentinels in the text as themselves with eos at the end, decodes them back, and saves in id order', () => {
    const tok = ExtraIdsTokenizer.fromVocab(vocab(['<extra_id_0>', '<extra_id_1>']));
    expect(tok.encode('the cow says <extra_id_0> . <extra_id_1>').inputIds).toEqual([5, 6, 7, 10, 9, 11, 3]);
    expect(tok.decode([11, 8, 3], { skipSpecialTokens: false })).toBe('<extra_id_1> moo [SEP]');
    expect(tok.decode([10, 8, 3], { skipSpecialTokens: true })).toBe('moo');
    expect([tok.specialTokenIds.pad, tok.specialTokenIds.eos]).toEqual([0, 3]);
    expect(tok.save()['vocab.txt']).toBe(vocab(['<extra_id_0>', '<extra_id_1>']));
  });

  it('names a broken vocab.txt', () => {
    expect(() => ExtraIdsTokenizer.fromVocab(vocab(['<extra_id_1>', '<extra_id_0>', '<extra_id_2>']))).toThrow(/vocab\.txt: the trailing sentinels must run <extra_id_0>\.\.<extra_id_2> or <extra_id_2>\.\.<extra_id_0>, got <extra_id_1>, <extra_id_0>, <extra_id_2>/);
    expect(() => ExtraIdsTokenizer.fromVocab(vocab(['<extra_id_3>']))).toThrow(/a single trailing sentinel must be <extra_id_0>, got <extra_id_3>/);
    expect(() => ExtraIdsTokenizer.fromVocab('<extra_id_0>\n')).toThrow(/vocab\.txt holds no WordPiece vocabulary/);
  });
});
