// The fused cross-entropy rows (FusedKernels.crossEntropy / crossEntropyBackward, decision 0026): the
// forward reads each logits row once for its max, sum of exps and sum (label smoothing) and keeps only
// the row's log-sum-exp; the backward recomputes softmax from the logits and that lse. Float32 rows in the
// GEMM's shared memory run as whole-row wasm tasks on both threads (simd/rows.ts, gen-eltwise.ts); the
// per-row arithmetic (log, the target logit, the ignored rows) is float64 JS over N values.

import type { View } from '../../../backend.js';
import { IndexError } from '../../../errors.js';
import { arr } from '../common.js';
import { rowStatsBlock, runRowTask } from '../simd/rows.js';

/** Floats per row in the stats block the row tasks write (m, sum of exps, sum) or read (lse, a, b). */
const STATS = 4;

/** The target of row n, or throws naming the op when it is neither ignoreIndex nor in [0, C). */
function checkTargets(ts: ArrayLike<number>, to: number, rows: number, C: number, ignoreIndex: number): void {
  for (let n = 0; n < rows; n++) {
    const t = ts[to + n];
    if (t !== ignoreIndex && (t < 0 || t >= C)) {
      throw new IndexError(`crossEntropy: target ${t} (row ${n}) is out of range for ${C} classes (ignoreIndex ${ignoreIndex})`);
    }
  }
}

export function cpuCrossEntropy(logits: View, targets: View, loss: View, lse: View, ignoreIndex: number, smoothing: number): void {
  const [rows, C] = logits.shape;
  const xs = arr(logits) as Float32Array;
  const ts = arr(targets);
  const ls = arr(loss);
  const es = arr(lse);
  const [xo, to, lo, eo] = [logits.offset, targets.offset, loss.offset, lse.offset];
  checkTargets(ts, to, rows, C, ignoreIndex);
  const st = rows > 0 ? rowStatsBlock(xs, STATS * rows) : null;
  const wasm = st !== null && runRowTask('crossEntropyStats', rows, C, [{ data: xs, offset: xo, step: C }, { data: st, offset: 0, step: STATS, width: 3, out: true }]);
  for (let n = 0; n < rows; n++) {
    const s = xo + n * C;
    let m: number;
    let sumExp = 0;
    let sumX = 0;
    if (wasm) [m, sumExp, sumX] = [st![STATS * n], st![STATS * n + 1], st![STATS * n + 2]];
    else {
      m = -Infinity;
      for (let c = 0; c < C; c++) {
        const v = xs[s + c];
        m = v > m || Number.isNaN(v) ? v : m;
        sumX += v;
      }
      if (m === -Infinity) m = 0; // an all -inf row: sum 0, lse -inf, as torch
      for (let c = 0; c < C; c++) sumExp += Math.exp(xs[s + c] - m);
    }
    const e = m + Math.log(sumExp);
    es[eo + n] = e;
    const t = ts[to + n];
    ls[lo + n] = t === ignoreIndex ? 0 : e - (1 - smoothing) * xs[s + t] - (smoothing > 0 ? (smoothing * sumX) / C : 0);
  }
}

export function cpuCrossEntropyBackward(logits: View, targets: View, lse: View, gradLoss: View, gradIn: View, ignoreIndex: number, smoothing: number): void {
  const [rows, C] = logits.shape;
  const xs = arr(logits) as Float32Array;
  const ts = arr(targets);
  const es = arr(lse);
  const gs = arr(gradLoss);
  const o = arr(gradIn) as Float32Array;
  const [xo, to, eo, go, oo] = [logits.offset, targets.offset, lse.offset, gradLoss.offset, gradIn.offset];
  // per row: a = g (0 for an ignored row, whatever g is: a mean over no rows gives g = inf), b = a eps / C
  const coef = (n: number) => (ts[to + n] === ignoreIndex ? 0 : gs[go + n]);
  const st = rows > 0 ? rowStatsBlock(o, STATS * rows) : null;
  if (st) {
    for (let n = 0; n < rows; n++) {
      const a = coef(n);
      st[STATS * n] = es[eo + n];
      st[STATS * n + 1] = a;
      st[STATS * n + 2] = (a * smoothing) / C;
    }
  }
  const wasm =
    st !== null &&
    runRowTask('crossEntropyBackward', rows, C, [{ data: xs, offset: xo, step: C }, { data: o, offset: oo, step: C, out: true }, { data: st, offset: 0, step: STATS, width: 3 }]);
  for (let n = 0; n < rows; n++) {
    const a = coef(n);
    const d = oo + n * C;
    if (!wasm) {
      const [s, e, b] = [xo + n * C, es[eo + n], (a * smoothing) / C];
      for (let c = 0; c < C; c++) o[d + c] = a === 0 ? 0 : a * Math.exp(xs[s + c] - e) - b;
    } else if (a === 0) {
      o.fill(0, d, d + C); // the row task's 0 * exp(x - lse) is NaN where lse or x is infinite or NaN
    }
    const t = ts[to + n];
    if (t !== ignoreIndex) o[d + t] -= a * (1 - smoothing);
  }
}
