// The front door: openCheckpoint() takes a path (file or folder), a Blob / File, bytes, a ByteSource or
// a list of files (a browser FileList), detects the format by magic bytes and names, and returns a
// Checkpoint; loadStateDict() reads every tensor into a Map.

import { baseName, blobSource, bytesSource, isByteSource, openFileSource, type ByteSource } from './byte-source.js';
import { CheckpointFormatError, ShardIndexError } from './errors.js';
import { dirName, fileExists, isDirectory, joinPath } from './node-fs.js';
import { SafetensorsFile } from './safetensors.js';
import { ShardedCheckpoint } from './sharded.js';
import { TorchCheckpoint } from './torch.js';
import type { ReadAs } from './dtypes.js';
import type { Checkpoint, DataFor, ReadTensorOptions, TensorData } from './types.js';

export type DetectedFormat = 'safetensors' | 'torch-zip' | 'torch-legacy' | 'index';

export type CheckpointInput =
  | string
  | ByteSource
  | Blob
  | ArrayBuffer
  | ArrayBufferView
  | ReadonlyArray<ByteSource | Blob>
  | ArrayLike<Blob>;

export interface OpenCheckpointOptions {
  /** Name used in errors for bytes / Blobs without one. */
  name?: string;
}

/** File names looked for, in order, when openCheckpoint is given a folder (safetensors first, as HF does). */
export const CHECKPOINT_FILE_NAMES = [
  'model.safetensors.index.json',
  'model.safetensors',
  'pytorch_model.bin.index.json',
  'pytorch_model.bin',
] as const;

const LEGACY_MAGIC_LE = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/** Detects a file's format from its first bytes, falling back to its name; undefined if unknown. */
export async function detectFormat(source: ByteSource): Promise<DetectedFormat | undefined> {
  const name = source.name.toLowerCase();
  if (name.endsWith('.json')) return 'index';
  const head = await source.read(0, Math.min(16, source.size));
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
    return 'torch-zip';
  }
  // Legacy torch.save: PROTO n, LONG1 of 10 bytes holding the magic number.
  if (head.length >= 14 && head[0] === 0x80 && head[2] === 0x8a && head[3] === 0x0a) {
    if (LEGACY_MAGIC_LE.every((b, i) => head[4 + i] === b)) return 'torch-legacy';
  }
  if (head.length >= 9 && head[8] === 0x7b) return 'safetensors';
  if (name.endsWith('.safetensors')) return 'safetensors';
  let i = 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x0a || head[i] === 0x0d || head[i] === 0x09)) i++;
  if (head[i] === 0x7b) return 'index';
  if (/\.(bin|pt|pth|ckpt)$/.test(name) && head[0] === 0x80) return 'torch-legacy';
  return undefined;
}

async function openSource(source: ByteSource, owned: boolean): Promise<Checkpoint> {
  let format: DetectedFormat | undefined;
  try {
    format = await detectFormat(source);
    if (format === undefined) {
      throw new CheckpointFormatError(
        source.name,
        'unrecognised checkpoint format (expected safetensors, a torch.save .bin, or a shard index .json)',
      );
    }
    if (format === 'index') {
      throw new ShardIndexError(
        source.name,
        'a shard index needs its shard files: pass the folder path, or all the files together (e.g. a FileList)',
      );
    }
  } catch (err) {
    if (owned) await source.close?.();
    throw err;
  }
  if (format === 'safetensors') return SafetensorsFile.fromSource(source, owned);
  return TorchCheckpoint.open(source, owned);
}

async function readText(source: ByteSource): Promise<string> {
  return new TextDecoder().decode(await source.read(0, source.size));
}

async function openPath(path: string): Promise<Checkpoint> {
  let file = path;
  if (await isDirectory(path)) {
    let found: string | undefined;
    for (const candidate of CHECKPOINT_FILE_NAMES) {
      const p = await joinPath(path, candidate);
      if (await fileExists(p)) {
        found = p;
        break;
      }
    }
    if (!found) {
      throw new CheckpointFormatError(path, `folder holds none of ${CHECKPOINT_FILE_NAMES.join(', ')}`);
    }
    file = found;
  }
  const source = await openFileSource(file);
  if (file.toLowerCase().endsWith('.json')) {
    const text = await readText(source).finally(() => source.close?.());
    const dir = await dirName(file);
    return ShardedCheckpoint.open(file, text, async (shard) => {
      const p = await joinPath(dir, shard);
      if (!(await fileExists(p))) return undefined;
      return openSource(await openFileSource(p), true);
    });
  }
  return openSource(source, true);
}

function toSource(item: ByteSource | Blob, name?: string): ByteSource {
  return isByteSource(item) ? item : blobSource(item, name);
}

async function openFiles(items: ReadonlyArray<ByteSource | Blob>): Promise<Checkpoint> {
  const sources = items.map((item) => toSource(item));
  const indexes = sources.filter((s) => s.name.toLowerCase().endsWith('.index.json'));
  if (indexes.length === 0) {
    if (sources.length === 1) return openSource(sources[0], false);
    throw new CheckpointFormatError(
      sources.map((s) => baseName(s.name)).join(', '),
      'several files and no *.index.json: pass one checkpoint file, or the shards with their index',
    );
  }
  const index = indexes.find((s) => s.name.endsWith('.safetensors.index.json')) ?? indexes[0];
  const byName = new Map(sources.map((s) => [baseName(s.name), s]));
  return ShardedCheckpoint.open(index.name, await readText(index), async (shard) => {
    const s = byName.get(baseName(shard));
    return s ? openSource(s, false) : undefined;
  });
}

/**
 * Opens a checkpoint of any supported format:
 * - a path (Node): a safetensors file, a torch.save file (zip or legacy), a `*.index.json`, or a folder
 *   holding one of {@link CHECKPOINT_FILE_NAMES};
 * - a Blob / File, an ArrayBuffer / typed array, or a ByteSource: one file;
 * - an array of Files / ByteSources (e.g. a FileList): one file, or shards together with their index.
 * Only headers are read here; tensors are read on request.
 */
export async function openCheckpoint(input: CheckpointInput, options: OpenCheckpointOptions = {}): Promise<Checkpoint> {
  if (typeof input === 'string') return openPath(input);
  if (isByteSource(input)) return openSource(input, false);
  if (typeof Blob !== 'undefined' && input instanceof Blob) return openSource(blobSource(input, options.name), false);
  if (input instanceof ArrayBuffer || ArrayBuffer.isView(input)) {
    return openSource(bytesSource(input, options.name ?? '<memory>'), false);
  }
  if (Array.isArray(input) || (typeof input === 'object' && input !== null && 'length' in input)) {
    return openFiles(Array.from(input as ArrayLike<ByteSource | Blob>));
  }
  throw new TypeError('openCheckpoint: expected a path, a Blob/File, bytes, a ByteSource, or a list of files');
}

export interface LoadStateDictOptions<A extends ReadAs = ReadAs> extends ReadTensorOptions<A>, OpenCheckpointOptions {
  /** Only the tensors for which this returns true. */
  filter?: (name: string) => boolean;
}

/** Opens a checkpoint, reads every tensor (one at a time) and closes it. */
export async function loadStateDict<A extends ReadAs = 'host'>(
  input: CheckpointInput,
  options: LoadStateDictOptions<A> = {},
): Promise<Map<string, TensorData<DataFor<A>>>> {
  const checkpoint = await openCheckpoint(input, options);
  try {
    const out = new Map<string, TensorData<DataFor<A>>>();
    for (const { name } of checkpoint.tensors) {
      if (options.filter && !options.filter(name)) continue;
      out.set(name, await checkpoint.readTensor<A>(name, { as: options.as }));
    }
    return out;
  } finally {
    await checkpoint.close();
  }
}
