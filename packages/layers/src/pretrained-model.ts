// PreTrainedModel: the surface Hugging Face users expect from a model class — fromPretrained /
// savePretrained, parameter counts, FLOPs, memory footprint, embedding access and resizing, weight
// tying, head pruning and gradient checkpointing — on top of Module. File formats live in
// @lm/dist-ckpt; this file only decides what to read and write.

import { openCheckpoint, writeShardedSafetensors, type Checkpoint } from '@lm/dist-ckpt';
import { fromHost, noGrad, type Backend, type DType, type Tensor, getBackend, cast } from '@lm/tensor-gpu';
import { getExtendedAttentionMask, getHeadMask, invertAttentionMask } from './attention/masks.js';
import { withoutInit, initInPlace } from './init.js';
import { Module } from './module.js';
import { Embedding, Linear } from './nn/index.js';
import type { PretrainedConfig, JsonObject } from './pretrained-config.js';

/** Copies the first `rows` rows of `src` into `dst` (no gradient). */
function copyRows(dst: Tensor, src: Tensor, rows: number): void {
  noGrad(() => {
    const to = dst.narrow(0, 0, rows);
    const from = src.narrow(0, 0, rows);
    to.copy_(from);
    to.dispose();
    from.dispose();
  });
}

/**
 * Where a pretrained model lives: a directory path (Node), a URL of a directory (http(s), or file: in
 * Node), or files (browser File objects, or Blobs with a `name`).
 */
export type PretrainedSource = string | URL | readonly (Blob & { name?: string })[];

/** Weight files looked for under a URL, in Hugging Face's order of preference. */
const WEIGHT_FILES = ['model.safetensors.index.json', 'model.safetensors', 'pytorch_model.bin.index.json', 'pytorch_model.bin'];

async function fetchOptional(url: URL): Promise<Response | null> {
  const res = await fetch(url);
  if (res.status === 404) return null;
  if (!res.ok) throw new PretrainedLoadError(`fromPretrained: GET ${url.href} failed: ${res.status} ${res.statusText}`);
  return res;
}

async function namedBlob(url: URL, name: string): Promise<Blob & { name: string }> {
  const res = await fetchOptional(new URL(name, url));
  if (!res) throw new PretrainedLoadError(`fromPretrained: ${new URL(name, url).href} not found`);
  return Object.assign(await res.blob(), { name });
}

/**
 * Resolves a URL source to a local path (file: URLs in Node) or to the named Blobs of config.json and
 * the weight files (with every shard an index names).
 */
async function resolveUrl(source: URL): Promise<string | (Blob & { name: string })[]> {
  if (source.protocol === 'file:') {
    const { fileURLToPath } = await import(/* @vite-ignore */ 'node:url');
    return fileURLToPath(source);
  }
  const base = source.href.endsWith('/') ? source : new URL(`${source.href}/`);
  const files: (Blob & { name: string })[] = [await namedBlob(base, 'config.json')];
  for (const name of WEIGHT_FILES) {
    const res = await fetchOptional(new URL(name, base));
    if (!res) continue;
    const blob = Object.assign(await res.blob(), { name });
    files.push(blob);
    if (name.endsWith('.index.json')) {
      const index = JSON.parse(await blob.text()) as { weight_map?: Record<string, string> };
      for (const shard of new Set(Object.values(index.weight_map ?? {}))) files.push(await namedBlob(base, shard));
    }
    return files;
  }
  throw new PretrainedLoadError(`fromPretrained: no weights under ${base.href} (looked for ${WEIGHT_FILES.join(', ')})`);
}

export interface FromPretrainedOptions {
  backend?: Backend;
  /** Parameter dtype after loading (checkpoints in f16/bf16/f32 are converted). Default float32. */
  dtype?: Extract<DType, 'float32' | 'float16'>;
  /** Throw on missing/unexpected/mismatched weights (default true; tied and non-persistent keys excused). */
  strict?: boolean;
  /** Constructor options beyond the config (e.g. `{ addPoolingLayer: false }`). */
  modelOptions?: Record<string, unknown>;
}

export interface SavePretrainedOptions {
  /** Largest shard, as bytes or "5GB"-style strings (default "5GB"). */
  maxShardSize?: number | string;
  /** true (default): safetensors. PyTorch .bin writing is not supported. */
  safeSerialization?: boolean;
}

/** One tensor savePretrained writes: its file dtype and shape, and its data, read when written. */
export interface SavedTensor {
  dtype: 'F32' | 'F16' | 'I32' | 'I8' | 'BOOL';
  shape: number[];
  data: () => Promise<Float32Array | Int32Array | Int8Array | Uint8Array | Uint16Array>;
}

export class PretrainedLoadError extends Error {
  override name = 'PretrainedLoadError';
}

/** What a model class provides so the static loaders can build it. */
export interface PreTrainedModelClass<M extends PreTrainedModel, C extends PretrainedConfig> {
  new (config: C, options?: Record<string, unknown>): M;
  /** Parses config.json. */
  configFromJSON(json: JsonObject): C;
  /** The attribute name of the base model in heads ('bert' for MegatronBERT); '' for base models. */
  baseModelPrefix: string;
}

async function readSourceText(source: string | readonly (Blob & { name?: string })[], name: string): Promise<string | null> {
  if (typeof source === 'string') {
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    const path = await import(/* @vite-ignore */ 'node:path');
    try {
      return await fs.readFile(path.join(source, name), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }
  const file = source.find((f) => f.name === name || f.name?.endsWith(`/${name}`));
  return file ? file.text() : null;
}

/**
 * Maps a model's state-dict key to the checkpoint's, adding or stripping the base-model prefix as
 * Hugging Face does (a base checkpoint loads into a head model and back).
 */
export function checkpointKeyOf(modelKeys: Iterable<string>, fileKeys: Iterable<string>, prefix: string): (key: string) => string {
  const ownHasPrefix = prefix !== '' && [...modelKeys].some((k) => k.startsWith(`${prefix}.`));
  const fileHasPrefix = prefix !== '' && [...fileKeys].some((k) => k.startsWith(`${prefix}.`));
  return (key) => {
    if (ownHasPrefix && !fileHasPrefix && key.startsWith(`${prefix}.`)) return key.slice(prefix.length + 1);
    if (!ownHasPrefix && fileHasPrefix) return `${prefix}.${key}`;
    return key;
  };
}

export abstract class PreTrainedModel<C extends PretrainedConfig = PretrainedConfig> extends Module {
  static baseModelPrefix = '';
  readonly config: C;
  /** Names of state-dict keys that are tied to others and may be absent from checkpoints. */
  protected tiedWeightsKeys: string[] = [];

  constructor(config: C) {
    super();
    this.config = config;
  }

  // ---- loading and saving ---------------------------------------------------------------------
  /**
   * Builds the model from config.json and its weights (safetensors or PyTorch .bin, sharded or not).
   * Parameters are allocated uninitialised and filled tensor by tensor from the files, so loading needs
   * the model's size plus one tensor of headroom.
   */
  static async fromPretrained<M extends PreTrainedModel, C extends PretrainedConfig>(
    this: PreTrainedModelClass<M, C>,
    from: PretrainedSource,
    options: FromPretrainedOptions = {},
  ): Promise<M> {
    const source = from instanceof URL ? await resolveUrl(from) : from;
    const configText = await readSourceText(source, 'config.json');
    if (configText === null) throw new PretrainedLoadError(`fromPretrained: no config.json in ${describeSource(source)}`);
    let json: JsonObject;
    try {
      json = JSON.parse(configText) as JsonObject;
    } catch (e) {
      throw new PretrainedLoadError(`fromPretrained: config.json in ${describeSource(source)} is not valid JSON: ${(e as Error).message}`);
    }
    const config = this.configFromJSON(json);
    const backend = options.backend ?? getBackend();
    // Only weight files (and their index) go to the checkpoint reader: a folder's files also hold
    // config.json, vocab.txt, tokenizer files, ... The checkpoint opens (every shard of an index
    // found) before the model is allocated, so a missing shard leaves nothing behind.
    const weightFiles =
      typeof source === 'string' ? source : source.filter((f) => /\.(safetensors|bin|pt)$|\.index\.json$/.test(f.name ?? ''));
    const ckpt = await openCheckpoint(weightFiles as Parameters<typeof openCheckpoint>[0]);
    let model: M;
    try {
      model = withoutInit(() => new this(config, { ...options.modelOptions, backend }));
    } catch (e) {
      await ckpt.close();
      throw e;
    }
    try {
      await model.loadWeights(ckpt, { strict: options.strict ?? true, prefix: this.baseModelPrefix });
    } catch (e) {
      model.dispose();
      throw e;
    } finally {
      await ckpt.close();
    }
    if ((options.dtype ?? 'float32') !== 'float32') model.castParameters(options.dtype!);
    model.eval();
    return model;
  }

  /**
   * Fills this model's parameters and buffers from an opened checkpoint, adding or stripping the base
   * model prefix as Hugging Face does (a base checkpoint loads into a head model and back).
   */
  async loadWeights(ckpt: Checkpoint, options: { strict?: boolean; prefix?: string } = {}): Promise<{ missingKeys: string[]; unexpectedKeys: string[] }> {
    const own = this.stateDict();
    const prefix = options.prefix ?? '';
    const fileKeys = new Set(ckpt.tensors.map((t) => t.name));
    const toFile = checkpointKeyOf(own.keys(), fileKeys, prefix);
    const tied = new Set(this.tiedWeightsKeys);
    const seen = new Set<Tensor>();
    const missingKeys: string[] = [];
    const used = new Set<string>();
    const mismatched: string[] = [];
    for (const [key, t] of own) {
      const fileKey = toFile(key);
      if (!fileKeys.has(fileKey)) {
        if (!seen.has(t) && !tied.has(key)) missingKeys.push(key);
        continue;
      }
      used.add(fileKey);
      const info = ckpt.info(fileKey);
      if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
        mismatched.push(`${key}: checkpoint [${info.shape.join(',')}], model [${t.shape.join(',')}]`);
        continue;
      }
      if (seen.has(t)) continue; // tied: filled once
      seen.add(t);
      const { data } = await ckpt.readTensor(fileKey);
      const hostDtype: DType = data instanceof Int32Array ? 'int32' : data instanceof Uint8Array ? 'bool' : 'float32';
      const tmp = fromHost(data, t.shape, hostDtype, t.backend);
      noGrad(() => t.copy_(tmp));
      tmp.dispose();
    }
    const unexpectedKeys = [...fileKeys].filter((k) => !used.has(k));
    // Tied parameters that the file held under only one name are filled already; re-tie to be sure.
    this.tieWeights();
    if (options.strict !== false && (missingKeys.length || mismatched.length)) {
      const parts = [];
      if (missingKeys.length) parts.push(`missing weights: ${missingKeys.join(', ')}`);
      if (mismatched.length) parts.push(`shape mismatches: ${mismatched.join('; ')}`);
      throw new PretrainedLoadError(`${this.constructor.name}.fromPretrained (${ckpt.name}): ${parts.join('; ')}`);
    }
    return { missingKeys, unexpectedKeys };
  }

  /**
   * Writes config.json and the weights (safetensors, sharded by maxShardSize with an index) into dir.
   * Tied tensors are written once, under their first name.
   */
  async savePretrained(dir: string, options: SavePretrainedOptions = {}): Promise<void> {
    if (options.safeSerialization === false) {
      throw new PretrainedLoadError('savePretrained: writing PyTorch .bin files is not supported; use safetensors (safeSerialization: true)');
    }
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    const path = await import(/* @vite-ignore */ 'node:path');
    await fs.mkdir(dir, { recursive: true });
    await writeShardedSafetensors(dir, this.savedTensors(), { maxShardSize: options.maxShardSize ?? '5GB', metadata: { format: 'pt' } });
    const configJson = (this.config as unknown as { toJSON(): JsonObject }).toJSON();
    const tmp = path.join(dir, `.config.json.${process.pid}.tmp`);
    await fs.writeFile(tmp, `${JSON.stringify(configJson, null, 2)}\n`);
    await fs.rename(tmp, path.join(dir, 'config.json'));
  }

  /**
   * The tensors savePretrained writes, by file name: the state dict, tied tensors once under their
   * first name. A family whose in-memory layout differs from its published one (packed quantized
   * weights) overrides this to write the published layout.
   */
  protected savedTensors(): [string, SavedTensor][] {
    const seen = new Set<Tensor>();
    const entries: [string, SavedTensor][] = [];
    for (const [name, t] of this.stateDict()) {
      if (seen.has(t)) continue;
      seen.add(t);
      const dtype = t.dtype === 'float32' ? 'F32' : t.dtype === 'float16' ? 'F16' : t.dtype === 'int32' ? 'I32' : 'BOOL';
      entries.push([name, { dtype, shape: [...t.shape], data: () => t.data() }]);
    }
    return entries;
  }

  /** Converts every floating parameter and buffer to dtype (e.g. float16 for inference). */
  castParameters(dtype: Extract<DType, 'float32' | 'float16'>): void {
    const done = new Map<Tensor, Tensor>();
    for (const [, mod] of this.namedModules()) {
      for (const [name, t] of [...mod.namedParameters('', { recurse: false })]) {
        if (t.dtype === dtype || (t.dtype !== 'float32' && t.dtype !== 'float16')) continue;
        let c = done.get(t);
        if (!c) {
          c = noGrad(() => cast(t, dtype));
          done.set(t, c);
        }
        mod.setParameter(name, c, { disposeOld: false });
      }
    }
    for (const old of done.keys()) old.dispose();
  }

  // ---- sizes ----------------------------------------------------------------------------------
  /** Number of parameters (tied ones once); optionally only trainable ones, or without embeddings. */
  numParameters(options: { onlyTrainable?: boolean; excludeEmbeddings?: boolean } = {}): number {
    const embeddingTensors = new Set<Tensor>();
    if (options.excludeEmbeddings) {
      for (const [, m] of this.namedModules()) if (m instanceof Embedding) embeddingTensors.add(m.weight);
    }
    let n = 0;
    for (const p of this.parameters()) {
      if (options.onlyTrainable && !p.requiresGrad) continue;
      if (embeddingTensors.has(p)) continue;
      n += p.size;
    }
    return n;
  }

  /** Bytes held by parameters (and buffers, by default). */
  getMemoryFootprint(options: { returnBuffers?: boolean } = {}): number {
    let bytes = 0;
    const seen = new Set<Tensor>();
    const count = (t: Tensor) => {
      if (seen.has(t)) return;
      seen.add(t);
      bytes += t.size * (t.dtype === 'float16' ? 2 : t.dtype === 'bool' ? 1 : 4);
    };
    for (const p of this.parameters()) count(p);
    if (options.returnBuffers ?? true) for (const [, b] of this.namedBuffers()) count(b);
    return bytes;
  }

  /** Tokens in a batch of inputs: the element count of inputIds (HF estimate_tokens). */
  estimateTokens(inputs: { inputIds?: Tensor | null }): number {
    return inputs.inputIds ? inputs.inputIds.size : 0;
  }

  /** 6 * tokens * parameters: the forward+backward FLOPs of one batch (HF floating_point_ops). */
  floatingPointOps(inputs: { inputIds?: Tensor | null }, options: { excludeEmbeddings?: boolean } = {}): number {
    return 6 * this.estimateTokens(inputs) * this.numParameters({ excludeEmbeddings: options.excludeEmbeddings ?? true });
  }

  // ---- embeddings -----------------------------------------------------------------------------
  /** The input token embedding table. */
  abstract getInputEmbeddings(): Embedding;
  abstract setInputEmbeddings(embeddings: Embedding): void;
  /** The output projection tied to the input embeddings, if the model has one. */
  getOutputEmbeddings(): Linear | null {
    return null;
  }
  setOutputEmbeddings(_linear: Linear): void {
    throw new TypeError(`${this.constructor.name} has no output embeddings to set`);
  }

  /** Ties the output projection's weight to the input embeddings when config.tieWordEmbeddings. */
  tieWeights(): void {
    const out = this.getOutputEmbeddings();
    if (!out || !this.config.tieWordEmbeddings) return;
    const input = this.getInputEmbeddings();
    if (out.weight !== input.weight) out.setParameter('weight', input.weight);
  }

  /** The model's own weight init for new rows (HF _init_weights); default normal(0, 0.02). */
  protected initWeights(t: Tensor): void {
    const std = (this.config as unknown as { initializerRange?: number }).initializerRange ?? 0.02;
    initInPlace(t, { kind: 'normal', std });
  }

  /**
   * Resizes the token embeddings (and a tied or separate output projection) to `newNumTokens`,
   * rounded up to a multiple of `padToMultipleOf`. Existing rows are kept; new rows are initialised
   * like the model's weights (new output-bias entries are 0). As in transformers, the model gets new
   * modules through `setInputEmbeddings` / `setOutputEmbeddings` and is re-tied; the old ones are
   * freed. Returns the new embedding module.
   */
  resizeTokenEmbeddings(newNumTokens?: number, options: { padToMultipleOf?: number } = {}): Embedding {
    const old = this.getInputEmbeddings();
    let n = newNumTokens ?? old.numEmbeddings;
    if (options.padToMultipleOf) n = Math.ceil(n / options.padToMultipleOf) * options.padToMultipleOf;
    if (n === old.numEmbeddings) return old;
    const keepRows = Math.min(n, old.numEmbeddings);
    const backend = old.weight.backend;
    const emb = new Embedding(n, old.embeddingDim, { paddingIdx: old.paddingIdx !== null && old.paddingIdx < n ? old.paddingIdx : null, backend });
    this.initWeights(emb.weight);
    copyRows(emb.weight, old.weight, keepRows);
    const oldOutput = this.getOutputEmbeddings();
    this.setInputEmbeddings(emb);
    if (oldOutput) {
      const output = new Linear(oldOutput.inFeatures, n, { bias: oldOutput.bias !== null, backend });
      if (oldOutput.weight === old.weight) {
        output.setParameter('weight', emb.weight); // tied: tieWeights below keeps it so
      } else {
        this.initWeights(output.weight);
        copyRows(output.weight, oldOutput.weight, keepRows);
      }
      if (output.bias && oldOutput.bias) {
        initInPlace(output.bias, { kind: 'constant', value: 0 });
        copyRows(output.bias, oldOutput.bias, keepRows);
      }
      this.setOutputEmbeddings(output);
      oldOutput.dispose();
    }
    old.dispose();
    const cfg = this.config as unknown as { vocabSize?: number };
    if ('vocabSize' in cfg) cfg.vocabSize = n;
    this.tieWeights();
    return emb;
  }

  // ---- masks ----------------------------------------------------------------------------------
  /** [b, k] or [b, q, k] 1/0 mask -> additive [b, 1, 1|q, k] (causal-combined for decoders). */
  getExtendedAttentionMask(attentionMask: Tensor, inputShape: readonly number[], options: { isDecoder?: boolean } = {}): Tensor {
    return getExtendedAttentionMask(attentionMask, inputShape, { isDecoder: options.isDecoder ?? this.config.isDecoder, dtype: this.dtype });
  }

  /** An encoder's 1/0 mask -> additive mask for cross-attention. */
  invertAttentionMask(encoderAttentionMask: Tensor): Tensor {
    return invertAttentionMask(encoderAttentionMask, { dtype: this.dtype });
  }

  /**
   * The floating-point dtype of the weights (HF's `model.dtype`): float16 after `cast('float16')`.
   * Additive masks are made in it, so a float16 model computes attention in float16 throughout.
   */
  get dtype(): 'float32' | 'float16' {
    for (const p of this.parameters()) if (p.dtype === 'float16' || p.dtype === 'float32') return p.dtype;
    return 'float32';
  }

  /** A [heads] or [layers, heads] head mask -> one mask per layer (null where none). */
  getHeadMask(headMask: Tensor | null | undefined, numLayers: number): (Tensor | null)[] {
    return getHeadMask(headMask, numLayers);
  }

  // ---- heads and checkpointing --------------------------------------------------------------
  /** Removes attention heads: `{ layerIndex: [heads] }` (merged into config.prunedHeads). */
  pruneHeads(headsToPrune: Record<number, number[]>): void {
    const cfg = this.config as unknown as { prunedHeads?: Record<string, number[]> };
    const merged: Record<number, number[]> = {};
    for (const [layer, heads] of Object.entries(headsToPrune)) {
      const before = new Set(cfg.prunedHeads?.[layer] ?? []);
      const fresh = heads.filter((h) => !before.has(h));
      merged[Number(layer)] = fresh;
      if (cfg.prunedHeads) cfg.prunedHeads[layer] = [...before, ...fresh];
    }
    this.pruneHeadsImpl(merged);
  }

  /** Model-specific head removal; models that support pruning override it. */
  protected pruneHeadsImpl(_heads: Record<number, number[]>): void {
    throw new TypeError(`${this.constructor.name} does not support head pruning`);
  }

  /** Recompute each block's activations in backward instead of storing them. */
  gradientCheckpointingEnable(): void {
    this.setGradientCheckpointing(true);
  }

  gradientCheckpointingDisable(): void {
    this.setGradientCheckpointing(false);
  }

  get isGradientCheckpointing(): boolean {
    return [...this.namedModules()].some(([, m]) => (m as Partial<GradientCheckpointable>).gradientCheckpointing === true);
  }

  private setGradientCheckpointing(on: boolean): void {
    let any = false;
    for (const [, m] of this.namedModules()) {
      if ('gradientCheckpointing' in m) {
        (m as unknown as GradientCheckpointable).gradientCheckpointing = on;
        any = true;
      }
    }
    if (on && !any) throw new TypeError(`${this.constructor.name} does not support gradient checkpointing`);
  }
}

/** Modules (usually a model's encoder) that can recompute their layers in backward. */
export interface GradientCheckpointable {
  gradientCheckpointing: boolean;
}

function describeSource(source: string | readonly (Blob & { name?: string })[]): string {
  return typeof source === 'string' ? source : `[${source.map((f) => f.name ?? 'blob').join(', ')}]`;
}
