// Fetches a bundled model's files with byte-level progress (the index lists each file's size, so the
// total is known before the first byte arrives).
import type { BundledFile, Progress } from './protocol.js';

export class ModelFetchError extends Error {
  override name = 'ModelFetchError';
}

export async function fetchBundled(baseUrl: string, files: BundledFile[], progress: (p: Progress) => void): Promise<File[]> {
  const total = files.reduce((n, f) => n + f.size, 0);
  let loaded = 0;
  const out: File[] = [];
  for (const file of files) {
    const url = new URL(file.name, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
    const res = await fetch(url);
    if (!res.ok || !res.body) throw new ModelFetchError(`GET ${url.href}: ${res.status} ${res.statusText}`);
    const chunks: Uint8Array[] = [];
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.byteLength;
      progress({ stage: 'fetch', message: `downloading ${file.name}`, loaded, total });
    }
    out.push(new File(chunks as BlobPart[], file.name));
  }
  return out;
}
