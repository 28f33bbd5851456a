// T5Tokenizer against Hugging Face's slow T5Tokenizer (transformers 4.57.6, sentencepiece 0.2.2): every
// T5 case of shared/fixtures/tokenizers-sentencepiece through the registered runner (ids, masks,
// tokens and decoded strings compared with case.json and expected.safetensors), plus hand-checked
// calls on the fixture's spiece.model and bad input.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpu } from '@lm/tensor-gpu';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { fixtureCasesOf, readConformanceCase, tokenizerCaseResults } from '@lm/layers/testing';
import { TokenizerError } from '@lm/layers';
import { conformance } from './conformance.js';
import { T5Tokenizer } from './tokenizer.js';

const fixtures = findSharedFixtures(import.meta.url);
const family = fixtures ? join(fixtures, 'tokenizers-sentencepiece') : null;
const have = family !== null && existsSync(family);

const caseAt = (dir: string) => readConformanceCase(dir, cpu());
const t5Cases = fixtureCasesOf(family, 'T5Tokenizer');

describe.skipIf(!have)('shared/fixtures/tokenizers-sentencepiece: T5Tokenizer cases', () => {
  it('finds cases', () => expect(t5Cases.length).toBeGreaterThanOrEqual(5));
  for (const name of t5Cases) {
    it(name, async () => {
      const { actual, expected } = await tokenizerCaseResults(caseAt(join(family!, name)), conformance.classes.T5Tokenizer);
      expect(actual).toEqual(expected);
    });
  }
});

describe.skipIf(!have)('T5Tokenizer on the fixture spiece.model', () => {
  const model = () => new Uint8Array(readFileSync(join(family!, 't5_single_texts', 'spiece.model')));
  const tok = () => new T5Tokenizer(model(), { extraIds: 10 });

  it('special ids: pad 0, eos 1, unk 2, sentinels reversed at the top (<extra_id_0> = 809)', () => {
    const t = tok();
    expect(t.specialTokenIds).toEqual({ pad: 0, unk: 2, bos: null, eos: 1, cls: null, sep: null, mask: null });
    expect(t.vocabSize).toBe(800);
    expect(t.sentinelIds).toEqual([809, 808, 807, 806, 805, 804, 803, 802, 801, 800]);
    expect([...t.allSpecialIds].sort((a, b) => a - b)).toEqual([0, 1, 2, 800, 801, 802, 803, 804, 805, 806, 807, 808, 809]);
  });

  it('appends </s> once, and not to a text that already ends with it', () => {
    const t = tok();
    expect(t.encode('Hello, world! This is a TEST.').inputIds).toEqual([641, 10, 529, 124, 238, 714, 468, 9, 167, 8, 238, 796, 764, 731, 3, 1]);
    expect(t.encode('ends with eos </s>').inputIds).toEqual([4, 606, 9, 113, 4, 41, 211, 9, 1]);
    expect(t.encode('Hello', null, { addSpecialTokens: false }).inputIds).toEqual([641]);
  });

  it('sentinels eat the spaces around them; legacy=False puts no ▁ after a special token', () => {
    // Values from the reference (t5_single_texts text 7, t5_legacy_false_sentinels text 0).
    expect(tok().tokenize('The <extra_id_0> walks in <extra_id_1> park.')).toEqual(['▁The', '<extra_id_0>', '▁wa', 'lk', 's', '▁in', '<extra_id_1>', '▁pa', 'r', 'k', '.']);
    const strict = new T5Tokenizer(model(), { extraIds: 10, legacy: false });
    expect(strict.tokenize('The <extra_id_0> walks in <extra_id_1> park.')).toEqual(['▁The', '<extra_id_0>', 'w', 'a', 'lk', 's', '▁in', '<extra_id_1>', 'p', 'ar', 'k', '.']);
  });

  it('decode: sentinels as separate words, skip_special_tokens, clean-up of " ."', () => {
    const t = tok();
    const ids = t.encode('The <extra_id_0> walks in <extra_id_1> park.').inputIds;
    expect(t.decode(ids)).toBe('The <extra_id_0> walks in <extra_id_1> park.</s>');
    expect(t.decode(ids, { skipSpecialTokens: true })).toBe('The walks in park.');
    // t5_decode_roundtrip text 0: " 's" and " ," are cleaned up, " 't" is not on the reference's list.
    const text = "Wait ... what happened here ?! It 's fine , isn 't it ?";
    expect(t.decode(t.encode(text).inputIds, { skipSpecialTokens: true, cleanUpTokenizationSpaces: true })).toBe("Wait... what happened here?! It's fine, isn 't it?");
  });

  it('save() gives spiece.model and tokenizer_config.json that fromPretrained reads back equal', async () => {
    const t = new T5Tokenizer(model(), { extraIds: 10, legacy: false, modelMaxLength: 64 });
    const files = t.save();
    expect(Object.keys(files).sort()).toEqual(['spiece.model', 'tokenizer_config.json']);
    const back = await T5Tokenizer.fromPretrained(files);
    expect(back.config).toEqual(t.config);
    const text = 'Hello <extra_id_0> world ▁ and more';
    expect(back.encode(text).inputIds).toEqual(t.encode(text).inputIds);
  });

  it('tokenizer.json alone (the converted fast tokenizer) gives the same ids and decodes as spiece.model', async () => {
    const json = JSON.parse(readFileSync(join(family!, 't5_single_texts', 'tokenizer.json'), 'utf8')) as unknown;
    const fromJson = await T5Tokenizer.fromPretrained({ 'tokenizer.json': json as Record<string, unknown> });
    const slow = tok();
    expect(fromJson.config.extraIds).toBe(10);
    expect(fromJson.vocabSize).toBe(800);
    const texts = t5Cases.flatMap((name) => (caseAt(join(family!, name)).spec.inputs as { texts?: string[]; pairs?: string[][] }).texts ?? []);
    expect(texts.length).toBeGreaterThan(30);
    for (const text of texts) {
      const ids = slow.encode(text).inputIds;
      expect([text, fromJson.encode(text).inputIds]).toEqual([text, ids]);
      expect(fromJson.decode(ids)).toBe(slow.decode(ids));
    }
    const back = await T5Tokenizer.fromPretrained(fromJson.save());
    expect(back.encode(texts[2]).inputIds).toEqual(slow.encode(texts[2]).inputIds);
  });

  it('bad input: a file that is not a SentencePiece model names the file; ids out of range name the id', async () => {
    const json = new TextEncoder().encode('{"version": "1.0"}');
    await expect(T5Tokenizer.fromPretrained({ 'spiece.model': json })).rejects.toThrow(/spiece\.model is not a SentencePiece model/);
    await expect(T5Tokenizer.fromPretrained({ 'tokenizer_config.json': '{}' })).rejects.toThrow(TokenizerError);
    expect(() => tok().decode([5, 810])).toThrow(/id 810 is out of range/);
    expect(() => new T5Tokenizer(model(), { extraIds: 3, additionalSpecialTokens: ['<extra_id_0>'] })).toThrow(/extraIds is 3 but additionalSpecialTokens holds 1/);
  });
});
