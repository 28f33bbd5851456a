// Test helpers (not exported): deterministic random numbers, and building each simulated rank's
// sharded state dict for a layout of one global tensor.

import { DTYPE_SIZE, viewNative, type DType, type NativeArray } from '../format/dtypes.js';
import { copyRuns, intersectRuns, volume, type Piece } from './geometry.js';
import { shardedTensor, type ShardedTensor } from './mapping.js';

/** mulberry32 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(n: number, random: () => number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(random() * 256);
  return out;
}

/** The bytes of `piece` cut out of a whole global tensor. */
export function slicePiece(global: Uint8Array, globalShape: readonly number[], piece: Piece, es: number): Uint8Array {
  const out = new Uint8Array((piece.flat ? piece.flat[1] - piece.flat[0] : volume(piece.shape)) * es);
  copyRuns(intersectRuns({ offset: globalShape.map(() => 0), shape: globalShape }, piece), global, out, es);
  return out;
}

/** A layout: the grid each axis is cut into, the data-parallel size, and whether DP ranks split boxes by flat ranges. */
export interface Layout {
  frags: number[];
  dp: number;
  flat: boolean;
}

/** Every rank's pieces of one global tensor under `layout` (rank = chunk * dp + dpRank). */
export function layoutPieces(globalShape: readonly number[], layout: Layout): Array<{ piece: Piece; replicaId: number[]; fragments: number[] }> {
  const chunkShape = globalShape.map((s, d) => s / layout.frags[d]);
  const chunks = volume(layout.frags);
  const out: Array<{ piece: Piece; replicaId: number[]; fragments: number[] }> = [];
  for (let c = 0; c < chunks; c++) {
    const index: number[] = [];
    let rest = c;
    for (let d = globalShape.length - 1; d >= 0; d--) {
      index[d] = rest % layout.frags[d];
      rest = Math.floor(rest / layout.frags[d]);
    }
    const offset = index.map((i, d) => i * chunkShape[d]);
    const n = volume(chunkShape);
    for (let k = 0; k < layout.dp; k++) {
      if (layout.flat) {
        const a = Math.floor((n * k) / layout.dp);
        const b = Math.floor((n * (k + 1)) / layout.dp);
        out.push({ piece: { offset, shape: chunkShape, flat: [a, b] }, replicaId: [0], fragments: layout.frags });
      } else {
        out.push({ piece: { offset, shape: chunkShape }, replicaId: [0, k], fragments: layout.frags });
      }
    }
  }
  return out;
}

export function pieceTensor(
  key: string,
  dtype: DType,
  globalShape: readonly number[],
  p: { piece: Piece; replicaId: number[]; fragments: number[] },
  data: NativeArray | null,
): ShardedTensor {
  return shardedTensor({
    key,
    dtype,
    data,
    localShape: p.piece.shape,
    globalShape,
    globalOffset: p.piece.offset,
    axisFragmentations: p.fragments,
    replicaId: p.replicaId,
    flattenedRange: p.piece.flat ?? null,
  });
}

export function nativeOf(dtype: DType, bytes: Uint8Array): NativeArray {
  return viewNative(dtype, bytes.slice());
}

export function bytesOf(a: NativeArray | ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export { DTYPE_SIZE };
