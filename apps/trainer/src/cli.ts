#!/usr/bin/env node
// lm-train: train @lm models from the command line.
//
//   lm-train                                   the embedded default: a small MegatronBERT on the shipped corpus
//   lm-train -c run.yaml --training.lr 3e-4    a config file, any field overridden by a dotted flag
//   lm-train -c run.yaml --resume              continue from the newest checkpoint, exactly
//   lm-train -c configs/causal-lm.yaml         a decoder-only MegatronBERT, causal LM, greedy continuations at the end
//   lm-train plot out/metrics.jsonl            render the loss curves of a run to PNG
//   lm-train fill-mask out/export "the capital of france is [MASK] ."
//   lm-train demo                              the backend demo (matmul + softmax)

import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, extractDottedFlags, loadConfig } from './config.js';
import { formatDemo, runDemo, type BackendChoice } from './demo.js';
import { DEFAULT_CONFIG_PATH } from './default-config.js';
import { CheckpointError, DataError } from './core/errors.js';
import { fillMask, formatFillMask } from './fill-mask.js';
import { renderPlot } from './plot.js';
import { familyNames, objectiveNames } from './models/index.js';
import { train } from './trainer.js';

const { rest, overrides } = extractDottedFlags(process.argv.slice(2));

function integer(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name}: expected an integer, got "${v}"`);
    return n;
  };
}

interface TrainFlags {
  config?: string;
  resume?: string | true;
  export?: string;
  backend?: BackendChoice;
  objective?: string;
  seed?: number;
  steps?: number;
}

async function runTrain(flags: TrainFlags): Promise<number> {
  const all: [string, unknown][] = [...overrides];
  if (flags.backend) all.push(['backend', flags.backend]);
  if (flags.objective) all.push(['objective', flags.objective]);
  if (flags.seed !== undefined) all.push(['seed', flags.seed]);
  if (flags.steps !== undefined) all.push(['training.steps', flags.steps]);
  if (flags.export) all.push(['output.export', flags.export]);
  const file = flags.config ?? DEFAULT_CONFIG_PATH;
  const config = loadConfig({ file, overrides: all });
  if (!flags.config) console.log(`lm-train: no --config given; using the embedded default (${file})`);

  let stopRequests = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    stopRequests++;
    if (stopRequests > 1) {
      console.error(`\nlm-train: ${sig} again: exiting now without saving`);
      process.exit(130);
    }
    console.error(`\nlm-train: ${sig}: finishing the current step, then saving a checkpoint (again to exit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const started = performance.now();
  const result = await train({ config, resume: flags.resume ?? null, shouldStop: () => stopRequests > 0 });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  if (!result.interrupted && result.exportDir && config.output.fillMask.length) {
    console.log(`fill-mask with the exported model (${result.exportDir}):`);
    for (const r of await fillMask(result.exportDir, config.output.fillMask, { topK: 3 })) console.log(formatFillMask(r));
  }
  const wall = (performance.now() - started) / 1000;
  console.log(
    `done: ${result.step} steps on ${result.backend} in ${wall.toFixed(1)} s (training ${result.trainSeconds.toFixed(1)} s, ${Math.round(result.tokensPerSecond)} tokens/s)` +
      (result.evalSummary ? `; held-out ${result.evalSummary}` : ''),
  );
  return 0;
}

const program = new Command()
  .name('lm-train')
  .description(
    'Train @lm transformer models on WebGPU (Node, via Dawn) or CPU.\n' +
      'Without a config, runs the embedded default: a small MegatronBERT pretrained on the corpus shipped with the app.\n' +
      'Any config field can be set with a dotted flag: --training.lr 3e-4, --data.paths=corpus/, --model.config.hiddenSize 256.',
  )
  .enablePositionalOptions()
  .option('-c, --config <file>', 'YAML or JSON config (default: the embedded default run)')
  .option('--resume [checkpoint]', 'continue from the newest checkpoint in checkpointing.dir, or from the given checkpoint folder')
  .option('--export <dir>', 'export a Hugging Face-format model folder at the end (output.export)')
  .addOption(new Option('-b, --backend <backend>', 'compute backend (backend)').choices(['auto', 'cpu', 'webgpu']))
  .option('--objective <name>', `training objective (objective), one the family registers: ${familyNames().map((f) => `${f}: ${objectiveNames(f).join(', ')}`).join('; ')}`)
  .option('-s, --seed <n>', 'random seed (seed)', integer('--seed'))
  .option('--steps <n>', 'optimizer steps (training.steps)', integer('--steps'))
  .action(async (flags: TrainFlags) => {
    process.exitCode = await runTrain(flags);
  });

program
  .command('plot')
  .description('render the loss / validation curves of a metrics JSONL file to PNG')
  .argument('<metrics>', 'metrics.jsonl written by a run')
  .option('-o, --out <png>', 'output PNG (default: next to the metrics, loss.png)')
  .action(async (metrics: string, opts: { out?: string }) => {
    const out = opts.out ?? metrics.replace(/[^/\\]*$/, 'loss.png');
    console.log(`plot: ${await renderPlot(metrics, out)}`);
  });

program
  .command('fill-mask')
  .description('answer fill-mask queries with an exported model folder')
  .argument('<model>', 'a folder written by --export (config.json, model.safetensors, vocab.txt)')
  .argument('<text...>', 'texts with [MASK]')
  .option('-k, --top-k <k>', 'predictions per mask', integer('--top-k'), 5)
  .action(async (dir: string, texts: string[], opts: { topK: number }) => {
    for (const r of await fillMask(dir, texts, { topK: opts.topK })) console.log(formatFillMask(r));
  });

program
  .command('demo')
  .description('the backend demo: softmax(randn([4, 8]) @ w) on the chosen backend')
  .addOption(new Option('-b, --backend <backend>', 'compute backend').choices(['auto', 'cpu', 'webgpu']).default('auto'))
  .option('-s, --seed <n>', 'random seed', integer('--seed'), 0)
  .action(async (opts: { backend: BackendChoice; seed: number }) => {
    console.log(`lm-train: demo run (matmul + softmax) on backend "${opts.backend}"`);
    console.log(formatDemo(await runDemo({ backend: opts.backend, seed: opts.seed })));
  });

try {
  await program.parseAsync(rest, { from: 'user' });
} catch (err) {
  const known = err instanceof ConfigError || err instanceof DataError || err instanceof CheckpointError;
  console.error(`lm-train: ${known ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = known ? 2 : 1;
}
// The cpu backend's worker threads must not keep a finished run alive.
process.exit(process.exitCode ?? 0);
