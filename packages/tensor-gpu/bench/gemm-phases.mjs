#!/usr/bin/env node
/**
 * Where a GEMM's wall time goes on the calling thread, per shape (ms per call): `pack` (the copies it
 * makes itself: A/B blocks, staged transposes, B panels), `runJob` (a first round of transpose tasks),
 * `tail` (a dots round's partial row block), `copyOut`, `waitDone` (its wait for the workers), `run`
 * (all of it; the rest is its own tasks and the round descriptors). Wraps the engine's methods from
 * outside, so nothing is timed in the hot code; `--dir` measures another version's gemm directory.
 *
 *   node bench/gemm-phases.mjs [--filter=<label>] [--threads=2] [--alloc] [--dir=<gemm dir>]
 */
import { resolve } from 'node:path';
import { register } from 'tsx/esm/api';

register();
const argValue = (name) => process.argv.slice(2).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const dir = argValue('dir') ?? new URL('../src/backends/cpu/gemm', import.meta.url).pathname;
const { createGemm, gemmReadyWorkers } = await import(new URL(`file://${resolve(dir, 'index.ts')}`).href);
const threads = Number(argValue('threads') ?? 2);
const inShared = process.argv.includes('--alloc');
const filter = argValue('filter');

const SHAPES = [
  [12, 128, 128, 64, 'attn-values', 'nn'],
  [96, 128, 128, 64, 'attn8-values', 'nn'],
  [1, 128, 768, 3072, 'bert-up', 'nn'],
  [1, 128, 768, 3072, 'bert-up', 'tn'],
  [1, 128, 3072, 768, 'bert-down', 'nn'],
  [1, 128, 3072, 768, 'bert-down', 'tn'],
  [1, 8192, 1024, 256, 'mlm-head-dw', 'tn'],
  [1, 1024, 1024, 256, 'mlm-up-dw', 'tn'],
  [1, 1024, 768, 3072, 'mlp-up', 'nn'],
].filter((s) => !filter || s[4].includes(filter));

const g = createGemm({ threads });
for (let i = 0; i < 500 && gemmReadyWorkers(g) < g.threads - 1; i++) await new Promise((r) => setTimeout(r, 10));
const proto = Object.getPrototypeOf(g);
const acc = {};
for (const name of ['pack', 'runJob', 'tail', 'copyOut', 'claim', 'waitDone', 'wake', 'describe', 'rounds', 'run']) {
  const f = proto[name];
  if (typeof f !== 'function') continue;
  acc[name] = 0;
  proto[name] = function (...args) {
    const t0 = performance.now();
    const r = f.apply(this, args);
    acc[name] += performance.now() - t0;
    return r;
  };
}
const rnd = (n) => {
  const a = inShared ? (g.alloc(n) ?? new Float32Array(n)) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
};
for (const [batch, M, K, N, label, layout] of SHAPES) {
  const A = rnd(batch * M * K);
  const B = rnd(batch * K * N);
  const out = rnd(batch * M * N);
  const a = layout === 'tn' ? { data: A, offset: 0, strides: [M * K, 1, M] } : { data: A, offset: 0, strides: [M * K, K, 1] };
  const b = { data: B, offset: 0, strides: [K * N, N, 1] };
  for (let i = 0; i < 5; i++) g.matmul(a, b, out, batch, M, N, K);
  const reps = 40;
  for (const k in acc) acc[k] = 0;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) g.matmul(a, b, out, batch, M, N, K);
  const wall = (performance.now() - t0) / reps;
  const per = Object.fromEntries(Object.entries(acc).map(([k, v]) => [k, +(v / reps).toFixed(3)]));
  console.log(JSON.stringify({ label, layout, batch, M, K, N, wall_ms: +wall.toFixed(3), gflops: +((2 * batch * M * N * K) / wall / 1e6).toFixed(1), ...per }));
}
g.dispose();
