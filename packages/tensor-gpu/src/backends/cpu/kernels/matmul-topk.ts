// matmulTopk on the cpu backend (contract: FusedKernels.matmulTopk). The blocks are scored a tile at a
// time by the backend's own matmul (the WASM SIMD GEMM: queries [Q, D] @ tile^T [D, T], float16 rows
// included since the cpu stores them widened to float32) into one reused [Q, T] scratch; each query
// then folds its T contiguous scores into a running top k kept sorted
// (value descending, id ascending). Only a score above the current k-th best enters (a strict test,
// so of equal scores the earlier id stays), which after the first few tiles is almost never: the fold
// costs about one comparison per score, leaving the GEMM as the cost.

import type { Backend, View } from '../../../backend.js';
import { arr, type CpuStorage } from '../common.js';

/** Scores per tile: [Q, T] float32 stays within a few MiB (cache-sized rows for the fold). */
const TILE_SCORES = 2 ** 20;
const MIN_TILE_ROWS = 4096;
const MAX_TILE_ROWS = 2 ** 17;

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
  // The running top k of each query: [Q, k] values and ids, the first count[q] entries filled.
  const bestV = new Float32Array(Q * k);
  const bestI = new Int32Array(Q * k);
  const count = new Int32Array(Q);
  const qA = view(queries.storage, [1, Q, D], [0, D, 1], queries.offset); // [1, Q, D]
  // Folds query q's scores s[at .. at + t) (block ids id0 ..) into its running top k: every score
  // enters until the list is full, then only one above the k-th best, with that threshold in a local so
  // the loop over the tile is one comparison per score.
  const fold = (q: number, at: number, t: number, id0: number): void => {
    const list = q * k;
    let r = 0;
    let c = count[q];
    for (; r < t && c < k; r++) c = insert(bestV, bestI, list, c, k, s[at + r], id0 + r);
    count[q] = c;
    if (c < k) return;
    let thr = bestV[list + k - 1];
    for (; r < t; r++) {
      const v = s[at + r];
      if (v > thr) {
        insert(bestV, bestI, list, k, k, v, id0 + r);
        thr = bestV[list + k - 1];
      }
    }
  };
  let base = 0;
  try {
    for (const b of blocks) {
      const rows = b.shape[0];
      for (let r0 = 0; r0 < rows; r0 += tile) {
        const t = Math.min(tile, rows - r0);
        // queries [Q, D] @ tile^T [D, t] -> [Q, t]: each query's scores contiguous for its fold (with the
        // GEMM's B panels this orientation is also the faster one at 64 queries: 4.5 vs 5.9 ms per
        // 16384-row tile, measured).
        backend.matmul(qA, view(b.storage, [1, D, t], [0, 1, D], b.offset + r0 * D), view(scratch, [1, Q, t], [0, t, 1], 0));
        for (let q = 0; q < Q; q++) fold(q, q * t, t, base + r0);
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
