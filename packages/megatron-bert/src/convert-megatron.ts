// Converting an original Megatron-LM BERT checkpoint into the Hugging Face MegatronBERT layout, without
// Python. Mirrors transformers `src/transformers/models/megatron_bert/convert_megatron_bert_checkpoint.py`:
// the same name mapping, the same split of the fused query_key_value projection (with
// `fix_query_key_value_ordering` for checkpoint versions 1.0 and >= 2.0), the same config handling
// (MegatronBertConfig defaults, vocab size from the LM head bias, or the training `args` when the
// checkpoint stores them).
//
// Accepted inputs: the NGC download (`megatron_bert_345m_v0_1_{cased,uncased}.zip`, which holds
// `release/mp_rank_00/model_optim_rng.pt`), or the `.pt` itself (torch.save zip or legacy container), as
// a path (Node), a Blob/File, bytes or a ByteSource. Tensors are read one at a time through
// @lm/dist-ckpt's `openCheckpoint`; nested dicts come back with dotted names
// (`model.language_model.embedding.word_embeddings.weight`).

import {
  blobSource,
  bytesSource,
  openCheckpoint,
  openFileSource,
  PyCallable,
  PyClassRef,
  PyDict,
  torchFindClass,
  unpickle,
  writeSafetensors,
  ZipReader,
  type ByteSource,
  type Checkpoint,
  type PyValue,
} from '@lm/dist-ckpt';
import { MegatronBertConfig } from './config.js';

/** Where the Megatron checkpoint inside an NGC zip lives. */
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

/** One converted tensor, ready for `writeSafetensors`. */
export interface ConvertedTensor {
  dtype: 'F32';
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

const isZip = (head: Uint8Array) => head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;

/**
 * The `.pt` inside an NGC zip as a ByteSource (reads go straight to the outer file when the entry is
 * stored, or to its inflated bytes), or null when `source` is not such a zip (a torch.save zip holds
 * `<archive>/data.pkl` instead).
 */
async function innerCheckpoint(source: ByteSource): Promise<ByteSource | null> {
  if (!isZip(await source.read(0, Math.min(4, source.size)))) return null;
  const zip = await ZipReader.open(source);
  const name = zip.names.find((n) => n === MEGATRON_CHECKPOINT_ENTRY || n.endsWith(`/${MEGATRON_CHECKPOINT_ENTRY}`));
  if (!name) return null;
  const entry = zip.entry(name)!;
  if (entry.method !== 0) return bytesSource(await zip.readChecked(entry), name);
  return { name, size: entry.uncompressedSize, read: (offset, length) => zip.read(entry, offset, length) };
}

/**
 * The checkpoint's non-tensor top-level values (`checkpoint_version`, and `args` when present), which
 * `openCheckpoint` does not expose. The pickle is walked with inert stand-ins for every global: nothing
 * runs, tensors become null, an `argparse.Namespace` becomes a dict of its attributes.
 */
async function readScalars(source: ByteSource): Promise<{ checkpointVersion: number | null; args: Map<string, PyValue> | null }> {
  const inert = (module: string, name: string): PyValue => {
    if (module === 'collections' && name === 'OrderedDict') return torchFindClass(source.name)(module, name);
    if (module === 'torch' && name.endsWith('Storage')) return new PyClassRef(`${module}.${name}`);
    return new PyCallable(`${module}.${name}`, () => new PyDict());
  };
  let value: PyValue;
  const head = await source.read(0, Math.min(4, source.size));
  if (isZip(head)) {
    const zip = await ZipReader.open(source);
    const pkl = zip.names.find((n) => n.endsWith('data.pkl'));
    if (!pkl) throw new MegatronConversionError(`${source.name}: not a torch.save zip (no data.pkl)`);
    value = unpickle(await zip.readChecked(zip.entry(pkl)!), 0, { file: source.name, findClass: inert, persistentLoad: () => null }).value;
  } else {
    // Legacy torch.save: magic number, protocol, sys info, then the object; read a growing prefix.
    for (let window = Math.min(source.size, 1 << 20); ; window = Math.min(source.size, window * 4)) {
      const bytes = await source.read(0, window);
      try {
        let pos = 0;
        for (let i = 0; i < 3; i++) pos = unpickle(bytes, pos, { file: source.name }).end;
        value = unpickle(bytes, pos, { file: source.name, findClass: inert, persistentLoad: () => null }).value;
        break;
      } catch (e) {
        if (window >= source.size) throw e;
      }
    }
  }
  if (!(value instanceof PyDict)) return { checkpointVersion: null, args: null };
  const version = value.map.get('checkpoint_version');
  const args = value.map.get('args');
  return {
    checkpointVersion: typeof version === 'number' ? version : null,
    args: args instanceof PyDict ? new Map([...args.attrs, ...[...args.map].map(([k, v]) => [String(k), v] as [string, PyValue])]) : null,
  };
}

// ---- the conversion ---------------------------------------------------------------------------------

/**
 * transformers `fix_query_key_value_ordering`: rows of the fused [3 * hidden, ...] projection reordered
 * to [3 (q, k, v), heads, headDim]. Version 1.0 stores [heads, headDim, 3]; versions >= 2.0 store
 * [heads, 3, headDim]; older versions are already in order.
 */
export function fixQueryKeyValueOrdering(param: Float32Array, rowLength: number, checkpointVersion: number, numSplits: number, numHeads: number, headDim: number): Float32Array {
  const sourceRow = (split: number, head: number, d: number): number => {
    if (checkpointVersion === 1.0) return (head * headDim + d) * numSplits + split;
    if (checkpointVersion >= 2.0) return (head * numSplits + split) * headDim + d;
    return (split * numHeads + head) * headDim + d;
  };
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

/** Converts an opened Megatron checkpoint (tensors under dotted names) into the HF layout. */
export async function convertMegatronState(ckpt: Checkpoint, options: { config: MegatronBertConfig; checkpointVersion: number }): Promise<Map<string, ConvertedTensor>> {
  const { config, checkpointVersion } = options;
  const out = new Map<string, ConvertedTensor>();
  const read = async (name: string): Promise<ConvertedTensor> => {
    if (!ckpt.has(name)) throw new MegatronConversionError(`${ckpt.name}: no tensor '${name}' (is this a Megatron-LM BERT checkpoint?)`);
    const t = await ckpt.readTensor(name, { as: 'float32' });
    return { dtype: 'F32', shape: t.shape, data: t.data };
  };
  const lm = 'model.language_model';

  // Embeddings; the word table is truncated to vocab_size rows (Megatron pads it).
  const word = await read(`${lm}.embedding.word_embeddings.weight`);
  const hidden = word.shape[1];
  const wordEmbeddings: ConvertedTensor = { dtype: 'F32', shape: [config.vocabSize, hidden], data: word.data.slice(0, config.vocabSize * hidden) };
  out.set('bert.embeddings.word_embeddings.weight', wordEmbeddings);
  const pos = await read(`${lm}.embedding.position_embeddings.weight`);
  if (pos.shape[0] !== config.maxPositionEmbeddings || pos.shape[1] !== config.hiddenSize) {
    throw new MegatronConversionError(`${ckpt.name}: position embeddings [${pos.shape.join(',')}] do not match the config (max_position_embeddings ${config.maxPositionEmbeddings}, hidden_size ${config.hiddenSize})`);
  }
  out.set('bert.embeddings.position_embeddings.weight', pos);
  out.set('bert.embeddings.token_type_embeddings.weight', await read(`${lm}.embedding.tokentype_embeddings.weight`));

  // The layers: "transformer" in older checkpoints, "encoder" in newer ones.
  const transformer = ckpt.has(`${lm}.transformer.final_layernorm.weight`) ? `${lm}.transformer` : `${lm}.encoder`;
  const layerRe = /^layers\.(\d+)\.([a-z0-9_.]+)\.([a-z]+)$/;
  const heads = config.numAttentionHeads;
  const headDim = config.hiddenSize / heads;
  for (const { name } of ckpt.tensors) {
    if (!name.startsWith(`${transformer}.`)) continue;
    const m = layerRe.exec(name.slice(transformer.length + 1));
    if (!m) continue;
    const [, layerIdx, opName, weightOrBias] = m;
    const layerName = `bert.encoder.layer.${layerIdx}`;
    if (opName.endsWith('layernorm')) {
      // input_layernorm precedes the attention; post_attention_layernorm the MLP.
      const lnName = opName.startsWith('input') ? 'attention.ln' : 'ln';
      out.set(`${layerName}.${lnName}.${weightOrBias}`, await read(name));
    } else if (opName === 'attention.query_key_value' || opName === 'self_attention.query_key_value') {
      // The fused [3 * hidden, hidden] projection: reorder to q, k, v blocks, then split.
      const fused = await read(name);
      const rowLength = fused.shape.length > 1 ? fused.shape[1] : 1;
      const ordered = fixQueryKeyValueOrdering(fused.data, rowLength, checkpointVersion, 3, heads, headDim);
      const block = config.hiddenSize * rowLength;
      ['query', 'key', 'value'].forEach((part, i) => {
        out.set(`${layerName}.attention.self.${part}.${weightOrBias}`, { dtype: 'F32', shape: [config.hiddenSize, ...fused.shape.slice(1)], data: ordered.slice(i * block, (i + 1) * block) });
      });
    } else if (weightOrBias === 'weight' || weightOrBias === 'bias') {
      const target = MEGATRON_TO_TRANSFORMERS[opName];
      if (!target) throw new MegatronConversionError(`${ckpt.name}: unknown Megatron layer tensor '${name}'`);
      out.set(`${layerName}.${target}.${weightOrBias}`, await read(name));
    }
  }
  out.set('bert.encoder.ln.weight', await read(`${transformer}.final_layernorm.weight`));
  out.set('bert.encoder.ln.bias', await read(`${transformer}.final_layernorm.bias`));

  // The pooler, the LM head (its decoder is the word embeddings) and the binary (NSP) head.
  out.set('bert.pooler.dense.weight', await read(`${lm}.pooler.dense.weight`));
  out.set('bert.pooler.dense.bias', await read(`${lm}.pooler.dense.bias`));
  out.set('cls.predictions.transform.dense.weight', await read('model.lm_head.dense.weight'));
  out.set('cls.predictions.transform.dense.bias', await read('model.lm_head.dense.bias'));
  out.set('cls.predictions.transform.LayerNorm.weight', await read('model.lm_head.layernorm.weight'));
  out.set('cls.predictions.transform.LayerNorm.bias', await read('model.lm_head.layernorm.bias'));
  out.set('cls.predictions.decoder.weight', wordEmbeddings);
  out.set('cls.predictions.bias', await read('model.lm_head.bias'));
  out.set('cls.seq_relationship.weight', await read('model.binary_head.weight'));
  out.set('cls.seq_relationship.bias', await read('model.binary_head.bias'));
  return out;
}

/** The config the reference converter builds: the given one, else defaults with the LM head's vocab size; `args` override it. */
function resolveConfig(ckpt: Checkpoint, args: Map<string, PyValue> | null, given?: MegatronBertConfig): MegatronBertConfig {
  const config = given ? MegatronBertConfig.fromJSON(given.toJSON()) : new MegatronBertConfig();
  if (!given) {
    const bias = ckpt.has('model.lm_head.bias') ? ckpt.info('model.lm_head.bias') : null;
    if (!bias) throw new MegatronConversionError(`${ckpt.name}: no 'model.lm_head.bias' (is this a Megatron-LM BERT checkpoint?)`);
    config.vocabSize = bias.shape.reduce((a, b) => a * b, 1);
  }
  if (args) {
    // Checkpoints that store their training arguments give the exact sizes.
    const num = (key: string): number | undefined => (typeof args.get(key) === 'number' ? (args.get(key) as number) : undefined);
    const tokenizerType = args.get('tokenizer_type');
    if (typeof tokenizerType === 'string') config.extra.tokenizer_type = tokenizerType;
    config.vocabSize = num('padded_vocab_size') ?? config.vocabSize;
    config.maxPositionEmbeddings = num('max_position_embeddings') ?? config.maxPositionEmbeddings;
    config.hiddenSize = num('hidden_size') ?? config.hiddenSize;
    config.numHiddenLayers = num('num_layers') ?? config.numHiddenLayers;
    config.numAttentionHeads = num('num_attention_heads') ?? config.numAttentionHeads;
    config.intermediateSize = num('ffn_hidden_size') ?? 4 * config.hiddenSize;
  }
  return config;
}

/**
 * Converts a Megatron-LM BERT checkpoint (an NGC zip or the `model_optim_rng.pt` inside it) to the
 * Hugging Face MegatronBERT layout: a config and a `MegatronBertForPreTraining` state dict.
 */
export async function convertMegatronCheckpoint(input: string | Blob | ArrayBuffer | ArrayBufferView | ByteSource, options: ConvertMegatronOptions = {}): Promise<ConvertedMegatronCheckpoint> {
  const outer = await toSource(input);
  try {
    const source = (await innerCheckpoint(outer)) ?? outer;
    const scalars = await readScalars(source);
    const ckpt = await openCheckpoint(source);
    try {
      const config = resolveConfig(ckpt, scalars.args, options.config);
      const checkpointVersion = options.checkpointVersion ?? scalars.checkpointVersion ?? 0;
      const stateDict = await convertMegatronState(ckpt, { config, checkpointVersion });
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
