// A file system in memory, with the slice of Node's `fs/promises` and `path` that the @lm packages and
// the trainer call when they save and load checkpoints and exports (open + positional read/write,
// readFile, writeFile, rename, rm, mkdir, stat, readdir). The training worker's bundle resolves
// `node:fs/promises`, `node:fs` and `node:path` to it (vite.config.ts), so `lm-train`'s own checkpoint
// store (DistCheckpointStore over @lm/dist-ckpt) and the family's export run unchanged in the browser;
// store.ts copies what they write to IndexedDB and back.
// Paths are POSIX; a relative path is taken from the root. Errors carry Node's codes (ENOENT, EEXIST,
// ENOTDIR, ENOTEMPTY, EISDIR), which the callers test for.

const files = new Map<string, Uint8Array>();
const dirs = new Set<string>(['/']);

function fsError(code: string, op: string, path: string): Error {
  const e = new Error(`${code}: ${op} '${path}'`) as Error & { code: string; path: string };
  e.code = code;
  e.path = path;
  return e;
}

export function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
}

export function dirnameOf(path: string): string {
  const p = normalize(path);
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function requireParent(path: string, op: string): void {
  if (!dirs.has(dirnameOf(path))) throw fsError('ENOENT', op, path);
}

function children(dir: string): string[] {
  const prefix = dir === '/' ? '/' : `${dir}/`;
  const names = new Set<string>();
  for (const p of [...files.keys(), ...dirs]) {
    if (p !== dir && p.startsWith(prefix)) names.add(p.slice(prefix.length).split('/')[0]);
  }
  return [...names].sort();
}

export interface MemStats {
  size: number;
  isFile(): boolean;
  isDirectory(): boolean;
}

function statOf(p: string, op: string, path: string): MemStats {
  const file = files.get(p);
  if (file) return { size: file.byteLength, isFile: () => true, isDirectory: () => false };
  if (dirs.has(p)) return { size: 0, isFile: () => false, isDirectory: () => true };
  throw fsError('ENOENT', op, path);
}

export const promises = {
  async stat(path: string): Promise<MemStats> {
    return statOf(normalize(path), 'stat', path);
  },
  async access(path: string): Promise<void> {
    statOf(normalize(path), 'access', path);
  },
  async mkdir(path: string, options?: { recursive?: boolean }): Promise<void> {
    const p = normalize(path);
    if (files.has(p)) throw fsError('EEXIST', 'mkdir', path);
    if (dirs.has(p)) {
      if (options?.recursive) return;
      throw fsError('EEXIST', 'mkdir', path);
    }
    if (!dirs.has(dirnameOf(p))) {
      if (!options?.recursive) throw fsError('ENOENT', 'mkdir', path);
      await promises.mkdir(dirnameOf(p), options);
    }
    dirs.add(p);
  },
  async readdir(path: string, options?: { withFileTypes?: boolean }): Promise<unknown[]> {
    const p = normalize(path);
    if (!dirs.has(p)) throw fsError(files.has(p) ? 'ENOTDIR' : 'ENOENT', 'scandir', path);
    const names = children(p);
    if (!options?.withFileTypes) return names;
    return names.map((name) => {
      const full = normalize(`${p}/${name}`);
      return { name, isFile: () => files.has(full), isDirectory: () => dirs.has(full) };
    });
  },
  async readFile(path: string, encoding?: string | { encoding?: string }): Promise<Uint8Array | string> {
    const p = normalize(path);
    const data = files.get(p);
    if (!data) throw fsError(dirs.has(p) ? 'EISDIR' : 'ENOENT', 'open', path);
    const enc = typeof encoding === 'string' ? encoding : encoding?.encoding;
    return enc ? new TextDecoder().decode(data) : data.slice();
  },
  async writeFile(path: string, data: string | Uint8Array): Promise<void> {
    const p = normalize(path);
    requireParent(p, 'open');
    if (dirs.has(p)) throw fsError('EISDIR', 'open', path);
    files.set(p, typeof data === 'string' ? new TextEncoder().encode(data) : data.slice());
  },
  async rename(from: string, to: string): Promise<void> {
    const a = normalize(from);
    const b = normalize(to);
    requireParent(b, 'rename');
    if (files.has(a)) {
      if (dirs.has(b)) throw fsError('EISDIR', 'rename', to);
      files.set(b, files.get(a)!);
      files.delete(a);
      return;
    }
    if (!dirs.has(a)) throw fsError('ENOENT', 'rename', from);
    if (files.has(b) || (dirs.has(b) && children(b).length)) throw fsError('ENOTEMPTY', 'rename', to);
    // A folder moves with everything under it.
    for (const p of [...files.keys()]) if (p.startsWith(`${a}/`)) { files.set(b + p.slice(a.length), files.get(p)!); files.delete(p); }
    for (const p of [...dirs]) if (p === a || p.startsWith(`${a}/`)) { dirs.delete(p); dirs.add(b + p.slice(a.length)); }
  },
  async rm(path: string, options?: { recursive?: boolean; force?: boolean }): Promise<void> {
    const p = normalize(path);
    if (files.delete(p)) return;
    if (!dirs.has(p)) {
      if (options?.force) return;
      throw fsError('ENOENT', 'rm', path);
    }
    if (!options?.recursive) throw fsError('EISDIR', 'rm', path);
    for (const f of [...files.keys()]) if (f.startsWith(`${p}/`)) files.delete(f);
    for (const d of [...dirs]) if (d === p || d.startsWith(`${p}/`)) dirs.delete(d);
    dirs.add('/');
  },
  async open(path: string, flags = 'r'): Promise<MemFileHandle> {
    const p = normalize(path);
    if (dirs.has(p)) return new MemFileHandle(p, true);
    if (flags.startsWith('w')) {
      requireParent(p, 'open');
      if (flags.includes('x') && files.has(p)) throw fsError('EEXIST', 'open', path);
      files.set(p, new Uint8Array(0));
    } else if (!files.has(p)) {
      throw fsError('ENOENT', 'open', path);
    }
    return new MemFileHandle(p, false);
  },
};

/** What `fs.open` returns, for positional reads and writes. */
export class MemFileHandle {
  /** Bytes written so far: the file's size once closed (the buffer grows ahead of it). */
  private written = -1;

  constructor(
    private readonly path: string,
    private readonly directory: boolean,
  ) {}

  private data(): Uint8Array {
    const d = files.get(this.path);
    if (!d) throw fsError('ENOENT', 'read', this.path);
    return d;
  }

  async stat(): Promise<MemStats> {
    return statOf(this.path, 'fstat', this.path);
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    const d = this.data();
    const n = Math.max(0, Math.min(length, d.byteLength - position));
    buffer.set(d.subarray(position, position + n), offset);
    return { bytesRead: n };
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }> {
    let d = this.data();
    if (position + length > d.byteLength) {
      // Grow by doubling: a checkpoint arrives in many small writes.
      const grown = new Uint8Array(Math.max(position + length, d.byteLength * 2));
      grown.set(d);
      d = grown;
    }
    d.set(buffer.subarray(offset, offset + length), position);
    files.set(this.path, d);
    this.written = Math.max(this.written, position + length);
    return { bytesWritten: length };
  }

  async sync(): Promise<void> {}

  async close(): Promise<void> {
    const d = files.get(this.path);
    if (this.directory || this.written < 0 || !d) return;
    if (d.byteLength !== this.written) files.set(this.path, d.slice(0, this.written));
  }
}

/** Every file under `dir` (path -> bytes), for persisting. */
export function filesUnder(dir: string): Map<string, Uint8Array> {
  const p = normalize(dir);
  return new Map([...files].filter(([f]) => f.startsWith(`${p}/`)));
}

/** Puts files back (from storage or a dropped checkpoint), creating their folders. */
export async function putFiles(entries: Iterable<[string, Uint8Array]>): Promise<void> {
  for (const [path, data] of entries) {
    await promises.mkdir(dirnameOf(path), { recursive: true });
    files.set(normalize(path), data);
  }
}
