// Where splitting a row kernel over the GEMM's two threads pays (decision 0024): the same round of
// row tasks run on the calling thread alone and on every thread, in alternating blocks, at sizes around the
// 256 KiB from which storage lives in the shared memory. One JSON line per (kernel, floats): median
// and fastest wall-clock microseconds of each.
// Usage: npx tsx bench/row-split.ts [--reps N]
import { createGemm } from '../src/backends/cpu/gemm/index.js';
import { heapOf } from '../src/backends/cpu/gemm/heap.js';
import { ROW_OPS } from '../src/backends/cpu/simd/rows.js';

const args = process.argv.slice(2);
const reps = args.includes('--reps') ? Number(args[args.indexOf('--reps') + 1]) : 301;
const gemm = createGemm({ threads: 2 });
// let the worker start
const until = Date.now() + 2000;
while (Date.now() < until) await new Promise((r) => setTimeout(r, 50));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cases: [string, number][] = [['softmax', 128], ['gelu', 2048], ['layerNorm', 768]];
for (const [op, len] of cases) {
  for (const floats of [8192, 16384, 32768, 65536, 131072, 524288]) {
    const rows = Math.max(1, Math.floor(floats / len));
    const x = gemm.alloc(rows * len)!;
    const o = gemm.alloc(rows * len)!;
    const w = gemm.alloc(len)!.fill(1);
    x.forEach((_, i) => (x[i] = Math.sin(i)));
    const runner = heapOf(x)!.rows!;
    const addr = (a: Float32Array) => a.byteOffset;
    const ptrs = op === 'gelu' ? [addr(x), addr(x), addr(o), 4 * len, 0] : [addr(x), addr(o), addr(w), addr(w), 0];
    const steps = op === 'gelu' ? [4 * len, 4 * len, 4 * len, 0, 0] : [4 * len, 4 * len, 0, 0, 0];
    const run = (parallel: boolean) => {
      const t0 = performance.now();
      runner.runRows(ROW_OPS.indexOf(op as never), rows, parallel ? Math.max(1, Math.ceil(rows / 8)) : rows, len, ptrs, steps, 1e-5, parallel);
      return (performance.now() - t0) * 1000;
    };
    const one: number[] = [];
    const two: number[] = [];
    // in blocks of 10 back-to-back rounds each way (the worker stays awake within a block, as it does
    // between the kernels of a forward pass), blocks alternating
    for (let r = 0; r < reps; r += 10) {
      for (let i = 0; i < 10; i++) one.push(run(false));
      for (let i = 0; i < 10; i++) two.push(run(true));
    }
    const f = (v: number) => +v.toFixed(1);
    console.log(JSON.stringify({ op, len, floats: rows * len, one_thread_us: f(median(one)), two_threads_us: f(median(two)), one_min_us: f(Math.min(...one)), two_min_us: f(Math.min(...two)) }));
  }
}
gemm.dispose();
process.exit(0);
