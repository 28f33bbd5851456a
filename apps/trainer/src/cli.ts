#!/usr/bin/env node
// lm-train: the project's Node command line. Its default run is, for now, the backend demo.

import { Command, Option } from 'commander';
import { formatDemo, runDemo } from './demo.js';
import type { BackendChoice } from './demo.js';

const program = new Command()
  .name('lm-train')
  .description('Run and train @lm transformer models on WebGPU (Node, via Dawn) with a CPU fallback.')
  .addOption(
    new Option('-b, --backend <backend>', 'compute backend').choices(['auto', 'cpu', 'webgpu']).default('auto'),
  )
  .option('-s, --seed <n>', 'random seed', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`--seed: expected an integer, got "${v}"`);
    return n;
  }, 0)
  .action(async (opts: { backend: BackendChoice; seed: number }) => {
    console.log(`lm-train: demo run (matmul + softmax) on backend "${opts.backend}"`);
    console.log(formatDemo(await runDemo({ backend: opts.backend, seed: opts.seed })));
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  console.error(`lm-train: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
