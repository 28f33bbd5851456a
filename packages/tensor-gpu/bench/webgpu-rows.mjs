#!/usr/bin/env node
/**
 * The WebGPU row kernels (softmax, log-softmax, layer norm, RMS norm, a row sum) with their workgroup
 * reductions through subgroup shuffles and through the shared-memory tree (kernels/workgroup-reduce.ts),
 * one backend each, interleaved in one run; one JSON line per kernel, shape and choice:
 *   {"op":"softmax","backend":"webgpu","adapter":..,"subgroups":true,"shape":[..],"median_ms":..,"gbps":..}
 * median_ms is per kernel: each turn runs it 10 times (2 with --small) and reads the last result back.
 * gbps counts the row read once and the output written once (the sum: read only). When the adapter has no
 * `subgroups` feature, only the tree lines are written, and one line says so.
 *
 *   node bench/webgpu-rows.mjs            # BERT-base and vocabulary-sized rows
 *   node bench/webgpu-rows.mjs --small    # small shapes (SwiftShader, CI)
 *   node bench/webgpu-rows.mjs --reps=21
 *
 * Loads the TypeScript sources through tsx (no build step), like webgpu-matmul.mjs.
 */
import { register } from 'tsx/esm/api';

register();
const lm = await import('../src/index.ts');

const args = process.argv.slice(2);
const opt = (name, dflt) => args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1) ?? dflt;
const small = args.includes('--small');
const reps = Number(opt('--reps', small ? '3' : '15'));
const burst = small ? 2 : 10;

const on = await lm.createWebGPUBackend({ subgroups: true });
const off = await lm.createWebGPUBackend({ subgroups: false });
const backends = on.subgroups ? [on, off] : [off];
if (!on.subgroups) console.log(JSON.stringify({ op: 'rows', backend: 'webgpu', adapter: off.adapterInfo, skipped: 'the adapter has no subgroups feature: tree reductions only' }));

const numel = (s) => s.reduce((a, b) => a * b, 1);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const shapes = small
  ? { scores: [48, 64], hidden: [64, 96], vocab: [8, 2048] }
  : { scores: [8 * 12 * 128, 128], hidden: [8 * 128, 768], vocab: [1024, 32000] };
const cases = [
  ['softmax', shapes.scores, 2, (x) => x.softmax(-1)],
  ['logSoftmax', shapes.vocab, 2, (x) => lm.logSoftmax(x, -1)],
  ['layerNorm', shapes.hidden, 2, (x) => lm.layerNorm(x, x.shape[1])],
  ['rmsNorm', shapes.hidden, 2, (x) => lm.rmsNorm(x)],
  ['sum', shapes.vocab, 1, (x) => x.sum(-1)],
];
for (const [op, shape, passes, f] of cases) {
  const inputs = backends.map((backend) => lm.tensor(Float32Array.from({ length: numel(shape) }, (_, i) => Math.sin(i * 0.37)), shape, { backend }));
  const times = backends.map(() => []);
  // interleaved turns: the backends see the same machine state; the first turn compiles the pipelines
  for (let r = 0; r <= reps; r++) {
    for (const [b, x] of inputs.entries()) {
      // `burst` dispatches per read-back, so the read-back's round trip is spread over them
      const t0 = performance.now();
      let y = null;
      for (let i = 0; i < burst; i++) {
        y?.dispose();
        y = f(x);
      }
      await y.data();
      if (r > 0) times[b].push((performance.now() - t0) / burst);
      y.dispose();
    }
  }
  for (const [b, backend] of backends.entries()) {
    const ms = median(times[b]);
    const gbps = +((passes * numel(shape) * 4) / ms / 1e6).toPrecision(3);
    console.log(JSON.stringify({ op, backend: 'webgpu', adapter: backend.adapterInfo, subgroups: backend.subgroups, shape, median_ms: +ms.toFixed(3), gbps }));
  }
  inputs.forEach((x) => x.dispose());
}
on.destroy();
off.destroy();
