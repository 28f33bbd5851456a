// The tokenizer case runner: its helpers on hand-written values, a synthetic case with every layout
// (per-item calls, a batched call, decode_ids), and every BertTokenizer case of
// shared/fixtures/tokenizers-wordpiece through the registered runner, compared with case.json and
// expected.safetensors (the conformance runner, tooling/conformance, runs them too).

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cpu } from '@lm/tensor-gpu';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import type { ConformanceCase, HostOutput } from './conformance.js';
import { BertTokenizer } from '../tokenizers/bert-tokenizer.js';
import {
  bertCaseTokenizer,
  callOptions,
  caseItems,
  conformance,
  hostOutput,
  numericOutputs,
  readExpectedOutputs,
  runTokenizerCase,
  TokenizerCaseError,
} from './tokenizer-cases.js';
import { fixtureCasesOf, readConformanceCase, tokenizerCaseResults } from './tokenizer-fixture-cases.js';

function caseAt(dir: string): ConformanceCase {
  const read = (name: string) => JSON.parse(readFileSync(join(dir, name), 'utf8')) as Record<string, unknown>;
  return { dir, spec: read('case.json') as ConformanceCase['spec'], config: existsSync(join(dir, 'config.json')) ? (read('config.json') as ConformanceCase['config']) : {}, tensorInputs: new Map(), backend: cpu() };
}

async function runBert(c: ConformanceCase): Promise<{ outputs: Map<string, HostOutput>; values: Record<string, unknown> }> {
  const result = await conformance.classes.BertTokenizer(c);
  if (result instanceof Map) throw new Error('a tokenizer runner returns { outputs, values }');
  return result as { outputs: Map<string, HostOutput>; values: Record<string, unknown> };
}

describe('helpers', () => {
  it('hostOutput: shape and row-major values of rectangular number lists only', () => {
    expect(hostOutput([[1, 2, 3], [4, 5, 6]])).toEqual({ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] });
    expect(hostOutput([])).toEqual({ shape: [0], data: [] });
    expect(hostOutput(7)).toEqual({ shape: [], data: [7] });
    expect(hostOutput([[1, 2], [3]])).toBeNull();
    expect(hostOutput(['a'])).toBeNull();
  });

  it('numericOutputs: numeric arrays by dotted path; strings and token lists left out', () => {
    const names = numericOutputs([{ input_ids: [2, 5, 3], tokens: ['a'], decoded: 'a' }, { ids: [], tokens: ['b'] }], '', new Map());
    expect([...names.keys()]).toEqual(['0.input_ids', '1.ids']);
    expect(names.get('1.ids')).toEqual({ shape: [0], data: [] });
    expect(numericOutputs([{ length: 3 }]).get('0.length')).toEqual({ shape: [], data: [3] });
    const batch = numericOutputs({ batch: { input_ids: [[1, 2], [3, 4]] }, per_text_unpadded: [{ input_ids: [1, 2] }] });
    expect([...batch.keys()]).toEqual(['batch.input_ids', 'per_text_unpadded.0.input_ids']);
    expect(batch.get('batch.input_ids')).toEqual({ shape: [2, 2], data: [1, 2, 3, 4] });
  });

  it('callOptions: maps kwargs, skips the descriptive ones, refuses the unknown by name', () => {
    expect(callOptions({ max_length: 4, mode: 'words', decode_mode: 'words' }, { max_length: 'maxLength' }, 'X')).toEqual({ maxLength: 4 });
    expect(() => callOptions({ stride: 2 }, { max_length: 'maxLength' }, 'BertTokenizer')).toThrow(/BertTokenizer: kwarg stride=2 is not supported/);
  });

  it('caseItems: pairs, texts, text with text_pair; bad inputs named', () => {
    expect(caseItems({ pairs: [['a', 'b']] })).toEqual([['a', 'b']]);
    expect(caseItems({ texts: ['a', 'b'] })).toEqual(['a', 'b']);
    expect(caseItems({ text: ['a'], text_pair: ['b'] })).toEqual([['a', 'b']]);
    expect(() => caseItems({ text: ['a'], text_pair: ['b', 'c'] })).toThrow(TokenizerCaseError);
    expect(() => caseItems({ ids: [1] })).toThrow(/"pairs", or "texts"/);
  });
});

describe('BertTokenizer case runner on a synthetic case', () => {
  const root = mkdtempSync(join(tmpdir(), 'lm-tokenizer-cases-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  // ids:            0       1       2       3       4        5      6      7      8       9
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'cat', 'sat', 'dog', '##s'];
  writeFileSync(join(root, 'vocab.txt'), vocab.join('\n'));
  const kase = (spec: Record<string, unknown>): ConformanceCase => ({ dir: root, spec: { class: 'BertTokenizer', outputs: [], ...spec }, config: { do_lower_case: true }, tensorInputs: new Map(), backend: cpu() });

  it('per-item calls with kwargs, tokens and decoded (skip_special_tokens=True)', async () => {
    const c = kase({
      inputs: { pairs: [['The dogs', 'cat sat']] },
      kwargs: { max_length: 7, truncation: 'only_second', padding: 'max_length', return_special_tokens_mask: true, mode: 'one call per pair' },
      expected_ids: [{ tokens: null, decoded: null }],
    });
    const { outputs, values } = await runBert(c);
    expect(values.expected_ids).toEqual([
      {
        input_ids: [2, 5, 8, 9, 3, 6, 3],
        token_type_ids: [0, 0, 0, 0, 0, 1, 1],
        special_tokens_mask: [1, 0, 0, 0, 1, 0, 1],
        attention_mask: [1, 1, 1, 1, 1, 1, 1],
        tokens: [['the', 'dog', '##s'], ['cat', 'sat']],
        decoded: 'the dogs cat',
      },
    ]);
    expect(outputs.get('0.input_ids')).toEqual({ shape: [7], data: [2, 5, 8, 9, 3, 6, 3] });
    expect(outputs.has('0.tokens')).toBe(false);
  });

  it('a batched call (padding longest) with unpadded per-item encodings and batch_decoded', async () => {
    const c = kase({ inputs: { texts: ['cat', 'the dogs [MASK]'] }, kwargs: { padding: true }, expected_ids: { batch: {}, per_text_unpadded: [], batch_decoded: [] } });
    const { values, outputs } = await runBert(c);
    expect(values.expected_ids).toEqual({
      batch: {
        input_ids: [
          [2, 6, 3, 0, 0, 0],
          [2, 5, 8, 9, 4, 3],
        ],
        token_type_ids: [
          [0, 0, 0, 0, 0, 0],
          [0, 0, 0, 0, 0, 0],
        ],
        attention_mask: [
          [1, 1, 1, 0, 0, 0],
          [1, 1, 1, 1, 1, 1],
        ],
      },
      per_text_unpadded: [
        { input_ids: [2, 6, 3], token_type_ids: [0, 0, 0], attention_mask: [1, 1, 1] },
        { input_ids: [2, 5, 8, 9, 4, 3], token_type_ids: [0, 0, 0, 0, 0, 0], attention_mask: [1, 1, 1, 1, 1, 1] },
      ],
      batch_decoded: ['cat', 'the dogs'],
    });
    expect(outputs.get('batch.attention_mask')?.shape).toEqual([2, 6]);
  });

  it('decode_ids -> decode_expected, with reencoded ids as decode.<j>.* outputs', async () => {
    const c = kase({ inputs: { decode_ids: [[2, 5, 8, 9, 0, 3]] }, decode_expected: [{ tokens: 0, decoded: 0, decoded_skip_special: 0, reencoded_input_ids: 0 }] });
    const { values, outputs } = await runBert(c);
    expect(values.decode_expected).toEqual([
      { tokens: ['[CLS]', 'the', 'dog', '##s', '[PAD]', '[SEP]'], decoded: '[CLS] the dogs [PAD] [SEP]', decoded_skip_special: 'the dogs', reencoded_input_ids: [2, 2, 5, 8, 9, 0, 3, 3] },
    ]);
    expect([...outputs.keys()]).toEqual(['decode.0.reencoded_input_ids']);
  });

  it('outputOnlyFields go to the outputs and not into expected_ids (ChatGLM-style masks)', () => {
    const tok = { ...bertCaseTokenizer(BertTokenizer.fromVocab(vocab.join('\n'))), outputOnlyFields: ['attention_mask'] };
    const { values, outputs } = runTokenizerCase(tok, { class: 'X', outputs: [], inputs: { texts: ['cat'] }, expected_ids: [{}] }, {});
    expect(values.expected_ids).toEqual([{ input_ids: [2, 6, 3], token_type_ids: [0, 0, 0] }]);
    expect(outputs.get('0.attention_mask')).toEqual({ shape: [3], data: [1, 1, 1] });
  });

  it('names an expected field it cannot produce, and an unsupported kwarg', async () => {
    await expect(runBert(kase({ inputs: { texts: ['cat'] }, expected_ids: [{ offsets: [] }] }))).rejects.toThrow(/expected_ids\[0\]: field "offsets" is not one/);
    await expect(runBert(kase({ inputs: { texts: ['cat'] }, kwargs: { return_offsets_mapping: true }, expected_ids: [{}] }))).rejects.toThrow(/return_offsets_mapping/);
  });
});

const fixtures = findSharedFixtures(import.meta.url);
const familyDir = fixtures ? join(fixtures, 'tokenizers-wordpiece') : null;
const bertCases = familyDir && existsSync(familyDir)
  ? readdirSync(familyDir).filter((d) => existsSync(join(familyDir, d, 'case.json')) && caseAt(join(familyDir, d)).spec.class === 'BertTokenizer').sort()
  : [];

describe.skipIf(!familyDir)('shared/fixtures/tokenizers-wordpiece: BertTokenizer cases', () => {
  it('finds cases', () => expect(bertCases.length).toBeGreaterThan(0));
  for (const name of bertCases) {
    it(name, async () => {
      const c = caseAt(join(familyDir!, name));
      const { outputs, values } = await runBert(c);
      expect(values.expected_ids).toEqual(c.spec.expected_ids);
      const expected = await readExpectedOutputs(c.dir);
      expect([...expected.keys()].sort()).toEqual([...c.spec.outputs].sort());
      for (const output of c.spec.outputs) {
        const got = outputs.get(output);
        expect([output, got?.shape, Array.from(got?.data ?? [])]).toEqual([output, expected.get(output)!.shape, expected.get(output)!.data]);
      }
    });
  }
});

const spmDir = fixtures ? join(fixtures, 'tokenizers-sentencepiece') : null;
const spmCases = fixtureCasesOf(spmDir, 'SentencePieceProcessor');

describe.skipIf(!spmDir || !existsSync(spmDir))('shared/fixtures/tokenizers-sentencepiece: SentencePieceProcessor cases', () => {
  it('finds cases', () => expect(spmCases.length).toBeGreaterThan(0));
  for (const name of spmCases) {
    it(name, async () => {
      const { actual, expected } = await tokenizerCaseResults(readConformanceCase(join(spmDir!, name), cpu()), conformance.classes.SentencePieceProcessor);
      expect(actual).toEqual(expected);
    });
  }
});
