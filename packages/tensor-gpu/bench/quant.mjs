#!/usr/bin/env node
/**
 * CPU weight-only int8/int4 matmul benchmark (quantizedMatmul on the cpu backend): the WebAssembly SIMD
 * kernels (backends/cpu/quant) against the JS loops they replaced, interleaved in one process run on
 * ChatGLM-6B's linear shapes. One JSON line per measurement: median wall ms, median process cpu ms
 * (user + system, all threads: on a loaded machine the wall time mostly measures waiting for a core), and
 * packed-weight bandwidth (GB/s = bytes of int32 words + scales read per call / time), by each.
 *
 *   node bench/quant.mjs              # M = 1, 4, 8 (decode) and 64 (prefill)
 *   node bench/quant.mjs --quick      # fewer repetitions, the 4096 x 4096 shape only
 *
 * Loads the TypeScript sources through tsx (devDependency): no build step.
 */
import { register } from 'tsx/esm/api';

register();
const lm = await import('../src/index.ts');
const { setQuantizedSimd } = await import('../src/backends/cpu/kernels/quantized-matmul.ts');

const quick = process.argv.includes('--quick');
const backend = lm.cpu();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const loadavg = () => {
  try {
    return (globalThis.process.getBuiltinModule?.('node:os')?.loadavg() ?? []).map((v) => Math.round(v * 100) / 100);
  } catch {
    return [];
  }
};

/** Hashed words: every int8 / int4 code appears (the values do not change the timing). */
const randomWords = (n, seed) => Int32Array.from({ length: n }, (_, i) => Math.imul(i + seed, 2654435761) ^ (i >>> 3));

// ChatGLM-6B's linears: query_key_value [12288, 4096], dense [4096, 4096], dense_h_to_4h [16384, 4096], dense_4h_to_h [4096, 16384]
const shapes = quick ? [[4096, 4096]] : [[4096, 4096], [12288, 4096], [16384, 4096], [4096, 16384]];
const reps = quick ? 3 : 7;
for (const bits of [4, 8]) {
  for (const [N, K] of shapes) {
    const rowWords = lm.quantizedRowWords(bits, K);
    const weight = lm.fromHost(randomWords(N * rowWords, N + K + bits), [N, rowWords], 'int32', backend);
    const scale = lm.full([N], 1 / (16 * Math.sqrt(K)), { backend });
    const bytes = N * rowWords * 4 + N * 4;
    for (const M of [1, 4, 8, 64]) {
      const x = lm.randn([M, K], { backend, seed: M });
      const times = { simd: [], js: [] };
      const cpu = { simd: [], js: [] };
      // rep 0 warms up (V8 compiles wasm with its baseline compiler first and tiers up in the background)
      for (let i = 0; i <= reps; i++) {
        for (const kind of ['simd', 'js']) {
          setQuantizedSimd(kind === 'simd');
          const t = performance.now();
          const c = process.cpuUsage();
          const y = lm.quantizedMatmul(x, weight, scale, { bits, inFeatures: K });
          y.dataSync();
          const used = process.cpuUsage(c);
          if (i > 0) times[kind].push(performance.now() - t);
          if (i > 0) cpu[kind].push((used.user + used.system) / 1000);
          y.dispose();
        }
      }
      setQuantizedSimd(true);
      for (const kind of ['simd', 'js']) {
        const ms = median(times[kind]);
        const cpuMs = median(cpu[kind]);
        const r2 = (v) => Math.round(v * 100) / 100;
        console.log(JSON.stringify({ bench: 'quantizedMatmul', backend: 'cpu', kernel: kind === 'simd' ? 'wasm-simd' : 'js', bits, M, N, K, ms: r2(ms), cpuMs: r2(cpuMs), weightGBps: r2(bytes / ms / 1e6), weightGBpsCpu: r2(bytes / cpuMs / 1e6), gflops: r2((2 * M * N * K) / ms / 1e6), loadavg: loadavg() }));
      }
      x.dispose();
    }
    weight.dispose();
    scale.dispose();
  }
}
