#!/usr/bin/env node
/**
 * Decode GEMV benchmark: the Linear layers of one decode step (6 layers, hidden 512, ffn 2048, vocab
 * 32000: 141 MB of float32 weights, more than the caches hold), x @ W^T with M rows of x, W stored
 * [N, K]. Weights either in ordinary typed arrays (the GEMM copies them into its memory) or allocated
 * in the GEMM's shared memory (`gemm.alloc`, read in place by every thread). The two run interleaved
 * in one process; one JSON line each: weight GB/s per step (median), and per shape when it repeats.
 *
 *   node bench/gemv.mjs [--m=1] [--reps=15]
 * Loads the TypeScript sources through tsx (devDependency), like gemm.mjs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const { createGemm } = await import('../src/backends/cpu/gemm/index.ts');
const argValue = (name, d) => process.argv.slice(2).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? d;
const M = Number(argValue('m', 1));
const reps = Number(argValue('reps', 15));
const g = createGemm();
await new Promise((r) => setTimeout(r, 300)); // let the workers start

const L = 6, H = 512, F = 2048, V = 32000;
const shapes = [];
for (let l = 0; l < L; l++) {
  for (let i = 0; i < 4; i++) shapes.push([H, H]);
  shapes.push([F, H], [H, F]);
}
shapes.push([V, H]);
const bytes = shapes.reduce((s, [n, k]) => s + n * k * 4, 0);
const fillW = (w) => {
  for (let i = 0; i < w.length; i++) w[i] = ((i * 2654435761) % 1000) / 1e4;
  return w;
};
const sets = {
  copied: shapes.map(([n, k]) => fillW(new Float32Array(n * k))),
  inPlace: shapes.map(([n, k]) => fillW(g.alloc(n * k) ?? new Float32Array(n * k))),
};
const x = new Float32Array(M * F).fill(0.5);
const out = new Float32Array(M * V);
const median = (a) => [...a].sort((p, q) => p - q)[a.length >> 1];
const mm = (w, n, k) => g.matmul({ data: x, offset: 0, strides: [0, k, 1] }, { data: w, offset: 0, strides: [0, 1, k] }, out, 1, M, n, k);
/** [wall ms, cpu ms per thread]: on a shared machine the second is the time the threads had cores. */
const step = (ws) => {
  const c0 = process.cpuUsage();
  const t = performance.now();
  for (let i = 0; i < shapes.length; i++) mm(ws[i], shapes[i][0], shapes[i][1]);
  const c = process.cpuUsage(c0);
  return [performance.now() - t, (c.user + c.system) / 1000 / g.threads];
};
const times = { copied: [], inPlace: [] };
const cpus = { copied: [], inPlace: [] };
for (let r = 0; r < reps + 2; r++) {
  for (const k of Object.keys(sets)) {
    const [t, c] = step(sets[k]);
    if (r >= 2) {
      times[k].push(t);
      cpus[k].push(c);
    }
  }
}
const load = () => (existsSync('/proc/loadavg') ? Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) : null);
for (const k of Object.keys(sets)) {
  const perShape = {};
  for (const [n, kk] of [[H, H], [F, H], [H, F], [V, H]]) {
    const i = shapes.findIndex(([a, b]) => a === n && b === kk);
    const ts = [];
    for (let r = 0; r < 20; r++) {
      const t = performance.now();
      mm(sets[k][i], n, kk);
      ts.push(performance.now() - t);
    }
    perShape[`[${M},${kk}]x[${kk},${n}]`] = +((n * kk * 4) / median(ts) / 1e6).toFixed(2);
  }
  const ms = median(times[k]);
  const cpu = median(cpus[k]);
  console.log(JSON.stringify({ bench: 'decode-gemv', weights: k, M, threads: g.threads, weightMB: +(bytes / 1e6).toFixed(1), step_ms: +ms.toFixed(2), GBps: +(bytes / ms / 1e6).toFixed(2), cpu_ms_per_thread: +cpu.toFixed(2), GBps_on_cores: +(bytes / cpu / 1e6).toFixed(2), repeatedShapeGBps: perShape, load: load() }));
}
// the machine's own ceiling: one thread streaming the same bytes with a plain copy
const src = new Float32Array(bytes / 4), dst = new Float32Array(bytes / 4);
const tc = [];
const cc = [];
for (let r = 0; r < 5; r++) {
  const c0 = process.cpuUsage();
  const t = performance.now();
  dst.set(src);
  tc.push(performance.now() - t);
  const c = process.cpuUsage(c0);
  cc.push((c.user + c.system) / 1000);
}
console.log(JSON.stringify({ bench: 'memcpy-1-thread', MB: +(bytes / 1e6).toFixed(1), GBps: +(bytes / median(tc) / 1e6).toFixed(2), GBps_on_cores: +(bytes / median(cc) / 1e6).toFixed(2), load: load() }));
g.dispose();
