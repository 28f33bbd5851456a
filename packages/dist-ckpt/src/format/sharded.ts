// Sharded checkpoints as Hugging Face writes them: `model-00001-of-00003.safetensors` (or
// `pytorch_model-00001-of-00003.bin`) next to `model.safetensors.index.json` /
// `pytorch_model.bin.index.json` = `{"metadata": {"total_size": N}, "weight_map": {name: shard file}}`.
// Sharding follows huggingface_hub's split_state_dict_into_shards_factory: tensors in state-dict
// order; a tensor that would tip the current shard over the limit starts a new shard; a tensor larger
// than the limit gets a shard of its own; one shard means a plain `model.safetensors` and no index.

import { DTYPE_SIZE, numel, type ReadAs } from './dtypes.js';
import { ShardIndexError, TensorNotFoundError } from './errors.js';
import { writeFileAtomic } from './node-fs.js';
import {
  stateDictEntries,
  writeSafetensors,
  type SafetensorsWriteOptions,
  type StateDictInput,
  type TensorToWrite,
} from './safetensors.js';
import type { Checkpoint, DataFor, ReadTensorOptions, TensorData, TensorInfo } from './types.js';

const SIZE_UNITS: ReadonlyArray<[string, number]> = [
  ['TIB', 2 ** 40],
  ['GIB', 2 ** 30],
  ['MIB', 2 ** 20],
  ['KIB', 2 ** 10],
  ['TB', 1e12],
  ['GB', 1e9],
  ['MB', 1e6],
  ['KB', 1e3],
  ['B', 1],
];

/**
 * A shard size in bytes: a number of bytes, or a string with Hugging Face's units: "5GB" = 5 * 10^9,
 * "500MB", "10KB", "2GiB" = 2 * 2^30, "512MiB", "4KiB" (case-insensitive). As in transformers'
 * `convert_file_size_to_int`, a lowercase final "b" with a decimal unit means bits ("5Gb" = 625 MB).
 */
export function parseShardSize(size: number | string): number {
  if (typeof size === 'number') {
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`maxShardSize ${size} must be a positive integer`);
    return size;
  }
  const text = size.trim();
  const upper = text.toUpperCase();
  for (const [unit, factor] of SIZE_UNITS) {
    if (!upper.endsWith(unit)) continue;
    const num = text.slice(0, text.length - unit.length).trim();
    if (!/^\d+(\.\d+)?$/.test(num)) break;
    let bytes = Math.floor(Number(num) * factor);
    if (unit.length === 2 && text.endsWith('b')) bytes = Math.floor(bytes / 8);
    if (bytes <= 0) break;
    return bytes;
  }
  if (/^\d+$/.test(text) && Number(text) > 0) return Number(text);
  throw new RangeError(`cannot parse shard size ${JSON.stringify(size)} (expected e.g. 5GB, 500MB, 10KB, 2GiB or bytes)`);
}

export interface ShardIndex {
  metadata: { total_size?: number; [key: string]: unknown };
  weight_map: Record<string, string>;
}

/** Refuses shard names that could point outside the index's directory. */
function checkShardName(indexFile: string, shard: string, tensor: string): void {
  if (
    shard.length === 0 ||
    shard.startsWith('/') ||
    shard.startsWith('\\') ||
    /^[a-zA-Z]:/.test(shard) ||
    shard.split(/[/\\]/).some((part) => part === '..')
  ) {
    throw new ShardIndexError(indexFile, `shard file name ${JSON.stringify(shard)} is not a relative path inside the checkpoint folder`, tensor);
  }
}

/** Parses and validates an index file's JSON text. */
export function parseShardIndex(indexFile: string, text: string): ShardIndex {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ShardIndexError(indexFile, `index is not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ShardIndexError(indexFile, 'index is not a JSON object');
  }
  const { metadata = {}, weight_map: weightMap } = json as Record<string, unknown>;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new ShardIndexError(indexFile, '"metadata" is not an object');
  }
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new ShardIndexError(indexFile, 'index has no "weight_map" object');
  }
  for (const [tensor, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string') throw new ShardIndexError(indexFile, 'weight_map value is not a file name', tensor);
    checkShardName(indexFile, shard, tensor);
  }
  return { metadata: metadata as ShardIndex['metadata'], weight_map: weightMap as Record<string, string> };
}

/** Opens a shard by the name the index gives; resolves to undefined when the file does not exist. */
export type ShardResolver = (shard: string) => Promise<Checkpoint | undefined>;

/** A sharded checkpoint: the index's tensors, each read from its shard. */
export class ShardedCheckpoint implements Checkpoint {
  readonly format = 'sharded' as const;
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
  private readonly owner = new Map<string, Checkpoint>();

  private constructor(
    readonly name: string,
    readonly index: ShardIndex,
    readonly shards: ReadonlyMap<string, Checkpoint>,
  ) {
    const tensors: TensorInfo[] = [];
    const metadata: Record<string, string> = {};
    for (const [shardName, shard] of shards) {
      Object.assign(metadata, shard.metadata);
      for (const t of shard.tensors) {
        if (index.weight_map[t.name] === shardName) {
          tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape.slice() });
          this.owner.set(t.name, shard);
        }
      }
    }
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /** Opens every shard the index names (in order of first mention) and checks each holds its tensors. */
  static async open(indexFile: string, indexText: string, resolve: ShardResolver): Promise<ShardedCheckpoint> {
    const index = parseShardIndex(indexFile, indexText);
    const byShard = new Map<string, string[]>();
    for (const [tensor, shard] of Object.entries(index.weight_map)) {
      const list = byShard.get(shard);
      if (list) list.push(tensor);
      else byShard.set(shard, [tensor]);
    }
    const shards = new Map<string, Checkpoint>();
    try {
      for (const [shard, names] of byShard) {
        const cp = await resolve(shard);
        if (!cp) {
          throw new ShardIndexError(
            indexFile,
            `shard file '${shard}' named by the index is missing (it holds ${names.length} tensor(s), e.g. '${names[0]}')`,
          );
        }
        shards.set(shard, cp);
        for (const name of names) {
          if (!cp.has(name)) {
            throw new ShardIndexError(indexFile, `the index puts this tensor in shard '${shard}', which does not hold it`, name);
          }
        }
      }
    } catch (err) {
      await Promise.all([...shards.values()].map((s) => s.close().catch(() => undefined)));
      throw err;
    }
    return new ShardedCheckpoint(indexFile, index, shards);
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  private shardOf(name: string): Checkpoint {
    const shard = this.owner.get(name);
    if (!shard) throw new TensorNotFoundError(this.name, name);
    return shard;
  }

  info(name: string): TensorInfo {
    return this.shardOf(name).info(name);
  }

  readRaw(name: string): Promise<Uint8Array> {
    return this.shardOf(name).readRaw(name);
  }

  readTensor<A extends ReadAs = 'host'>(name: string, options?: ReadTensorOptions<A>): Promise<TensorData<DataFor<A>>> {
    return this.shardOf(name).readTensor(name, options);
  }

  async close(): Promise<void> {
    await Promise.all([...this.shards.values()].map((s) => s.close()));
  }
}

// ---- writing --------------------------------------------------------------------------------

function tensorBytes(t: TensorToWrite): number {
  return numel(t.shape) * DTYPE_SIZE[t.dtype];
}

/** Splits (name, bytes) pairs into shards of at most `maxShardSize` bytes (see the file header). */
export function planShards(sizes: ReadonlyArray<readonly [string, number]>, maxShardSize: number): string[][] {
  const shards: string[][] = [];
  let current: string[] = [];
  let currentSize = 0;
  for (const [name, size] of sizes) {
    if (size > maxShardSize) {
      shards.push([name]);
      continue;
    }
    if (currentSize + size > maxShardSize && current.length > 0) {
      shards.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(name);
    currentSize += size;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

/** `model-00001-of-00003.safetensors` */
export function shardFileName(prefix: string, extension: string, index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `${prefix}-${pad(index + 1)}-of-${pad(count)}${extension}`;
}

export interface ShardedWriteOptions extends SafetensorsWriteOptions {
  /** Bytes, or "5GB" / "500MB" / "2GiB" ... Default "5GB". */
  maxShardSize?: number | string;
  /** File name prefix. Default "model" (model.safetensors, model-00001-of-00002.safetensors). */
  prefix?: string;
}

export interface ShardedWriteResult {
  /** Shard file names written, in order. */
  files: string[];
  /** The index file name, when more than one shard was written. */
  indexFile?: string;
  index?: ShardIndex;
}

/**
 * Writes a state dict into `dir` as safetensors shards plus `<prefix>.safetensors.index.json` (or a
 * single `<prefix>.safetensors` when it fits in one shard). Each file is written atomically, the index
 * last; shard files of an earlier save with the same prefix that this save does not rewrite are
 * removed, so stale shards never mix with new ones.
 */
export async function writeShardedSafetensors(
  dir: string,
  stateDict: StateDictInput,
  options: ShardedWriteOptions = {},
): Promise<ShardedWriteResult> {
  const fs = await import('node:fs/promises');
  const nodePath = await import('node:path');
  const prefix = options.prefix ?? 'model';
  const maxShardSize = parseShardSize(options.maxShardSize ?? '5GB');
  const entries = stateDictEntries(stateDict);
  const byName = new Map(entries);
  if (byName.size !== entries.length) throw new ShardIndexError(dir, 'duplicate tensor names in the state dict');
  const plan = planShards(
    entries.map(([name, t]) => [name, tensorBytes(t)] as const),
    maxShardSize,
  );
  await fs.mkdir(dir, { recursive: true });
  const single = plan.length === 1;
  const files = single ? [`${prefix}.safetensors`] : plan.map((_, i) => shardFileName(prefix, '.safetensors', i, plan.length));
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let i = 0; i < plan.length; i++) {
    const shard = new Map(plan[i].map((name) => [name, byName.get(name) as TensorToWrite]));
    await writeSafetensors(nodePath.join(dir, files[i]), shard, { metadata: options.metadata });
    for (const name of plan[i]) {
      weightMap[name] = files[i];
      totalSize += tensorBytes(byName.get(name) as TensorToWrite);
    }
  }
  const indexFile = `${prefix}.safetensors.index.json`;
  let index: ShardIndex | undefined;
  if (!single) {
    const sorted: Record<string, string> = {};
    for (const name of Object.keys(weightMap).sort()) sorted[name] = weightMap[name];
    index = { metadata: { total_size: totalSize }, weight_map: sorted };
    const text = `${JSON.stringify(index, null, 2)}\n`;
    await writeFileAtomic(nodePath.join(dir, indexFile), (write) => write(new TextEncoder().encode(text)));
  }
  // Remove what an earlier save with this prefix left behind.
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const stale = new RegExp(`^${escaped}(-\\d{5}-of-\\d{5})?\\.safetensors$`);
  const keep = new Set(files);
  for (const f of await fs.readdir(dir)) {
    if ((stale.test(f) && !keep.has(f)) || (single && f === indexFile)) await fs.rm(nodePath.join(dir, f), { force: true });
  }
  return single ? { files } : { files, indexFile, index };
}
