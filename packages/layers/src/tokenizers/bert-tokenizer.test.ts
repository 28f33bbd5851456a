import { describe, expect, it } from 'vitest';
import { BertTokenizer } from './bert-tokenizer.js';
import { TokenizerError } from './errors.js';
import type { Tokenizer } from './tokenizer.js';

// A small hand-made vocab: ids are line numbers.
const TOKENS = [
  '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]',
  'the', 'cat', 'sat', 'on', 'mat', 'dog', 'un', '##aff', '##able',
  'a', '##a', 'b', '##b', '!', '.', ',', "'", '$', '¿', '[', ']', 'mask',
  'οδοσ', 'οδος', 'café', 'Café', 'cafe', 'Cafe', '𠀁', 'x', 'y', 'don', 't', 'hello', 'world', 'a´b', 'Hello',
];
const VOCAB = TOKENS.map((t) => `${t}\n`).join('');
const id = (token: string) => TOKENS.indexOf(token);
const uncased = () => BertTokenizer.fromVocab(VOCAB);
const cased = () => BertTokenizer.fromVocab(VOCAB, { doLowerCase: false });

describe('BertTokenizer.tokenize (slow-tokenizer corners)', () => {
  it('lowercases one character at a time: capital sigma is always σ, never final ς', () => {
    expect(uncased().tokenize('ΟΔΟΣ οδος')).toEqual(['οδοσ', 'οδος']);
  });

  it('keeps special tokens found verbatim whole; [mask] in lower case is ordinary text', () => {
    expect(uncased().tokenize('[MASK] the [mask][CLS]cat')).toEqual(['[MASK]', 'the', '[', 'mask', ']', '[CLS]', 'cat']);
    expect(cased().tokenize('x[SEP]y')).toEqual(['x', '[SEP]', 'y']);
  });

  it('drops NUL, U+FFFD, control, format and unassigned characters; maps Zs whitespace to a split', () => {
    expect(uncased().tokenize('c\u0000a\u0007t \u200bthe\ufffd\u0378 dog\u00a0mat\u3000on')).toEqual(['cat', 'the', 'dog', 'mat', 'on']);
  });

  it('splits on every whitespace Python str.split() knows (\\u2028 too)', () => {
    expect(uncased().tokenize('the\u2028cat\tsat\r\non')).toEqual(['the', 'cat', 'sat', 'on']);
  });

  it('pads CJK ideographs with spaces, supplementary planes included; tokenizeChineseChars: false does not', () => {
    expect(uncased().tokenize('x𠀁y')).toEqual(['x', '𠀁', 'y']);
    expect(BertTokenizer.fromVocab(VOCAB, { tokenizeChineseChars: false }).tokenize('x𠀁y')).toEqual(['[UNK]']);
  });

  it('NFC-normalises before matching (cased), then lower + NFD + drop Mn (uncased)', () => {
    expect(cased().tokenize('Cafe\u0301 café')).toEqual(['Café', 'café']);
    expect(uncased().tokenize('CAFÉ Cafe\u0301')).toEqual(['cafe', 'cafe']);
  });

  it('stripAccents: false keeps accents while lowercasing; true strips them without lowercasing', () => {
    expect(BertTokenizer.fromVocab(VOCAB, { stripAccents: false }).tokenize('CAFÉ')).toEqual(['café']);
    expect(BertTokenizer.fromVocab(VOCAB, { doLowerCase: false, stripAccents: true }).tokenize('Café')).toEqual(['Cafe']);
  });

  it('splits punctuation by the ASCII ranges or Unicode P*, not other symbols', () => {
    expect(uncased().tokenize("$a!b.¿don't")).toEqual(['$', 'a', '!', 'b', '.', '¿', 'don', "'", 't']);
    // ´ (U+00B4) is Sk, outside the ASCII ranges: not punctuation, so the word stays whole.
    expect(cased().tokenize('a´b')).toEqual(['a´b']);
  });

  it('greedy longest-match WordPiece; a word with an unmatchable piece is one [UNK]', () => {
    expect(uncased().tokenize('unaffable aab zz')).toEqual(['un', '##aff', '##able', 'a', '##a', '##b', '[UNK]']);
  });

  it('a word of more than 100 characters is [UNK]; 100 is still split', () => {
    expect(uncased().tokenize('a'.repeat(101))).toEqual(['[UNK]']);
    expect(uncased().tokenize('a'.repeat(100))).toEqual(['a', ...new Array(99).fill('##a')]);
    // Counted in code points, like Python: 100 astral ideographs padded apart are separate words anyway.
    expect(BertTokenizer.fromVocab(VOCAB, { maxInputCharsPerWord: 3 }).tokenize('aaaa aaa')).toEqual(['[UNK]', 'a', '##a', '##a']);
  });

  it('neverSplit words skip the basic tokenizer and are emitted as they are', () => {
    const tok = BertTokenizer.fromVocab(VOCAB, { doLowerCase: false, neverSplit: ['x.y'] });
    expect(tok.tokenize('x.y x.z')).toEqual(['x.y', 'x', '.', '[UNK]']);
  });

  it('doBasicTokenize: false runs WordPiece on whitespace-split words only', () => {
    const tok = BertTokenizer.fromVocab(VOCAB, { doBasicTokenize: false });
    // "cat," is one word: "cat" then "##," is not in the vocab, so the whole word is [UNK].
    expect(tok.tokenize('The cat, sat cat')).toEqual(['the', '[UNK]', 'sat', 'cat']);
  });

  it('the empty string and whitespace-only text give no tokens', () => {
    expect(uncased().tokenize('')).toEqual([]);
    expect(uncased().tokenize(' \t\n ')).toEqual([]);
  });
});

describe('BertTokenizer vocabulary', () => {
  it('maps tokens and ids both ways, falling back to [UNK]', () => {
    const tok = uncased();
    expect(tok.vocabSize).toBe(TOKENS.length);
    expect(tok.convertTokensToIds(['the', 'nope'])).toEqual([id('the'), id('[UNK]')]);
    expect(tok.convertTokensToIds('cat')).toBe(id('cat'));
    expect(tok.convertIdsToTokens([id('dog'), 9999])).toEqual(['dog', '[UNK]']);
    expect(tok.convertIdsToTokens([id('[CLS]'), id('dog'), id('[SEP]')], true)).toEqual(['dog']);
    expect([tok.padTokenId, tok.unkTokenId, tok.clsTokenId, tok.sepTokenId, tok.maskTokenId]).toEqual([0, 1, 2, 3, 4]);
  });

  it('gives a special token missing from vocab.txt the next id, and treats it as special', () => {
    const tok = BertTokenizer.fromVocab('[PAD]\n[UNK]\n[CLS]\n[SEP]\nhi\n');
    expect(tok.vocabSize).toBe(5);
    expect(tok.maskTokenId).toBe(5);
    expect(tok.tokenize('hi [MASK]')).toEqual(['hi', '[MASK]']);
    expect(tok.decode([2, 4, 5, 3], { skipSpecialTokens: true })).toBe('hi');
  });
});

describe('BertTokenizer.encode / encodeBatch', () => {
  it('adds [CLS] / [SEP] with token types 0 / 1 for pairs', () => {
    const tok = uncased();
    expect(tok.encode('the cat', 'a dog', { returnSpecialTokensMask: true })).toEqual({
      inputIds: [2, id('the'), id('cat'), 3, id('a'), id('dog'), 3],
      tokenTypeIds: [0, 0, 0, 0, 1, 1, 1],
      specialTokensMask: [1, 0, 0, 1, 0, 0, 1],
      attentionMask: [1, 1, 1, 1, 1, 1, 1],
    });
  });

  it('addSpecialTokens: false; asking for token types with it is an error, as in the reference', () => {
    const tok = uncased();
    expect(tok.encode('the cat', 'dog', { addSpecialTokens: false, returnSpecialTokensMask: true })).toEqual({
      inputIds: [id('the'), id('cat'), id('dog')],
      tokenTypeIds: [0, 0, 0],
      specialTokensMask: [0, 0, 0],
      attentionMask: [1, 1, 1],
    });
    expect(() => tok.encode('the', null, { addSpecialTokens: false, returnTokenTypeIds: true })).toThrow(TokenizerError);
  });

  it('leaves out the fields switched off', () => {
    expect(uncased().encode('cat', null, { returnTokenTypeIds: false, returnAttentionMask: false })).toEqual({ inputIds: [2, id('cat'), 3] });
  });

  // 'the cat sat on the mat' = 6 tokens, 'a dog' = 2.
  const long = 'the cat sat on the mat';
  it('longest_first removes from the longer sequence, from the second on ties', () => {
    const tok = uncased();
    const out = tok.encode(long, 'a dog', { truncation: true, maxLength: 8 });
    expect(out.inputIds).toEqual([2, id('the'), id('cat'), id('sat'), 3, id('a'), id('dog'), 3]);
    // 6 + 6 + 3 = 15 -> 9: first 3 from A (6 > 6 is false: B loses first), alternating.
    const tie = tok.encode(long, long, { truncation: 'longest_first', maxLength: 9 });
    expect(tie.inputIds).toEqual([2, id('the'), id('cat'), id('sat'), 3, id('the'), id('cat'), id('sat'), 3]);
    const odd = tok.encode(long, long, { truncation: 'longest_first', maxLength: 10 });
    expect(odd.tokenTypeIds).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it('only_first / only_second cut one side; if that side is too short nothing is cut (reference behaviour)', () => {
    const tok = uncased();
    expect(tok.encode(long, 'a dog', { truncation: 'only_first', maxLength: 7 }).inputIds).toEqual([2, id('the'), id('cat'), 3, id('a'), id('dog'), 3]);
    expect(tok.encode('a dog', long, { truncation: 'only_second', maxLength: 7 }).inputIds).toEqual([2, id('a'), id('dog'), 3, id('the'), id('cat'), 3]);
    expect(tok.encode('a dog', long, { truncation: 'only_first', maxLength: 7 }).inputIds).toHaveLength(11);
    expect(tok.encode('a', null, { truncation: 'only_second', maxLength: 2 }).inputIds).toHaveLength(3);
  });

  it('maxLength alone (no padding) turns truncation on; truncation without maxLength uses modelMaxLength', () => {
    expect(uncased().encode(long, null, { maxLength: 4 }).inputIds).toEqual([2, id('the'), id('cat'), 3]);
    expect(uncased().encode(long, null, { maxLength: 4, truncation: false }).inputIds).toHaveLength(8);
    const limited = BertTokenizer.fromVocab(VOCAB, { modelMaxLength: 5 });
    expect(limited.encode(long, null, { truncation: true }).inputIds).toEqual([2, id('the'), id('cat'), id('sat'), 3]);
    expect(uncased().encode(long, null, { truncation: true }).inputIds).toHaveLength(8); // default: no limit
  });

  it('truncationSide and paddingSide left', () => {
    const tok = BertTokenizer.fromVocab(VOCAB, { truncationSide: 'left', paddingSide: 'left' });
    expect(tok.encode(long, null, { maxLength: 4 }).inputIds).toEqual([2, id('the'), id('mat'), 3]);
    expect(tok.encode('cat', null, { padding: 'max_length', maxLength: 5, returnSpecialTokensMask: true })).toEqual({
      inputIds: [0, 0, 2, id('cat'), 3],
      tokenTypeIds: [0, 0, 0, 0, 0],
      specialTokensMask: [1, 1, 1, 0, 1],
      attentionMask: [0, 0, 1, 1, 1],
    });
  });

  it('pads a batch to its longest row (padding: true / "longest"), on the right with [PAD], type 0, mask 0', () => {
    const batch = uncased().encodeBatch(['the cat', ['a', 'dog'], 'cat'], { padding: true, returnSpecialTokensMask: true });
    expect(batch).toEqual({
      inputIds: [
        [2, id('the'), id('cat'), 3, 0],
        [2, id('a'), 3, id('dog'), 3],
        [2, id('cat'), 3, 0, 0],
      ],
      tokenTypeIds: [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1],
        [0, 0, 0, 0, 0],
      ],
      specialTokensMask: [
        [1, 0, 0, 1, 1],
        [1, 0, 1, 0, 1],
        [1, 0, 1, 1, 1],
      ],
      attentionMask: [
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
      ],
    });
  });

  it('returnLength: padded length for one text, unpadded lengths for a batch (as the reference)', () => {
    const tok = uncased();
    expect(tok.encode('cat', null, { padding: 'max_length', maxLength: 5, returnLength: true }).length).toBe(5);
    expect(tok.encodeBatch(['the cat', 'cat'], { padding: true, returnLength: true }).length).toEqual([4, 3]);
  });

  it('padding: false keeps rows ragged; a single encode with padding: true is unchanged', () => {
    const tok = uncased();
    expect(tok.encodeBatch(['the cat', 'cat']).inputIds.map((r) => r.length)).toEqual([4, 3]);
    expect(tok.encode('cat', null, { padding: true }).inputIds).toEqual([2, id('cat'), 3]);
  });

  it('padToMultipleOf rounds the padded length up', () => {
    const tok = uncased();
    expect(tok.encodeBatch(['the cat', 'cat'], { padding: 'longest', padToMultipleOf: 8 }).inputIds[1]).toHaveLength(8);
    expect(tok.encode('cat', null, { padding: 'max_length', maxLength: 5, padToMultipleOf: 4 }).inputIds).toHaveLength(8);
    expect(() => tok.encode('cat', null, { padding: 'max_length', truncation: true, maxLength: 5, padToMultipleOf: 4 })).toThrow(/multiple/);
  });

  it('max_length padding without maxLength uses modelMaxLength, or does nothing when there is none', () => {
    expect(BertTokenizer.fromVocab(VOCAB, { modelMaxLength: 6 }).encode('cat', null, { padding: 'max_length' }).inputIds).toHaveLength(6);
    expect(uncased().encode('cat', null, { padding: 'max_length' }).inputIds).toHaveLength(3);
  });

  it('refuses to pad without a pad token, and unknown strategies', () => {
    const tok = BertTokenizer.fromVocab(VOCAB, { padToken: null });
    expect(() => tok.encodeBatch(['cat'], { padding: true })).toThrow(/padding token/);
    expect(() => uncased().encode('cat', null, { padding: 'max' as never })).toThrow(TokenizerError);
    expect(() => uncased().encode('cat', null, { truncation: 'only_third' as never })).toThrow(TokenizerError);
  });
});

describe('BertTokenizer.decode', () => {
  it('joins tokens, glues ## pieces, and cleans up spaces before punctuation and in contractions', () => {
    const tok = uncased();
    const ids = tok.encode("Hello, world! Unaffable don't.").inputIds;
    expect(tok.decode(ids)).toBe("[CLS] hello, world! unaffable don't. [SEP]");
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe("hello, world! unaffable don't.");
    expect(tok.decode(ids, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false })).toBe("hello , world ! unaffable don ' t .");
    expect(BertTokenizer.fromVocab(VOCAB, { cleanUpTokenizationSpaces: false }).decode(ids.slice(1, 3))).toBe('hello ,');
  });

  it('decodes nothing to the empty string and accepts typed arrays', () => {
    const tok = uncased();
    expect(tok.decode([])).toBe('');
    expect(tok.decode(new Int32Array([id('the'), id('cat')]))).toBe('the cat');
    expect(tok.batchDecode([[id('dog')], [0, 0]], { skipSpecialTokens: true })).toEqual(['dog', '']);
  });
});

describe('BertTokenizer as a Tokenizer (the family-agnostic interface)', () => {
  it('special ids by role; BERT has no bos / eos', () => {
    const tok: Tokenizer = uncased();
    expect(tok.specialTokenIds).toEqual({ pad: 0, unk: 1, bos: null, eos: null, cls: 2, sep: 3, mask: 4 });
    expect([...tok.allSpecialIds].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(tok.encode('the cat', null, { addSpecialTokens: false }).inputIds).toEqual([id('the'), id('cat')]);
  });

  it('save() gives vocab.txt and tokenizer_config.json that fromPretrained reads back equal', async () => {
    const tok = BertTokenizer.fromVocab(VOCAB, { doLowerCase: false, stripAccents: true, modelMaxLength: 64, maskToken: 'mask' });
    const files = tok.save();
    expect(Object.keys(files).sort()).toEqual(['tokenizer_config.json', 'vocab.txt']);
    expect(files['vocab.txt']).toBe(VOCAB);
    expect(JSON.parse(files['tokenizer_config.json'])).toEqual({
      tokenizer_class: 'BertTokenizer',
      do_lower_case: false,
      strip_accents: true,
      model_max_length: 64,
      mask_token: 'mask',
    });
    const back = await BertTokenizer.fromPretrained(files);
    expect(back.config).toEqual(tok.config);
    expect(back.encode('Café mask ¿').inputIds).toEqual(tok.encode('Café mask ¿').inputIds);
    expect(back.maskTokenId).toBe(id('mask'));
  });
});
