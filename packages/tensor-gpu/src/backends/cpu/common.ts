// Helpers shared by the cpu backend and its kernel files: host arrays of a view, dtype conversion on
// write, and the row statistics of the norm kernels.

import type { Storage, View } from '../../backend.js';
import { roundToFloat16, type AnyHostArray, type DType } from '../../dtype.js';

export interface CpuStorage extends Storage {
  data: AnyHostArray;
}

export function arr(v: View): AnyHostArray {
  return (v.storage as CpuStorage).data;
}

const toInt32 = function toInt32(v: number) {
  return Number.isFinite(v) ? Math.trunc(v) : 0;
};
const toBool = function toBool(v: number) {
  return v !== 0 ? 1 : 0;
};

/** Converts a float result to what a dtype stores. */
export function converter(dtype: DType): ((v: number) => number) | null {
  switch (dtype) {
    case 'int32':
      return toInt32;
    case 'bool':
      return toBool;
    case 'float16':
      return roundToFloat16;
    default:
      return null;
  }
}

/** Rounds a contiguous output the GEMM wrote at float32 precision to half, when its dtype is float16. */
export function roundFloat16Output(out: View): void {
  if (out.dtype !== 'float16') return;
  const o = arr(out);
  const n = out.shape.reduce((p, d) => p * d, 1);
  for (let i = 0; i < n; i++) o[out.offset + i] = roundToFloat16(o[out.offset + i]);
}

export function contiguousRows(v: View): { rows: number; inner: number; base: number } {
  const inner = v.shape[v.shape.length - 1] ?? 1;
  const rows = v.shape.length > 1 ? v.shape[0] : 1;
  return { rows, inner, base: v.offset };
}

/** Mean of xs[s .. s + n). */
export function rowMean(xs: AnyHostArray, s: number, n: number): number {
  let sum = 0;
  for (let j = 0; j < n; j++) sum += xs[s + j];
  return sum / n;
}

/** 1 / sqrt(mean((x - mean)^2) + eps) over xs[s .. s + n): layer norm's (and, with mean 0, RMS norm's) scale. */
export function rowRstd(xs: AnyHostArray, s: number, n: number, mean: number, eps: number): number {
  let v = 0;
  for (let j = 0; j < n; j++) {
    const c = xs[s + j] - mean;
    v += c * c;
  }
  return 1 / Math.sqrt(v / n + eps);
}

/** A committed WebAssembly module's bytes from their base64 text (the GEMM, row, element-wise and quant modules). */
export function decodeBase64(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
