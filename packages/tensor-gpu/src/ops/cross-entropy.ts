// Cross-entropy (torch.nn.functional.cross_entropy). Where the backend has the fused row kernels
// (FusedKernels.crossEntropy / crossEntropyBackward, decision 0026) the forward reads each logits row once
// and keeps per row only its log-sum-exp; the backward recomputes softmax from the logits. Nothing
// [N, C] is saved beyond the logits. Elsewhere (no kernels, float16 logits) the composite runs:
// log-softmax, gather, mean; it is also the reference the fused path is tested against.

import { noGrad, record } from '../autograd.js';
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { scope } from '../memory.js';
import type { Tensor } from '../tensor.js';
import { where } from './elementwise.js';
import { gather } from './indexing.js';
import { logSoftmax } from './nn.js';
import { backendOf, describe, empty, requireFloat } from './util.js';
import { contiguous, permute, reshape } from './views.js';

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  reduction?: 'mean' | 'sum' | 'none';
  labelSmoothing?: number;
}

/**
 * Cross-entropy of logits [N, C] (or [N, C, d1, ...]) against int32 class targets [N] (or [N, d1, ...]),
 * as torch.nn.functional.cross_entropy: targets equal to ignoreIndex (-100) add nothing and the mean is
 * over the others (NaN when every target is ignored); labelSmoothing eps mixes in the uniform target:
 * loss = -(1 - eps) log p[t] - eps mean_c log p[c]. A target outside [0, C) that is not ignoreIndex is an
 * IndexError (webgpu: at the next read).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const backend = backendOf('crossEntropy', logits, targets);
  requireFloat('crossEntropy', logits, 'logits');
  if (targets.dtype !== 'int32') throw new DTypeError(`crossEntropy: targets must be int32 class indices, got ${describe(targets)}`);
  const expected = [logits.shape[0], ...logits.shape.slice(2)];
  if (logits.rank < 2 || targets.rank !== expected.length || targets.shape.some((d, i) => d !== expected[i])) {
    throw new ShapeError(`crossEntropy: logits ${fmtShape(logits.shape)} need targets of shape ${fmtShape(expected)}, got ${fmtShape(targets.shape)}`);
  }
  const ignoreIndex = options.ignoreIndex ?? -100;
  const reduction = options.reduction ?? 'mean';
  const smoothing = options.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing <= 1)) throw new RangeError(`crossEntropy: labelSmoothing must be in [0, 1], got ${smoothing}`);
  const fused = backend.fused.crossEntropy && backend.fused.crossEntropyBackward && logits.dtype === 'float32';
  // a scope frees the temporaries at once (autograd keeps what backward needs), not at garbage
  // collection: the next step's allocation reuses their storage instead of growing the heap
  return scope(() => {
    const valid = () => targets.ne(ignoreIndex);
    const masked = fused ? fusedRows(logits, targets, ignoreIndex, smoothing) : compositeRows(logits, targets, valid(), ignoreIndex, smoothing);
    if (reduction === 'none') return masked;
    const total = masked.sum();
    if (reduction === 'sum') return total;
    return total.div(valid().toFloat().sum());
  });
}

/** The per-item losses from log-softmax and gather (0 at ignored targets), of the targets' shape. */
function compositeRows(logits: Tensor, targets: Tensor, valid: Tensor, ignoreIndex: number, smoothing: number): Tensor {
  const logp = logSoftmax(logits, 1);
  const safeTargets = where(valid, targets, 0);
  const picked = gather(logp, 1, safeTargets.unsqueeze(1)).squeeze(1);
  let perItem = picked.neg();
  if (smoothing > 0) {
    const uniform = logp.mean(1).neg();
    perItem = perItem.mulScalar(1 - smoothing).add(uniform.mulScalar(smoothing));
  }
  return where(valid, perItem, 0);
}

/**
 * The per-item losses from the fused kernels (0 at ignored targets), of the targets' shape. Rank > 2
 * logits move the class dim last first ([N, d1, ..., C], one copy, which autograd differentiates).
 */
function fusedRows(logits: Tensor, targets: Tensor, ignoreIndex: number, smoothing: number): Tensor {
  const backend = logits.backend;
  const [C, M] = [logits.shape[1], targets.size];
  const rows2d =
    logits.rank === 2 ? logits : reshape(contiguous(permute(logits, [0, ...Array.from({ length: logits.rank - 2 }, (_, i) => i + 2), 1])), [M, C]); // [N d1 ..., C]
  const x = noGrad(() => contiguous(rows2d));
  const t = noGrad(() => contiguous(reshape(targets, [M]))); // [N d1 ...]
  const loss = empty(backend, 'float32', [M]);
  const lse = empty(backend, 'float32', [M]);
  if (M > 0) backend.fused.crossEntropy!(x, t, loss, lse, ignoreIndex, smoothing);
  const perRow = record('crossEntropy', loss, [rows2d], [x, t, lse], ([g], [xs, ts, ls]) => {
    const gradIn = empty(backend, 'float32', xs.shape);
    const gc = contiguous(g!);
    if (gradIn.size > 0) backend.fused.crossEntropyBackward!(xs, ts, ls, gc, gradIn, ignoreIndex, smoothing);
    return [gradIn];
  });
  return logits.rank === 2 ? perRow : reshape(perRow, targets.shape);
}
