// Model integration: a sharded state dict for a model built on @lm/layers, from its `stateDict()` map
// (this package cannot import @lm/layers, which depends on it). Each parameter's parallel kind comes
// from rules on its name, with Megatron's defaults for BERT-style models:
//
//   column-parallel (ColumnParallelLinear: Q/K/V, intermediate, QKV fused)  split the output dim, axis 0
//   row-parallel    (RowParallelLinear: attention output, FFN output)       split the input dim, axis 1
//   vocab-parallel  (VocabParallelEmbedding, the tied LM head and its bias) split the vocab, axis 0
//   replicated      (LayerNorms, position embeddings, row-parallel biases, pooler, head transform)
//
// Replica ids follow Megatron: split tensors (0, 0, dp), replicated ones (0, tp, dp). A tensor that
// appears under several names (tied weights: T5's shared embedding in encoder, decoder and LM head,
// BERT's decoder tied to the word embeddings) is saved once: the first name keeps its key and replica
// (0, ...), every other name becomes a replica (1, ...) of that key, as Megatron's
// T5Model.sharded_state_dict / tie_embeddings_and_output_weights_state_dict do.

import type { Tensor } from '@lm/tensor-gpu';

import type { DType } from '../format/dtypes.js';
import { DistCheckpointError } from './errors.js';
import { copyRuns, intersectRuns, volume } from './geometry.js';
import { gpuTensorDType, isGpuTensor, shardedTensorFromLocal, type ShardedTensor } from './mapping.js';

export type ParallelKind = 'column' | 'row' | 'vocab' | 'replicated';

export interface ShardingRule {
  /** Matched against the parameter name (a string matches as a suffix). */
  pattern: RegExp | string;
  kind: ParallelKind;
}

/** Axis each kind splits (replicated: none). */
export const PARALLEL_AXIS: Readonly<Record<ParallelKind, number | null>> = { column: 0, row: 1, vocab: 0, replicated: null };

/**
 * Megatron's tensor-parallel layout for BERT-style names, both Hugging Face (`attention.self.query`,
 * `intermediate.dense`, `output.dense`) and Megatron-LM (`query_key_value`, `dense_h_to_4h`,
 * `dense_4h_to_h`). First match wins; anything unmatched is replicated.
 */
export const MEGATRON_BERT_RULES: readonly ShardingRule[] = [
  { pattern: /(^|\.)word_embeddings\.weight$/, kind: 'vocab' },
  { pattern: /(^|\.)predictions\.decoder\.weight$/, kind: 'vocab' },
  { pattern: /(^|\.)predictions\.(decoder\.)?bias$/, kind: 'vocab' },
  { pattern: /(^|\.)lm_head\.bias$/, kind: 'vocab' },
  { pattern: /\.attention\.self\.(query|key|value)\.(weight|bias)$/, kind: 'column' },
  { pattern: /\.attention\.output\.dense\.weight$/, kind: 'row' },
  { pattern: /\.intermediate\.dense\.(weight|bias)$/, kind: 'column' },
  { pattern: /\.layer\.\d+\.output\.dense\.weight$/, kind: 'row' },
  { pattern: /\.(query_key_value|dense_h_to_4h)\.(weight|bias)$/, kind: 'column' },
  { pattern: /\.self_attention\.dense\.weight$/, kind: 'row' },
  { pattern: /\.dense_4h_to_h\.weight$/, kind: 'row' },
];

/** The kind of `name` under `rules` (first match; replicated when none matches). */
export function parallelKind(name: string, rules: readonly ShardingRule[] = MEGATRON_BERT_RULES): ParallelKind {
  for (const r of rules) {
    if (typeof r.pattern === 'string' ? name.endsWith(r.pattern) : r.pattern.test(name)) return r.kind;
  }
  return 'replicated';
}

export interface ParallelLayout {
  tpRank: number;
  tpSize: number;
  ppRank?: number;
  ppSize?: number;
  dpRank?: number;
}

/** A state-dict entry: an @lm/tensor-gpu Tensor, or host data with its dtype and shape. */
export type StateDictEntry = Tensor | { dtype: DType; shape: readonly number[]; data: ArrayBufferView | (() => Promise<ArrayBufferView>) };

export interface ModuleShardingOptions {
  rules?: readonly ShardingRule[];
  /** Prepended to every key (e.g. 'model.'). */
  keyPrefix?: string;
  /**
   * Ties across pipeline stages that identity cannot reveal: alias name -> canonical name (e.g.
   * `{ 'cls.predictions.decoder.weight': 'bert.embeddings.word_embeddings.weight' }`). The alias is
   * saved as a replica of the canonical key.
   */
  ties?: Readonly<Record<string, string>>;
  /** Where this stage's first layer sits in the whole model (default: ppRank x local layer count). */
  layerOffset?: number;
  /** Finds the layer index in a name (group 2). Default: `(^|.)layer(s)?.<i>.` / `block.<i>.` / `h.<i>.`. */
  layerPattern?: RegExp;
}

const DEFAULT_LAYER_PATTERN = /(^|\.)(?:layers?|block|h)\.(\d+)\./;

/**
 * The sharded state dict of a model's `stateDict()` (the tensors this rank holds: TP-local slices, this
 * pipeline stage's layers). Keys are the parameter names (with pipeline-local layer numbers turned
 * global), values ShardedTensors whose data is the module's own tensor, so `load` fills the model in
 * place.
 */
export function moduleShardedStateDict(
  stateDict: ReadonlyMap<string, StateDictEntry>,
  layout: ParallelLayout,
  options: ModuleShardingOptions = {},
): Record<string, ShardedTensor> {
  const { tpRank, tpSize } = layout;
  const dp = layout.dpRank ?? 0;
  const pp = layout.ppRank ?? 0;
  if (!(tpSize >= 1 && tpRank >= 0 && tpRank < tpSize)) throw new DistCheckpointError(`bad tensor-parallel layout rank ${tpRank} of ${tpSize}`);
  const rules = options.rules ?? MEGATRON_BERT_RULES;
  const pattern = options.layerPattern ?? DEFAULT_LAYER_PATTERN;
  let offset = options.layerOffset ?? 0;
  if (options.layerOffset === undefined && (layout.ppSize ?? 1) > 1) {
    const local = new Set<number>();
    for (const name of stateDict.keys()) {
      const m = pattern.exec(name);
      if (m) local.add(Number(m[2]));
    }
    offset = pp * local.size;
  }
  const globalName = (name: string): string =>
    (options.keyPrefix ?? '') +
    (offset ? name.replace(pattern, (all: string, _lead: string, i: string) => `${all.slice(0, all.length - i.length - 1)}${Number(i) + offset}.`) : name);
  const out: Record<string, ShardedTensor> = {};
  const firstByIdentity = new Map<unknown, string>();
  for (const [name, entry] of stateDict) {
    const identity = isGpuTensor(entry) ? entry : entry.data;
    const tiedTo = firstByIdentity.get(identity) ?? (options.ties?.[name] && options.ties[name] !== name ? options.ties[name] : undefined);
    if (!firstByIdentity.has(identity)) firstByIdentity.set(identity, name);
    const canonical = tiedTo ?? name;
    const kind = parallelKind(canonical, rules);
    const axis = PARALLEL_AXIS[kind];
    const split = axis !== null && tpSize > 1;
    const replicaId = [tiedTo ? 1 : 0, split ? 0 : tpRank, dp];
    const shape = isGpuTensor(entry) ? entry.shape : entry.shape;
    if (axis !== null && axis >= shape.length) {
      throw new DistCheckpointError(`'${name}': ${kind}-parallel needs axis ${axis}, the tensor has shape [${shape.join(',')}]`, name);
    }
    const data = isGpuTensor(entry) ? entry : entry.data;
    const dtype = isGpuTensor(entry) ? gpuTensorDType(entry) : entry.dtype;
    const t = shardedTensorFromLocal(globalName(canonical), data as never, split ? { axis: axis as number, rank: tpRank, worldSize: tpSize } : null, replicaId, {
      dtype,
      shape,
    });
    // Several names may share a key (tied weights); keep each leaf under its own name.
    out[name] = t;
  }
  return out;
}

/**
 * This TP rank's slice of a full host tensor under a parallel kind (for splitting a full checkpoint
 * into a TP layout, and for tests).
 */
export function tpSlice<T extends ArrayBufferView>(
  full: { shape: readonly number[]; data: T },
  kind: ParallelKind,
  tpRank: number,
  tpSize: number,
): { shape: number[]; data: T } {
  const axis = PARALLEL_AXIS[kind];
  if (axis === null || tpSize === 1) return { shape: [...full.shape], data: full.data };
  const n = full.shape[axis];
  if (n % tpSize !== 0) throw new DistCheckpointError(`cannot split axis ${axis} of size ${n} into ${tpSize} tensor-parallel pieces`);
  const shape = [...full.shape];
  shape[axis] = n / tpSize;
  const offset = full.shape.map((_, d) => (d === axis ? tpRank * shape[axis] : 0));
  const es = (full.data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
  const src = new Uint8Array(full.data.buffer, full.data.byteOffset, full.data.byteLength);
  const dst = new Uint8Array(volume(shape) * es);
  copyRuns(intersectRuns({ offset: full.shape.map(() => 0), shape: full.shape }, { offset, shape }), src, dst, es);
  const Ctor = full.data.constructor as new (b: ArrayBuffer) => T;
  return { shape, data: new Ctor(dst.buffer) };
}
