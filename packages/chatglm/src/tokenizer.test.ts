// ChatGLMTokenizer against THUDM's tokenization_chatglm.py (final v1, run on transformers 4.57.6 and
// sentencepiece 0.2.2): every ChatGLM case of shared/fixtures/tokenizers-sentencepiece through the
// registered runner (ids, position ids, the boolean attention masks, tokens and decoded strings
// compared with case.json and expected.safetensors), plus hand-checked calls and bad input.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpu } from '@lm/tensor-gpu';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { fixtureCasesOf, readConformanceCase, tokenizerCaseResults } from '@lm/layers/testing';
import { conformance } from './conformance.js';
import { ChatGLMTokenizer, preprocessWhitespace } from './tokenizer.js';

const fixtures = findSharedFixtures(import.meta.url);
const family = fixtures ? join(fixtures, 'tokenizers-sentencepiece') : null;
const have = family !== null && existsSync(family);

const caseAt = (dir: string) => readConformanceCase(dir, cpu());
const glmCases = fixtureCasesOf(family, 'ChatGLMTokenizer');

describe.skipIf(!have)('shared/fixtures/tokenizers-sentencepiece: ChatGLMTokenizer cases', () => {
  it('finds cases', () => expect(glmCases.length).toBeGreaterThanOrEqual(5));
  for (const name of glmCases) {
    it(name, async () => {
      const { actual, expected } = await tokenizerCaseResults(caseAt(join(family!, name)), conformance.classes.ChatGLMTokenizer);
      expect(actual).toEqual(expected);
    });
  }
});

describe('preprocessWhitespace (SPTokenizer._preprocess)', () => {
  it('newline, tab, runs of 2..80 spaces longest first; a run of 85 is blank_80 + blank_5, 81 leaves one space', () => {
    expect(preprocessWhitespace('a\n\tb  c')).toBe('a<n><|tab|>b<|blank_2|>c');
    expect(preprocessWhitespace(' '.repeat(85))).toBe('<|blank_80|><|blank_5|>');
    expect(preprocessWhitespace(`x${' '.repeat(81)}y`)).toBe('x<|blank_80|> y');
  });
});

describe.skipIf(!have)('ChatGLMTokenizer on the fixture ice_text.model', () => {
  const model = () => new Uint8Array(readFileSync(join(family!, 'chatglm_pairs_mask', 'ice_text.model')));
  const tok = (numImageTokens = 0) => new ChatGLMTokenizer(model(), { numImageTokens, cleanUpTokenizationSpaces: true });

  it('special ids: pad 3, [MASK] 800, [gMASK] 801, <sop> 804, <eop> 805; shifted by numImageTokens', () => {
    expect(tok().specialTokenIds).toEqual({ pad: 3, unk: 0, bos: 804, eos: 805, cls: null, sep: null, mask: 800 });
    expect(tok().gmaskTokenId).toBe(801);
    expect(tok(20000).specialTokenIds).toEqual({ pad: 20003, unk: 20000, bos: 20804, eos: 20805, cls: null, sep: null, mask: 20800 });
    expect(tok(20000).vocabSize).toBe(21144);
    expect(tok(20000).convertIdsToTokens([7, 20804])).toEqual(['<image_7>', '<sop>']);
  });

  it('a pair is A [gMASK] <sop> B <eop>; no mask or position ids without padding (values from chatglm_pairs_mask)', () => {
    const e = tok().encode('问：你好\n答：', '你好！很高兴认识你。');
    expect(e).toEqual({ inputIds: [6, 174, 88, 261, 151, 4, 1119, 1061, 1036, 88, 801, 804, 129, 151, 126, 123, 365, 292, 345, 348, 261, 8, 805] });
  });

  it('padding builds the GLM mask and 2-D positions: [MASK] is where generated positions point', () => {
    const e = tok().encode('a [MASK] b', null, { padding: 'max_length', maxLength: 8 });
    const ids = e.inputIds;
    // <pad> first, then the text, [gMASK] <sop>.
    expect(ids[0]).toBe(3);
    expect(ids.slice(-2)).toEqual([801, 804]);
    const L = ids.length;
    const pads = ids.filter((id) => id === 3).length;
    const mask = ids.indexOf(800) - pads;
    expect(e.positionIds![0]).toEqual([...new Array<number>(pads).fill(0), ...Array.from({ length: L - pads - 1 }, (_, i) => i), mask]);
    expect(e.positionIds![1]).toEqual([...new Array<number>(L - 1).fill(0), 1]);
    // The context attends both ways; the <sop> row sees everything; pad rows and columns are masked.
    const m = e.attentionMask![0];
    expect(m[L - 2].slice(pads)).toEqual(new Array<boolean>(L - pads - 1).fill(false).concat([true]));
    expect(m[L - 1].slice(pads)).toEqual(new Array<boolean>(L - pads).fill(false));
    expect(m[0].every((v) => v)).toBe(true);
    expect(m.every((row) => row.slice(0, pads).every((v) => v))).toBe(true);
  });

  it('decode drops pads, turns the whitespace markers back, keeps <image_k>, cleans up " ."', () => {
    const t = tok();
    const ids = t.encode('a  b\tc\nd .').inputIds;
    expect(t.decode([3, ...ids])).toBe('a  b\tc\nd.');
    // An image token is verbatim text, so the next piece's ▁ is no longer the leading one.
    expect(tok(20000).decode([5, 20000 + ids[0]])).toBe('<image_5> a');
  });

  it('save() gives ice_text.model and tokenizer_config.json that fromPretrained reads back equal', async () => {
    const t = tok(20000);
    const back = await ChatGLMTokenizer.fromPretrained(t.save());
    expect(back.config).toEqual(t.config);
    expect(back.encode('你好 [MASK]', 'x', { padding: true })).toEqual(t.encode('你好 [MASK]', 'x', { padding: true }));
  });

  it('bad input: not a SentencePiece model names the file; right padding is refused; ids out of range name the id', async () => {
    await expect(ChatGLMTokenizer.fromPretrained({ 'ice_text.model': new TextEncoder().encode('not a model') })).rejects.toThrow(/ice_text\.model is not a SentencePiece model/);
    await expect(ChatGLMTokenizer.fromPretrained({ 'ice_text.model': model(), 'tokenizer_config.json': '{"padding_side": "right"}' })).rejects.toThrow(/padding_side must be "left"/);
    await expect(ChatGLMTokenizer.fromPretrained({ 'ice_text.model': model(), 'tokenizer_config.json': '{"padding_side": "up"}' })).rejects.toThrow(/padding_side must be "left" \(ChatGLM pads on the left only\), got "up"/);
    expect(() => tok().decode([1144])).toThrow(/id 1144 is out of range \[0, 1144\)/);
  });
});
