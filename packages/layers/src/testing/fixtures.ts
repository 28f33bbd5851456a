// Reading parity-fixture tensors (`shared/fixtures/<family>/<case>/*.safetensors`) in tests, synchronously.
// It takes the file's bytes (the caller reads them) so that this entry, which family packages import for
// their `conformance` export, pulls in no Node built-in and still bundles for the browser.

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** The F32 tensors of a safetensors file's bytes (8-byte header length, JSON header, raw little-endian data); other dtypes are skipped. */
export function safetensorsF32(buf: Uint8Array): Map<string, HostTensor> {
  const n = Number(new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, HostTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__' || info.dtype !== 'F32') continue;
    const [a, b] = info.data_offsets;
    const data = new Float32Array(new Uint8Array(buf.subarray(8 + n + a, 8 + n + b)).buffer);
    out.set(name, { shape: info.shape, data });
  }
  return out;
}
