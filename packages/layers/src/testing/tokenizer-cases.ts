// Tokenizer cases for the conformance runner (../shared/fixtures/tokenizers-*: read the family's
// CASES.md). A tokenizer case calls the reference tokenizer on `inputs` with the call `kwargs` and
// stores what came back twice: as JSON in case.json (`expected_ids`: ids, tokens, decoded strings;
// `decode_expected` for `inputs.decode_ids`) and as id arrays in expected.safetensors. A class runner
// rebuilds both from our tokenizer: `values` in the layout of those fields, `outputs` = every numeric
// array of them under its dotted path (`0.input_ids`, `batch.attention_mask`, `decode.1.reencoded_input_ids`).
//
// The layout follows the fixture format, not a case: expected_ids is a list (one call per input
// item), an object with `batch` (one batched call, plus per-item calls without padding), or an
// object of encodings (one call on the whole input). Which derived fields an item carries (`tokens`,
// `decoded`, ...) is read from expected_ids; what each means is the tokenizer's (see CASES.md), so
// the field builders are passed in by the class runner.

import { BertTokenizer } from '../tokenizers/bert-tokenizer.js';
import type { AddedToken, EncodeOptions, TextInput } from '../tokenizers/bert-tokenizer.js';
import type { BertTokenizerConfig } from '../tokenizers/tokenizer-config.js';
import { readTokenizerFiles } from '../tokenizers/pretrained-files.js';
import { SentencePieceProcessor } from '../tokenizers/sentencepiece.js';
import { openCheckpoint } from '@lm/dist-ckpt';
import type { ConformanceCase, ConformanceFamily, HostOutput } from './conformance.js';

type Json = Record<string, unknown>;

export class TokenizerCaseError extends Error {
  override name = 'TokenizerCaseError';
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Shape and row-major values of a rectangular nested list of numbers; null when `value` is not one. */
export function hostOutput(value: unknown): HostOutput | null {
  if (typeof value === 'number') return { shape: [], data: [value] };
  if (!Array.isArray(value)) return null;
  const shape: number[] = [];
  for (let level: unknown = value; Array.isArray(level); level = level[0]) {
    shape.push(level.length);
    if (level.length === 0) break;
  }
  const data: number[] = [];
  const walk = (v: unknown, depth: number): boolean => {
    if (depth === shape.length) {
      if (typeof v !== 'number') return false;
      data.push(v);
      return true;
    }
    return Array.isArray(v) && v.length === shape[depth] && v.every((x) => walk(x, depth + 1));
  };
  return walk(value, 0) ? { shape, data } : null;
}

/**
 * Every rectangular numeric array (or number: `0.length`) in a JSON tree under its dotted path
 * (`0.input_ids`, `batch.attention_mask`): how the fixtures name the arrays of expected_ids in expected.safetensors.
 * Strings, token lists and ragged lists are left out (ragged lists are searched further).
 */
export function numericOutputs(tree: unknown, prefix = '', out = new Map<string, HostOutput>()): Map<string, HostOutput> {
  // An empty list is an empty array (shape [0]: an empty text's ids); an empty token list becomes an
  // extra output nobody asks for, which the runner ignores.
  const array = Array.isArray(tree) || typeof tree === 'number' ? hostOutput(tree) : null;
  if (array && prefix !== '') {
    out.set(prefix.slice(0, -1), array);
    return out;
  }
  if (Array.isArray(tree)) tree.forEach((v, i) => numericOutputs(v, `${prefix}${i}.`, out));
  else if (isObject(tree)) for (const [k, v] of Object.entries(tree)) numericOutputs(v, `${prefix}${k}.`, out);
  return out;
}

/** Every array of a case's expected.safetensors as host values (for package tests of tokenizer runners). */
export async function readExpectedOutputs(dir: string): Promise<Map<string, HostOutput>> {
  const ckpt = await openCheckpoint(`${dir}/expected.safetensors`);
  try {
    const out = new Map<string, HostOutput>();
    for (const { name } of ckpt.tensors) {
      const t = await ckpt.readTensor(name, { as: 'host' });
      out.set(name, { shape: t.shape, data: Array.from(t.data as ArrayLike<number>, Number) });
    }
    return out;
  } finally {
    await ckpt.close();
  }
}

/** Call kwargs that describe the case in words (`mode`, `decode_mode`) rather than being arguments. */
const DESCRIPTIVE_KWARGS = new Set(['mode', 'decode_mode']);

/**
 * snake_case call kwargs -> camelCase options by `table`; a kwarg the table lacks fails the case
 * (naming it) rather than being ignored, so that a case never passes on defaults it did not ask for.
 */
export function callOptions(kwargs: Json | undefined, table: Readonly<Record<string, string>>, what: string): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(kwargs ?? {})) {
    if (DESCRIPTIVE_KWARGS.has(key)) continue;
    if (!(key in table)) {
      throw new TokenizerCaseError(`${what}: kwarg ${key}=${JSON.stringify(value)} is not supported (supported: ${Object.keys(table).join(', ')})`);
    }
    out[table[key]] = value;
  }
  return out;
}

/** The encoding fields under the reference's names (`inputIds` -> `input_ids`). */
export function snakeKeys(encoding: object): Json {
  return Object.fromEntries(Object.entries(encoding).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v]));
}

/** The input items of a case: `pairs` ([a, b] lists), or `texts` / `text` (with `text_pair` zipped in when given). */
export function caseItems(inputs: Json | undefined): TextInput[] {
  const bad = (msg: string) => new TokenizerCaseError(`case.json inputs: ${msg}`);
  if (!inputs) throw bad('missing');
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
  if ('pairs' in inputs) {
    const pairs = inputs.pairs;
    if (!Array.isArray(pairs) || !pairs.every((p) => isStrings(p) && p.length === 2)) throw bad('"pairs" must be a list of [text, text_pair]');
    return pairs as [string, string][];
  }
  const texts = inputs.texts ?? inputs.text;
  if (!isStrings(texts)) throw bad('expected "pairs", or "texts" / "text" as a list of strings');
  const second = inputs.text_pair;
  if (second === undefined) return texts;
  if (!isStrings(second) || second.length !== texts.length) throw bad(`"text_pair" must be a list of ${texts.length} strings`);
  return texts.map((t, i) => [t, second[i]] as const);
}

/** What a tokenizer case needs from a tokenizer class; every call takes the class's own options. */
export interface CaseTokenizer<Options> {
  /** `tokenizer(text, text_pair, **kwargs)` for one item, fields under the reference's names. */
  encode(item: TextInput, options: Options): Json;
  /** `tokenizer(batch, **kwargs)`, fields under the reference's names, one row per item. */
  encodeBatch(items: readonly TextInput[], options: Options): Json;
  /** `options` without padding (the per-item encodings of a batched case are unpadded). */
  withoutPadding(options: Options): Options;
  /** Derived per-item fields of expected_ids items (`tokens`, `decoded`, ...), by name. */
  itemFields: Record<string, (item: TextInput, encoding: Json) => unknown>;
  /** Derived fields of a batched case (`tokens`, `batch_decoded`, ...), by name. */
  batchFields: Record<string, (items: readonly TextInput[], batch: Json) => unknown>;
  /** Fields of `decode_expected` items, for each list of `inputs.decode_ids`. */
  decodeFields: Record<string, (ids: number[]) => unknown>;
  /**
   * Encoding fields the fixtures store only in expected.safetensors, not in expected_ids (ChatGLM's
   * boolean `attention_mask`): returned as outputs, left out of the JSON values.
   */
  outputOnlyFields?: readonly string[];
}

/** `tree` without the keys `keys` in any of its objects (a copy). */
function withoutKeys(tree: unknown, keys: ReadonlySet<string>): unknown {
  if (Array.isArray(tree)) return tree.map((v) => withoutKeys(v, keys));
  if (!isObject(tree)) return tree;
  return Object.fromEntries(Object.entries(tree).filter(([k]) => !keys.has(k)).map(([k, v]) => [k, withoutKeys(v, keys)]));
}

function derived<F extends (...args: never[]) => unknown>(fields: Record<string, F>, key: string, where: string): F {
  const f = Object.hasOwn(fields, key) ? fields[key] : undefined;
  if (!f) throw new TokenizerCaseError(`${where}: field "${key}" is not one this tokenizer's case runner produces (it knows ${Object.keys(fields).join(', ') || 'none'})`);
  return f;
}

/**
 * Runs a tokenizer case: `values.expected_ids` (and `values.decode_expected`) in the layout of the
 * case's fields, `outputs` every numeric array of them (decode arrays prefixed `decode.`).
 */
export function runTokenizerCase<Options>(tok: CaseTokenizer<Options>, spec: ConformanceCase['spec'], options: Options): { outputs: Map<string, HostOutput>; values: Json } {
  const inputs = spec.inputs as Json | undefined;
  const expected = spec.expected_ids;
  const values: Json = {};
  if (expected !== undefined) {
    const items = caseItems(inputs);
    if (Array.isArray(expected)) {
      // One call per item.
      values.expected_ids = items.map((item, i) => {
        const encoding = tok.encode(item, options);
        const want = expected[i];
        if (isObject(want)) {
          for (const key of Object.keys(want)) {
            if (!(key in encoding)) encoding[key] = derived(tok.itemFields, key, `expected_ids[${i}]`)(item, encoding);
          }
        }
        return encoding;
      });
    } else if (isObject(expected) && 'batch' in expected) {
      // One batched call, plus what the case records per item.
      const batch = tok.encodeBatch(items, options);
      const out: Json = { batch };
      for (const key of Object.keys(expected)) {
        if (key === 'batch') continue;
        if (/^per_.*_unpadded$/.test(key)) out[key] = items.map((item) => tok.encode(item, tok.withoutPadding(options)));
        else out[key] = derived(tok.batchFields, key, 'expected_ids')(items, batch);
      }
      values.expected_ids = out;
    } else if (isObject(expected)) {
      values.expected_ids = tok.encodeBatch(items, options);
    } else {
      throw new TokenizerCaseError('case.json expected_ids: expected a list (one call per item) or an object (a batched call)');
    }
  }
  if (spec.decode_expected !== undefined) {
    const lists = inputs?.decode_ids;
    if (!Array.isArray(lists) || !lists.every((l) => Array.isArray(l) && l.every(Number.isInteger))) {
      throw new TokenizerCaseError('case.json decode_expected needs inputs.decode_ids: a list of id lists');
    }
    const want = Array.isArray(spec.decode_expected) ? spec.decode_expected : [];
    values.decode_expected = (lists as number[][]).map((ids, j) => {
      const keys = isObject(want[j]) ? Object.keys(want[j] as Json) : Object.keys(tok.decodeFields);
      return Object.fromEntries(keys.map((key) => [key, derived(tok.decodeFields, key, `decode_expected[${j}]`)(ids)]));
    });
  }
  if (Object.keys(values).length === 0) throw new TokenizerCaseError('case.json has neither expected_ids nor decode_expected');
  const outputs = numericOutputs(values.expected_ids ?? []);
  numericOutputs(values.decode_expected ?? [], 'decode.', outputs);
  const outputOnly = new Set(tok.outputOnlyFields ?? []);
  if (outputOnly.size > 0 && values.expected_ids !== undefined) values.expected_ids = withoutKeys(values.expected_ids, outputOnly);
  return { outputs, values };
}

// ---- WordPiece (BertTokenizer and the tokenizers built on it) ------------------------------------

/** `tokenizer(...)` kwargs of the slow BertTokenizer -> EncodeOptions. */
export const BERT_CALL_KWARGS: Readonly<Record<string, string>> = {
  add_special_tokens: 'addSpecialTokens',
  padding: 'padding',
  truncation: 'truncation',
  max_length: 'maxLength',
  pad_to_multiple_of: 'padToMultipleOf',
  return_token_type_ids: 'returnTokenTypeIds',
  return_attention_mask: 'returnAttentionMask',
  return_special_tokens_mask: 'returnSpecialTokensMask',
  return_length: 'returnLength',
};

/** A BertTokenizer class or subclass (RealmTokenizer), with its inherited static loaders. */
export type WordPieceClass<T extends BertTokenizer> = (new (vocab: ReadonlyMap<string, number>, config?: BertTokenizerConfig, added?: readonly AddedToken[]) => T) &
  Pick<typeof BertTokenizer, 'fromPretrained'>;

/**
 * A WordPiece tokenizer for a case folder: its vocab.txt (or tokenizer.json), with the init
 * arguments of tokenizer_config.json / special_tokens_map.json overlaid by config.json and then by
 * case.json `init_kwargs` (explicit arguments win, as in `from_pretrained(folder, **init_kwargs)`).
 */
export async function wordPieceTokenizerForCase<T extends BertTokenizer>(Class: WordPieceClass<T>, c: ConformanceCase): Promise<T> {
  const files = await readTokenizerFiles(c.dir);
  if (files.vocabTxt === undefined && files.tokenizerJson === undefined) {
    throw new TokenizerCaseError(`${Class.name}: neither vocab.txt nor tokenizer.json in ${c.dir}`);
  }
  const init = { ...files.tokenizerConfig, ...files.specialTokensMap, ...c.config, ...(c.spec.init_kwargs ?? {}) };
  const source: Record<string, string | Record<string, unknown>> = { 'tokenizer_config.json': init };
  if (files.vocabTxt !== undefined) source['vocab.txt'] = files.vocabTxt;
  if (files.tokenizerJson !== undefined) source['tokenizer.json'] = files.tokenizerJson;
  return Class.fromPretrained(source) as Promise<T>;
}

/** What the slow-tokenizer case calls need (BertTokenizer, T5Tokenizer, ChatGLMTokenizer). */
export interface SlowCaseTokenizerLike {
  tokenize(text: string): string[];
  encode(text: string, pair: string | null, options: EncodeOptions): object;
  encodeBatch(items: readonly TextInput[], options: EncodeOptions): object;
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  convertIdsToTokens(ids: number[]): string[];
}

/**
 * The case calls of a slow Hugging Face tokenizer. Derived fields, as the tokenizer CASES.md files
 * define them: `tokens` = tokenize(text) (a pair: both lists), `decoded` = decode(input_ids,
 * skip_special_tokens=True), `decoded_with_special` = decode(input_ids); for `decode_ids`: `ids` as
 * given, `tokens` = convert_ids_to_tokens, `decoded` / `decoded_skip_special` = decode without / with
 * skip_special_tokens, `reencoded_input_ids` = tokenizer(decoded).input_ids.
 */
export function slowCaseTokenizer(tok: SlowCaseTokenizerLike): CaseTokenizer<EncodeOptions> {
  const tokens = (item: TextInput) => (typeof item === 'string' ? tok.tokenize(item) : item.map((text) => tok.tokenize(text)));
  const decodeSkipping = (ids: unknown) => tok.decode(ids as number[], { skipSpecialTokens: true });
  return {
    encode: (item, options) => snakeKeys(typeof item === 'string' ? tok.encode(item, null, options) : tok.encode(item[0], item[1], options)),
    encodeBatch: (items, options) => snakeKeys(tok.encodeBatch(items, options)),
    withoutPadding: ({ padding: _padding, ...rest }) => rest,
    itemFields: {
      tokens: (item) => tokens(item),
      decoded: (_item, encoding) => decodeSkipping(encoding.input_ids),
      decoded_with_special: (_item, encoding) => tok.decode(encoding.input_ids as number[]),
    },
    batchFields: {
      tokens: (items) => items.map(tokens),
      decoded: (_items, batch) => (batch.input_ids as number[][]).map(decodeSkipping),
      batch_decoded: (_items, batch) => (batch.input_ids as number[][]).map(decodeSkipping),
    },
    decodeFields: {
      ids: (ids) => ids,
      tokens: (ids) => tok.convertIdsToTokens(ids),
      decoded: (ids) => tok.decode(ids),
      decoded_skip_special: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
      reencoded_input_ids: (ids) => (tok.encode(tok.decode(ids), null, {}) as { inputIds: number[] }).inputIds,
    },
  };
}

/** The slow BertTokenizer's case calls (`slowCaseTokenizer`). */
export function bertCaseTokenizer(tok: BertTokenizer): CaseTokenizer<EncodeOptions> {
  return slowCaseTokenizer(tok);
}

/** `EncodeOptions` from a case's call kwargs (an unsupported kwarg fails the case, naming it). */
export function bertCallOptions(spec: ConformanceCase['spec'], cls: string): EncodeOptions {
  return callOptions(spec.kwargs, BERT_CALL_KWARGS, cls) as EncodeOptions;
}

/** The conformance runner of any BertTokenizer subclass whose cases use only the calls above. */
export function wordPieceCaseRunner<T extends BertTokenizer>(Class: WordPieceClass<T>) {
  return async (c: ConformanceCase) => {
    const tok = await wordPieceTokenizerForCase(Class, c);
    return runTokenizerCase(bertCaseTokenizer(tok), c.spec, bertCallOptions(c.spec, Class.name));
  };
}

// ---- SentencePiece (SentencePieceProcessor; the family tokenizers built on it) -----------------

/**
 * A SentencePiece-based tokenizer's files in a case folder: the model file (config.json `vocab_file`
 * / `model_file`, else the first of `defaultFiles` present) as bytes, and the init arguments of
 * tokenizer_config.json / special_tokens_map.json overlaid by config.json and case.json `init_kwargs`.
 */
export async function sentencePieceCaseFiles(c: ConformanceCase, defaultFiles: readonly string[]): Promise<{ name: string; bytes: Uint8Array; init: Json }> {
  const init: Json = { ...c.config, ...(c.spec.init_kwargs ?? {}) };
  const named = [init.vocab_file, init.model_file].find((v): v is string => typeof v === 'string');
  const files = await readTokenizerFiles(c.dir, { modelFiles: named ? [named] : defaultFiles });
  if (!files.model) throw new TokenizerCaseError(`no SentencePiece model (${named ?? defaultFiles.join(' / ')}) in ${c.dir}`);
  return { name: files.model.name, bytes: files.model.bytes, init: { ...files.tokenizerConfig, ...files.specialTokensMap, ...init } };
}

/**
 * `sentencepiece.SentencePieceProcessor(model_file=...)` cases: `ids` = sp.encode(text), `pieces` =
 * sp.encode(text, out_type=str), `decoded` = sp.decode(ids); for `decode_ids`: `ids` as given,
 * `pieces` = id_to_piece, `decoded` = sp.decode(ids).
 */
export async function runSentencePieceProcessorCase(c: ConformanceCase): Promise<{ outputs: Map<string, HostOutput>; values: Json }> {
  const { name, bytes } = await sentencePieceCaseFiles(c, ['tokenizer.model', 'spiece.model']);
  const sp = new SentencePieceProcessor(bytes, { fileName: name });
  callOptions(c.spec.kwargs, {}, 'SentencePieceProcessor');
  const tok: CaseTokenizer<null> = {
    encode: (item) => {
      if (typeof item !== 'string') throw new TokenizerCaseError('SentencePieceProcessor cases take single texts, not pairs');
      return { ids: sp.encodeAsIds(item) };
    },
    encodeBatch: () => {
      throw new TokenizerCaseError('SentencePieceProcessor has no batched call');
    },
    withoutPadding: () => null,
    itemFields: {
      pieces: (item) => sp.encodeAsPieces(item as string),
      decoded: (_item, encoding) => sp.decodeIds(encoding.ids as number[]),
    },
    batchFields: {},
    decodeFields: {
      ids: (ids) => ids,
      pieces: (ids) => ids.map((id) => sp.idToPiece(id)),
      decoded: (ids) => sp.decodeIds(ids),
    },
  };
  return runTokenizerCase(tok, c.spec, null);
}

/**
 * The shared tokenizers' classes for the conformance runner (`@lm/layers/testing` is in its package
 * list). Family tokenizers register with their family (RealmTokenizer: `@lm/realm`).
 */
export const conformance: ConformanceFamily = {
  family: 'layers',
  classes: {
    BertTokenizer: wordPieceCaseRunner(BertTokenizer),
    SentencePieceProcessor: runSentencePieceProcessorCase,
  },
};
