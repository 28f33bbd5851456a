#!/usr/bin/env node
/**
 * matmulTopk on the WebGPU backend: the fused kernel against the composite (matmul + topk, the op's
 * fallback) in one run, and optionally against an older build's fused kernel (A/B in one process, each
 * build on its own device); one JSON line per measurement, ms = median of the timed runs, the ids read back.
 *
 *   node bench/webgpu-topk.mjs                                  # 100k x 128 rows, Q = 1 (k 5, 100), Q = 64 (k 5)
 *   node bench/webgpu-topk.mjs --rows=20000 --reps=3 --before=/path/to/old/dist/index.js
 *
 * Loads the TypeScript sources through tsx (no build step), like webgpu-matmul.mjs.
 */
import { register } from 'tsx/esm/api';

register();
const lm = await import('../src/index.ts');
const { seededRandom } = await import('../src/testing/index.ts');

const args = process.argv.slice(2);
const opt = (name, dflt) => args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1) ?? dflt;
const N = Number(opt('--rows', '100000'));
const D = Number(opt('--dim', '128'));
const reps = Number(opt('--reps', '3'));
const shapes = opt('--shapes', '1x5,1x100,64x5').split(',').map((s) => s.split('x').map(Number));
const before = opt('--before', '');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Deterministic uniform(-0.5, 0.5) floats. */
function randomFloats(n, seed) {
  const rnd = seededRandom(seed);
  return Float32Array.from({ length: n }, () => rnd() - 0.5);
}

const rows = randomFloats(N * D, 12345);
const qs = randomFloats(64 * D, 777);
const impls = [{ name: 'fused', lib: lm, backend: await lm.createWebGPUBackend() }];
impls.push({ name: 'composite', lib: lm, backend: await lm.createWebGPUBackend(), composite: true });
if (before) {
  const old = await import(before);
  impls.push({ name: 'fused-before', lib: old, backend: await old.createWebGPUBackend() });
}
for (const impl of impls) {
  if (impl.composite) impl.backend.fused.matmulTopk = undefined; // the op then runs matmul + topk
  impl.blocks = impl.lib.fromHost(rows, [N, D], 'float32', impl.backend);
}
for (const [Q, k] of shapes) {
  const ms = new Map(impls.map((i) => [i.name, []]));
  let ids = null;
  // interleaved: one run of each implementation per repetition (the first is a warm-up)
  for (let r = 0; r <= reps; r++) {
    for (const impl of impls) {
      const q = impl.lib.fromHost(qs.subarray(0, Q * D), [Q, D], 'float32', impl.backend);
      const t0 = performance.now();
      const top = impl.lib.matmulTopk(q, impl.blocks, k);
      const got = await top.indices.data();
      const dt = performance.now() - t0;
      if (r > 0) ms.get(impl.name).push(dt);
      if (ids === null) ids = Array.from(got);
      else if (Array.from(got).join() !== ids.join()) throw new Error(`${impl.name}: ids differ from ${impls[0].name} at Q=${Q} k=${k}`);
      [q, top.values, top.indices].forEach((t) => t.dispose());
    }
  }
  for (const impl of impls) {
    const m = median(ms.get(impl.name));
    console.log(JSON.stringify({ op: 'matmulTopk', impl: impl.name, adapter: impl.backend.adapterInfo, rows: N, dim: D, Q, k, reps, median_ms: +m.toFixed(1), ms_per_query: +(m / Q).toFixed(2) }));
  }
}
for (const impl of impls) {
  impl.blocks.dispose();
  impl.backend.destroy();
}
