// matmulTopk: maximum-inner-product search. queries [Q, D] (float32) against blocks [N, D] (float32 or
// float16 rows, possibly split over several tensors whose rows, in order, are the N blocks) -> the k
// largest scores q . block per query and their block ids, best first, ties to the smaller id (the
// order of a stable descending sort, as `topk`). The [Q, N] score matrix is never materialised: the
// blocks are scored a tile of rows at a time and each tile's scores are folded into a running top k per
// query (FusedKernels.matmulTopk on both backends; the composite below does the same with matmul + topk).
// No gradient: it is a search, not a layer.

import { noGrad } from '../autograd.js';
import { DTypeError, ShapeError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { concat } from './shape.js';
import { topk } from './indexing.js';
import { backendOf, describe, empty } from './util.js';

export interface MatmulTopkResult {
  /** [Q, k] float32 scores, best first. */
  values: Tensor;
  /** [Q, k] int32 block ids (rows of the blocks taken in order). */
  indices: Tensor;
}

export interface MatmulTopkOptions {
  /** Block rows scored at once; default: the backend kernel's choice (the composite: 2^22 scores per tile). */
  tileRows?: number;
}

const COMPOSITE_TILE_SCORES = 2 ** 22;

/** The top k (by inner product with each query) of the rows of `blocks`; see the file comment. */
export function matmulTopk(queries: Tensor, blocks: Tensor | readonly Tensor[], k: number, options: MatmulTopkOptions = {}): MatmulTopkResult {
  const parts = Array.isArray(blocks) ? (blocks as readonly Tensor[]) : [blocks as Tensor];
  const backend = backendOf('matmulTopk', queries, ...parts);
  if (queries.dtype !== 'float32' || queries.rank !== 2) throw new DTypeError(`matmulTopk: queries must be float32 [Q, D], got ${describe(queries)}`);
  const [Q, D] = queries.shape;
  if (parts.length === 0) throw new ShapeError('matmulTopk: no blocks given');
  let n = 0;
  parts.forEach((b, i) => {
    if ((b.dtype !== 'float32' && b.dtype !== 'float16') || b.rank !== 2 || b.shape[1] !== D) {
      throw new ShapeError(`matmulTopk: blocks[${i}] must be float32 or float16 [rows, ${D}] (the queries' width), got ${describe(b)}`);
    }
    n += b.shape[0];
  });
  if (n > 2 ** 31 - 1) throw new ShapeError(`matmulTopk: ${n} blocks exceed int32 ids`);
  if (!Number.isInteger(k) || k < 1 || k > n) throw new RangeError(`matmulTopk: k = ${k} must be an integer in 1..${n} (the number of blocks)`);
  const tileRows = options.tileRows;
  if (tileRows !== undefined && (!Number.isInteger(tileRows) || tileRows < 1)) throw new RangeError(`matmulTopk: tileRows must be a positive integer, got ${tileRows}`);
  return noGrad(() => {
    const kernel = backend.fused.matmulTopk;
    if (Q === 0) return { values: empty(backend, 'float32', [0, k]), indices: empty(backend, 'int32', [0, k]) };
    const fallback = () => composite(queries, parts, k, tileRows ?? Math.max(1, Math.floor(COMPOSITE_TILE_SCORES / Q)));
    if (!kernel) return fallback();
    const values = empty(backend, 'float32', [Q, k]);
    const indices = empty(backend, 'int32', [Q, k]);
    const q = queries.contiguous();
    const rows = parts.filter((b) => b.shape[0] > 0).map((b) => b.contiguous());
    let done = false;
    try {
      done = kernel(q, rows, values, indices, k, tileRows ?? 0);
    } finally {
      [q, ...rows].forEach((t) => t.dispose());
      // a kernel that throws (a binding over the adapter's limit) leaves nothing allocated behind
      if (!done) [values, indices].forEach((t) => t.dispose());
    }
    if (!done) return fallback();
    return { values, indices };
  });
}

/** Tile by tile: scores [Q, tile] by matmul, the tile's top k, merged with the running top k by `topk` (stable: earlier ids win ties). */
function composite(queries: Tensor, parts: readonly Tensor[], k: number, tileRows: number): MatmulTopkResult {
  let best: MatmulTopkResult | null = null;
  let base = 0;
  for (const part of parts) {
    for (let r0 = 0; r0 < part.shape[0]; r0 += tileRows) {
      const r1 = Math.min(part.shape[0], r0 + tileRows);
      const tile = part.slice(0, r0, r1);
      const tileF = part.dtype === 'float32' ? tile : tile.toFloat(); // [tile, D]
      const rowsT = tileF.transpose(); // [D, tile]
      const scores = queries.matmul(rowsT); // [Q, tile]
      const top = topk(scores, Math.min(k, r1 - r0), -1);
      const ids = top.indices.addScalar(base + r0);
      let next: MatmulTopkResult;
      if (!best) next = { values: top.values, indices: ids };
      else {
        const values = concat([best.values, top.values], 1); // [Q, k + tileK]
        const candidates = concat([best.indices, ids], 1);
        const merged = topk(values, Math.min(k, values.shape[1]), -1);
        next = { values: merged.values, indices: candidates.gather(1, merged.indices) };
        [values, candidates, merged.indices, top.values, ids, best.values, best.indices].forEach((t) => t.dispose());
      }
      new Set([tile, tileF, rowsT, scores, top.indices]).forEach((t) => t !== next.values && t !== next.indices && t.dispose());
      best = next;
    }
    base += part.shape[0];
  }
  return best!;
}
