#!/usr/bin/env node
/**
 * CPU GEMM benchmark: prints one JSON line per measurement.
 *
 *   node bench/gemm.mjs                 # all shapes, ours (threads 1 and max) + tfjs-wasm
 *   node bench/gemm.mjs --quick         # fewer shapes / repetitions
 *   node bench/gemm.mjs --no-tfjs       # skip the tfjs-backend-wasm comparison
 *   node bench/gemm.mjs --filter=bert   # only shapes whose label contains the string
 *   node bench/gemm.mjs --threads=1     # only this thread count (default: 1 and max)
 *   node bench/gemm.mjs --alloc         # operands and output allocated in the GEMM's shared memory
 *                                       # (g.alloc), as the cpu backend keeps storages from 256 KiB:
 *                                       # the threads then read and write them in place
 *   node bench/gemm.mjs --base=DIR      # also another version's gemm (DIR/index.ts, e.g. main's
 *                                       # src/backends/cpu/gemm from `git archive`), engine 'base',
 *                                       # measured interleaved with this one, shape by shape
 *   node bench/gemm.mjs --rounds=5      # every shape measured in 5 rounds spread over the whole run
 *                                       # (round r measures all shapes before round r + 1), so a busy
 *                                       # spell of the shared machine hits one round of each shape, not
 *                                       # every turn of one shape; prints the median round and the best
 *
 * Shapes are named M x K x N: out[M, N] = A[M, K] * B[K, N] (batch > 1: B per batch item).
 * `layout`: nn = both row-major; nt = B transposed (B = W^T with W stored [N, K], i.e.
 * b.strides = [0, 1, K]: the `Linear` layer x @ W^T); tn = A transposed (A stored
 * [K, M], a.strides = [0, 1, M]: the weight gradient g^T @ x).
 * Loads the TypeScript sources directly through tsx's ESM loader (devDependency), so it
 * needs no build step and can be spawned from bench/run.mjs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { register } from 'tsx/esm/api';

register();
const { createGemm, gemmReadyWorkers } = await import('../src/backends/cpu/gemm/index.ts');
const { hardwareConcurrency } = await import('../src/backends/cpu/thread-pool.ts');

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const withTfjs = !args.has('--no-tfjs');
const argValue = (name) => process.argv.slice(2).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const filter = argValue('filter');
const onlyThreads = argValue('threads');
const baseDir = argValue('base');
const inShared = args.has('--alloc');
const rounds = Math.max(1, Number(argValue('rounds') ?? 1));
const base = baseDir ? await import(new URL(`file://${resolve(baseDir, 'index.ts')}`).href) : null;

/** [batch, M, K, N, label, layout = 'nn'] */
const SHAPES = [
  [1, 256, 256, 256, 'cube'],
  [1, 512, 512, 512, 'cube'],
  [1, 1024, 1024, 1024, 'cube'],
  [1, 2048, 2048, 2048, 'cube'],
  [1, 1024, 768, 3072, 'mlp-up'],
  [1, 1024, 3072, 768, 'mlp-down'],
  [12, 128, 64, 128, 'attn-scores'],
  [12, 128, 128, 64, 'attn-values'],
  [12, 512, 64, 512, 'attn-scores'],
  [12, 128, 64, 128, 'attn-scores', 'nt'], // q @ k^T as models write it
  [12, 512, 512, 64, 'attn-values'],
  // BERT-base attention at batch 8: 96 heads of q @ k^T (nt) and p @ v (nn)
  [96, 128, 64, 128, 'attn8-scores', 'nt'],
  [96, 128, 128, 64, 'attn8-values'],
  [1, 1, 768, 768, 'gemv'],
  [1, 64, 64, 64, 'cube'],
  // BERT-base Linear layers at batch 1, seq 128: forward x @ W^T (nt), weight gradient g^T @ x (tn)
  [1, 128, 768, 3072, 'bert-up', 'nn'],
  [1, 128, 768, 3072, 'bert-up', 'nt'],
  [1, 128, 768, 3072, 'bert-up', 'tn'],
  [1, 128, 3072, 768, 'bert-down', 'nn'],
  [1, 128, 3072, 768, 'bert-down', 'nt'],
  [1, 128, 3072, 768, 'bert-down', 'tn'],
  [1, 128, 768, 768, 'bert-qkv', 'nt'],
  // decoding: a few rows against a transposed weight
  [1, 1, 768, 768, 'gemv', 'nt'],
  [1, 1, 768, 3072, 'gemv', 'nt'],
  [1, 4, 768, 3072, 'decode', 'nt'],
  [1, 8, 3072, 768, 'decode', 'nt'],
  // BERT-base at batch 8 (M = 8 x 128): forward x @ W^T, and the backward's dX = dY @ W (nn), dW = dY^T @ X (tn)
  [1, 1024, 768, 768, 'bert8-qkv', 'nt'],
  [1, 1024, 768, 3072, 'bert8-up', 'nt'],
  [1, 1024, 3072, 768, 'bert8-down', 'nt'],
  [1, 1024, 3072, 768, 'bert8-up-dx', 'nn'],
  [1, 3072, 1024, 768, 'bert8-up-dw', 'tn'],
  // the MLM step (hidden 256, ffn 1024, vocab 8192, 1024 tokens): forward, dX and dW of the LM head and the MLP
  [1, 1024, 256, 8192, 'mlm-head', 'nt'],
  [1, 1024, 8192, 256, 'mlm-head-dx', 'nn'],
  [1, 8192, 1024, 256, 'mlm-head-dw', 'tn'],
  [1, 1024, 256, 1024, 'mlm-up', 'nt'],
  [1, 1024, 1024, 256, 'mlm-down', 'nt'],
  [1, 1024, 1024, 256, 'mlm-up-dx', 'nn'],
  [1, 1024, 1024, 256, 'mlm-up-dw', 'tn'],
]
  .map(([batch, M, K, N, label, layout = 'nn']) => [batch, M, K, N, label, layout])
  .filter((s) => !quick || s[1] * s[2] * s[3] * s[0] <= 1024 ** 3)
  .filter((s) => !filter || s[4].includes(filter) || s[5] === filter);

/** Operands for a layout; data arrays hold the logical [batch, R, C] matrix (transposed when asked). */
function operands(layout, A, B, batch, M, K, N) {
  const a = layout === 'tn' ? { data: A, offset: 0, strides: [M * K, 1, M] } : { data: A, offset: 0, strides: [M * K, K, 1] };
  const b = layout === 'nt' ? { data: B, offset: 0, strides: [K * N, 1, K] } : { data: B, offset: 0, strides: [K * N, N, 1] };
  return { a, b };
}

const minTimeMs = quick ? 300 : base ? 400 : 1000;

/**
 * Median wall time and GFLOPS, and GFLOPS "on cores": flops over the process's cpu time per thread
 * (threads = the GEMM's). On a machine shared with other jobs the wall time mostly measures the queue
 * for a core; the cpu time counts only the time the threads ran (their spinning included), so it is
 * what the kernels and their threading reach where they have the cores to themselves.
 */
function measure(fn, flops, threads) {
  for (let i = 0; i < 2; i++) fn();
  const times = [];
  const cpus = [];
  const start = performance.now();
  while (times.length < 5 || (performance.now() - start < minTimeMs && times.length < 200)) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpus.push((c.user + c.system) / 1000 / threads);
  }
  const median = (a) => [...a].sort((p, q) => p - q)[a.length >> 1];
  const wall = median(times);
  const cpu = median(cpus);
  return {
    median_ms: +wall.toFixed(4),
    gflops: +(flops / wall / 1e6).toFixed(2),
    cpu_ms_per_thread: +cpu.toFixed(4),
    gflops_on_cores: +(flops / cpu / 1e6).toFixed(2),
    reps: times.length,
  };
}

function randomArray(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

const loadavg = () => (existsSync('/proc/loadavg') ? Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) : null);

function emit(obj) {
  console.log(JSON.stringify(obj));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const inputs = SHAPES.map(([batch, M, K, N]) => ({ A: randomArray(batch * M * K), B: randomArray(batch * K * N) }));

const maxThreads = hardwareConcurrency();
const threadCounts = onlyThreads ? [Number(onlyThreads)] : [...new Set([1, maxThreads])];
for (const threads of threadCounts) {
  const engines = [['new', createGemm({ threads })]];
  if (base) engines.unshift(['base', base.createGemm({ threads })]);
  for (const [, g] of engines) for (let i = 0; i < 500 && base?.gemmReadyWorkers(g) !== g.threads - 1 && gemmReadyWorkers(g) < g.threads - 1; i++) await sleep(10);
  // each engine its own copies (in its memory with --alloc), made once for all rounds
  const own = (g, x) => {
    const y = inShared ? (g.alloc(x.length) ?? new Float32Array(x.length)) : new Float32Array(x.length);
    y.set(x);
    return y;
  };
  const per = SHAPES.map(([batch, M, K, N, , layout], s) =>
    engines.map(([, g]) => ({ ...operands(layout, own(g, inputs[s].A), own(g, inputs[s].B), batch, M, K, N), out: own(g, new Float32Array(batch * M * N)) })),
  );
  const rs = SHAPES.map(() => engines.map(() => []));
  for (let round = 0; round < rounds; round++) {
    SHAPES.forEach(([batch, M, K, N], s) => {
      // with a base engine: alternate the two in short turns, so both see the same machine
      const turns = base ? 3 : 1;
      for (let t = 0; t < turns; t++) {
        engines.forEach(([, g], e) => {
          const { a, b, out } = per[s][e];
          rs[s][e].push(measure(() => g.matmul(a, b, out, batch, M, N, K), 2 * batch * M * N * K, g.threads));
        });
      }
    });
  }
  SHAPES.forEach(([batch, M, K, N, label, layout], s) => {
    engines.forEach(([engine, g], e) => {
      const all = rs[s][e];
      const r = [...all].sort((p, q) => p.cpu_ms_per_thread - q.cpu_ms_per_thread)[all.length >> 1];
      const spread = rounds > 1 ? { rounds, best_gflops: Math.max(...all.map((x) => x.gflops)), gflops_each: all.map((x) => x.gflops) } : {};
      emit({ op: 'matmul', backend: 'cpu', impl: `wasm-${g.simd}`, ...(base ? { engine } : {}), ...(inShared ? { alloc: true } : {}), threads: g.threads, shape: `${M}x${K}x${N}`, label, layout, batch, M, K, N, ...r, ...spread, load: loadavg() });
    });
  });
  for (const [, g] of engines) g.dispose();
}

// Plain JS scalar reference on the small shapes only (it is ~1 GFLOPS).
{
  const g = createGemm({ simd: 'scalar' });
  SHAPES.forEach(([batch, M, K, N, label, layout], s) => {
    if (batch * M * K * N > 256 ** 3) return;
    const { A, B } = inputs[s];
    const { a, b } = operands(layout, A, B, batch, M, K, N);
    const out = new Float32Array(batch * M * N);
    const r = measure(() => g.matmul(a, b, out, batch, M, N, K), 2 * batch * M * N * K, 1);
    emit({ op: 'matmul', backend: 'cpu', impl: 'js-scalar', threads: 1, shape: `${M}x${K}x${N}`, label, layout, batch, M, K, N, ...r });
  });
}

if (withTfjs) {
  try {
    const tf = await import('@tensorflow/tfjs-core');
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend('wasm');
    await tf.ready();
    let tfThreads = 1;
    try {
      tfThreads = wasm.getThreadsCount?.() ?? 1;
    } catch {
      tfThreads = 1;
    }
    SHAPES.forEach(([batch, M, K, N, label, layout], s) => {
      const { A, B } = inputs[s];
      const transA = layout === 'tn';
      const transB = layout === 'nt';
      const a = tf.tensor3d(A, transA ? [batch, K, M] : [batch, M, K]);
      const b = tf.tensor3d(B, transB ? [batch, N, K] : [batch, K, N]);
      const r = measure(() => {
        const c = tf.matMul(a, b, transA, transB);
        c.dataSync();
        c.dispose();
      }, 2 * batch * M * N * K, tfThreads);
      a.dispose();
      b.dispose();
      emit({ op: 'matmul', backend: 'cpu', impl: `tfjs-wasm-${tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'simd' : 'scalar'}`, threads: tfThreads, shape: `${M}x${K}x${N}`, label, layout, batch, M, K, N, ...r });
    });
  } catch (e) {
    emit({ op: 'matmul', backend: 'cpu', impl: 'tfjs-wasm', error: String(e && e.message ? e.message : e) });
  }
}
