// Test-only helpers for the optimizer tests (not exported from the package): a separable quadratic
// problem whose gradients come from autograd, its float64 gradient for the reference loops, and a
// runner that records the parameters after every step.

import { expect } from 'vitest';
import { fromHost, noGrad, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { compareArrays, seededRandom } from '@lm/tensor-gpu/testing';

/**
 * loss_t = scale_t * sum_i sum(0.5 * w_i * p_i^2 + u_i * p_i), so grad_i = scale_t * (w_i * p_i + u_i).
 * All values are float32-representable, so cpu, webgpu and the float64 reference start equal.
 */
export interface Quadratic {
  shapes: number[][];
  init: Float64Array[];
  w: Float64Array[];
  u: Float64Array[];
}

export function quadratic(seed: number, shapes: number[][]): Quadratic {
  const rnd = seededRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const fill = (n: number, f: () => number) => Float64Array.from({ length: n }, () => Math.fround(f()));
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  return {
    shapes,
    init: sizes.map((n) => fill(n, normal)),
    w: sizes.map((n) => fill(n, () => 0.5 + 1.5 * rnd())),
    u: sizes.map((n) => fill(n, normal)),
  };
}

/** The float64 gradient of the quadratic at `params` for a step with loss scale `scale`. */
export function quadraticGrad(q: Quadratic, i: number, p: Float64Array, scale: number): Float64Array {
  return p.map((v, k) => scale * (q.w[i][k] * v + q.u[i][k]));
}

export interface Stepper {
  step(): void;
  zeroGrad(): void;
}

/** Parameters of the quadratic as leaf tensors on `backend`. */
export function quadraticParams(q: Quadratic, backend: Backend): Tensor[] {
  return q.init.map((v, i) => fromHost(Float32Array.from(v), q.shapes[i], 'float32', backend).requiresGrad_());
}

/**
 * Runs `scales.length` steps: backward of the quadratic (params in `skip` left out of the loss, so
 * their .grad stays null), an optional hook (e.g. clipping), optimizer.step(), zeroGrad(). Returns
 * every parameter's values after each step.
 */
export async function runQuadratic(
  q: Quadratic,
  params: Tensor[],
  optimizer: Stepper,
  scales: number[],
  options: { skip?: Set<number>; afterBackward?: () => void } = {},
): Promise<Float32Array[][]> {
  const backend = params[0].backend;
  const w = q.w.map((v, i) => fromHost(Float32Array.from(v), q.shapes[i], 'float32', backend));
  const u = q.u.map((v, i) => fromHost(Float32Array.from(v), q.shapes[i], 'float32', backend));
  const out: Float32Array[][] = [];
  for (const scale of scales) {
    scope(() => {
      let loss: Tensor | null = null;
      params.forEach((p, i) => {
        if (options.skip?.has(i)) return;
        const term = p.square().mul(w[i]).mulScalar(0.5).add(p.mul(u[i])).sum();
        loss = loss ? loss.add(term) : term;
      });
      loss!.mulScalar(scale).backward();
      options.afterBackward?.();
      optimizer.step();
      optimizer.zeroGrad();
    });
    out.push(await Promise.all(params.map(async (p) => (await p.data()) as Float32Array)));
  }
  for (const t of [...w, ...u]) t.dispose();
  return out;
}

/**
 * Asserts every step's parameters match the reference to `rtol`, relative to each value plus `rtol`
 * times the parameter's largest magnitude (a value near 0 that came from cancelling O(1) terms carries
 * float32 rounding of O(1), not of itself).
 */
export function expectTrajectory(got: Float32Array[][], want: Float64Array[][], rtol = 1e-6): void {
  expect(got.length).toBe(want.length);
  got.forEach((params, t) =>
    params.forEach((p, i) => {
      const scale = want[t][i].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const r = compareArrays(p, want[t][i], rtol * scale, rtol);
      if (!r.ok) {
        throw new Error(`step ${t + 1}, param ${i}: max |diff| ${r.maxAbs} at ${r.at} (got ${p[r.at]}, want ${want[t][i][r.at]})`);
      }
    }),
  );
}

/** Host copies of tensors (for checkpoint-style round trips). */
export async function snapshot(ts: Tensor[]): Promise<Float32Array[]> {
  return Promise.all(ts.map(async (t) => Float32Array.from((await t.data()) as Float32Array)));
}

/** noGrad-created host upload, for building grads and state tensors in tests. */
export function upload(values: ArrayLike<number>, shape: number[], backend: Backend): Tensor {
  return noGrad(() => fromHost(Float32Array.from(values), shape, 'float32', backend));
}
