// Conformance: every case folder under shared/fixtures/tokenizers-wordpiece (outputs of the slow
// Python BertTokenizer / RealmTokenizer). Each case: vocab.txt, config.json (init kwargs), case.json
// (inputs, call kwargs, expected_ids, `outputs` naming the arrays of expected.safetensors). The
// layout of expected_ids follows kwargs.mode; the runner builds ours in the same layout and compares
// the whole structure, then every named array against expected.safetensors (I32). Exact match.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BertTokenizer } from './bert-tokenizer.js';
import type { BatchEncoding, EncodeOptions, Encoding, TextInput } from './bert-tokenizer.js';
import { RealmTokenizer } from './realm-tokenizer.js';
import { bertTokenizerConfigFromJSON } from './tokenizer-config.js';

const FIXTURE_SET = 'tokenizers-wordpiece';

function findFixtures(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'shared', 'fixtures', FIXTURE_SET);
    if (existsSync(candidate)) return candidate;
    const parent = resolve(dir, '..');
    if (parent === dir) return null;
    dir = parent;
  }
}

type Json = Record<string, unknown>;

/** snake_case call kwargs -> EncodeOptions; an unknown kwarg fails the case rather than being ignored. */
function encodeOptions(kwargs: Json): EncodeOptions & { textPair?: string[][] } {
  const table: Record<string, string> = {
    add_special_tokens: 'addSpecialTokens',
    padding: 'padding',
    truncation: 'truncation',
    max_length: 'maxLength',
    pad_to_multiple_of: 'padToMultipleOf',
    return_token_type_ids: 'returnTokenTypeIds',
    return_attention_mask: 'returnAttentionMask',
    return_special_tokens_mask: 'returnSpecialTokensMask',
    return_length: 'returnLength',
    text_pair: 'textPair',
  };
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(kwargs)) {
    if (key === 'mode') continue;
    if (!(key in table)) throw new Error(`case kwargs: no mapping for ${key}`);
    out[table[key]] = value;
  }
  return out;
}

const SNAKE: Record<string, string> = {
  inputIds: 'input_ids',
  tokenTypeIds: 'token_type_ids',
  attentionMask: 'attention_mask',
  specialTokensMask: 'special_tokens_mask',
};

function snake(encoding: Encoding | BatchEncoding | object): Json {
  return Object.fromEntries(Object.entries(encoding).map(([k, v]) => [SNAKE[k] ?? k, v]));
}

/** Our result for one case, in the layout of its expected_ids. */
function run(tok: BertTokenizer, kase: Json): unknown {
  const inputs = kase.inputs as Json;
  const kwargs = (kase.kwargs ?? {}) as Json;
  const mode = String(kwargs.mode ?? '');
  const options = encodeOptions(kwargs);
  const expected = kase.expected_ids;

  if (mode.includes('batch_encode_candidates')) {
    if (!(tok instanceof RealmTokenizer)) throw new Error('batch_encode_candidates needs class RealmTokenizer');
    return snake(tok.batchEncodeCandidates(inputs.text as string[][], options));
  }
  const items: TextInput[] =
    'pairs' in inputs
      ? (inputs.pairs as [string, string][])
      : ((inputs.texts ?? inputs.text) as string[]);
  const single = (item: TextInput, opts: EncodeOptions) =>
    typeof item === 'string' ? tok.encode(item, null, opts) : tok.encode(item[0], item[1], opts);
  const tokens = (item: TextInput) => (typeof item === 'string' ? tok.tokenize(item) : item.map((text) => tok.tokenize(text)));

  if (Array.isArray(expected)) {
    // One call per item; single texts also carry tokenize() and decode(skip_special_tokens=True).
    return items.map((item, i) => {
      const out: Json = snake(single(item, options));
      const want = expected[i] as Json;
      if ('tokens' in want) out.tokens = tokens(item);
      if ('decoded' in want) out.decoded = tok.decode(out.input_ids as number[], { skipSpecialTokens: true });
      return out;
    });
  }
  const exp = expected as Json;
  if ('batch' in exp) {
    // One batched call, plus per-item calls with the same kwargs minus padding.
    const out: Json = { batch: snake(tok.encodeBatch(items, options)) };
    const { padding: _padding, ...unpadded } = options;
    for (const key of Object.keys(exp)) {
      if (key === 'batch') continue;
      if (key.startsWith('per_')) out[key] = items.map((item) => snake(single(item, unpadded)));
      else if (key === 'tokens') out[key] = items.map(tokens);
      else if (key === 'decoded') {
        const rows = (out.batch as Json).input_ids as number[][];
        out[key] = rows.map((ids) => tok.decode(ids, { skipSpecialTokens: true }));
      } else throw new Error(`expected_ids.${key}: layout not known to this runner`);
    }
    return out;
  }
  return snake(tok.encodeBatch(items, options));
}

function resolvePath(root: unknown, name: string): unknown {
  let node = root;
  for (const part of name.split('.')) node = (node as Record<string, unknown>)?.[part];
  return node;
}

/** name -> {shape, data} from a safetensors file (I32 only, which is what these fixtures hold). */
function readSafetensors(path: string): Map<string, { shape: number[]; data: number[] }> {
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + headerLength;
  const out = new Map<string, { shape: number[]; data: number[] }>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (info.dtype !== 'I32') throw new Error(`${path}: ${name} has dtype ${info.dtype}, expected I32`);
    const [start, end] = info.data_offsets;
    const data: number[] = [];
    for (let at = base + start; at < base + end; at += 4) data.push(bytes.readInt32LE(at));
    out.set(name, { shape: info.shape, data });
  }
  return out;
}

function shapeOf(value: unknown): number[] {
  return Array.isArray(value) ? [value.length, ...(value.length > 0 ? shapeOf(value[0]) : [])] : [];
}

const fixtures = findFixtures();
const cases = fixtures
  ? readdirSync(fixtures, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && existsSync(join(fixtures, entry.name, 'case.json')))
      .map((entry) => entry.name)
      .sort()
  : [];

describe(`fixtures: ${FIXTURE_SET}`, () => {
  it('finds the fixture folder and its cases', () => {
    if (fixtures === null) {
      if (process.env.CI) throw new Error(`shared/fixtures/${FIXTURE_SET} not found above ${import.meta.url}`);
      console.warn(`skipping: shared/fixtures/${FIXTURE_SET} not found`);
      return;
    }
    expect(cases.length).toBeGreaterThan(0);
  });

  for (const name of cases) {
    it(name, () => {
      const dir = join(fixtures!, name);
      const kase = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as Json;
      const configJson = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Json;
      const initKwargs = { ...configJson, ...((kase.init_kwargs ?? {}) as Json) };
      const vocab = readFileSync(join(dir, 'vocab.txt'), 'utf8');
      const cls = String(kase.class ?? initKwargs.tokenizer_class ?? 'BertTokenizer');
      const Class = { BertTokenizer, RealmTokenizer }[cls];
      if (!Class) throw new Error(`${name}: unknown class ${cls}`);
      const tok = Class.fromVocab(vocab, bertTokenizerConfigFromJSON(initKwargs));

      const actual = run(tok, kase);
      expect(actual).toEqual(kase.expected_ids);

      const tensors = readSafetensors(join(dir, 'expected.safetensors'));
      for (const output of (kase.outputs ?? []) as string[]) {
        const want = tensors.get(output);
        expect(want, `${output} in expected.safetensors`).toBeDefined();
        const got = resolvePath(actual, output);
        expect(shapeOf(got), `${output} shape`).toEqual(want!.shape);
        expect((got as unknown[]).flat(Infinity), output).toEqual(want!.data);
      }
    });
  }
});
