// A training run in a browser worker: the same family table, objectives, data pipeline, loop and
// checkpoint store as `lm-train` (trainer.ts), with the browser's adapters. The worker gives a file
// system (the playground's memory file system behind `node:fs/promises`, persisted to IndexedDB) for
// the tokenizer file, the checkpoints and the export; the corpus comes as in-memory files
// (corpus.ts); metrics and progress go to callbacks (the worker posts them to the page).

import type { Tokenizer } from '@lm/layers';
import { init, type Backend, type Tensor } from '@lm/tensor-gpu';
import { openStore, type CheckpointRef } from '../checkpoint.js';
import type { TrainConfig } from '../config.js';
import type { TrainBatches } from '../core/data.js';
import { ConfigError } from '../core/errors.js';
import { runLoop, type LoopResult, type TrainerState } from '../core/loop.js';
import type { CheckpointStore, MetricsRecord, MetricsSink, ProgressSink } from '../core/ports.js';
import { getFamily } from '../models/index.js';
import { createModel, familyEntry, loopSettings, setupRun } from '../setup.js';
import { memoryCorpus, type CorpusText } from './corpus.js';

export type { CorpusText };

export interface BrowserRunOptions {
  /** Validated; `data.tokenizer`, `checkpointing.dir` and `output.export` are paths in the worker's file system, `data.paths` is unused. */
  config: TrainConfig;
  corpus: readonly CorpusText[];
  /** Continue from the newest checkpoint in `checkpointing.dir`. */
  resume: boolean;
  /** The backend the worker picked (WebGPU, or the cpu fallback). */
  backend?: Backend;
  metrics: MetricsSink;
  progress: (total: number, start: number) => ProgressSink;
  print: (line: string) => void;
  shouldStop?: () => boolean;
  onStep?: (record: MetricsRecord) => void;
  /** Awaited before each batch: lets the worker hear pause and stop between steps on any backend. */
  pauseBetweenBatches?: () => Promise<void>;
  /** After each checkpoint is saved and old ones pruned (the worker copies its files to storage). */
  afterCheckpoint?: () => Promise<void>;
  /** Before the model is built: the model and batch against the backend's limits (throws to refuse). */
  checkFits?: (info: { modelConfig: unknown; config: TrainConfig; backend: Backend }) => void;
}

export interface BrowserRunResult extends LoopResult {
  backend: Backend;
  resumedFrom: CheckpointRef | null;
  tokenizer: Tokenizer;
}

/** Trains per the config; resolves when done or stopped (with a checkpoint either way). */
export async function trainInBrowser(o: BrowserRunOptions): Promise<BrowserRunResult> {
  const { config } = o;
  const tc = config.training;
  const family = getFamily(config.model.family);
  familyEntry(family, config);
  const { store, resumeFrom } = await openStore<TrainerState>(config.checkpointing, o.resume ? true : null);
  if (!config.data.tokenizer) throw new ConfigError('data.tokenizer: required (a vocab.txt, a tokenizer.json, or a folder with one)');
  const tokenizer = await family.loadTokenizer(config.data.tokenizer, { lowercase: config.data.lowercase });
  const setup = await setupRun(config, {
    family,
    tokenizer,
    tokenizerName: config.data.tokenizer,
    backend: async () => o.backend ?? init(config.backend),
    source: async () => memoryCorpus(o.corpus, config.data.format, config.data.jsonlField),
  });
  const { backend, entry, objective, data } = setup;

  o.checkFits?.({ modelConfig: setup.modelConfig, config, backend });
  const model = await createModel(config, setup, backend);
  const { describe, ...settings } = loopSettings(config, setup, tokenizer, backend);
  try {
    if (config.checkpointing.overwrite && !resumeFrom) await store.clear();
    const batches = (start: Parameters<typeof data.trainBatches>[1]): TrainBatches<unknown, unknown> => {
      const inner = data.trainBatches(tc.batchSize, start);
      if (!o.pauseBetweenBatches) return inner;
      const pause = o.pauseBetweenBatches;
      const next = inner.next.bind(inner);
      inner.next = async () => {
        await pause();
        return next();
      };
      return inner;
    };
    const after = o.afterCheckpoint;
    const persisted: CheckpointStore<TrainerState, Tensor> = after
      ? {
          save: (step, payload) => store.save(step, payload),
          load: (ref, weights) => store.load(ref, weights),
          prune: async (keepLast) => {
            await store.prune(keepLast);
            await after();
          },
        }
      : store;
    const result = await runLoop({
      ...settings,
      model,
      objective,
      backend,
      trainBatches: (start) => batches(start),
      validation: setup.validation,
      store: persisted,
      resumeFrom,
      fingerprint: setup.fingerprint,
      metrics: o.metrics,
      progress: o.progress,
      print: o.print,
      describeRun: (info) => describe(info) + (resumeFrom ? `; resumed from step ${info.step}` : ''),
      shouldStop: o.shouldStop,
      onStep: o.onStep,
      exportModel: config.output.export
        ? async (m) => {
            await entry.exportTo(m, config.output.export!, tokenizer);
            return config.output.export;
          }
        : undefined,
    });
    return { ...result, backend, resumedFrom: resumeFrom, tokenizer };
  } finally {
    model.module.dispose();
  }
}
