import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BertTokenizer } from './bert-tokenizer.js';
import { MissingPadTokenError, TokenizerError } from './errors.js';
import { resolveStrategies } from './slow-tokenizer.js';
import { bertTokenizerConfigFromJSON, initArgumentsJSON, tokenizerConfigFromJSON, type TokenizerConfigKeys } from './tokenizer-config.js';
import { parseVocab } from './vocab.js';

const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'Hello', 'hello', 'world', '<m>', '!'].join('\n') + '\n';
const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function checkpoint(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'lm-tok-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe('parseVocab', () => {
  it('reads \\n, \\r\\n and \\r line breaks, keeps empty lines, and a repeated token keeps its last id', () => {
    expect([...parseVocab('a\r\nb\rc\n\nd')]).toEqual([['a', 0], ['b', 1], ['c', 2], ['', 3], ['d', 4]]);
    expect([...parseVocab('a\nb\na\n')]).toEqual([['a', 2], ['b', 1]]);
    expect(parseVocab('').size).toBe(0);
  });
});

describe('bertTokenizerConfigFromJSON', () => {
  it('maps snake_case keys, AddedToken objects and ignores unknown keys', () => {
    expect(
      bertTokenizerConfigFromJSON({
        do_lower_case: false,
        mask_token: { content: '<m>', lstrip: false, __type: 'AddedToken' },
        model_max_length: 512,
        tokenizer_class: 'BertTokenizer',
        strip_accents: null,
      }),
    ).toEqual({ doLowerCase: false, maskToken: '<m>', modelMaxLength: 512, stripAccents: null });
    expect(() => bertTokenizerConfigFromJSON({ unk_token: 3 })).toThrow(TokenizerError);
  });
});

describe('tokenizerConfigFromJSON', () => {
  const KEYS: TokenizerConfigKeys<{ eosToken?: string; extra?: string[]; n?: number; legacy?: boolean; side?: 'left' | 'right'; saved?: unknown }> = {
    eos_token: ['eosToken', 'token'],
    additional_special_tokens: ['extra', 'tokens'],
    extra_ids: ['n', 'count'],
    legacy: ['legacy', 'flag'],
    padding_side: ['side', 'side'],
    added_tokens_decoder: ['saved', 'json'],
  };
  it('maps each key to its field, AddedToken objects to their content, and ignores nulls and unknown keys', () => {
    const saved = { '5': { content: '<x>' } };
    expect(
      tokenizerConfigFromJSON('T', {
        eos_token: { content: '</s>', lstrip: false, __type: 'AddedToken' },
        additional_special_tokens: ['<a>', { content: '<b>' }],
        extra_ids: 0,
        legacy: false,
        padding_side: 'left',
        added_tokens_decoder: saved,
        pad_token: '<pad>',
        tokenizer_class: 'T5Tokenizer',
        toString: 'not a key',
      }, KEYS),
    ).toEqual({ eosToken: '</s>', extra: ['<a>', '<b>'], n: 0, legacy: false, side: 'left', saved });
    expect(tokenizerConfigFromJSON('T', { eos_token: null, extra_ids: null }, KEYS)).toEqual({});
  });
  it('names the tokenizer, the key and the value of a bad entry', () => {
    expect(() => tokenizerConfigFromJSON('T', { eos_token: 3 }, KEYS)).toThrow('T: eos_token must be a string or an AddedToken object, got 3');
    expect(() => tokenizerConfigFromJSON('T', { additional_special_tokens: '<a>' }, KEYS)).toThrow('T: additional_special_tokens must be a list, got "<a>"');
    expect(() => tokenizerConfigFromJSON('T', { additional_special_tokens: ['<a>', 7] }, KEYS)).toThrow('T: additional_special_tokens[1] must be a string or an AddedToken object, got 7');
    expect(() => tokenizerConfigFromJSON('T', { extra_ids: -1 }, KEYS)).toThrow('T: extra_ids must be a non-negative number, got -1');
    expect(() => tokenizerConfigFromJSON('T', { legacy: 'no' }, KEYS)).toThrow('T: legacy must be true or false, got "no"');
    expect(() => tokenizerConfigFromJSON('T', { padding_side: 'up' }, KEYS)).toThrow('T: padding_side must be "left" or "right", got "up"');
  });
  it('merges special_tokens_map.json over tokenizer_config.json', () => {
    expect(initArgumentsJSON({ tokenizerConfig: { eos_token: '</s>', legacy: true }, specialTokensMap: { eos_token: '<e>' } })).toEqual({ eos_token: '<e>', legacy: true });
    expect(initArgumentsJSON({})).toEqual({});
  });
});

describe('resolveStrategies', () => {
  it('padding without a pad token is a MissingPadTokenError, with the tokenizer\'s message when it gives one', () => {
    const defaults = { modelMaxLength: 1e30, padTokenId: null, returnTokenTypeIds: false };
    expect(() => resolveStrategies({ padding: true }, defaults)).toThrow(MissingPadTokenError);
    expect(() => resolveStrategies({ padding: 'max_length', maxLength: 4 }, { ...defaults, missingPadToken: 'X.encode: no pad_token' })).toThrow(new MissingPadTokenError('X.encode: no pad_token'));
    expect(resolveStrategies({ padding: true }, { ...defaults, padTokenId: 0 }).padding).toBe('longest');
    expect(resolveStrategies({}, defaults).padding).toBe('do_not_pad');
    // Other bad options are TokenizerErrors of the plain kind.
    expect(() => resolveStrategies({ padding: 'up' as never }, defaults)).toThrow(TokenizerError);
    expect(() => resolveStrategies({ padding: 'up' as never }, defaults)).not.toThrow(MissingPadTokenError);
  });
});

describe('fromPretrained', () => {
  it('reads vocab.txt + tokenizer_config.json + special_tokens_map.json from a directory (the map wins)', async () => {
    const dir = checkpoint({
      'vocab.txt': VOCAB,
      'tokenizer_config.json': JSON.stringify({ do_lower_case: false, mask_token: '[MASK]', model_max_length: 4 }),
      'special_tokens_map.json': JSON.stringify({ mask_token: { content: '<m>' } }),
    });
    // A subclass's fromPretrained builds the subclass (family tokenizers such as RealmTokenizer rely on it).
    class SubTokenizer extends BertTokenizer {}
    const tok = await SubTokenizer.fromPretrained(dir);
    expect(tok).toBeInstanceOf(SubTokenizer);
    expect(tok.maskTokenId).toBe(8);
    expect(tok.tokenize('Hello <m>')).toEqual(['Hello', '<m>']);
    expect(tok.encode('Hello world hello', null, { truncation: true }).inputIds).toEqual([2, 5, 7, 3]);
  });

  it('reads a name -> content map with strings, Blobs and parsed JSON, and File arrays', async () => {
    const fromMap = await BertTokenizer.fromPretrained({
      'vocab.txt': new Blob([VOCAB]),
      'tokenizer_config.json': { do_lower_case: true },
      'unrelated.bin': 'ignored',
    });
    expect(fromMap.tokenize('HELLO world!')).toEqual(['hello', 'world', '!']);
    const files = [new File([VOCAB], 'vocab.txt'), new File(['{"do_lower_case": false}'], 'tokenizer_config.json')];
    const fromFiles = await BertTokenizer.fromPretrained(files);
    expect(fromFiles.tokenize('Hello')).toEqual(['Hello']);
  });

  it('falls back to tokenizer.json, which round-trips through toTokenizerJSON', async () => {
    const original = BertTokenizer.fromVocab(VOCAB, { doLowerCase: false, maskToken: '<m>' });
    const json = original.toTokenizerJSON();
    expect(json.model.type).toBe('WordPiece');
    expect(json.added_tokens.map((t) => t.content)).toEqual(['[UNK]', '[SEP]', '[PAD]', '[CLS]', '<m>']);
    const dir = checkpoint({ 'tokenizer.json': JSON.stringify(json), 'tokenizer_config.json': JSON.stringify({ mask_token: '<m>' }) });
    const loaded = await BertTokenizer.fromPretrained(dir);
    expect(loaded.vocabSize).toBe(original.vocabSize);
    expect(loaded.config.doLowerCase).toBe(false);
    expect(loaded.tokenize('Hello <m> world!')).toEqual(original.tokenize('Hello <m> world!'));
    expect(loaded.encode('Hello', 'world')).toEqual(original.encode('Hello', 'world'));
  });

  it('round-trips doBasicTokenize: false (with and without lowercasing) through tokenizer.json', () => {
    for (const doLowerCase of [true, false]) {
      const original = BertTokenizer.fromVocab(VOCAB, { doBasicTokenize: false, doLowerCase });
      const loaded = BertTokenizer.fromTokenizerJSON(original.toTokenizerJSON());
      expect([loaded.config.doBasicTokenize, loaded.config.doLowerCase]).toEqual([false, doLowerCase]);
      expect(loaded.tokenize('Hello world!')).toEqual(original.tokenize('Hello world!'));
    }
  });

  it('rejects a tokenizer.json that is not WordPiece, and a folder without tokenizer files', async () => {
    expect(() => BertTokenizer.fromTokenizerJSON({ model: { type: 'BPE', vocab: {}, merges: [] } })).toThrow(/WordPiece/);
    await expect(BertTokenizer.fromPretrained(checkpoint({ 'config.json': '{}' }))).rejects.toThrow(TokenizerError);
    await expect(BertTokenizer.fromPretrained({ 'tokenizer_config.json': '{}' })).rejects.toThrow(/vocab.txt or tokenizer.json/);
  });
});
