// One peers workload on two lm builds in one process, alternating step by step, so before/after see
// the same load: median wall-clock and process cpu time per step (the cpu time is what a loaded
// machine disturbs least). Usage:
//   node tooling/bench/lm-ab.mjs --lm-dist <another build's dist> [--workload bert-forward-b1] [--reps 5] [--small]
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildLm, workloadShapes } from './workloads.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const baseDist = opt('--lm-dist', null);
if (!baseDist) throw new Error('lm-ab: --lm-dist <dist folder of the build to compare with> is required');
const name = opt('--workload', 'bert-forward-b1');
const reps = Number(opt('--reps', 5));
const w = workloadShapes(args.includes('--small')).find((x) => x.name === name);
if (!w) throw new Error(`lm-ab: unknown workload ${name} (${workloadShapes(false).map((x) => x.name).join(', ')})`);
const current = await import(pathToFileURL(resolve(import.meta.dirname, '../../packages/tensor-gpu/dist/index.js')).href);
const base = await import(pathToFileURL(resolve(baseDist, 'index.js')).href);
const runs = [['lm-base', base], ['lm', current]].map(([build, lm]) => ({ build, work: buildLm(lm, lm.cpu(), w), wall: [], cpu: [] }));
for (const r of runs) r.work.step(); // warm-up
for (let i = 0; i < reps; i++) {
  for (const r of runs) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    r.work.step();
    r.wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    r.cpu.push((c.user + c.system) / 1000);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
for (const r of runs) {
  console.log(JSON.stringify({ workload: name, build: r.build, median_wall_ms: +median(r.wall).toFixed(1), median_cpu_ms: +median(r.cpu).toFixed(1), wall_ms: r.wall.map((x) => +x.toFixed(0)), load: +load }));
  r.work.dispose();
}
process.exit(0);
