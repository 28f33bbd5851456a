#!/usr/bin/env node
/**
 * The machine's own ceilings for the cpu GEMM and GEMV, measured with WebAssembly SIMD as the kernels
 * use it (issue #18): one JSON line each.
 *  - fma: 12 independent f32x4 relaxed_madd chains (or mul + add where relaxed SIMD is missing) in a
 *    loop, no memory traffic: the peak GFLOPS a 128-bit wasm kernel can reach, on 1 and 2 threads.
 *  - stream: an f32x4 load-and-add over a buffer far larger than the caches (4 accumulators): the
 *    bandwidth a GEMV that reads each weight once can reach, on 1 and 2 threads (each thread its half).
 *  - memcpy: one thread's `TypedArray.set` of the same bytes (the copy the in-place GEMV avoids).
 *
 *   node bench/ceiling.mjs [--mb=256] [--reps=7]
 * The module is generated here and compiled with wabt (devDependency); workers share its memory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import v8 from 'node:v8';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd'); // Node 20 needs it; later versions ignore it
const argValue = (name, d) => process.argv.slice(2).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? d;
const MB = Number(argValue('mb', 256));
const reps = Number(argValue('reps', 7));
const ACC = 12;

function wat(relaxed) {
  const L = [];
  const e = (s) => L.push(s);
  e('(module (import "env" "memory" (memory 1 65536 shared))');
  // fma(iters): ACC accumulators, each iteration ACC f32x4 multiply-adds = ACC * 8 flops; the
  // accumulator is the addend, as in the GEMM kernels (acc = x * y + acc)
  e('  (func (export "fma") (param $n i32) (result f32)');
  e('    (local $x v128) (local $y v128)');
  for (let i = 0; i < ACC; i++) e(`    (local $a${i} v128)`);
  e('    (local.set $x (f32x4.splat (f32.const 0.999)))');
  e('    (local.set $y (f32x4.splat (f32.const 0.001)))');
  e('    (loop $l');
  for (let i = 0; i < ACC; i++) {
    e(relaxed
      ? `      (local.set $a${i} (f32x4.relaxed_madd (local.get $x) (local.get $y) (local.get $a${i})))`
      : `      (local.set $a${i} (f32x4.add (local.get $a${i}) (f32x4.mul (local.get $x) (local.get $y))))`);
  }
  e('      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))');
  let sum = '(local.get $a0)';
  for (let i = 1; i < ACC; i++) sum = `(f32x4.add ${sum} (local.get $a${i}))`;
  e(`    (f32x4.extract_lane 0 ${sum}))`);
  // stream(p, bytes): sum of f32x4 loads, 64 bytes per iteration
  e('  (func (export "stream") (param $p i32) (param $bytes i32) (result f32)');
  e('    (local $end i32) (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)');
  e('    (local.set $end (i32.add (local.get $p) (local.get $bytes)))');
  e('    (loop $l');
  for (let i = 0; i < 4; i++) e(`      (local.set $s${i} (f32x4.add (local.get $s${i}) (v128.load offset=${16 * i} (local.get $p))))`);
  e('      (br_if $l (i32.lt_u (local.tee $p (i32.add (local.get $p) (i32.const 64))) (local.get $end))))');
  e('    (f32x4.extract_lane 0 (f32x4.add (f32x4.add (local.get $s0) (local.get $s1)) (f32x4.add (local.get $s2) (local.get $s3)))))');
  e(')');
  return L.join('\n');
}

const wabt = await (await import('wabt')).default();
function compile(relaxed) {
  const features = { simd: true, threads: true, relaxed_simd: relaxed };
  const m = wabt.parseWat('ceiling.wat', wat(relaxed), features);
  m.validate(features);
  const bytes = new Uint8Array(m.toBinary({}).buffer);
  m.destroy();
  return bytes;
}
let relaxed = true;
let bytes = compile(true);
if (!WebAssembly.validate(bytes)) {
  relaxed = false;
  bytes = compile(false);
}
const module = new WebAssembly.Module(bytes);
const bufBytes = MB * 2 ** 20;
const memory = new WebAssembly.Memory({ initial: bufBytes / 65536 + 1, maximum: 65536, shared: true });
new Uint8Array(memory.buffer, 65536, bufBytes).fill(1); // touch every page before timing
const ctl = new Int32Array(memory.buffer, 0, 16); // [0] go counter, [1] done counter, [2] kind, [3] arg0, [4] arg1

// A worker runs `kind` (0 = fma(arg0), 1 = stream(arg0, arg1)) each time the go counter moves.
const workerSrc = `
const { parentPort } = require('node:worker_threads');
require('node:v8').setFlagsFromString('--experimental-wasm-relaxed-simd');
parentPort.once('message', ({ module, memory }) => {
  const ex = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const ctl = new Int32Array(memory.buffer, 0, 16);
  for (let i = 0; i < 200; i++) { ex.fma(100000); ex.stream(65536, 1 << 20); }
  Atomics.add(ctl, 5, 1);
  let seen = 0;
  for (;;) {
    Atomics.wait(ctl, 0, seen);
    seen = Atomics.load(ctl, 0);
    if (seen < 0) break;
    if (ctl[2] === 0) ex.fma(ctl[3]); else ex.stream(ctl[3], ctl[4]);
    Atomics.add(ctl, 1, 1);
    Atomics.notify(ctl, 1);
  }
});`;
const ex = new WebAssembly.Instance(module, { env: { memory } }).exports;
const worker = new Worker(workerSrc, { eval: true });
worker.postMessage({ module, memory });
while (Atomics.load(ctl, 5) === 0) await new Promise((r) => setTimeout(r, 50)); // the worker warmed up

/**
 * Runs `mine` on this thread and, with two threads, (kind, a0, a1) on the worker too; returns
 * [wall ms, process cpu ms / threads]. On a loaded machine the second is the one that means something:
 * a thread's time on a core (the worker sleeps in Atomics.wait when idle, so it adds nothing else).
 */
function timed(threads, kind, mine, a0, a1) {
  const done = Atomics.load(ctl, 1);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  if (threads === 2) {
    ctl[2] = kind;
    ctl[3] = a0;
    ctl[4] = a1;
    Atomics.add(ctl, 0, 1);
    Atomics.notify(ctl, 0);
  }
  mine();
  if (threads === 2) while (Atomics.load(ctl, 1) === done) Atomics.wait(ctl, 1, done, 1);
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return [wall, (c.user + c.system) / 1000 / threads];
}
const median = (a) => [...a].sort((p, q) => p - q)[a.length >> 1];
const load = () => (existsSync('/proc/loadavg') ? Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) : null);

const ITERS = 20_000_000;
// tier both functions up to V8's optimizing compiler (a long first call would stay in the baseline tier)
for (let i = 0; i < 200; i++) {
  ex.fma(100_000);
  ex.stream(65536, 1 << 20);
}
await new Promise((r) => setTimeout(r, 200));
for (const threads of [1, 2]) {
  const t = [];
  for (let r = 0; r < reps; r++) t.push(timed(threads, 0, () => ex.fma(ITERS), ITERS, 0));
  const flops = threads * ITERS * ACC * 8;
  const [wall, cpu] = [median(t.map((x) => x[0])), median(t.map((x) => x[1]))];
  console.log(JSON.stringify({ bench: 'wasm-fma-peak', kernel: relaxed ? 'relaxed_madd' : 'mul+add', threads, accumulators: ACC, wall_ms: +wall.toFixed(2), GFLOPS_wall: +(flops / wall / 1e6).toFixed(1), cpu_ms_per_thread: +cpu.toFixed(2), GFLOPS_on_cores: +(flops / cpu / 1e6).toFixed(1), load: load() }));
}
for (const threads of [1, 2]) {
  const t = [];
  const half = bufBytes / threads;
  for (let r = 0; r < reps; r++) t.push(timed(threads, 1, () => ex.stream(65536, half), 65536 + half, half));
  const [wall, cpu] = [median(t.map((x) => x[0])), median(t.map((x) => x[1]))];
  console.log(JSON.stringify({ bench: 'wasm-stream-read', threads, MB, wall_ms: +wall.toFixed(2), GBps_wall: +(bufBytes / wall / 1e6).toFixed(2), cpu_ms_per_thread: +cpu.toFixed(2), GBps_on_cores: +(bufBytes / cpu / 1e6).toFixed(2), load: load() }));
}
{
  const src = new Float32Array(bufBytes / 4).fill(1);
  const dst = new Float32Array(bufBytes / 4);
  const t = [];
  for (let r = 0; r < reps; r++) t.push(timed(1, 0, () => dst.set(src)));
  const [wall, cpu] = [median(t.map((x) => x[0])), median(t.map((x) => x[1]))];
  console.log(JSON.stringify({ bench: 'memcpy-1-thread', MB, wall_ms: +wall.toFixed(2), GBps_wall: +(bufBytes / wall / 1e6).toFixed(2), GBps_on_cores: +(bufBytes / cpu / 1e6).toFixed(2), note: 'bytes copied (each read and written once)', load: load() }));
}
Atomics.store(ctl, 0, -1);
Atomics.notify(ctl, 0);
await worker.terminate();
