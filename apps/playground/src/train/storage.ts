// The run's files in the browser's storage: IndexedDB, one record per file of the worker's memory file
// system under /run (lm-train's checkpoint folders, metrics.jsonl, the run's config and corpus, the
// export), written after each checkpoint, so a reload finds the run and resumes it.

const DB = 'lm-playground-train';
const STORE = 'files';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new Error(`IndexedDB ${DB}: ${req.error?.message ?? 'cannot open'}`));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(new Error(`IndexedDB ${DB}: ${tx.error?.message ?? 'transaction failed'}`));
    tx.onabort = () => reject(new Error(`IndexedDB ${DB}: ${tx.error?.message ?? 'transaction aborted (storage full?)'}`));
  });
}

/** Every stored file (path -> bytes). */
export async function readStored(): Promise<Map<string, Uint8Array>> {
  const db = await open();
  try {
    const tx = db.transaction(STORE, 'readonly');
    const store = tx.objectStore(STORE);
    const [keys, values] = await Promise.all(
      [store.getAllKeys(), store.getAll()].map((req) => new Promise<unknown[]>((resolve, reject) => {
        req.onsuccess = () => resolve(req.result as unknown[]);
        req.onerror = () => reject(new Error(`IndexedDB ${DB}: ${req.error?.message ?? 'read failed'}`));
      })),
    );
    return new Map(keys.map((k, i) => [String(k), values[i] as Uint8Array]));
  } finally {
    db.close();
  }
}

/** Makes the stored files exactly `files`: writes new and changed ones, deletes the others, in one transaction. */
export async function writeStored(files: ReadonlyMap<string, Uint8Array>, previous: ReadonlyMap<string, Uint8Array>): Promise<void> {
  const db = await open();
  try {
    const tx = db.transaction(STORE, 'readwrite');
    const store = tx.objectStore(STORE);
    for (const key of previous.keys()) if (!files.has(key)) store.delete(key);
    for (const [key, data] of files) if (previous.get(key) !== data) store.put(data, key);
    await done(tx);
  } finally {
    db.close();
  }
}
