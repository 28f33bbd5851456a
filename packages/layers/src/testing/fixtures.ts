// Reading parity-fixture tensors (`shared/fixtures/<family>/<case>/*.safetensors`) in tests, synchronously.

import { readFileSync } from 'node:fs';

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** The F32 tensors of a safetensors file (8-byte header length, JSON header, raw little-endian data); other dtypes are skipped. */
export function readSafetensorsF32(path: string): Map<string, HostTensor> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, HostTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__' || info.dtype !== 'F32') continue;
    const [a, b] = info.data_offsets;
    const data = new Float32Array(new Uint8Array(buf.subarray(8 + n + a, 8 + n + b)).buffer);
    out.set(name, { shape: info.shape, data });
  }
  return out;
}
