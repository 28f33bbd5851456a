import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CharTokenizer } from './tokenizer.js';

describe('CharTokenizer', () => {
  const tok = CharTokenizer.fromTexts(['ab a\n', 'é!']);

  it('numbers the special tokens first, then characters in code point order', () => {
    expect(tok.vocabSize).toBe(9);
    expect(tok.specialTokenIds).toMatchObject({ pad: 0, unk: 1, eos: 2, bos: null, cls: null, sep: null, mask: null });
    // '\n' 10, ' ' 32, '!' 33, 'a' 97, 'b' 98, 'é' 233
    expect(tok.encode('ba é\n!').inputIds).toEqual([7, 6, 4, 8, 3, 5]);
  });

  it('maps unknown characters to unk, adds no special tokens, decodes back', () => {
    expect(tok.encode('az').inputIds).toEqual([6, 1]);
    expect(tok.encode('a', 'b').inputIds).toEqual([6, 7]);
    expect(tok.decode([6, 2, 7, 0])).toBe('a</s>b<pad>');
    expect(tok.decode([6, 2, 7, 0], { skipSpecialTokens: true })).toBe('ab');
    expect(() => tok.decode([9])).toThrow(/id 9 is outside the vocab of 9/);
  });

  it('saves vocab.json and tokenizer_config.json that fromPretrained reads back (a folder or the files)', async () => {
    const files = tok.save();
    const dir = await mkdtemp(join(tmpdir(), 'char-tok-'));
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    for (const loaded of [await CharTokenizer.fromPretrained(dir), await CharTokenizer.fromPretrained(files as Record<string, string>)]) {
      expect(loaded.vocabSize).toBe(9);
      expect(loaded.encode('ba é\n!z').inputIds).toEqual([7, 6, 4, 8, 3, 5, 1]);
      expect(loaded.save()).toEqual(files);
    }
    await expect(CharTokenizer.fromPretrained(join(dir, 'missing'))).rejects.toThrow(/has no vocab\.json/);
  });

  it('refuses a vocab without its special tokens or with gaps, naming them', () => {
    expect(() => new CharTokenizer({ '<pad>': 0, '<unk>': 1, a: 2 })).toThrow(/eosToken "<\/s>" is not in the vocab/);
    expect(() => new CharTokenizer({ '<pad>': 0, '<unk>': 1, '</s>': 5 })).toThrow(/vocab id 5 of "<\/s>" is not a distinct integer in \[0, 3\)/);
    expect(() => new CharTokenizer({ '<pad>': 0, '<unk>': 1, '</s>': 2, ab: 3 })).toThrow(/"ab" is neither one character nor a special token/);
  });
});
