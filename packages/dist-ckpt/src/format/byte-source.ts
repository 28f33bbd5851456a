// ByteSource: random-access reads from a file, a Blob (a browser File) or bytes in memory. Readers ask
// for the ranges they need (a header, one tensor) and never hold a second copy of the whole file.

import { CheckpointFormatError } from './errors.js';

export interface ByteSource {
  /** A file name or path, used in error messages and to resolve shard files next to an index. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Exactly `length` bytes from `offset`, in a buffer the caller owns; rejects past the end. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases the underlying handle (a no-op for memory and Blob sources). */
  close?(): Promise<void>;
}

function checkRange(source: { name: string; size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`${source.name}: invalid read range offset=${offset} length=${length}`);
  }
  if (offset + length > source.size) {
    throw new CheckpointFormatError(
      source.name,
      `unexpected end of file: wanted bytes [${offset}, ${offset + length}) of a ${source.size}-byte file`,
    );
  }
}

/** A source over bytes already in memory. Reads return copies, so callers may keep or modify them. */
export function bytesSource(data: ArrayBuffer | ArrayBufferView, name = '<memory>'): ByteSource {
  const bytes =
    data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const source: ByteSource = {
    name,
    size: bytes.byteLength,
    read(offset, length) {
      checkRange(source, offset, length);
      return Promise.resolve(bytes.slice(offset, offset + length));
    },
  };
  return source;
}

/** A source over a Blob; a browser `File` is one (its `name` is used). Reads slices on demand. */
export function blobSource(blob: Blob, name?: string): ByteSource {
  const source: ByteSource = {
    name: name ?? (blob as Blob & { name?: string }).name ?? '<blob>',
    size: blob.size,
    async read(offset, length) {
      checkRange(source, offset, length);
      const buf = await blob.slice(offset, offset + length).arrayBuffer();
      if (buf.byteLength !== length) {
        throw new CheckpointFormatError(source.name, `short read at offset ${offset}: file changed while reading?`);
      }
      return new Uint8Array(buf);
    },
  };
  return source;
}

/** Node's single `read()` is limited to 2 GiB - 1; larger ranges are read in pieces. */
const MAX_READ_CHUNK = 1 << 30;

/** Opens a file for random-access reads (Node only: `fs.promises.open` + positional `read`). */
export async function openFileSource(path: string): Promise<ByteSource> {
  const fs = await import('node:fs/promises');
  const handle = await fs.open(path, 'r');
  let size: number;
  try {
    size = (await handle.stat()).size;
  } catch (err) {
    await handle.close();
    throw err;
  }
  let closed = false;
  const source: ByteSource = {
    name: path,
    size,
    async read(offset, length) {
      checkRange(source, offset, length);
      if (closed) throw new CheckpointFormatError(path, 'read after close()');
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, Math.min(length - done, MAX_READ_CHUNK), offset + done);
        if (bytesRead === 0) {
          throw new CheckpointFormatError(path, `unexpected end of file at byte ${offset + done}: file truncated while reading?`);
        }
        done += bytesRead;
      }
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
  return source;
}

/** Anything a reader accepts as one file. */
export type SourceInput = ByteSource | Blob | ArrayBuffer | ArrayBufferView | string;

export function isByteSource(value: unknown): value is ByteSource {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ByteSource).read === 'function' &&
    typeof (value as ByteSource).size === 'number' &&
    typeof (value as ByteSource).name === 'string'
  );
}

/** Turns a path / Blob / bytes / ByteSource into a ByteSource. `owned` tells whether the caller must close it. */
export async function toByteSource(input: SourceInput, name?: string): Promise<{ source: ByteSource; owned: boolean }> {
  if (typeof input === 'string') return { source: await openFileSource(input), owned: true };
  if (isByteSource(input)) return { source: input, owned: false };
  if (typeof Blob !== 'undefined' && input instanceof Blob) return { source: blobSource(input, name), owned: false };
  if (input instanceof ArrayBuffer || ArrayBuffer.isView(input)) return { source: bytesSource(input, name), owned: false };
  throw new TypeError('expected a path, a ByteSource, a Blob/File, an ArrayBuffer or a typed array');
}

/** The last path component (both separators), for matching shard names. */
export function baseName(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i < 0 ? path : path.slice(i + 1);
}
