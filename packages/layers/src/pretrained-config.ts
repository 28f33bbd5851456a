// The config plumbing every model package shares. A config class declares its typed, camelCase
// fields and ONE table mapping each of them to the reference's snake_case config.json key; the two
// helpers here turn that table into the class's fromJSON / toJSON pair. Keys the table does not
// know are kept verbatim in `extra` and written back, so a config.json survives a round trip.

/** A plain JSON object as read from config.json. */
export type JsonObject = Record<string, unknown>;

/** camelCase field -> reference snake_case key, for every typed field of a config. */
export type FieldTable<T> = { readonly [K in keyof T]-?: string };

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Splits a config.json object into typed fields (by the table) and the keys the table does not know.
 * `ignore` lists keys dropped on read because the class writes them itself (e.g. `model_type`).
 */
export function readConfigJSON<T>(
  json: JsonObject,
  table: FieldTable<T>,
  ignore: readonly string[] = [],
): { fields: Partial<T>; extra: JsonObject } {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError(`config: expected a JSON object, got ${Array.isArray(json) ? 'an array' : String(json)}`);
  }
  const byKey = new Map<string, keyof T>();
  for (const field of Object.keys(table) as (keyof T)[]) byKey.set(table[field], field);
  const fields: Partial<T> = {};
  const extra: JsonObject = {};
  for (const [key, value] of Object.entries(json)) {
    const field = byKey.get(key);
    if (field !== undefined) fields[field] = clone(value) as T[keyof T];
    else if (!ignore.includes(key)) extra[key] = clone(value);
  }
  return { fields, extra };
}

/** The reverse of readConfigJSON: typed fields under their reference keys, then the kept extras. */
export function writeConfigJSON<T>(config: T, table: FieldTable<T>, extra: JsonObject, head: JsonObject = {}): JsonObject {
  const out: JsonObject = { ...head };
  for (const field of Object.keys(table) as (keyof T)[]) out[table[field]] = clone(config[field]);
  for (const [key, value] of Object.entries(extra)) if (!(key in out)) out[key] = clone(value);
  return out;
}

function clone(value: unknown): unknown {
  return value === undefined ? null : structuredClone(value);
}

/**
 * The fields of Hugging Face's `PretrainedConfig` that model code reads (token ids, head sizes,
 * output switches), with the reference's defaults. Model configs that extend `PretrainedConfig` in
 * the reference spread these into their own field table.
 */
export interface PretrainedConfigFields {
  architectures: string[] | null;
  torchDtype: string | null;
  isEncoderDecoder: boolean;
  isDecoder: boolean;
  addCrossAttention: boolean;
  tieWordEmbeddings: boolean;
  chunkSizeFeedForward: number;
  outputHiddenStates: boolean;
  outputAttentions: boolean;
  id2label: Record<string, string>;
  label2id: Record<string, number>;
  numLabels: number;
  problemType: string | null;
  padTokenId: number | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
  decoderStartTokenId: number | null;
}

export const PRETRAINED_CONFIG_FIELDS: FieldTable<PretrainedConfigFields> = {
  architectures: 'architectures',
  torchDtype: 'torch_dtype',
  isEncoderDecoder: 'is_encoder_decoder',
  isDecoder: 'is_decoder',
  addCrossAttention: 'add_cross_attention',
  tieWordEmbeddings: 'tie_word_embeddings',
  chunkSizeFeedForward: 'chunk_size_feed_forward',
  outputHiddenStates: 'output_hidden_states',
  outputAttentions: 'output_attentions',
  id2label: 'id2label',
  label2id: 'label2id',
  numLabels: 'num_labels',
  problemType: 'problem_type',
  padTokenId: 'pad_token_id',
  bosTokenId: 'bos_token_id',
  eosTokenId: 'eos_token_id',
  decoderStartTokenId: 'decoder_start_token_id',
};

/**
 * Hugging Face `PretrainedConfig` with its defaults: the base of every model config whose reference
 * extends `PretrainedConfig`. `numLabels` follows `id2label` (and `LABEL_0..LABEL_{n-1}` are built
 * when only `numLabels` is given), as in the reference. `extra` holds config.json keys the subclass's
 * field table does not know; `toJSON` writes them back.
 */
export class PretrainedConfig implements PretrainedConfigFields {
  architectures: string[] | null;
  torchDtype: string | null;
  isEncoderDecoder: boolean;
  isDecoder: boolean;
  addCrossAttention: boolean;
  tieWordEmbeddings: boolean;
  chunkSizeFeedForward: number;
  outputHiddenStates: boolean;
  outputAttentions: boolean;
  id2label: Record<string, string>;
  label2id: Record<string, number>;
  numLabels: number;
  problemType: string | null;
  padTokenId: number | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
  decoderStartTokenId: number | null;
  extra: JsonObject;

  constructor(init: Partial<PretrainedConfigFields> = {}, extra: JsonObject = {}) {
    let id2label = init.id2label;
    if (!id2label) {
      const n = init.numLabels ?? 2;
      id2label = Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i), `LABEL_${i}`]));
    }
    this.architectures = init.architectures ?? null;
    this.torchDtype = init.torchDtype ?? null;
    this.isEncoderDecoder = init.isEncoderDecoder ?? false;
    this.isDecoder = init.isDecoder ?? false;
    this.addCrossAttention = init.addCrossAttention ?? false;
    this.tieWordEmbeddings = init.tieWordEmbeddings ?? true;
    this.chunkSizeFeedForward = init.chunkSizeFeedForward ?? 0;
    this.outputHiddenStates = init.outputHiddenStates ?? false;
    this.outputAttentions = init.outputAttentions ?? false;
    this.id2label = id2label;
    this.label2id =
      init.label2id ?? Object.fromEntries(Object.entries(id2label).map(([i, label]) => [label, Number(i)]));
    this.numLabels = Object.keys(id2label).length;
    this.problemType = init.problemType ?? null;
    this.padTokenId = init.padTokenId ?? null;
    this.bosTokenId = init.bosTokenId ?? null;
    this.eosTokenId = init.eosTokenId ?? null;
    this.decoderStartTokenId = init.decoderStartTokenId ?? null;
    this.extra = extra;
  }
}
