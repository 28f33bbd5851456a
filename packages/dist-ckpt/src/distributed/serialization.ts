// save / load of distributed checkpoints (after Megatron-core's dist_checkpointing/serialization.py).
//
// On disk (`dir` is stable; each save is a new version folder, published by one atomic rename):
//
//   dir/latest.json                      {"format":"lm-dist-ckpt","version":1,"checkpoint":"ckpt-..."}
//   dir/ckpt-<id>/metadata.json          every global tensor: dtype, shape, and its shards (box, file)
//   dir/ckpt-<id>/<rank>.safetensors     one file per rank: that rank's main replicas
//   dir/ckpt-<id>/<rank>.objects.json    that rank's main-replica ShardedObjects (if any)
//
// A save writes into `dir/.ckpt-<id>.tmp/` (every file fsynced), rank 0 writes metadata.json there,
// renames the folder to `ckpt-<id>` and then atomically replaces `latest.json` (temp file + fsync +
// rename). A crash at any point leaves `latest.json` naming a complete checkpoint; leftovers (`*.tmp`
// folders, superseded versions) are never read and are removed by the next successful save.

import type { fromHost, noGrad, Tensor } from '@lm/tensor-gpu';

import { DTYPE_SIZE, convertBytes, encodeTensorData, isDType, isFloatDType, viewNative, type DType, type NativeArray } from '../format/dtypes.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../format/safetensors.js';
import type { TensorDataInput } from '../format/dtypes.js';

interface TensorGpuModule {
  fromHost: typeof fromHost;
  noGrad: typeof noGrad;
}
import { decodeValue, encodeValue } from './codec.js';
import { CorruptCheckpointError, DistCheckpointError, ShardingIntegrityError } from './errors.js';
import { copyRuns, fmtPiece, intersectRuns, pieceSize, volume, type Piece, type Run } from './geometry.js';
import { singleProcessGroup, type ProcessGroup, type RankCoords } from './group.js';
import {
  DROP,
  boxShape,
  commonStateDict,
  isGpuTensor,
  isMainReplica,
  isShardedObject,
  isShardedTensor,
  mapSharded,
  nestedSharded,
  objectUniqueKey,
  shardedTensor,
  withoutData,
  type ShardData,
  type ShardedBase,
  type ShardedObject,
  type ShardedStateDict,
  type ShardedTensor,
} from './mapping.js';
import { handleMismatch, needsMissingKeys, tensorPiece, validateShardingIntegrity, type StrictHandling } from './validation.js';

export const DIST_FORMAT = 'lm-dist-ckpt';
export const DIST_VERSION = 1;
export const POINTER_FILE = 'latest.json';
export const METADATA_FILE = 'metadata.json';

export interface TensorShardMeta {
  /** Box offset in the global tensor. */
  offset: number[];
  /** Box shape (prepended axes as 1). */
  shape: number[];
  /** [start, end) of the flattened box held, when not the whole box. */
  flat?: [number, number];
  /** File (relative to the checkpoint folder) and tensor name inside it. */
  file: string;
  name: string;
  /** The rank that wrote it. */
  rank: number;
}

export interface TensorMeta {
  dtype: DType;
  shape: number[];
  shards: TensorShardMeta[];
}

export interface ObjectMeta {
  /** Grid of pieces. */
  shape: number[];
  shards: Array<{ offset: number[]; file: string; name: string; rank: number }>;
}

export interface DistMetadata {
  format: typeof DIST_FORMAT;
  version: number;
  worldSize: number;
  ranks: Array<{ rank: number; name: string; coords?: RankCoords }>;
  tensors: Record<string, TensorMeta>;
  objects: Record<string, ObjectMeta>;
  /** Rank 0's plain (non-sharded) state, JSON-encoded (see codec.ts). */
  common: unknown;
  /** Every data file with its size in bytes. */
  files: Record<string, { size: number }>;
  createdAt: string;
}

// ---- helpers ---------------------------------------------------------------------------------------

async function nodeFs() {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const nodeFsHelpers = await import('../format/node-fs.js');
  return { fs, path, ...nodeFsHelpers };
}

function rankNameOf(group: ProcessGroup, coords?: RankCoords, name?: string): string {
  const n =
    name ??
    (coords && Object.keys(coords).length
      ? Object.entries(coords)
          .map(([k, v]) => `${k}${v}`)
          .join('_')
      : `rank${String(group.rank).padStart(5, '0')}`);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(n) || n.endsWith('.tmp')) {
    throw new DistCheckpointError(`rank name '${n}' must be letters, digits, '_', '.', '-' (it names files)`);
  }
  return n;
}

/** The tensor name a shard is stored under inside its rank's safetensors file. */
export function shardTensorName(t: Pick<ShardedTensor, 'key' | 'globalOffset' | 'globalShape' | 'flattenedRange'>): string {
  const flat = t.flattenedRange ? `_flat_${t.flattenedRange[0]}.${t.flattenedRange[1]}` : '';
  return `${t.key}/shard_${t.globalOffset.join('.')}_${t.globalShape.join('.')}${flat}`;
}

function storedShape(t: ShardedTensor): number[] {
  return t.flattenedRange ? [t.flattenedRange[1] - t.flattenedRange[0]] : boxShape(t);
}

/** Host bytes of a shard's data, in its checkpoint dtype. */
async function shardBytes(t: ShardedTensor): Promise<Uint8Array> {
  let d: ShardData | null = t.data;
  if (typeof d === 'function') d = await d();
  if (d === null) throw new DistCheckpointError(`save: ShardedTensor '${t.key}' has no data`, t.key);
  const count = volume(storedShape(t));
  const host: TensorDataInput = isGpuTensor(d) ? await d.data() : d;
  return encodeTensorData(t.dtype, count, host, { file: '<save>', tensor: t.key });
}

function newCheckpointId(): string {
  const rand = Math.floor(Math.random() * 0xffffffff)
    .toString(16)
    .padStart(8, '0');
  return `ckpt-${Date.now().toString(36)}-${rand}`;
}

// ---- save ------------------------------------------------------------------------------------------

export interface SaveOptions {
  /** The ranks taking part (default: a single rank). Every rank calls save with its own state dict. */
  group?: ProcessGroup;
  /** This rank's parallel coordinates (`{ tp: 1, pp: 0, dp: 0 }`); they name its files. */
  coords?: RankCoords;
  /** Overrides the file name derived from `coords` / the rank index. */
  rankName?: string;
  /** Skip validate_sharding_integrity (not recommended). */
  validateAccessIntegrity?: boolean;
}

export interface SaveResult {
  /** The checkpoint root (what load takes). */
  dir: string;
  /** The published version folder. */
  checkpoint: string;
  /** Files this rank wrote. */
  files: string[];
}

export interface AsyncSaveRequest {
  /** Resolves when every rank's files are written and the checkpoint is published. */
  readonly done: Promise<SaveResult>;
  wait(): Promise<SaveResult>;
}

interface RankInfo {
  name: string;
  coords?: RankCoords;
  leaves: ShardedBase[];
  id: string | null;
}

/**
 * Saves this rank's part of a sharded state dict to the distributed checkpoint `dir`. Every rank of
 * `group` calls it; each writes only its main replicas; rank 0 writes the metadata and publishes.
 * Validates sharding integrity first (every rank throws the same ShardingIntegrityError, nothing is
 * written). Atomic: until the final rename, `dir` keeps its previous checkpoint.
 */
export async function save(sd: ShardedStateDict, dir: string, options: SaveOptions = {}): Promise<SaveResult> {
  return (await startSave(sd, dir, options, false)).done;
}

/**
 * The async variant: resolves once this rank's data is snapshotted to host memory (training may
 * then modify its tensors), while the files are written in the background; await `request.done`.
 */
export async function saveAsync(sd: ShardedStateDict, dir: string, options: SaveOptions = {}): Promise<AsyncSaveRequest> {
  return startSave(sd, dir, options, true);
}

async function startSave(sd: ShardedStateDict, dir: string, options: SaveOptions, snapshot: boolean): Promise<AsyncSaveRequest> {
  const group = options.group ?? singleProcessGroup();
  const name = rankNameOf(group, options.coords, options.rankName);
  const leaves = [...nestedSharded(sd)];
  const all = await group.allGather<RankInfo>({
    name,
    coords: options.coords,
    leaves: leaves.map(withoutData),
    id: group.rank === 0 ? newCheckpointId() : null,
  });
  const names = new Map<string, number>();
  all.forEach((r, i) => {
    if (names.has(r.name)) throw new DistCheckpointError(`save: ranks ${names.get(r.name)} and ${i} both call themselves '${r.name}'`);
    names.set(r.name, i);
  });
  if (options.validateAccessIntegrity !== false) validateShardingIntegrity(all.map((r) => r.leaves));
  const id = all[0].id as string;
  const mains = leaves.filter((l) => isMainReplica(l.replicaId));
  const tensors = mains.filter(isShardedTensor);
  const objects = mains.filter(isShardedObject);
  // The async variant copies everything it will write first, as Megatron's async save does.
  const snap = new Map<ShardedTensor, Uint8Array>();
  if (snapshot) for (const t of tensors) snap.set(t, (await shardBytes(t)).slice());
  const common = group.rank === 0 ? encodeValue(commonStateDict(sd)) : null;
  const done = writeAndPublish(group, dir, id, name, all, tensors, objects, snap, common);
  done.catch(() => undefined); // reported through `done`
  return { done, wait: () => done };
}

async function writeAndPublish(
  group: ProcessGroup,
  dir: string,
  id: string,
  rankName: string,
  all: RankInfo[],
  tensors: ShardedTensor[],
  objects: ShardedObject[],
  snap: Map<ShardedTensor, Uint8Array>,
  common: unknown,
): Promise<SaveResult> {
  const { fs, path, writeFileAtomic, syncDirectory } = await nodeFs();
  const staging = path.join(dir, `.${id}.tmp`);
  const files: Record<string, { size: number }> = {};
  let error: string | null = null;
  try {
    await fs.mkdir(staging, { recursive: true });
    if (tensors.length) {
      const file = `${rankName}.safetensors`;
      const dict = new Map<string, TensorToWrite>();
      for (const t of tensors) {
        dict.set(shardTensorName(t), { dtype: t.dtype, shape: storedShape(t), data: () => snap.get(t) ?? shardBytes(t) });
      }
      await writeSafetensors(path.join(staging, file), dict, { metadata: { format: DIST_FORMAT, rank: rankName } });
      files[file] = { size: (await fs.stat(path.join(staging, file))).size };
    }
    if (objects.length) {
      const file = `${rankName}.objects.json`;
      const body: Record<string, unknown> = {};
      for (const o of objects) body[objectUniqueKey(o)] = encodeValue(o.data, o.key);
      const bytes = new TextEncoder().encode(JSON.stringify(body));
      await writeFileAtomic(path.join(staging, file), (write) => write(bytes));
      files[file] = { size: bytes.length };
    }
  } catch (err) {
    error = `rank ${group.rank} ('${rankName}'): ${(err as Error).message}`;
  }
  // Every rank reports (success or failure) so that no rank waits forever for a failed one.
  const reports = await group.allGather({ error, files });
  const failed = reports.filter((r) => r.error).map((r) => r.error);
  let publishError: string | null = null;
  if (!failed.length && group.rank === 0) {
    try {
      const metadata = buildMetadata(all, reports.map((r) => r.files), common);
      const bytes = new TextEncoder().encode(`${JSON.stringify(metadata, null, 1)}\n`);
      await writeFileAtomic(path.join(staging, METADATA_FILE), (write) => write(bytes));
      await syncDirectory(staging);
      await fs.rename(staging, path.join(dir, id));
      await syncDirectory(dir);
      const pointer = new TextEncoder().encode(`${JSON.stringify({ format: DIST_FORMAT, version: DIST_VERSION, checkpoint: id })}\n`);
      await writeFileAtomic(path.join(dir, POINTER_FILE), (write) => write(pointer));
      await removeStale(dir, id);
    } catch (err) {
      publishError = `rank 0: ${(err as Error).message}`;
    }
  }
  const published = await group.allGather(publishError);
  if (failed.length || published[0]) {
    if (group.rank === 0) await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw new DistCheckpointError(`save to '${dir}' failed, the previous checkpoint is kept: ${[...failed, published[0]].filter(Boolean).join('; ')}`);
  }
  return { dir, checkpoint: path.join(dir, id), files: Object.keys(files).map((f) => path.join(dir, id, f)) };
}

/** Removes staging folders of interrupted saves and superseded versions (never the current one). */
async function removeStale(dir: string, current: string): Promise<void> {
  const { fs, path } = await nodeFs();
  for (const entry of await fs.readdir(dir)) {
    if (entry === current) continue;
    // Staging folders, superseded versions, and temp files of an interrupted latest.json update.
    const pointerTemp = entry.startsWith(`.${POINTER_FILE}.`) && entry.endsWith('.tmp');
    if (/^\.ckpt-[\w-]+\.tmp$/.test(entry) || /^ckpt-[\w-]+$/.test(entry) || pointerTemp) {
      await fs.rm(path.join(dir, entry), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

function buildMetadata(all: RankInfo[], rankFiles: Array<Record<string, { size: number }>>, common: unknown): DistMetadata {
  const tensors: Record<string, TensorMeta> = {};
  const objects: Record<string, ObjectMeta> = {};
  const files: Record<string, { size: number }> = {};
  all.forEach((r, rank) => {
    Object.assign(files, rankFiles[rank]);
    for (const leaf of r.leaves) {
      if (!isMainReplica(leaf.replicaId)) continue;
      if (leaf.kind === 'sharded-tensor') {
        const meta = (tensors[leaf.key] ??= { dtype: leaf.dtype, shape: [...leaf.globalShape], shards: [] });
        meta.shards.push({
          offset: [...leaf.globalOffset],
          shape: boxShape(leaf),
          ...(leaf.flattenedRange ? { flat: [leaf.flattenedRange[0], leaf.flattenedRange[1]] as [number, number] } : {}),
          file: `${r.name}.safetensors`,
          name: shardTensorName(leaf),
          rank,
        });
      } else {
        const meta = (objects[leaf.key] ??= { shape: [...leaf.globalShape], shards: [] });
        meta.shards.push({ offset: [...leaf.globalOffset], file: `${r.name}.objects.json`, name: objectUniqueKey(leaf), rank });
      }
    }
  });
  return {
    format: DIST_FORMAT,
    version: DIST_VERSION,
    worldSize: all.length,
    ranks: all.map((r, rank) => ({ rank, name: r.name, ...(r.coords ? { coords: r.coords } : {}) })),
    tensors,
    objects,
    common,
    files,
    createdAt: new Date().toISOString(),
  };
}

// ---- reading ---------------------------------------------------------------------------------------

/** Resolves a checkpoint root (with latest.json) or a version folder (with metadata.json) to the version folder. */
export async function resolveCheckpoint(dir: string): Promise<string> {
  const { fs, path, fileExists } = await nodeFs();
  const pointerPath = path.join(dir, POINTER_FILE);
  if (await fileExists(pointerPath)) {
    let pointer: { format?: unknown; checkpoint?: unknown };
    try {
      pointer = JSON.parse(await fs.readFile(pointerPath, 'utf8')) as typeof pointer;
    } catch (err) {
      throw new CorruptCheckpointError(`${pointerPath}: not valid JSON (${(err as Error).message})`, undefined, pointerPath);
    }
    if (pointer.format !== DIST_FORMAT || typeof pointer.checkpoint !== 'string' || !/^ckpt-[\w-]+$/.test(pointer.checkpoint)) {
      throw new CorruptCheckpointError(`${pointerPath}: not an ${DIST_FORMAT} pointer`, undefined, pointerPath);
    }
    return path.join(dir, pointer.checkpoint);
  }
  if (await fileExists(path.join(dir, METADATA_FILE))) return dir;
  throw new DistCheckpointError(`${dir}: not a distributed checkpoint (no ${POINTER_FILE} or ${METADATA_FILE})`, undefined, dir);
}

function isIntList(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0);
}

/** Parses and checks metadata.json: schema, shard boxes inside their tensors, exact coverage, known files. */
export function parseDistMetadata(file: string, text: string): DistMetadata {
  const fail = (msg: string, key?: string): never => {
    throw new CorruptCheckpointError(`${file}: ${key !== undefined ? `tensor '${key}': ` : ''}${msg}`, key, file);
  };
  let m: DistMetadata;
  try {
    m = JSON.parse(text) as DistMetadata;
  } catch (err) {
    return fail(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof m !== 'object' || m === null || m.format !== DIST_FORMAT) fail(`not ${DIST_FORMAT} metadata`);
  if (m.version !== DIST_VERSION) fail(`format version ${String(m.version)} is not supported (this reader knows ${DIST_VERSION})`);
  if (typeof m.tensors !== 'object' || m.tensors === null || typeof m.files !== 'object' || m.files === null) fail('no tensors / files table');
  m.objects ??= {};
  for (const [key, t] of Object.entries(m.tensors)) {
    if (!isDType(t?.dtype) || !isIntList(t.shape) || !Array.isArray(t.shards)) fail('bad entry (dtype, shape, shards)', key);
    const leaves: ShardedTensor[] = t.shards.map((s, i) => {
      if (!isIntList(s?.offset) || !isIntList(s.shape) || s.offset.length !== t.shape.length || s.shape.length !== t.shape.length) {
        fail(`shard #${i}: bad offset / shape`, key);
      }
      if (typeof s.file !== 'string' || typeof s.name !== 'string' || !m.files[s.file] || /[/\\]|^\.\.?$/.test(s.file)) {
        fail(`shard #${i}: file '${String(s.file)}' is not one of the checkpoint's files`, key);
      }
      if (s.flat !== undefined && (!isIntList(s.flat) || s.flat.length !== 2 || s.flat[0] > s.flat[1] || s.flat[1] > volume(s.shape))) {
        fail(`shard #${i}: bad flat range`, key);
      }
      try {
        return shardedTensor({ key, dtype: t.dtype, localShape: s.shape, globalShape: t.shape, globalOffset: s.offset, flattenedRange: s.flat ?? null });
      } catch (err) {
        return fail(`shard #${i} in '${s.file}': ${(err as Error).message}`, key);
      }
    });
    try {
      validateShardingIntegrity([leaves]);
    } catch (err) {
      if (err instanceof ShardingIntegrityError) fail(`the shards listed do not tile the tensor: ${err.message}`);
      throw err;
    }
  }
  return m;
}

/** An opened distributed checkpoint: metadata up front, any slice of any tensor read on request. */
export class DistCheckpoint {
  private readonly files = new Map<string, Promise<SafetensorsFile>>();
  private readonly objectFiles = new Map<string, Promise<Record<string, unknown>>>();

  private constructor(
    /** The version folder. */
    readonly path: string,
    readonly metadata: DistMetadata,
  ) {}

  /** Opens a checkpoint root (latest.json) or a version folder (metadata.json). */
  static async open(dir: string): Promise<DistCheckpoint> {
    const { fs, path } = await nodeFs();
    const root = await resolveCheckpoint(dir);
    const metaPath = path.join(root, METADATA_FILE);
    let text: string;
    try {
      text = await fs.readFile(metaPath, 'utf8');
    } catch (err) {
      throw new CorruptCheckpointError(`${metaPath}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, undefined, metaPath);
    }
    return new DistCheckpoint(root, parseDistMetadata(metaPath, text));
  }

  get tensorKeys(): string[] {
    return Object.keys(this.metadata.tensors);
  }

  get objectKeys(): string[] {
    return Object.keys(this.metadata.objects);
  }

  /** The checkpoint's plain (common) state. */
  get common(): unknown {
    return decodeValue(this.metadata.common);
  }

  tensor(key: string): TensorMeta {
    const t = this.metadata.tensors[key];
    if (!t) throw new DistCheckpointError(`${this.path}: tensor '${key}' is not in the checkpoint`, key);
    return t;
  }

  private async shardFile(key: string, file: string): Promise<SafetensorsFile> {
    let p = this.files.get(file);
    if (!p) {
      p = (async () => {
        const { path, fileExists } = await nodeFs();
        const full = path.join(this.path, file);
        if (!(await fileExists(full))) throw new CorruptCheckpointError(`shard file '${full}' is missing`, key, full);
        const st = await SafetensorsFile.open(full);
        const want = this.metadata.files[file]?.size;
        if (want !== undefined && st.source.size !== want) {
          await st.close();
          throw new CorruptCheckpointError(`shard file '${full}' is ${st.source.size} bytes, metadata.json says ${want} (truncated or replaced)`, key, full);
        }
        return st;
      })();
      this.files.set(file, p);
    }
    try {
      return await p;
    } catch (err) {
      const full = `${this.path}/${file}`;
      const msg = (err as Error).message;
      throw new CorruptCheckpointError(`tensor '${key}': ${msg.includes(file) ? msg : `shard file '${full}': ${msg}`}`, key, full);
    }
  }

  /**
   * Bytes (checkpoint dtype, row-major) of the elements of `piece` in global coordinates. Reads only
   * the overlapping runs of each stored shard, in bounded windows. Elements outside the stored global
   * shape are left zero when `allowShapeMismatch`; otherwise every element must be covered.
   */
  async readPiece(key: string, piece: Piece, options: { allowShapeMismatch?: boolean; windowBytes?: number } = {}): Promise<Uint8Array> {
    const meta = this.tensor(key);
    const es = DTYPE_SIZE[meta.dtype];
    const out = new Uint8Array(pieceSize(piece) * es);
    const plans: Array<{ shard: TensorShardMeta; runs: Run[] }> = [];
    let covered = 0;
    for (const shard of meta.shards) {
      const runs = intersectRuns({ offset: shard.offset, shape: shard.shape, flat: shard.flat }, piece);
      if (!runs.length) continue;
      for (const r of runs) covered += r.length;
      plans.push({ shard, runs });
    }
    const inside = intersectRuns(piece, { offset: meta.shape.map(() => 0), shape: meta.shape }).reduce((n, r) => n + r.length, 0);
    if (!options.allowShapeMismatch && inside !== pieceSize(piece)) {
      throw new DistCheckpointError(`tensor '${key}': requested ${fmtPiece(piece)} runs past the stored global shape [${meta.shape.join(',')}]`, key);
    }
    if (covered !== inside) {
      throw new CorruptCheckpointError(`tensor '${key}': the checkpoint's shards cover ${covered} of the ${inside} requested elements (${fmtPiece(piece)})`, key);
    }
    const window = options.windowBytes ?? 16 << 20;
    for (const { shard, runs } of plans) {
      const file = await this.shardFile(key, shard.file);
      const where = `${this.path}/${shard.file}`;
      if (!file.has(shard.name)) throw new CorruptCheckpointError(`tensor '${key}': shard file '${where}' has no tensor '${shard.name}'`, key, where);
      const info = file.info(shard.name);
      const stored = shard.flat ? [shard.flat[1] - shard.flat[0]] : shard.shape;
      if (info.dtype !== meta.dtype || info.shape.join(',') !== stored.join(',')) {
        throw new CorruptCheckpointError(
          `tensor '${key}': shard file '${where}' holds '${shard.name}' as ${info.dtype} [${info.shape.join(',')}] ` +
            `but metadata.json says ${meta.dtype} [${stored.join(',')}]`,
          key,
          where,
        );
      }
      await readRuns(file, info.dataOffsets[0], runs, es, out, window, key, where);
    }
    return out;
  }

  /** The whole global tensor (for consolidation; a rank loading its slice uses readPiece / load). */
  async readTensor(key: string): Promise<{ dtype: DType; shape: number[]; data: NativeArray }> {
    const meta = this.tensor(key);
    const bytes = await this.readPiece(key, { offset: meta.shape.map(() => 0), shape: meta.shape });
    return { dtype: meta.dtype, shape: meta.shape.slice(), data: viewNative(meta.dtype, bytes) };
  }

  /** One piece of a ShardedObject. */
  async readObject(key: string, offset: readonly number[]): Promise<unknown> {
    const meta = this.metadata.objects[key];
    if (!meta) throw new DistCheckpointError(`${this.path}: object '${key}' is not in the checkpoint`, key);
    const name = objectUniqueKey({ key, globalOffset: offset, globalShape: meta.shape });
    const shard = meta.shards.find((s) => s.name === name);
    if (!shard) throw new CorruptCheckpointError(`object '${key}': piece '${name}' is not in the checkpoint`, key);
    let p = this.objectFiles.get(shard.file);
    if (!p) {
      p = (async () => {
        const { fs, path } = await nodeFs();
        const full = path.join(this.path, shard.file);
        let text: string;
        try {
          text = await fs.readFile(full, 'utf8');
        } catch (err) {
          throw new CorruptCheckpointError(`object '${key}': file '${full}' cannot be read (${(err as NodeJS.ErrnoException).code ?? ''})`, key, full);
        }
        try {
          return JSON.parse(text) as Record<string, unknown>;
        } catch {
          throw new CorruptCheckpointError(`object '${key}': file '${full}' is not valid JSON (truncated?)`, key, full);
        }
      })();
      this.objectFiles.set(shard.file, p);
    }
    const body = await p;
    if (!(name in body)) throw new CorruptCheckpointError(`object '${key}': '${shard.file}' lacks '${name}'`, key, shard.file);
    return decodeValue(body[name]);
  }

  async close(): Promise<void> {
    const all = [...this.files.values()];
    this.files.clear();
    for (const p of all) await p.then((f) => f.close()).catch(() => undefined);
  }
}

async function readRuns(
  file: SafetensorsFile,
  begin: number,
  runs: Run[],
  es: number,
  out: Uint8Array,
  windowBytes: number,
  key: string,
  where: string,
): Promise<void> {
  const base = file.header.dataStart + begin;
  const windowElems = Math.max(1, Math.floor(windowBytes / es));
  const read = async (offset: number, length: number): Promise<Uint8Array> => {
    try {
      return await file.source.read(base + offset * es, length * es);
    } catch (err) {
      throw new CorruptCheckpointError(`tensor '${key}': shard file '${where}': ${(err as Error).message}`, key, where);
    }
  };
  let i = 0;
  while (i < runs.length) {
    const start = runs[i].src;
    if (runs[i].length > windowElems) {
      // One long run: stream it in windows.
      const r = runs[i];
      for (let done = 0; done < r.length; done += windowElems) {
        const n = Math.min(windowElems, r.length - done);
        out.set(await read(r.src + done, n), (r.dst + done) * es);
      }
      i++;
      continue;
    }
    let j = i;
    while (j + 1 < runs.length && runs[j + 1].src + runs[j + 1].length - start <= windowElems) j++;
    const end = runs[j].src + runs[j].length;
    copyRuns(runs.slice(i, j + 1), await read(start, end - start), out, es, start);
    i = j + 1;
  }
}

// ---- load ------------------------------------------------------------------------------------------

export interface LoadOptions {
  /** Needed (on every rank) only for the *_all strict modes, to find keys no rank requested. */
  group?: ProcessGroup;
  /** Default 'assume_ok_unexpected', as in Megatron. */
  strict?: StrictHandling;
  /** Where the log_* modes write (default console.warn). */
  log?: (message: string) => void;
}

/** A loaded tensor that had no destination (`data: null` or lazy): native typed array of its dtype. */
export interface LoadedTensor {
  dtype: DType;
  shape: number[];
  data: NativeArray;
}

export interface LoadResult {
  /**
   * The requested nesting with every ShardedTensor replaced by its data (the same Tensor / typed array
   * object, filled in place, or a new LoadedTensor) and every ShardedObject by its value, merged over
   * the checkpoint's common state. Skipped unexpected keys are absent.
   */
  stateDict: Record<string, unknown>;
  missingKeys: string[];
  unexpectedKeys: string[];
}

function deepMerge(base: unknown, over: unknown): unknown {
  const plain = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
  if (plain(base) && plain(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in out ? deepMerge(out[k], v) : v;
    return out;
  }
  return over === undefined ? base : over;
}

/**
 * Loads this rank's part of `sd` from the distributed checkpoint `dir`, whatever layout it was saved
 * with: each ShardedTensor reads exactly its box from the stored shards that overlap it. Everything is
 * read and checked first, then copied into the destinations, so a failure (missing shard file,
 * truncation, metadata that disagrees with the files) leaves the model untouched.
 */
export async function load(sd: ShardedStateDict, dir: string, options: LoadOptions = {}): Promise<LoadResult> {
  const strict = options.strict ?? 'assume_ok_unexpected';
  await ensureTensorGpu(sd);
  const ckpt = await DistCheckpoint.open(dir);
  try {
    const leaves = [...nestedSharded(sd)];
    const has = (l: ShardedBase) => (l.kind === 'sharded-tensor' ? l.key in ckpt.metadata.tensors : l.key in ckpt.metadata.objects);
    const unexpected = [...new Set(leaves.filter((l) => !has(l)).map((l) => l.key))];
    let missing: string[] = [];
    if (needsMissingKeys(strict)) {
      const requested = new Set((await (options.group ?? singleProcessGroup()).allGather(leaves.map((l) => l.key))).flat());
      missing = [...ckpt.tensorKeys, ...ckpt.objectKeys].filter((k) => !requested.has(k));
    }
    let report = { missingKeys: [] as string[], unexpectedKeys: [] as string[] };
    if (strict !== 'assume_ok_unexpected') report = handleMismatch(strict, missing, unexpected, options.log ?? ((m) => console.warn(m)));
    const skip = new Set(strict === 'assume_ok_unexpected' ? [] : unexpected);

    // Phase 1: read and check everything.
    const loaded = new Map<ShardedBase, unknown>();
    for (const leaf of leaves) {
      if (skip.has(leaf.key) || loaded.has(leaf)) continue;
      if (leaf.kind === 'sharded-object') {
        loaded.set(leaf, await ckpt.readObject(leaf.key, leaf.globalOffset));
        continue;
      }
      const meta = ckpt.tensor(leaf.key);
      if (meta.dtype !== leaf.dtype && !(isFloatDType(meta.dtype) && isFloatDType(leaf.dtype))) {
        throw new DistCheckpointError(`load: tensor '${leaf.key}': the checkpoint holds ${meta.dtype}, the state dict asks for ${leaf.dtype}`, leaf.key);
      }
      if (!leaf.allowShapeMismatch && meta.shape.join(',') !== leaf.globalShape.join(',')) {
        throw new DistCheckpointError(
          `load: tensor '${leaf.key}': global shape [${leaf.globalShape.join(',')}] requested, the checkpoint holds [${meta.shape.join(',')}]`,
          leaf.key,
        );
      }
      const bytes = await ckpt.readPiece(leaf.key, tensorPiece(leaf), { allowShapeMismatch: leaf.allowShapeMismatch });
      loaded.set(leaf, { dtype: meta.dtype, bytes });
    }
    // Phase 2: commit.
    const results = new Map<ShardedBase, unknown>();
    for (const [leaf, value] of loaded) {
      if (leaf.kind === 'sharded-object') results.set(leaf, value);
      else results.set(leaf, commit(leaf, value as { dtype: DType; bytes: Uint8Array }));
    }
    const tree = mapSharded(sd, (leaf) => (results.has(leaf) ? results.get(leaf) : DROP), false);
    const stateDict = deepMerge(ckpt.common ?? {}, tree) as Record<string, unknown>;
    return { stateDict, ...report };
  } finally {
    await ckpt.close();
  }
}

/** Copies loaded bytes (checkpoint dtype) into the leaf's destination, converting where needed. */
function commit(leaf: ShardedTensor, { dtype, bytes }: { dtype: DType; bytes: Uint8Array }): unknown {
  const count = pieceSize(tensorPiece(leaf));
  const ctx = { file: '<load>', tensor: leaf.key };
  const d = leaf.data;
  if (isGpuTensor(d)) {
    return commitToTensor(d, convertBytes(dtype, bytes, 'host', ctx) as Float32Array | Int32Array | Uint8Array);
  }
  if (d !== null && typeof d !== 'function' && ArrayBuffer.isView(d) && !(d instanceof DataView)) {
    const target = d as unknown as NativeArray;
    const native = viewNative(leaf.dtype, new Uint8Array(0));
    if (target.constructor === native.constructor && target.byteLength === count * DTYPE_SIZE[leaf.dtype]) {
      const src = leaf.dtype === dtype ? bytes : encodeTensorData(leaf.dtype, count, convertBytes(dtype, bytes, 'float32', ctx), ctx);
      new Uint8Array(target.buffer, target.byteOffset, target.byteLength).set(src);
    } else if (target instanceof Float32Array) {
      target.set(convertBytes(dtype, bytes, 'float32', ctx) as Float32Array);
    } else if (target instanceof Int32Array) {
      target.set(convertBytes(dtype, bytes, 'int32', ctx) as Int32Array);
    } else {
      throw new DistCheckpointError(`load: tensor '${leaf.key}': cannot fill a ${target.constructor.name} with ${dtype} data`, leaf.key);
    }
    return target;
  }
  const out = leaf.dtype === dtype ? bytes : encodeTensorData(leaf.dtype, count, convertBytes(dtype, bytes, 'float32', ctx), ctx);
  const shape = leaf.flattenedRange ? [count] : [...leaf.localShape];
  return { dtype: leaf.dtype, shape, data: viewNative(leaf.dtype, out) } satisfies LoadedTensor;
}

let tensorGpu: TensorGpuModule | undefined;

/** Fills an @lm/tensor-gpu tensor in place (tied weights stay tied); the module is loaded by ensureTensorGpu. */
function commitToTensor(t: Tensor, host: Float32Array | Int32Array | Uint8Array): unknown {
  if (!tensorGpu) throw new DistCheckpointError('internal: @lm/tensor-gpu not loaded');
  const { fromHost, noGrad } = tensorGpu;
  const src = fromHost(host, t.shape, t.dtype, t.backend);
  try {
    noGrad(() => t.copy_(src));
  } finally {
    src.dispose();
  }
  return t;
}

/** Imports @lm/tensor-gpu when a state dict holds its tensors (keeps it out of host-only use). */
export async function ensureTensorGpu(sd: unknown): Promise<void> {
  if (tensorGpu) return;
  for (const leaf of nestedSharded(sd)) {
    if (leaf.kind === 'sharded-tensor' && isGpuTensor(leaf.data)) {
      tensorGpu = await import('@lm/tensor-gpu');
      return;
    }
  }
}
