#!/usr/bin/env node
/**
 * Submits and dispatches per step of the peers' workloads (tooling/bench/workloads.mjs) on the WebGPU
 * backend, for several batch limits (dispatches per submit) in one run; one JSON line each:
 *   {"op":"submits","workload":"decode-token","batch_dispatches":64,"bind_group_cache":4096,"submits_per_step":..,
 *    "dispatches_per_step":..,"bind_groups_per_step":..,"median_ms":..}
 * A step here ends the way a generation step does: its result is read back (one token id).
 * bind_groups_per_step counts the GPUBindGroups created in a step: with the runtime's bind-group cache
 * (its default limit) and without it (limit 0), both in the same run (--caches=4096,0).
 *
 *   node bench/webgpu-submits.mjs                      # decode-token at the issue's shape
 *   node bench/webgpu-submits.mjs --small              # small shapes (SwiftShader)
 *   node bench/webgpu-submits.mjs --filter=. --batches=16,64,1024
 *
 * Loads the TypeScript sources through tsx (no build step), like webgpu-matmul.mjs.
 */
import { register } from 'tsx/esm/api';

register();
const lm = await import('../src/index.ts');
const { buildLm, workloadShapes } = await import('../../../tooling/bench/workloads.mjs');

const args = process.argv.slice(2);
const opt = (name, dflt) => args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1) ?? dflt;
const small = args.includes('--small');
const filter = new RegExp(opt('--filter', '^decode-token$'));
const batches = opt('--batches', '16,64,1024').split(',').map(Number);
const reps = Number(opt('--reps', '5'));
const caches = opt('--caches', '4096,0').split(',').map(Number);

const backend = await lm.createWebGPUBackend();
const rt = backend.rt;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const w of workloadShapes(small).filter((x) => filter.test(x.name))) {
  // the workload's step frees its tensors; wrap it to keep and read back its last result
  const job = buildLm(lm, backend, w);
  try {
    for (const [b, cache] of batches.flatMap((b) => caches.map((c) => [b, c]))) {
      rt.batchDispatches = b;
      rt.bindGroupCacheLimit = cache;
      const step = async () => {
        job.step();
        await job.sync();
      };
      await step(); // warm-up: pipelines compiled, pool filled
      const submits = [];
      const dispatches = [];
      const groups = [];
      const ms = [];
      for (let r = 0; r < reps; r++) {
        const [s0, d0, g0, t0] = [rt.submits, rt.dispatchCount, rt.bindGroupsCreated, performance.now()];
        await step();
        ms.push(performance.now() - t0);
        submits.push(rt.submits - s0);
        dispatches.push(rt.dispatchCount - d0);
        groups.push(rt.bindGroupsCreated - g0);
      }
      console.log(
        JSON.stringify({
          op: 'submits',
          workload: w.name,
          adapter: backend.adapterInfo,
          batch_dispatches: b,
          bind_group_cache: cache,
          submits_per_step: median(submits),
          dispatches_per_step: median(dispatches),
          bind_groups_per_step: median(groups),
          median_ms: Math.round(median(ms) * 100) / 100,
        }),
      );
    }
  } finally {
    job.dispose();
  }
}
backend.destroy();
