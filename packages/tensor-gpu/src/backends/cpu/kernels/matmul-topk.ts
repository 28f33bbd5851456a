// matmulTopk on the cpu backend (contract: FusedKernels.matmulTopk). The blocks are scored a tile at a
// time by the backend's own matmul (the WASM SIMD GEMM: tile [T, D] @ queries^T [D, Q], float16 rows
// included since the cpu stores them widened to float32) into one reused [T, Q] scratch; each query
// then folds its T scores into a running top k kept sorted
// (value descending, id ascending). Only a score above the current k-th best enters (a strict test,
// so of equal scores the earlier id stays), which after the first few tiles is almost never: the fold
// costs about one comparison per score, leaving the GEMM as the cost.

import type { Backend, View } from '../../../backend.js';
import { arr, type CpuStorage } from '../common.js';

/** Scores per tile: [Q, T] float32 stays within a few MiB (cache-sized rows for the fold). */
const TILE_SCORES = 2 ** 20;
const MIN_TILE_ROWS = 4096;
const MAX_TILE_ROWS = 2 ** 17;
/** From this many queries on, the tile is the GEMM's row operand (measured crossover: 8 queries favour the other way round, 64 this one). */
const ROW_MAJOR_QUERIES = 16;

function view(storage: View['storage'], shape: number[], strides: number[], offset: number): View {
  return { storage, dtype: storage.dtype, shape, strides, offset };
}

export function cpuMatmulTopk(backend: Backend, queries: View, blocks: readonly View[], values: View, indices: View, k: number, tileRows: number): boolean {
  const [Q, D] = queries.shape;
  const T = tileRows > 0 ? tileRows : Math.min(MAX_TILE_ROWS, Math.max(MIN_TILE_ROWS, Math.floor(TILE_SCORES / Q)));
  const maxRows = Math.max(...blocks.map((b) => b.shape[0]));
  const tile = Math.min(T, maxRows);
  const scratch = backend.alloc('float32', tile * Q);
  const s = (scratch as CpuStorage).data as Float32Array;
  // The running top k of each query: [Q, k] values and ids, the first count[q] entries filled; below
  // threshold[q] (the k-th best once full) nothing enters.
  const bestV = new Float32Array(Q * k);
  const bestI = new Int32Array(Q * k);
  const count = new Int32Array(Q);
  const threshold = new Float32Array(Q).fill(-Infinity);
  const qT = view(queries.storage, [1, D, Q], [0, 1, D], queries.offset); // [1, D, Q]: the queries transposed
  const qA = view(queries.storage, [1, Q, D], [0, D, 1], queries.offset); // [1, Q, D]
  // Score v of block `id` for query q: enters q's list when above its k-th best (or the list is not full).
  const take = (q: number, v: number, id: number): void => {
    if (v > threshold[q] || count[q] < k) {
      count[q] = insert(bestV, bestI, q * k, count[q], k, v, id);
      if (count[q] === k) threshold[q] = bestV[q * k + k - 1];
    }
  };
  let base = 0;
  try {
    for (const b of blocks) {
      const rows = b.shape[0];
      for (let r0 = 0; r0 < rows; r0 += tile) {
        const t = Math.min(tile, rows - r0);
        if (Q < ROW_MAJOR_QUERIES) {
          // queries [Q, D] @ tile^T [D, t] -> [Q, t]: for a few queries the GEMM is fastest this way round.
          backend.matmul(qA, view(b.storage, [1, D, t], [0, 1, D], b.offset + r0 * D), view(scratch, [1, Q, t], [0, t, 1], 0));
          for (let q = 0; q < Q; q++) {
            for (let r = 0, at = q * t; r < t; r++) take(q, s[at + r], base + r0 + r);
          }
        } else {
          // tile [t, D] @ queries^T [D, Q] -> [t, Q]: the long operand streams row-major and only the queries
          // are packed (the other orientation packs the whole tile: about 3x slower at 64 queries).
          backend.matmul(view(b.storage, [1, t, D], [0, D, 1], b.offset + r0 * D), qT, view(scratch, [1, t, Q], [0, Q, 1], 0));
          for (let r = 0; r < t; r++) {
            for (let q = 0, at = r * Q; q < Q; q++) take(q, s[at + q], base + r0 + r);
          }
        }
      }
      base += rows;
    }
  } finally {
    backend.free(scratch);
  }
  const ov = arr(values) as Float32Array;
  const oi = arr(indices) as Int32Array;
  ov.set(bestV, values.offset);
  oi.set(bestI, indices.offset);
  return true;
}

/** Inserts (v, id) after every entry >= v in a sorted list of `c` entries (capacity k); returns the new count. */
function insert(bestV: Float32Array, bestI: Int32Array, at: number, c: number, k: number, v: number, id: number): number {
  let p = c < k ? c : k - 1; // full: the last entry drops out
  while (p > 0 && !(bestV[at + p - 1] >= v)) {
    bestV[at + p] = bestV[at + p - 1];
    bestI[at + p] = bestI[at + p - 1];
    p--;
  }
  bestV[at + p] = v;
  bestI[at + p] = id;
  return c < k ? c + 1 : c;
}
