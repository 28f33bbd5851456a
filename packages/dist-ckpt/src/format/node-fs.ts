// Node-only file helpers, imported lazily so that browser bundles of this package never load `node:fs`.

/** Appends bytes to the file being written. */
export type WriteChunk = (bytes: Uint8Array) => Promise<void>;

let tmpCounter = 0;

/**
 * Writes `path` atomically: the bytes go to a temporary file in the same directory, which is fsynced
 * and then renamed over `path` (and the directory fsynced). If `produce` throws, or the process dies,
 * `path` keeps its previous content and the temporary file is removed (on a throw).
 */
export async function writeFileAtomic(path: string, produce: (write: WriteChunk) => Promise<void>): Promise<void> {
  const fs = await import('node:fs/promises');
  const nodePath = await import('node:path');
  const dir = nodePath.dirname(path);
  const rand = Math.floor(Math.random() * 0xffffffff).toString(16);
  const tmp = nodePath.join(dir, `.${nodePath.basename(path)}.${process.pid}.${++tmpCounter}.${rand}.tmp`);
  const handle = await fs.open(tmp, 'wx');
  let position = 0;
  let ok = false;
  try {
    await produce(async (bytes) => {
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position);
        done += bytesWritten;
        position += bytesWritten;
      }
    });
    await handle.sync();
    await handle.close();
    await fs.rename(tmp, path);
    ok = true;
  } finally {
    if (!ok) {
      await handle.close().catch(() => undefined);
      await fs.rm(tmp, { force: true }).catch(() => undefined);
    }
  }
  await syncDirectory(dir);
}

/** fsyncs a directory so a rename in it survives a crash; not possible on every platform (Windows). */
export async function syncDirectory(dir: string): Promise<void> {
  const fs = await import('node:fs/promises');
  let handle;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // Best effort: some platforms refuse to open or fsync a directory.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

export async function isDirectory(path: string): Promise<boolean> {
  const fs = await import('node:fs/promises');
  try {
    return (await fs.stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export async function fileExists(path: string): Promise<boolean> {
  const fs = await import('node:fs/promises');
  try {
    return (await fs.stat(path)).isFile();
  } catch {
    return false;
  }
}

export async function joinPath(...parts: string[]): Promise<string> {
  const nodePath = await import('node:path');
  return nodePath.join(...parts);
}

export async function dirName(path: string): Promise<string> {
  const nodePath = await import('node:path');
  return nodePath.dirname(path);
}
