// `train()`: the Node side of a run. Everything that can be checked is checked first (`prepare`): the
// config, the output and checkpoint folders, the tokenizer, the model config against the data
// (sequence length vs positions, vocabulary), the corpus (at least one training batch, the validation
// batches) and the backend, so bad input fails before any training and before any old checkpoint is
// touched. Then the family builds the model and the objective, and the generic loop (core/loop.ts)
// runs with the Node adapters: checkpoints in folders, metrics in a JSONL file, a progress bar or
// log lines, a PNG plot, an export folder.

import { access, mkdir } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname } from 'node:path';
import type { Tokenizer } from '@lm/layers';
import { init, memory, type Backend } from '@lm/tensor-gpu';
import { openStore, type CheckpointRef, type DistCheckpointStore } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import type { CorpusData } from './core/data.js';
import { CheckpointError, ConfigError } from './core/errors.js';
import type { FamilyObjective, ModelFamily } from './core/family.js';
import { runLoop, type TrainerState } from './core/loop.js';
import type { Objective, ObjectiveMetrics } from './core/objective.js';
import type { MetricsRecord } from './core/ports.js';
import { corpusSource } from './data/sources.js';
import { MetricsLog } from './metrics.js';
import { getFamily } from './models/index.js';
import { renderPlot } from './plot.js';
import { Progress } from './progress.js';
import { createModel, familyEntry, loopSettings, setupRun } from './setup.js';

export type { TrainerState };

export interface TrainOptions {
  config: TrainConfig;
  /** true: the newest checkpoint in checkpointing.dir; a string: that checkpoint folder. */
  resume?: string | true | null;
  /** Polled after every step; true stops the run cleanly with a checkpoint (SIGINT/SIGTERM). */
  shouldStop?: () => boolean;
  print?: (line: string) => void;
  /** Progress bar (default: stderr is a TTY). */
  tty?: boolean;
  /** Called after each optimizer step with its metrics (tests). */
  onStep?: (record: MetricsRecord) => void;
}

export interface TrainResult {
  step: number;
  interrupted: boolean;
  lastLoss: number | null;
  /** The last evaluation's metrics (loss, perplexity and the objective's own). */
  eval: ObjectiveMetrics | null;
  /** One line describing `eval` (`perplexity 1.64, masked-token accuracy 85.1%, ...`). */
  evalSummary: string | null;
  checkpoint: CheckpointRef | null;
  exportDir: string | null;
  /** What the objective printed at the end for `output.prompts` (greedy continuations). */
  showcase: string[];
  metricsPath: string;
  plotPath: string | null;
  wallSeconds: number;
  trainSeconds: number;
  tokensPerSecond: number;
  backend: string;
  numParameters: number;
}

/** Everything `prepare` checked and built; nothing is trained or written over yet. */
export interface Prepared {
  config: TrainConfig;
  backend: Backend;
  family: ModelFamily;
  entry: FamilyObjective<unknown>;
  tokenizer: Tokenizer;
  objective: Objective;
  data: CorpusData<unknown, unknown>;
  validation: unknown[];
  store: DistCheckpointStore<TrainerState>;
  resumeFrom: CheckpointRef | null;
  modelConfig: unknown;
  fingerprint: string;
}

async function checkWritableDir(dir: string, field: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (e) {
    throw new CheckpointError(`${field}: cannot write to ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Checks everything that can be checked before training, in the order a person would fix it. */
export async function prepare(config: TrainConfig, resume: string | true | null = null): Promise<Prepared> {
  const family = getFamily(config.model.family);
  familyEntry(family, config);
  await checkWritableDir(config.checkpointing.dir, 'checkpointing.dir');
  await checkWritableDir(dirname(config.output.metrics), 'output.metrics');
  if (config.output.plot) await checkWritableDir(dirname(config.output.plot), 'output.plot');
  if (config.output.export) await checkWritableDir(config.output.export, 'output.export');

  const { store, resumeFrom } = await openStore<TrainerState>(config.checkpointing, resume);

  const tokenizerPath = config.data.tokenizer ?? config.model.fromPretrained;
  if (!tokenizerPath) throw new ConfigError('data.tokenizer: required (a vocab.txt, a tokenizer.json, or a folder with one) when model.fromPretrained is not set');
  const tokenizer = await family.loadTokenizer(tokenizerPath, { lowercase: config.data.lowercase });
  const setup = await setupRun(config, {
    family,
    tokenizer,
    tokenizerName: tokenizerPath,
    backend: () => init(config.backend),
    source: () => corpusSource(config.data.paths, config.data.format, config.data.jsonlField),
  });
  return { config, family, tokenizer, store, resumeFrom, ...setup };
}

/** Trains per the config; resolves when done, or when `shouldStop` asked for a clean stop. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const print = options.print ?? ((l: string) => console.log(l));
  const prepared = await prepare(options.config, options.resume ?? null);
  const { config, backend, entry, tokenizer, objective, data, validation, store, resumeFrom, fingerprint } = prepared;
  const tc = config.training;
  if (tc.warmupSteps > tc.steps) {
    print(`warning: training.warmupSteps (${tc.warmupSteps}) exceeds training.steps (${tc.steps}): the learning rate never reaches its peak (${tc.lr}); it ends at ${((tc.steps / tc.warmupSteps) * tc.lr).toExponential(2)}`);
  }

  const model = await createModel(config, prepared, backend);
  const { describe, ...settings } = loopSettings(config, prepared, tokenizer, backend);
  // Old checkpoints go only once the model exists (its loading can still refuse the config).
  if (config.checkpointing.overwrite && !resumeFrom) await store.clear();
  try {
    const result = await runLoop({
      ...settings,
      model,
      objective,
      backend,
      trainBatches: (start) => data.trainBatches(tc.batchSize, start),
      validation,
      store,
      resumeFrom,
      fingerprint,
      metrics: new MetricsLog(config.output.metrics),
      progress: (total, start) => new Progress({ total, start, tty: options.tty, logEvery: tc.logEvery, print }),
      print,
      describeRun: (info) => `lm-train: ${describe(info)}` + (resumeFrom ? `; resumed from step ${info.step} (${resumeFrom.path})` : ''),
      shouldStop: options.shouldStop,
      onStep: options.onStep,
      plot: async (title) => {
        let path: string | null = null;
        if (config.output.plot) {
          path = await renderPlot(config.output.metrics, config.output.plot, `${config.model.family} ${title}`);
          print(`plot: ${path}`);
        }
        print(`metrics: ${config.output.metrics}`);
        return path;
      },
      exportModel: config.output.export
        ? async (m) => {
            const files = await entry.exportTo(m, config.output.export!, tokenizer);
            print(`export: ${config.output.export} (${files.join(', ')})`);
            return config.output.export;
          }
        : undefined,
      showcase: entry.showcase && config.output.prompts.length ? (m) => entry.showcase!(m, tokenizer, config.output.prompts) : undefined,
    });
    if (result.showcase.length) {
      print(`greedy continuations (${objective.name}):`);
      for (const line of result.showcase) print(`  ${line}`);
    }
    return {
      step: result.step,
      interrupted: result.interrupted,
      lastLoss: result.lastLoss,
      eval: result.eval,
      evalSummary: result.eval ? objective.describe(result.eval) : null,
      checkpoint: result.checkpoint,
      exportDir: result.exported,
      showcase: result.showcase,
      metricsPath: config.output.metrics,
      plotPath: result.plotPath,
      wallSeconds: (performance.now() - t0) / 1000,
      trainSeconds: result.trainSeconds,
      tokensPerSecond: result.tokensPerSecond,
      backend: backend.name,
      numParameters: result.numParameters,
    };
  } finally {
    model.module.dispose();
  }
}

/** Live tensors and backend bytes, for leak checks and benchmarks. */
export function memorySnapshot(): { tensors: number; bytes: number } {
  const m = memory();
  return { tensors: m.tensors, bytes: Object.values(m.backends).reduce((a, b) => a + b.bytes, 0) };
}
