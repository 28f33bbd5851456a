// One Adam/AdamW step in place, each operation rounded to float32 like torch's single-tensor loop.

import type { AdamStepParams, View } from '../../../backend.js';
import { arr } from '../common.js';
import { adamSimd } from '../simd/eltwise.js';
import { adamInPlace } from '../simd/rows.js';

export function cpuAdamStep(param: View, grad: View, expAvg: View, expAvgSq: View, maxExpAvgSq: View | null, h: AdamStepParams): void {
  const p = arr(param);
  const g = arr(grad);
  const m = arr(expAvg);
  const v = arr(expAvgSq);
  const vmax = maxExpAvgSq ? arr(maxExpAvgSq) : null;
  const f = Math.fround;
  const n = param.shape.reduce((a, d) => a * d, 1);
  const [po, go, mo, vo, xo] = [param.offset, grad.offset, expAvg.offset, expAvgSq.offset, maxExpAvgSq?.offset ?? 0];
  const decay = f(1 - h.lr * h.weightDecay);
  const wd = f(h.weightDecay);
  const b1 = f(h.beta1);
  const b2 = f(h.beta2);
  const c1 = f(1 - h.beta1);
  const c2 = f(1 - h.beta2);
  const invBc2Sqrt = f(1 / Math.sqrt(h.biasCorrection2));
  const eps = f(h.eps);
  const stepSize = f(h.lr / h.biasCorrection1);
  // float32 arrays without amsgrad or maximize: the same float32 operations four lanes at a time, in place
  // on both threads where the tensors lie in the shared memory (whole rows), staged on this thread elsewhere
  const all32 = [p, g, m, v].every((a) => a instanceof Float32Array);
  let done = 0;
  if (all32 && !vmax && !h.maximize) {
    const decoupled = h.decoupled || h.weightDecay === 0;
    const coef = h.weightDecay === 0 ? 1 : decoupled ? decay : wd;
    const [pf, gf, mf, vf] = [p, g, m, v] as Float32Array[];
    done = adamInPlace(decoupled, pf, po, gf, go, mf, mo, vf, vo, n, [coef, b1, b2, c1, c2, invBc2Sqrt, eps, stepSize]);
    if (done === n) return;
    if (adamSimd(pf, po + done, gf, go + done, mf, mo + done, vf, vo + done, n - done, decoupled, coef, b1, b2, c1, c2, invBc2Sqrt, eps, stepSize)) return;
  }
  for (let i = done; i < n; i++) {
    const pv = p[po + i];
    let gv = h.maximize ? -g[go + i] : g[go + i];
    let base = pv;
    if (h.weightDecay !== 0) {
      if (h.decoupled) base = f(pv * decay);
      else gv = f(gv + f(pv * wd));
    }
    const mv = f(f(m[mo + i] * b1) + f(gv * c1));
    const vv = f(f(v[vo + i] * b2) + f(f(gv * gv) * c2));
    m[mo + i] = mv;
    v[vo + i] = vv;
    let second = vv;
    if (vmax) {
      second = Math.max(vmax[xo + i], vv);
      vmax[xo + i] = second;
    }
    const denom = f(f(f(Math.sqrt(second)) * invBc2Sqrt) + eps);
    p[po + i] = f(base - f(f(mv / denom) * stepSize));
  }
}
