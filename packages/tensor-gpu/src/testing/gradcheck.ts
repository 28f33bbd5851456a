// Finite-difference gradient checking (on the cpu backend) and cross-backend comparison helpers.

import type { Backend } from '../backend.js';
import type { AnyHostArray } from '../dtype.js';
import { noGrad } from '../autograd.js';
import { fromHost } from '../ops/creation.js';
import { scope } from '../memory.js';
import type { Tensor } from '../tensor.js';
import { hostInput, seededRandom, type InputSpec } from './inputs.js';

function asList(out: Tensor | Tensor[]): Tensor[] {
  return Array.isArray(out) ? out : [out];
}

const isFloat = (t: Tensor) => t.dtype === 'float32' || t.dtype === 'float16';

/** Seeded weights that turn outputs into a scalar loss sum(out_i * w_i). */
function lossWeights(outputs: Tensor[], seed: number): Float64Array[] {
  const rnd = seededRandom(seed);
  return outputs.map((o) => Float64Array.from({ length: o.size }, () => rnd() * 2 - 1));
}

function hostLoss(outputs: Tensor[], weights: Float64Array[]): number {
  let loss = 0;
  outputs.forEach((o, k) => {
    if (!isFloat(o)) return;
    const d = o.dataSync();
    for (let i = 0; i < d.length; i++) loss += d[i] * weights[k][i];
  });
  return loss;
}

export interface GradcheckResult {
  /** Worst |analytic - numeric| / (atol + rtol * scale) over all inputs; <= 1 passes. */
  worst: number;
  detail: string;
}

/**
 * Compares backward() gradients with central finite differences for every float input spec that
 * requires grad. Inputs are built on `backend` (cpu) from the specs with the given seeds.
 */
export function gradcheck(
  run: (...inputs: Tensor[]) => Tensor | Tensor[],
  specs: InputSpec[],
  backend: Backend,
  options: { eps?: number; rtol?: number; atol?: number; seed?: number } = {},
): GradcheckResult {
  const eps = options.eps ?? 1e-3;
  const rtol = options.rtol ?? 2e-2;
  const atol = options.atol ?? 2e-3;
  const seed = options.seed ?? 1;
  const hosts = specs.map((s, i) => hostInput(s, seed + i));
  const dtypes = specs.map((s) => s.dtype ?? (s.kind === 'int' ? 'int32' : s.kind === 'bool' ? 'bool' : 'float32'));
  const wantsGrad = specs.map((s, i) => (s.requiresGrad ?? true) && (dtypes[i] === 'float32'));
  const build = (override?: { index: number; data: AnyHostArray }) =>
    specs.map((s, i) => fromHost(override?.index === i ? override.data : hosts[i], s.shape, dtypes[i], backend));

  return scope(() => {
    const inputs = build();
    inputs.forEach((t, i) => (t.requiresGrad = wantsGrad[i]));
    const outputs = asList(run(...inputs));
    const weights = lossWeights(outputs, seed + 100);
    let loss: Tensor | null = null;
    outputs.forEach((o, k) => {
      if (!isFloat(o) || !o.requiresGrad) return;
      const w = fromHost(Float32Array.from(weights[k]), o.shape, 'float32', backend);
      const term = o.mul(w).sum();
      loss = loss ? loss.add(term) : term;
    });
    if (!loss) return { worst: 0, detail: 'no differentiable output' };
    (loss as Tensor).backward();
    let worst = 0;
    let detail = '';
    inputs.forEach((t, i) => {
      if (!wantsGrad[i]) return;
      const analytic = t.grad ? (t.grad.dataSync() as Float32Array) : new Float32Array(t.size);
      const numeric = new Float64Array(t.size);
      for (let j = 0; j < t.size; j++) {
        const plus = Float32Array.from(hosts[i]);
        const minus = Float32Array.from(hosts[i]);
        plus[j] += eps;
        minus[j] -= eps;
        const lp = noGrad(() => scope(() => hostLoss(asList(run(...build({ index: i, data: plus }))), weights)));
        const lm = noGrad(() => scope(() => hostLoss(asList(run(...build({ index: i, data: minus }))), weights)));
        numeric[j] = (lp - lm) / (Math.fround(hosts[i][j] + eps) - Math.fround(hosts[i][j] - eps));
      }
      const scale = Math.max(1, ...Array.from(numeric, Math.abs));
      for (let j = 0; j < t.size; j++) {
        const err = Math.abs(analytic[j] - numeric[j]) / (atol + rtol * Math.max(Math.abs(numeric[j]), scale * 0.1));
        if (err > worst) {
          worst = err;
          detail = `input ${i} [${specs[i].shape.join(',')}] element ${j}: analytic ${analytic[j]} vs numeric ${numeric[j]}`;
        }
      }
    });
    return { worst, detail };
  });
}

/** max |a - b| and whether every element is within atol + rtol * |b| (NaNs must match). */
export function compareArrays(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number): { ok: boolean; maxAbs: number; at: number } {
  if (actual.length !== expected.length) return { ok: false, maxAbs: Infinity, at: -1 };
  let maxAbs = 0;
  let at = -1;
  let ok = true;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (!(Number.isNaN(e) && Number.isNaN(a))) {
        ok = false;
        maxAbs = Infinity;
        at = i;
      }
      continue;
    }
    if (a === e) continue;
    const d = Math.abs(a - e);
    if (d > maxAbs) {
      maxAbs = d;
      at = i;
    }
    if (!(d <= atol + rtol * Math.abs(e))) ok = false;
  }
  return { ok, maxAbs, at };
}
