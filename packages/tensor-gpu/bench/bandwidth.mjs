// The machine's copy bandwidth, the ceiling of a memory-bound kernel: Float32Array.set over 64 MiB
// (read + written bytes per second), on the main thread and on 1 or 2 worker threads each copying
// its half of a SharedArrayBuffer at the same time. Median of --reps.
// Usage: node bench/bandwidth.mjs [--reps N]
import { Worker } from 'node:worker_threads';

const args = process.argv.slice(2);
const reps = args.includes('--reps') ? Number(args[args.indexOf('--reps') + 1]) : 9;
const n = 16 * 1024 * 1024; // floats: 64 MiB per array
const src = new Float32Array(new SharedArrayBuffer(n * 4)).fill(1);
const dst = new Float32Array(new SharedArrayBuffer(n * 4)).fill(2);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const times = [];
for (let r = 0; r < reps; r++) {
  const t0 = performance.now();
  dst.set(src);
  times.push(performance.now() - t0);
}
console.log(JSON.stringify({ bench: 'copy', threads: 'main', mib: 64, gbps: +((2 * n * 4) / median(times) / 1e6).toFixed(2) }));

// workers: each copies [k n / T, (k + 1) n / T) when told to, and answers when done
const body = `
const { parentPort, workerData: { src, dst, lo, hi } } = require('node:worker_threads');
const s = new Float32Array(src), d = new Float32Array(dst);
parentPort.on('message', () => { d.set(s.subarray(lo, hi), lo); parentPort.postMessage(0); });`;
for (const T of [1, 2]) {
  const workers = Array.from({ length: T }, (_, k) => new Worker(body, { eval: true, workerData: { src: src.buffer, dst: dst.buffer, lo: (k * n) / T, hi: ((k + 1) * n) / T } }));
  const round = () => Promise.all(workers.map((w) => new Promise((res) => (w.once('message', res), w.postMessage(0)))));
  await round();
  const ts = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await round();
    ts.push(performance.now() - t0);
  }
  console.log(JSON.stringify({ bench: 'copy', threads: T, mib: 64, gbps: +((2 * n * 4) / median(ts) / 1e6).toFixed(2) }));
  await Promise.all(workers.map((w) => w.terminate()));
}
console.log(JSON.stringify({ load: (await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').trim() }));
