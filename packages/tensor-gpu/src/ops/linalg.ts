// Matrix multiply with PyTorch's matmul semantics: 1-D operands are promoted and squeezed back,
// batch dims broadcast, and transposed operands are stride swaps the kernels read directly.

import { record } from '../autograd.js';
import { ShapeError, fmtShape } from '../errors.js';
import type { View } from '../backend.js';
import { broadcastShapes, broadcastStrides, viewStrides } from '../layout.js';
import type { Tensor } from '../tensor.js';
import { sumToShape } from './broadcast.js';
import { backendOf, empty, requireFloat } from './util.js';
import { outerBatchViews } from './batch-views.js';
import { contiguous, reshape, transpose } from './views.js';
import { noGrad } from '../autograd.js';

/**
 * t (shape [...batch, r, c]) broadcast to batchShape as a [B, r, c] view for the kernel: a plain view
 * of t's storage when the strides merge (no Tensor handle to create and dispose: tiny matmuls are
 * dispatch-bound), else of a contiguous copy, returned for the caller to dispose.
 */
function as3d(t: Tensor, batchShape: number[]): { view: View; copy: Tensor | null } {
  const [r, c] = t.shape.slice(-2);
  const full = [...batchShape, r, c];
  const strides = broadcastStrides(t.shape, t.strides, full);
  const B = batchShape.reduce((n, d) => n * d, 1);
  const merged = viewStrides(full, strides, [B, r, c]);
  if (merged) return { view: { storage: t.storage, dtype: t.dtype, shape: [B, r, c], strides: merged, offset: t.offset }, copy: null };
  const expanded = t.viewOf(full, strides, t.offset);
  const copy = noGrad(() => contiguous(expanded));
  expanded.dispose();
  return { view: { storage: copy.storage, dtype: copy.dtype, shape: [B, r, c], strides: [r * c, c, 1], offset: copy.offset }, copy };
}

/**
 * a [...batch, M, K] @ b [K, N] as one [batch*M, K] @ [K, N] product, as PyTorch folds it, when a's
 * leading dims merge without a copy (a Linear on [batch, seq, in]). Its backward then gives b's
 * gradient as one GEMM over every row, instead of a [batch, K, N] stack of products summed afterwards.
 */
function foldBatchIntoRows(a: Tensor, b: Tensor): Tensor | null {
  if (a.rank < 3 || b.rank !== 2) return null;
  const K = a.shape[a.rank - 1];
  if (K !== b.shape[0]) return null; // the caller reports the mismatch with the original shapes
  const rows = a.shape.slice(0, -1).reduce((n, d) => n * d, 1);
  if (rows === 0 || !viewStrides(a.shape, a.strides, [rows, K])) return null;
  const a2 = reshape(a, [rows, K]);
  const y2 = matmul(a2, b);
  const y = reshape(y2, [...a.shape.slice(0, -1), b.shape[1]]);
  a2.dispose();
  y2.dispose();
  return y;
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  const backend = backendOf('matmul', a, b);
  requireFloat('matmul', a, 'a');
  requireFloat('matmul', b, 'b');
  if (a.rank === 0 || b.rank === 0) throw new ShapeError(`matmul: both arguments need at least 1 dim, got a${fmtShape(a.shape)} @ b${fmtShape(b.shape)}`);
  const folded = foldBatchIntoRows(a, b);
  if (folded) return folded;
  // 1-D operands: a [K] -> [1, K]; b [K] -> [K, 1]; the added dims are squeezed from the result.
  const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]]) : a;
  const b2 = b.rank === 1 ? reshape(b, [b.shape[0], 1]) : b;
  const [M, K] = a2.shape.slice(-2);
  const [K2, N] = b2.shape.slice(-2);
  if (K !== K2) throw new ShapeError(`matmul: a${fmtShape(a.shape)} @ b${fmtShape(b.shape)}: inner dims ${K} != ${K2}`);
  const batchShape = broadcastShapes('matmul', a2.shape.slice(0, -2), b2.shape.slice(0, -2));
  const B = batchShape.reduce((n, d) => n * d, 1);
  let shape = [...batchShape, M, N];
  if (a.rank === 1) shape = shape.filter((_, i) => i !== shape.length - 2);
  if (b.rank === 1) shape = shape.slice(0, -1);
  const out = empty(backend, a.dtype === 'float16' && b.dtype === 'float16' ? 'float16' : 'float32', shape);
  const outView = (batch: number, offset: number): View => ({ storage: out.storage, dtype: out.dtype, shape: [batch, M, N], strides: [M * N, N, 1], offset });
  const perOuter = outerBatchViews(backend, batchShape, [[a2, M, K], [b2, K, N]]);
  if (perOuter) {
    // batch dims that do not merge (attention heads [B, H] of a permuted [B, L, H, D]): one product per outer index, no copy
    const inner = batchShape[batchShape.length - 1];
    perOuter.forEach(([ao, bo], o) => backend.matmul(ao!, bo!, outView(inner, o * inner * M * N)));
  } else {
    const a3 = as3d(a2, batchShape);
    const b3 = as3d(b2, batchShape);
    backend.matmul(a3.view, b3.view, outView(B, 0));
    a3.copy?.dispose();
    b3.copy?.dispose();
  }
  if (a2 !== a) a2.dispose();
  if (b2 !== b) b2.dispose();
  const aShape = a.shape;
  const bShape = b.shape;
  return record('matmul', out, [a, b], [a, b], ([g], [as, bs]) => {
    // Restore the squeezed dims so the gradient matmuls line up.
    const g2 = reshape(g!, [...batchShape, M, N]);
    const aMat = as.rank === 1 ? reshape(as, [1, K]) : as;
    const bMat = bs.rank === 1 ? reshape(bs, [K, 1]) : bs;
    const ga = a.requiresGrad ? reshape(sumToShape(matmul(g2, transpose(bMat, -1, -2)), aMat.shape), aShape) : null;
    const gb = b.requiresGrad ? reshape(sumToShape(matmul(transpose(aMat, -1, -2), g2), bMat.shape), bShape) : null;
    return [ga, gb];
  });
}
