// RealmTokenizer through the realm family's conformance runner: the tokenizers-wordpiece cases of
// class RealmTokenizer (batch_encode_candidates), compared with case.json and expected.safetensors,
// and a synthetic case for what those do not cover (text_pair rows, a plain call).

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cpu } from '@lm/tensor-gpu';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { readExpectedOutputs, type ConformanceCase, type HostOutput } from '@lm/layers/testing';
import { conformance } from './conformance.js';

type Result = { outputs: Map<string, HostOutput>; values: Record<string, unknown> };

async function run(c: ConformanceCase): Promise<Result> {
  const result = await conformance.classes.RealmTokenizer(c);
  if (result instanceof Map) throw new Error('a tokenizer runner returns { outputs, values }');
  return result as Result;
}

const caseAt = (dir: string): ConformanceCase => ({
  dir,
  spec: JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as ConformanceCase['spec'],
  config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as ConformanceCase['config'],
  tensorInputs: new Map(),
  backend: cpu(),
});

describe('RealmTokenizer runner on synthetic cases', () => {
  const root = mkdtempSync(join(tmpdir(), 'lm-realm-tokenizer-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  // ids:            0       1       2       3       4        5      6      7      8
  writeFileSync(join(root, 'vocab.txt'), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'cat', 'sat', 'dog'].join('\n'));
  const kase = (spec: Record<string, unknown>): ConformanceCase => ({ dir: root, spec: { class: 'RealmTokenizer', outputs: [], ...spec }, config: {}, tensorInputs: new Map(), backend: cpu() });

  it('batch_encode_candidates with text_pair rows: padding forced to max_length, no special_tokens_mask', async () => {
    const { values, outputs } = await run(
      kase({ inputs: { text: [['the cat', 'dog']], text_pair: [['sat', 'the dog']] }, kwargs: { max_length: 7, padding: true, return_special_tokens_mask: true, return_tensors: 'np' }, expected_ids: {} }),
    );
    expect(values.expected_ids).toEqual({
      input_ids: [[[2, 5, 6, 3, 7, 3, 0], [2, 8, 3, 5, 8, 3, 0]]],
      token_type_ids: [[[0, 0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1, 0]]],
      attention_mask: [[[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 0]]],
    });
    expect(outputs.get('input_ids')?.shape).toEqual([1, 2, 7]);
  });

  it('plain calls run as BertTokenizer cases', async () => {
    const { values } = await run(kase({ inputs: { texts: ['The CAT'] }, expected_ids: [{ tokens: [], decoded: '' }] }));
    expect(values.expected_ids).toEqual([{ input_ids: [2, 5, 6, 3], token_type_ids: [0, 0, 0, 0], attention_mask: [1, 1, 1, 1], tokens: ['the', 'cat'], decoded: 'the cat' }]);
  });
});

const fixtures = findSharedFixtures(import.meta.url);
const familyDir = fixtures ? join(fixtures, 'tokenizers-wordpiece') : null;
const realmCases =
  familyDir && existsSync(familyDir)
    ? readdirSync(familyDir).filter((d) => existsSync(join(familyDir, d, 'case.json')) && caseAt(join(familyDir, d)).spec.class === 'RealmTokenizer').sort()
    : [];

describe.skipIf(!familyDir)('shared/fixtures/tokenizers-wordpiece: RealmTokenizer cases', () => {
  it('finds cases', () => expect(realmCases.length).toBeGreaterThan(0));
  for (const name of realmCases) {
    it(name, async () => {
      const c = caseAt(join(familyDir!, name));
      const { outputs, values } = await run(c);
      expect(values.expected_ids).toEqual(c.spec.expected_ids);
      const expected = await readExpectedOutputs(c.dir);
      for (const output of c.spec.outputs) {
        const got = outputs.get(output);
        expect([output, got?.shape, Array.from(got?.data ?? [])]).toEqual([output, expected.get(output)!.shape, expected.get(output)!.data]);
      }
    });
  }
});
