// SentencePieceProcessor against the sentencepiece library's own outputs: the BPE case of
// shared/fixtures/tokenizers-sentencepiece (sp.encode / sp.decode, sentencepiece 0.2.2) and the raw
// pieces inside the T5 (Unigram, nmt_nfkc, no byte fallback) and ChatGLM (Unigram, byte fallback,
// user-defined pieces) cases; plus hand-checked corners and bad input.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { SentencePieceProcessor } from './sentencepiece.js';
import { TokenizerError } from './errors.js';

const fixtures = findSharedFixtures(import.meta.url);
const family = fixtures ? join(fixtures, 'tokenizers-sentencepiece') : null;
const have = family !== null && existsSync(family);
const load = (c: string, file: string, options = {}) => new SentencePieceProcessor(new Uint8Array(readFileSync(join(family!, c, file))), { fileName: file, ...options });
interface Spec {
  inputs: { texts: string[]; decode_ids?: number[][] };
  expected_ids: { ids?: number[]; pieces?: string[]; decoded?: string; tokens?: string[] }[];
  decode_expected?: { decoded: string; pieces: string[] }[];
}
const spec = (c: string) => JSON.parse(readFileSync(join(family!, c, 'case.json'), 'utf8')) as Spec;
const chatglmPreprocess = (text: string) => {
  let t = text.replaceAll('\n', '<n>').replaceAll('\t', '<|tab|>');
  for (let k = 80; k >= 2; k--) t = t.replaceAll(' '.repeat(k), `<|blank_${k}|>`);
  return t;
};

describe.skipIf(!have)('SentencePieceProcessor on the fixture models', () => {
  it('BPE with byte fallback: ids, pieces and decode of every text and id list (spm_bpe_byte_fallback)', () => {
    const sp = load('spm_bpe_byte_fallback', 'tokenizer.model');
    const c = spec('spm_bpe_byte_fallback');
    c.inputs.texts.forEach((text: string, i: number) => {
      const want = c.expected_ids[i];
      expect([text, sp.encodeAsIds(text)]).toEqual([text, want.ids]);
      expect([text, sp.encodeAsPieces(text)]).toEqual([text, want.pieces]);
      expect([text, sp.decodeIds(want.ids!)]).toEqual([text, want.decoded]);
    });
    c.inputs.decode_ids!.forEach((ids: number[], j: number) => {
      expect(sp.decodeIds(ids)).toEqual(c.decode_expected![j].decoded);
      expect(ids.map((id) => sp.idToPiece(id))).toEqual(c.decode_expected![j].pieces);
    });
  });

  it('Unigram with the nmt_nfkc charsmap: the T5 texts without special tokens', () => {
    const sp = load('t5_single_texts', 'spiece.model');
    const c = spec('t5_single_texts');
    let checked = 0;
    c.inputs.texts.forEach((text: string, i: number) => {
      if (/<(extra_id_\d|\/s>|pad>|unk>)/.test(text)) return;
      expect([text, sp.encodeAsPieces(text)]).toEqual([text, c.expected_ids[i].tokens]);
      checked++;
    });
    expect(checked).toBeGreaterThan(12);
  });

  it('Unigram with byte fallback and user-defined pieces: the ChatGLM whitespace texts after preprocessing', () => {
    const sp = load('chatglm_whitespace', 'ice_text.model');
    const c = spec('chatglm_whitespace');
    c.inputs.texts.forEach((text, i) => expect([text, sp.encodeAsPieces(chatglmPreprocess(text))]).toEqual([text, c.expected_ids[i].tokens]));
  });

  it('Unigram with byte fallback: emoji and rare characters become <0xNN> pieces (chatglm_single_texts, no special tokens)', () => {
    const sp = load('chatglm_single_texts', 'ice_text.model');
    const c = spec('chatglm_single_texts');
    c.inputs.texts.forEach((text, i) => {
      if (/\[MASK\]|<eop>|<sop>|<unk>|<pad>/.test(text)) return; // special tokens: split out by the tokenizer, not sentencepiece
      expect([text, sp.encodeAsPieces(chatglmPreprocess(text))]).toEqual([text, c.expected_ids[i].tokens]);
    });
    expect(sp.encodeAsPieces('🎉')).toEqual(['▁', '<0xF0>', '<0x9F>', '<0x8E>', '<0x89>']);
  });

  it('merges a run of unknown characters into one <unk> (no byte fallback) and decodes it as " ⁇ "', () => {
    const sp = load('t5_single_texts', 'spiece.model');
    const pieces = sp.encodePieces('∑∑ end');
    expect(pieces[0]).toEqual({ piece: '▁', id: sp.pieceToId('▁') });
    expect(pieces[1]).toEqual({ piece: '∑∑', id: 2 });
    expect(sp.decodeIds(pieces.map((p) => p.id))).toBe(' ⁇  end');
  });

  it('decodes: control pieces vanish, an unknown piece string comes out verbatim, malformed bytes become U+FFFD', () => {
    const sp = load('spm_bpe_byte_fallback', 'tokenizer.model');
    expect(sp.decodePieces(['<s>', ...sp.encodeAsPieces('Hello'), '</s>'])).toBe('Hello');
    expect(sp.decodePieces(['<image_3>', '▁a'])).toBe('<image_3> a');
    // 0xE4 0xBD starts a 3-byte character that never ends: each byte is one U+FFFD.
    expect(sp.decodePieces(['<0xE4>', '<0xBD>', '▁a'])).toBe('\uFFFD\uFFFD a');
  });

  it('reads the normalizer from the model: nmt_nfkc folds full-width, ligatures and circled digits', () => {
    const sp = load('t5_single_texts', 'spiece.model');
    expect(sp.normalize('  ﬁne　ＡＢＣ①  x ')).toBe('▁fine▁ABC1▁x');
    const bpe = load('spm_bpe_byte_fallback', 'tokenizer.model');
    expect(bpe.normalize('  ﬁne  ')).toBe('▁▁▁ﬁne▁▁');
  });

  it('an id out of range is an error naming it', () => {
    const sp = load('t5_single_texts', 'spiece.model');
    expect(() => sp.decodeIds([5, 800])).toThrow(/id 800 is out of range \[0, 800\)/);
  });
});

describe('bad model files', () => {
  const bytes = (s: string) => new TextEncoder().encode(s);
  it('a file that is not a SentencePiece model is refused, naming the file', () => {
    expect(() => new SentencePieceProcessor(bytes('{"version": "1.0", "model": {}}'), { fileName: 'spiece.model' })).toThrow(TokenizerError);
    expect(() => new SentencePieceProcessor(bytes('{"version": "1.0", "model": {}}'), { fileName: 'spiece.model' })).toThrow(/spiece\.model is not a SentencePiece model/);
    expect(() => new SentencePieceProcessor(bytes('[PAD]\n[UNK]\nthe\n'), { fileName: 'vocab.txt' })).toThrow(/vocab\.txt is not a SentencePiece model/);
    expect(() => new SentencePieceProcessor(new Uint8Array(0), { fileName: 'empty.model' })).toThrow(/empty\.model is not a SentencePiece model \(no pieces\)/);
  });

  it.skipIf(!have)('a truncated model is refused', () => {
    const whole = new Uint8Array(readFileSync(join(family!, 't5_single_texts', 'spiece.model')));
    expect(() => new SentencePieceProcessor(whole.subarray(0, whole.length - 7), { fileName: 'cut.model' })).toThrow(/cut\.model is not a SentencePiece model/);
  });
});
