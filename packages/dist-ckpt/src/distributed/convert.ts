// Conversion between distributed checkpoints and Hugging Face folders, and `inspect` (what the CLI
// prints) for every kind of checkpoint this package reads.

import { openCheckpoint } from '../format/checkpoint.js';
import { DTYPE_SIZE, numel } from '../format/dtypes.js';
import type { TensorToWrite } from '../format/safetensors.js';
import { writeShardedSafetensors, type ShardedWriteResult } from '../format/sharded.js';
import { DistCheckpointError } from './errors.js';
import { localProcessGroups } from './group.js';
import { shardedTensorFromLocal, type ShardedTensor } from './mapping.js';
import { MEGATRON_BERT_RULES, PARALLEL_AXIS, parallelKind, tpSlice, type ShardingRule } from './model.js';
import { DistCheckpoint, METADATA_FILE, POINTER_FILE, save } from './serialization.js';

export interface ConsolidateOptions {
  /** Shard size of the Hugging Face folder: bytes or "5GB" / "500MB" (default "5GB"). */
  maxShardSize?: number | string;
  /**
   * Only the tensors whose key starts with this, written without it: `'model.'` takes the weights out
   * of a training checkpoint that also holds optimizer state (`optimizer.*`), as lm-train's do.
   */
  prefix?: string;
}

/**
 * Writes the distributed checkpoint `distDir` as a Hugging Face folder (`model.safetensors`, or shards
 * plus `model.safetensors.index.json`). One global tensor is assembled at a time.
 */
export async function consolidateToHuggingFace(distDir: string, outDir: string, options: ConsolidateOptions = {}): Promise<ShardedWriteResult> {
  const fs = await import('node:fs/promises');
  const ckpt = await DistCheckpoint.open(distDir);
  try {
    await fs.mkdir(outDir, { recursive: true });
    const dict = new Map<string, TensorToWrite>();
    const prefix = options.prefix ?? '';
    for (const key of ckpt.tensorKeys) {
      if (!key.startsWith(prefix)) continue;
      const meta = ckpt.tensor(key);
      dict.set(key.slice(prefix.length), { dtype: meta.dtype, shape: meta.shape, data: async () => (await ckpt.readTensor(key)).data });
    }
    if (dict.size === 0) {
      throw new DistCheckpointError(`${ckpt.path}: no tensor key starts with '${prefix}' (keys: ${ckpt.tensorKeys.slice(0, 5).join(', ')}${ckpt.tensorKeys.length > 5 ? ', ...' : ''})`);
    }
    return await writeShardedSafetensors(outDir, dict, { maxShardSize: options.maxShardSize ?? '5GB', metadata: { format: 'pt' } });
  } finally {
    await ckpt.close();
  }
}

export interface SplitOptions {
  /** Tensor-parallel size of the layout to write (default 1). */
  tpSize?: number;
  /** Parallel kind per name (default Megatron's BERT rules). */
  rules?: readonly ShardingRule[];
}

/**
 * Splits a Hugging Face checkpoint (folder, file, sharded or not) into a distributed checkpoint with
 * a tensor-parallel layout, simulating `tpSize` ranks: each writes its slices.
 */
export async function splitFromHuggingFace(hfPath: string, outDir: string, options: SplitOptions = {}): Promise<void> {
  const tpSize = options.tpSize ?? 1;
  const rules = options.rules ?? MEGATRON_BERT_RULES;
  const ckpt = await openCheckpoint(hfPath);
  try {
    const groups = localProcessGroups(tpSize);
    await Promise.all(
      groups.map((group, tp) => {
        const sd: Record<string, ShardedTensor> = {};
        for (const info of ckpt.tensors) {
          const kind = parallelKind(info.name, rules);
          const axis = PARALLEL_AXIS[kind];
          const split = axis !== null && tpSize > 1 && axis < info.shape.length;
          const shape = [...info.shape];
          if (split) shape[axis] = info.shape[axis] / tpSize;
          const data = async () => {
            const full = await ckpt.readTensor(info.name, { as: 'native' });
            return split ? tpSlice({ shape: full.shape, data: full.data }, kind, tp, tpSize).data : full.data;
          };
          sd[info.name] = shardedTensorFromLocal(info.name, data, split ? { axis, rank: tp, worldSize: tpSize } : null, [0, split ? 0 : tp, 0], {
            dtype: info.dtype,
            shape,
          });
        }
        return save(sd, outDir, { group, coords: { tp } });
      }),
    );
  } finally {
    await ckpt.close();
  }
}

/** True when `path` is a distributed checkpoint root or version folder. */
export async function isDistCheckpoint(path: string): Promise<boolean> {
  const fs = await import('node:fs/promises');
  const nodePath = await import('node:path');
  for (const f of [POINTER_FILE, METADATA_FILE]) {
    try {
      if ((await fs.stat(nodePath.join(path, f))).isFile()) return true;
    } catch {
      // not there
    }
  }
  return false;
}

function human(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let u = 0;
  let v = bytes;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u ? v.toFixed(1) : v} ${units[u]}`;
}

/**
 * Describes a checkpoint as lines of text: a distributed checkpoint (root or version folder, or its
 * metadata.json / latest.json), a Hugging Face folder (sharded or not), or one safetensors / PyTorch
 * file. Reading is header-only; nothing in a file is executed.
 */
export async function inspectCheckpoint(path: string): Promise<string[]> {
  const nodePath = await import('node:path');
  const base = nodePath.basename(path);
  const target = base === METADATA_FILE || base === POINTER_FILE ? nodePath.dirname(path) : path;
  if (await isDistCheckpoint(target)) {
    const ckpt = await DistCheckpoint.open(target);
    try {
      const m = ckpt.metadata;
      const lines = [
        `${ckpt.path}: distributed checkpoint (${m.format} v${m.version}), saved ${m.createdAt} by ${m.worldSize} rank(s): ` +
          m.ranks.map((r) => r.name).join(', '),
        `files: ${Object.entries(m.files)
          .map(([f, { size }]) => `${f} (${human(size)})`)
          .join(', ')}`,
        `${ckpt.tensorKeys.length} tensors, ${ckpt.objectKeys.length} objects`,
      ];
      for (const key of ckpt.tensorKeys) {
        const t = m.tensors[key];
        lines.push(`${key}  ${t.dtype}  [${t.shape.join(', ')}]  ${t.shards.length} shard(s)`);
        for (const s of t.shards) {
          const flat = s.flat ? ` flat [${s.flat[0]}, ${s.flat[1]})` : '';
          lines.push(`    offset [${s.offset.join(', ')}] shape [${s.shape.join(', ')}]${flat} -> ${s.file} (rank ${s.rank})`);
        }
      }
      for (const key of ckpt.objectKeys) {
        const o = m.objects[key];
        lines.push(`${key}  object  grid [${o.shape.join(', ')}]  ${o.shards.length} piece(s)`);
      }
      const common = ckpt.common;
      if (common && typeof common === 'object' && Object.keys(common).length) lines.push(`common: ${Object.keys(common).join(', ')}`);
      return lines;
    } finally {
      await ckpt.close();
    }
  }
  const ckpt = await openCheckpoint(path);
  try {
    const total = ckpt.tensors.reduce((n, t) => n + numel(t.shape) * DTYPE_SIZE[t.dtype], 0);
    const lines = [`${ckpt.name}: ${ckpt.format} checkpoint, ${ckpt.tensors.length} tensors, ${human(total)}`];
    const meta = Object.entries(ckpt.metadata);
    if (meta.length) lines.push(`metadata: ${meta.map(([k, v]) => `${k}=${v}`).join(', ')}`);
    for (const t of ckpt.tensors) lines.push(`${t.name}  ${t.dtype}  [${t.shape.join(', ')}]`);
    return lines;
  } finally {
    await ckpt.close();
  }
}
