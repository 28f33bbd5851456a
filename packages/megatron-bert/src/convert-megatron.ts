// Converting an original Megatron-LM BERT checkpoint into the Hugging Face MegatronBERT layout, without
// Python. Mirrors transformers `src/transformers/models/megatron_bert/convert_megatron_bert_checkpoint.py`
// (`convert_megatron_checkpoint` and `main`): the same walk over the saved dicts, name mapping, split of
// the fused query_key_value projection (with `fix_query_key_value_ordering` for checkpoint versions 1.0
// and >= 2.0) and config (a given config file, else MegatronBertConfig() with the vocab size of the LM
// head; the training `args` override both when the checkpoint stores them).
//
// Accepted inputs: the NGC download (`megatron_bert_345m_v0_1_{cased,uncased}.zip`, which holds
// `release/mp_rank_00/model_optim_rng.pt`), or the `.pt` itself (torch.save zip or legacy container), as
// a path (Node), a Blob/File, bytes or a ByteSource. @lm/dist-ckpt's restricted unpickler rebuilds the
// saved dict as plain data (`args` as a record of its fields); tensors are read one at a time by their
// dotted path (`model.language_model.embedding.word_embeddings.weight`).

import {
  blobSource,
  bytesSource,
  openCheckpoint,
  openFileSource,
  PyDict,
  PyObject,
  TorchCheckpoint,
  isTorchTensorRef,
  writeSafetensors,
  type ByteSource,
  type PyValue,
} from '@lm/dist-ckpt';
import { MegatronBertConfig } from './config.js';

/** Where the Megatron checkpoint inside an NGC zip lives (`openCheckpoint` opens a zip's one `.pt` member). */
export const MEGATRON_CHECKPOINT_ENTRY = 'release/mp_rank_00/model_optim_rng.pt';

export class MegatronConversionError extends Error {
  override name = 'MegatronConversionError';
}

export interface ConvertMegatronOptions {
  /** The model's config (the reference's `--config_file`); default: MegatronBertConfig() with the vocab size of the LM head. */
  config?: MegatronBertConfig;
  /** Overrides the `checkpoint_version` stored in the file (0 when the file has none). */
  checkpointVersion?: number;
}

/** One converted tensor, ready for `writeSafetensors`: its stored dtype (as the reference keeps it), values as float32 (exact). */
export interface ConvertedTensor {
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  data: Float32Array;
}

export interface ConvertedMegatronCheckpoint {
  config: MegatronBertConfig;
  /** Hugging Face MegatronBertForPreTraining state-dict names (tied decoder included, as the reference writes it). */
  stateDict: Map<string, ConvertedTensor>;
  checkpointVersion: number;
}

// ---- opening the file --------------------------------------------------------------------------------

async function toSource(input: string | Blob | ArrayBuffer | ArrayBufferView | ByteSource): Promise<ByteSource> {
  if (typeof input === 'string') return openFileSource(input);
  if (input instanceof ArrayBuffer || ArrayBuffer.isView(input)) return bytesSource(input, 'checkpoint');
  if (typeof (input as ByteSource).read === 'function') return input as ByteSource;
  return blobSource(input as Blob, (input as Blob & { name?: string }).name ?? 'checkpoint');
}

// ---- reading the saved object -----------------------------------------------------------------------

/** The saved dicts, walked by key as the reference indexes them; errors name the dotted path. */
class SavedDict {
  constructor(
    private readonly ckpt: TorchCheckpoint,
    readonly dict: PyDict,
    readonly path: string,
  ) {}

  has(key: string): boolean {
    return this.dict.map.has(key);
  }

  private at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  value(key: string): PyValue {
    if (!this.dict.map.has(key)) {
      throw new MegatronConversionError(`${this.ckpt.name}: no '${this.at(key)}' in the checkpoint (is this a Megatron-LM BERT checkpoint?)`);
    }
    return this.dict.map.get(key) as PyValue;
  }

  child(key: string): SavedDict {
    const v = this.value(key);
    if (!(v instanceof PyDict)) throw new MegatronConversionError(`${this.ckpt.name}: '${this.at(key)}' is not a dict`);
    return new SavedDict(this.ckpt, v, this.at(key));
  }

  /** The tensor under `key`, as stored (F32, F16 or BF16 values in a Float32Array, exact). */
  async tensor(key: string): Promise<ConvertedTensor> {
    if (!isTorchTensorRef(this.value(key))) throw new MegatronConversionError(`${this.ckpt.name}: '${this.at(key)}' is not a tensor`);
    const name = this.at(key);
    const { dtype } = this.ckpt.info(name);
    if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
      throw new MegatronConversionError(`${this.ckpt.name}: '${name}' has dtype ${dtype}; Megatron-LM weights are F32, F16 or BF16`);
    }
    const t = await this.ckpt.readTensor(name, { as: 'float32' });
    return { dtype, shape: t.shape, data: t.data };
  }
}

/** `checkpoint_version` (0 when absent, as Megatron-LM and the reference read it). */
function checkpointVersionOf(saved: SavedDict, file: string): number {
  if (!saved.has('checkpoint_version')) return 0;
  const v = saved.value('checkpoint_version');
  if (typeof v !== 'number') throw new MegatronConversionError(`${file}: checkpoint_version is ${String(v)}, not a number`);
  return v;
}

/** The training arguments (`args`, an argparse.Namespace) as a record of its fields, or null when absent. */
function argsOf(saved: SavedDict, file: string): Map<string, PyValue> | null {
  const args = saved.has('args') ? saved.value('args') : null;
  if (args === null) return null;
  if (!(args instanceof PyObject)) throw new MegatronConversionError(`${file}: 'args' is not an argparse.Namespace`);
  return args.attrs;
}

// ---- the config ----------------------------------------------------------------------------------------

/**
 * The config the reference converter writes: the given one (its `--config_file`) as is, else
 * MegatronBertConfig() defaults (the NGC 345M model) with `vocab_size` = numel of the LM head bias; then,
 * when the checkpoint stores its training `args`, their sizes win.
 */
export function megatronBertConfigFrom(saved: { lmHeadBiasNumel: number; args: ReadonlyMap<string, PyValue> | null }, given?: MegatronBertConfig, file = 'checkpoint'): MegatronBertConfig {
  const config = given ? MegatronBertConfig.fromJSON(given.toJSON()) : new MegatronBertConfig({ vocabSize: saved.lmHeadBiasNumel });
  const { args } = saved;
  if (!args) return config;
  const field = (key: string): PyValue => {
    if (!args.has(key)) throw new MegatronConversionError(`${file}: args has no '${key}' (Megatron-LM saves it with every BERT checkpoint)`);
    return args.get(key) as PyValue;
  };
  const int = (key: string): number => {
    const v = field(key);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new MegatronConversionError(`${file}: args.${key} is ${String(v)}, not a positive integer`);
    return v;
  };
  const tokenizerType = field('tokenizer_type');
  if (tokenizerType !== null && typeof tokenizerType !== 'string') throw new MegatronConversionError(`${file}: args.tokenizer_type is not a string`);
  config.extra.tokenizer_type = tokenizerType;
  config.vocabSize = int('padded_vocab_size');
  config.maxPositionEmbeddings = int('max_position_embeddings');
  config.hiddenSize = int('hidden_size');
  config.numHiddenLayers = int('num_layers');
  config.numAttentionHeads = int('num_attention_heads');
  // Megatron-LM added ffn_hidden_size in 2021; before, the MLP was always 4 * hidden.
  config.intermediateSize = args.has('ffn_hidden_size') ? int('ffn_hidden_size') : 4 * config.hiddenSize;
  return config;
}

// ---- the conversion ---------------------------------------------------------------------------------

/**
 * transformers `fix_query_key_value_ordering`: rows of the fused [3 * hidden, ...] projection reordered
 * to [3 (q, k, v), heads, headDim]. Version 1.0 stores [heads, headDim, 3]; versions >= 2.0 store
 * [heads, 3, headDim]; other versions (0) are already in order and come back as they are.
 */
export function fixQueryKeyValueOrdering(param: Float32Array, rowLength: number, checkpointVersion: number, numSplits: number, numHeads: number, headDim: number): Float32Array {
  if (checkpointVersion !== 1.0 && checkpointVersion < 2.0) return param;
  const sourceRow = (split: number, head: number, d: number): number =>
    checkpointVersion === 1.0 ? (head * headDim + d) * numSplits + split : (head * numSplits + split) * headDim + d;
  const out = new Float32Array(param.length);
  for (let s = 0; s < numSplits; s++) {
    for (let h = 0; h < numHeads; h++) {
      for (let d = 0; d < headDim; d++) {
        const from = sourceRow(s, h, d) * rowLength;
        out.set(param.subarray(from, from + rowLength), ((s * numHeads + h) * headDim + d) * rowLength);
      }
    }
  }
  return out;
}

/** Megatron op names -> Hugging Face module paths inside `bert.encoder.layer.<i>`. */
const MEGATRON_TO_TRANSFORMERS: Readonly<Record<string, string>> = {
  'attention.dense': 'attention.output.dense',
  'self_attention.dense': 'attention.output.dense',
  'mlp.dense_h_to_4h': 'intermediate.dense',
  'mlp.dense_4h_to_h': 'output.dense',
};

/** The reference's layer-name pattern, matched at the start of a key as Python's `re.match` does. */
const LAYER_RE = /^layers\.(\d+)\.([a-z0-9_.]+)\.([a-z]+)/;

/**
 * Converts an opened Megatron-LM checkpoint (`{ model: { language_model, lm_head, binary_head }, ... }`)
 * into `MegatronBertForPreTraining` weights, walking its dicts as the reference does.
 */
export async function convertMegatronState(ckpt: TorchCheckpoint, options: { config: MegatronBertConfig; checkpointVersion: number; configOrigin?: string }): Promise<Map<string, ConvertedTensor>> {
  const { config, checkpointVersion, configOrigin = 'the config' } = options;
  const file = ckpt.name;
  if (!(ckpt.root instanceof PyDict)) throw new MegatronConversionError(`${file}: the saved object is not a dict`);
  const out = new Map<string, ConvertedTensor>();
  const model = new SavedDict(ckpt, ckpt.root, '').child('model');
  const lm = model.child('language_model');
  const embeddings = lm.child('embedding');

  // The word table is truncated to vocab_size rows (Megatron pads it; a Python slice never grows it).
  const word = await embeddings.child('word_embeddings').tensor('weight');
  const rows = Math.min(config.vocabSize, word.shape[0]);
  const wordEmbeddings: ConvertedTensor = { dtype: word.dtype, shape: [rows, ...word.shape.slice(1)], data: word.data.slice(0, rows * (word.shape[1] ?? 1)) };
  out.set('bert.embeddings.word_embeddings.weight', wordEmbeddings);
  const pos = await embeddings.child('position_embeddings').tensor('weight');
  if (pos.shape[0] !== config.maxPositionEmbeddings || pos.shape[1] !== config.hiddenSize) {
    throw new MegatronConversionError(`${file}: position embeddings [${pos.shape.join(', ')}] do not match ${configOrigin} (max_position_embeddings ${config.maxPositionEmbeddings}, hidden_size ${config.hiddenSize})`);
  }
  out.set('bert.embeddings.position_embeddings.weight', pos);
  out.set('bert.embeddings.token_type_embeddings.weight', await embeddings.child('tokentype_embeddings').tensor('weight'));

  // The layers: "transformer" up to Megatron-LM v2.0, "encoder" from v2.5. As in the reference, the walk
  // stops at the first key that is not a layer's (final_layernorm comes after every layer).
  const transformer = lm.has('transformer') ? lm.child('transformer') : lm.child('encoder');
  const heads = config.numAttentionHeads;
  const headDim = Math.floor(config.hiddenSize / heads);
  const hidden = config.hiddenSize;
  let qkvWeight: ConvertedTensor | null = null;
  for (const rawKey of transformer.dict.map.keys()) {
    const key = typeof rawKey === 'string' ? rawKey : '';
    const m = LAYER_RE.exec(key);
    if (!m) break;
    const [, layerIdx, opName, weightOrBias] = m;
    const layerName = `bert.encoder.layer.${Number(layerIdx)}`;
    const isQkv = opName === 'attention.query_key_value' || opName === 'self_attention.query_key_value';
    if (opName.endsWith('layernorm')) {
      // input_layernorm precedes the attention; post_attention_layernorm the MLP.
      const lnName = opName.startsWith('input') ? 'attention.ln' : 'ln';
      out.set(`${layerName}.${lnName}.${weightOrBias}`, await transformer.tensor(key));
    } else if (isQkv && (weightOrBias === 'weight' || weightOrBias === 'bias')) {
      // The fused [3 * hidden, ...] projection: reorder to q, k, v blocks of `hidden` rows, then split.
      // The weight comes first; the three parts are stored when its bias arrives.
      const fused = await transformer.tensor(key);
      const rowLength = fused.shape.slice(1).reduce((a, b) => a * b, 1);
      if (fused.shape[0] !== 3 * heads * headDim || heads * headDim !== hidden) {
        throw new MegatronConversionError(`${file}: '${transformer.path}.${key}' has ${fused.shape[0]} rows; ${heads} heads of hidden_size ${hidden} need 3 x ${hidden}`);
      }
      const ordered: ConvertedTensor = { dtype: fused.dtype, shape: fused.shape, data: fixQueryKeyValueOrdering(fused.data, rowLength, checkpointVersion, 3, heads, headDim) };
      if (weightOrBias === 'weight') {
        if (qkvWeight) throw new MegatronConversionError(`${file}: '${transformer.path}.${key}' follows a query_key_value weight that had no bias`);
        qkvWeight = ordered;
        continue;
      }
      if (!qkvWeight) throw new MegatronConversionError(`${file}: '${transformer.path}.${key}' comes before its query_key_value weight`);
      const weight: ConvertedTensor = qkvWeight;
      ['query', 'key', 'value'].forEach((part, i) => {
        const w = hidden * (weight.data.length / weight.shape[0]);
        out.set(`${layerName}.attention.self.${part}.weight`, { dtype: weight.dtype, shape: [hidden, ...weight.shape.slice(1)], data: weight.data.slice(i * w, (i + 1) * w) });
        out.set(`${layerName}.attention.self.${part}.bias`, { dtype: ordered.dtype, shape: [hidden, ...ordered.shape.slice(1)], data: ordered.data.slice(i * hidden * rowLength, (i + 1) * hidden * rowLength) });
      });
      qkvWeight = null;
    } else if (weightOrBias === 'weight' || weightOrBias === 'bias') {
      const target = MEGATRON_TO_TRANSFORMERS[opName];
      if (!target) throw new MegatronConversionError(`${file}: unknown Megatron layer tensor '${transformer.path}.${key}'`);
      out.set(`${layerName}.${target}.${weightOrBias}`, await transformer.tensor(key));
    }
  }
  if (qkvWeight) throw new MegatronConversionError(`${file}: the last query_key_value weight in '${transformer.path}' has no bias`);
  out.set('bert.encoder.ln.weight', await transformer.tensor('final_layernorm.weight'));
  out.set('bert.encoder.ln.bias', await transformer.tensor('final_layernorm.bias'));

  // The pooler, the LM head (its decoder is a copy of the word embeddings) and the binary (NSP) head.
  const pooler = lm.child('pooler');
  out.set('bert.pooler.dense.weight', await pooler.tensor('dense.weight'));
  out.set('bert.pooler.dense.bias', await pooler.tensor('dense.bias'));
  const lmHead = model.child('lm_head');
  out.set('cls.predictions.transform.dense.weight', await lmHead.tensor('dense.weight'));
  out.set('cls.predictions.transform.dense.bias', await lmHead.tensor('dense.bias'));
  out.set('cls.predictions.transform.LayerNorm.weight', await lmHead.tensor('layernorm.weight'));
  out.set('cls.predictions.transform.LayerNorm.bias', await lmHead.tensor('layernorm.bias'));
  out.set('cls.predictions.decoder.weight', wordEmbeddings);
  out.set('cls.predictions.bias', await lmHead.tensor('bias'));
  const binaryHead = model.child('binary_head');
  out.set('cls.seq_relationship.weight', await binaryHead.tensor('weight'));
  out.set('cls.seq_relationship.bias', await binaryHead.tensor('bias'));
  return out;
}

/**
 * Converts a Megatron-LM BERT checkpoint (an NGC zip or the `model_optim_rng.pt` inside it) to the
 * Hugging Face MegatronBERT layout: a config and a `MegatronBertForPreTraining` state dict.
 */
export async function convertMegatronCheckpoint(input: string | Blob | ArrayBuffer | ArrayBufferView | ByteSource, options: ConvertMegatronOptions = {}): Promise<ConvertedMegatronCheckpoint> {
  const outer = await toSource(input);
  try {
    // An NGC zip wraps the one `.pt` (MEGATRON_CHECKPOINT_ENTRY); openCheckpoint opens such a member in its place.
    const ckpt = await openCheckpoint(outer);
    try {
      if (!(ckpt instanceof TorchCheckpoint) || !(ckpt.root instanceof PyDict)) {
        throw new MegatronConversionError(`${ckpt.name}: not a Megatron-LM checkpoint (a torch.save'd dict holding 'model'), but a ${ckpt.format} file`);
      }
      const saved = new SavedDict(ckpt, ckpt.root, '');
      const lmHeadBias = saved.child('model').child('lm_head').value('bias');
      const lmHeadBiasNumel = isTorchTensorRef(lmHeadBias) ? lmHeadBias.shape.reduce((a, b) => a * b, 1) : 0;
      const args = argsOf(saved, ckpt.name);
      const config = megatronBertConfigFrom({ lmHeadBiasNumel, args }, options.config, ckpt.name);
      const checkpointVersion = options.checkpointVersion ?? checkpointVersionOf(saved, ckpt.name);
      const configOrigin = args
        ? "the checkpoint's args"
        : options.config
          ? 'the given config'
          : "MegatronBertConfig() defaults, the 345M model (the checkpoint stores no args: pass the model's config as { config }, the reference's --config_file)";
      const stateDict = await convertMegatronState(ckpt, { config, checkpointVersion, configOrigin });
      return { config, stateDict, checkpointVersion };
    } finally {
      await ckpt.close();
    }
  } finally {
    await outer.close?.();
  }
}

/**
 * Converts and writes a Hugging Face model folder (config.json + model.safetensors) that
 * `MegatronBertForPreTraining.fromPretrained(dir)` (or any head) loads. Node only.
 */
export async function convertMegatronCheckpointToDirectory(input: string | Blob | ArrayBuffer | ArrayBufferView | ByteSource, dir: string, options: ConvertMegatronOptions = {}): Promise<MegatronBertConfig> {
  const { config, stateDict } = await convertMegatronCheckpoint(input, options);
  const fs = await import(/* @vite-ignore */ 'node:fs/promises');
  const path = await import(/* @vite-ignore */ 'node:path');
  await fs.mkdir(dir, { recursive: true });
  config.architectures = ['MegatronBertForPreTraining'];
  await fs.writeFile(path.join(dir, 'config.json'), `${JSON.stringify(config.toJSON(), null, 2)}\n`);
  // The tied decoder weight is written once, under the embeddings' name (the loader re-ties it).
  const entries = [...stateDict].filter(([name]) => name !== 'cls.predictions.decoder.weight');
  await writeSafetensors(path.join(dir, 'model.safetensors'), new Map(entries), { metadata: { format: 'pt' } });
  return config;
}
