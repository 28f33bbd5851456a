// ReformerTokenizer against reference outputs: the tokenizers-sentencepiece fixtures (Hugging Face's slow
// T5Tokenizer legacy=True, whose `tokenize` is the same base split-on-added-tokens + `sp.encode` per chunk
// as ReformerTokenizer's; and sentencepiece's own ids for the BPE model). The reference adds no special
// tokens, so its ids are the T5 ids without T5's appended `</s>`. Decode and special-token cases are
// hand-checked against `tokenization_reformer.py` (4.37) and the base `_decode`.

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { MissingPadTokenError, TokenizerError } from '@lm/layers';
import { ReformerTokenizer } from './reformer-tokenizer.js';

const fixtures = findSharedFixtures(import.meta.url);
const family = fixtures ? join(fixtures, 'tokenizers-sentencepiece') : null;
const have = family !== null && existsSync(family);
const bytesOf = (c: string, file: string) => new Uint8Array(readFileSync(join(family!, c, file)));
interface Spec {
  inputs: { texts: string[] };
  expected_ids: { input_ids?: number[]; ids?: number[]; tokens?: string[] }[];
}
const spec = (c: string) => JSON.parse(readFileSync(join(family!, c, 'case.json'), 'utf8')) as Spec;
/** T5 appends `</s>` (id 1) unless the text already ends in it; the reference Reformer appends nothing. */
const withoutT5Eos = (text: string, ids: number[]) => (text.trimEnd().endsWith('</s>') ? ids : ids.slice(0, -1));

describe.skipIf(!have)('ReformerTokenizer on the fixture models', () => {
  it('spiece.model alone: the ids of every text with no special-token text equal the reference (T5 ids minus its </s>)', () => {
    const tok = new ReformerTokenizer(bytesOf('t5_single_texts', 'spiece.model'));
    let checked = 0;
    for (const c of ['t5_single_texts', 't5_decode_roundtrip']) {
      const s = spec(c);
      s.inputs.texts.forEach((text, i) => {
        // <pad> and the sentinels are special to T5 but plain text to a Reformer tokenizer without them.
        if (/<(extra_id_\d|pad>)/.test(text)) return;
        expect([text, tok.tokenize(text)]).toEqual([text, s.expected_ids[i].tokens]);
        expect([text, tok.encode(text).inputIds]).toEqual([text, withoutT5Eos(text, s.expected_ids[i].input_ids!)]);
        checked++;
      });
    }
    expect(checked).toBe(18);
  });

  it('fromPretrained on the T5 folder (pad and the sentinels special, saved ids and strip flags): every text as the reference', async () => {
    const tok = await ReformerTokenizer.fromPretrained(join(family!, 't5_single_texts'));
    expect(tok.config.padToken).toBe('<pad>');
    expect(tok.convertTokensToIds(['<extra_id_0>', '<extra_id_9>', '<pad>', '</s>'])).toEqual([809, 800, 0, 1]);
    const s = spec('t5_single_texts');
    s.inputs.texts.forEach((text, i) => {
      expect([text, tok.tokenize(text)]).toEqual([text, s.expected_ids[i].tokens]);
      expect([text, tok.encode(text).inputIds]).toEqual([text, withoutT5Eos(text, s.expected_ids[i].input_ids!)]);
    });
  });

  it('a BPE model with byte fallback: the ids of sentencepiece itself (no special tokens in the texts)', () => {
    const tok = new ReformerTokenizer(bytesOf('spm_bpe_byte_fallback', 'tokenizer.model'), {}, 'tokenizer.model');
    const s = spec('spm_bpe_byte_fallback');
    let checked = 0;
    s.inputs.texts.forEach((text, i) => {
      if (/<\/s>|<unk>/.test(text)) return;
      expect([text, tok.encode(text).inputIds]).toEqual([text, s.expected_ids[i].ids]);
      checked++;
    });
    expect(checked).toBe(s.inputs.texts.length - 1);
  });
});

describe.skipIf(!have)('ReformerTokenizer special tokens, decode, padding, save (hand-checked)', () => {
  const model = () => bytesOf('t5_single_texts', 'spiece.model');
  // The T5 model's pieces: <pad> 0 (control), </s> 1, <unk> 2, '▁' 4, '▁a' 8, ',' 10, '▁is' 167, '▁Hello' 641, '▁world' 529, '!' 124.

  it('has eos and unk special, no pad, and adds nothing to an encoding or a pair', () => {
    const tok = new ReformerTokenizer(model());
    expect(tok.specialTokenIds).toEqual({ pad: null, unk: 2, bos: null, eos: 1, cls: null, sep: null, mask: null });
    expect(tok.allSpecialIds).toEqual([1, 2]);
    expect(tok.vocabSize).toBe(800);
    expect(tok.encode('Hello, world!').inputIds).toEqual([641, 10, 529, 124]);
    expect(tok.encode('a', 'is', { returnTokenTypeIds: true, returnSpecialTokensMask: true })).toEqual({
      inputIds: [8, 167],
      tokenTypeIds: [0, 1],
      attentionMask: [1, 1],
      specialTokensMask: [0, 0],
    });
    // `</s>` and `<unk>` typed in the text are split out with no whitespace stripped.
    expect(tok.tokenize('Hello</s> world<unk>')).toEqual(['▁Hello', '</s>', '▁world', '<unk>']);
  });

  it('decodes as the reference: special tokens raw between SentencePiece runs, control pieces vanish, clean-up on by default', () => {
    const tok = new ReformerTokenizer(model());
    expect(tok.decode([641, 10, 529, 124, 1, 641])).toBe('Hello, world!</s>Hello');
    expect(tok.decode([641, 10, 529, 124, 1, 641], { skipSpecialTokens: true })).toBe('Hello, world! Hello');
    expect(tok.decode([641, 2, 529])).toBe('Hello<unk>world');
    expect(tok.decode([641, 0, 529])).toBe('Hello world');
    expect(tok.decode([641, 4, 10])).toBe('Hello,');
    expect(tok.decode([641, 4, 10], { cleanUpTokenizationSpaces: false })).toBe('Hello ,');
    expect(() => tok.decode([641, 800])).toThrow(/ReformerTokenizer: id 800 is out of range/);
  });

  it('a pad token from the config is special (its vocab id); padding without one is an error naming pad_token', () => {
    const bare = new ReformerTokenizer(model());
    expect(() => bare.encode('a', null, { padding: 'max_length', maxLength: 4 })).toThrow(MissingPadTokenError);
    expect(() => bare.encodeBatch(['a is', 'a'], { padding: true })).toThrow(MissingPadTokenError);
    expect(() => bare.encodeBatch(['a is', 'a'], { padding: true })).toThrow(/ReformerTokenizer\.encode: asked to pad but the tokenizer has no pad_token; give one/);
    // Other encode errors are not that one.
    expect(() => bare.encode('a', null, { padding: 'sideways' as never })).toThrow(TokenizerError);
    expect(() => bare.encode('a', null, { padding: 'sideways' as never })).not.toThrow(MissingPadTokenError);
    const tok = new ReformerTokenizer(model(), { padToken: '<pad>' });
    expect(tok.specialTokenIds.pad).toBe(0);
    expect(tok.encodeBatch(['a is', 'a'], { padding: true })).toEqual({ inputIds: [[8, 167], [8, 0]], attentionMask: [[1, 1], [1, 0]] });
    expect(tok.decode([641, 0, 529])).toBe('Hello<pad>world');
  });

  it('additional special tokens outside the vocabulary get the next ids and decode as separate words', () => {
    const tok = new ReformerTokenizer(model(), { additionalSpecialTokens: ['<sep>', '<cls>'] });
    expect(tok.convertTokensToIds(['<sep>', '<cls>'])).toEqual([800, 801]);
    expect(tok.allSpecialIds).toEqual([1, 2, 800, 801]);
    expect(tok.encode('a <sep> is').inputIds).toEqual([8, 800, 167]);
    expect(tok.decode([8, 800, 167])).toBe('a <sep> is');
    expect(tok.decode([8, 800, 167], { skipSpecialTokens: true })).toBe('a is');
  });

  it('save() writes spiece.model and tokenizer_config.json that fromPretrained reads back (a folder or the files)', async () => {
    const tok = new ReformerTokenizer(model(), { padToken: '<pad>', additionalSpecialTokens: ['<sep>'], cleanUpTokenizationSpaces: false, modelMaxLength: 4096 });
    const files = tok.save();
    expect(JSON.parse(files['tokenizer_config.json'] as string)).toMatchObject({ tokenizer_class: 'ReformerTokenizer', eos_token: '</s>', unk_token: '<unk>', pad_token: '<pad>', model_max_length: 4096 });
    const dir = await mkdtemp(join(tmpdir(), 'reformer-tok-'));
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
    for (const loaded of [await ReformerTokenizer.fromPretrained(dir), await ReformerTokenizer.fromPretrained(files)]) {
      expect(loaded.config).toEqual(tok.config);
      expect(loaded.allSpecialIds).toEqual([1, 2, 0, 800]);
      expect(loaded.encode('a <sep> is<pad>').inputIds).toEqual([8, 800, 167, 0]);
    }
  });
});

describe('ReformerTokenizer bad input', () => {
  const bytes = (s: string) => new TextEncoder().encode(s);
  it('a file that is not a SentencePiece model is refused, naming it; no spiece.model is an error naming it', async () => {
    await expect(ReformerTokenizer.fromPretrained({ 'spiece.model': bytes('{"version": "1.0"}') })).rejects.toThrow(/spiece\.model is not a SentencePiece model/);
    await expect(ReformerTokenizer.fromPretrained({ 'tokenizer_config.json': '{}' })).rejects.toThrow(/spiece\.model/);
    expect(() => new ReformerTokenizer(bytes('[PAD]\n[UNK]\n'), {}, 'vocab.txt')).toThrow(/vocab\.txt is not a SentencePiece model/);
  });

  it('a config field of the wrong type is an error naming it', async () => {
    await expect(ReformerTokenizer.fromPretrained({ 'spiece.model': new Uint8Array(0), 'tokenizer_config.json': '{"additional_special_tokens": "<sep>"}' })).rejects.toThrow(
      /additional_special_tokens must be a list/,
    );
  });
});
