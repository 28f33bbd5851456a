// What every run checks and builds before the model exists, shared by `lm-train` (trainer.ts, which
// first checks its folders and checkpoints) and the playground's training worker (browser/run.ts):
// the objective, the model config against the data (sequence length vs positions, vocabulary), the
// backend, the corpus (at least one training batch, the validation batches) and float16 support.
// Free of Node: the caller brings the tokenizer, the corpus source and the backend.

import type { Tokenizer } from '@lm/layers';
import { defaultGenerator, type Backend } from '@lm/tensor-gpu';
import type { TrainConfig } from './config.js';
import { CorpusData, type DocumentSource } from './core/data.js';
import { ConfigError, DataError } from './core/errors.js';
import type { FamilyObjective, ModelFamily, TrainableModel } from './core/family.js';
import type { Objective } from './core/objective.js';

export interface RunSetup {
  entry: FamilyObjective<unknown>;
  objective: Objective;
  data: CorpusData<unknown, unknown>;
  validation: unknown[];
  modelConfig: unknown;
  /** The parts of the config that must match for an exact resume. */
  fingerprint: string;
}

/** The family's objective named by `config.objective`, or a ConfigError listing those it has. */
export function familyEntry(family: ModelFamily, config: TrainConfig): FamilyObjective<unknown> {
  const entry = family.objectives[config.objective];
  if (!entry) {
    throw new ConfigError(`objective: ${config.model.family} trains with ${Object.keys(family.objectives).map((o) => JSON.stringify(o)).join(', ')}, got ${JSON.stringify(config.objective)}`);
  }
  return entry as FamilyObjective<unknown>;
}

/** Checks in the order a person would fix them; `tokenizerName` names the tokenizer's source in errors. */
export async function setupRun(
  config: TrainConfig,
  io: { family: ModelFamily; tokenizer: Tokenizer; tokenizerName: string; backend: () => Promise<Backend>; source: () => Promise<DocumentSource> },
): Promise<RunSetup & { backend: Backend }> {
  const { family, tokenizer } = io;
  const entry = familyEntry(family, config);
  // Ids the tokenizer can produce: its vocabulary and any special tokens added above it (T5Tokenizer's
  // sentinels; len(tokenizer) in transformers). The embedding must hold them all.
  const idCount = Math.max(tokenizer.vocabSize, ...tokenizer.allSpecialIds.map((id) => id + 1));
  const resolved = await family.resolveConfig({ fromPretrained: config.model.fromPretrained, overrides: config.model.config, vocabSize: idCount });
  if (config.data.seqLength > resolved.maxPositions) {
    throw new ConfigError(`data.seqLength: ${config.data.seqLength} exceeds the model's maxPositionEmbeddings (${resolved.maxPositions}); lower data.seqLength or raise model.config.maxPositionEmbeddings`);
  }
  if (idCount > resolved.vocabSize) {
    throw new ConfigError(`model.config.vocabSize: ${resolved.vocabSize} is smaller than the tokenizer's vocabulary (${idCount} tokens in ${io.tokenizerName})`);
  }

  const backend = await io.backend();
  const objective = entry.objective({
    tokenizer,
    backend,
    seqLength: config.data.seqLength,
    maskProbability: config.data.maskProbability,
    shortSeqProbability: config.data.shortSeqProbability,
    settings: config.objectives[config.objective] ?? {},
  });
  const source = await io.source();
  const data = new CorpusData(source, objective, {
    encode: (text) => tokenizer.encode(text, null, { addSpecialTokens: false }).inputIds,
    validationFraction: config.data.validationFraction,
    shuffleBuffer: config.data.shuffleBuffer,
    seed: config.data.shuffleSeed ?? config.seed,
  });
  // The corpus yields at least one training batch (reads only as far as that).
  const probe = data.trainBatches(config.training.batchSize);
  try {
    await probe.next();
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`data: ${(e as Error).message}`);
  } finally {
    await probe.close();
  }
  const validation = config.data.validationFraction > 0 ? await data.validationBatches(config.eval.batches, config.training.batchSize) : [];
  if (config.data.validationFraction > 0 && validation.length === 0) {
    throw new DataError(`data.validationFraction: ${config.data.validationFraction} of the corpus held out no document that gives a ${objective.name} example; raise it or add documents`);
  }

  if (config.training.float16 && !backend.supportsFloat16) {
    throw new ConfigError(
      `training.float16: the ${backend.name} backend (${backend.adapterInfo}) has no float16 support (WebGPU needs the adapter's shader-f16 feature); train in float32 (training.float16: false)`,
    );
  }
  // Where the corpus and tokenizer live is not part of it (a checkpoint moves between lm-train and the
  // page, whose paths differ); the vocabulary's size is.
  const { paths: _paths, tokenizer: _tokenizer, ...dataSettings } = config.data;
  const fingerprint = JSON.stringify({
    model: config.model,
    data: { ...dataSettings, vocabSize: tokenizer.vocabSize },
    seed: config.seed,
    objective: config.objective,
    batch: config.training.batchSize,
    accum: config.training.gradAccumulation,
  });
  return { entry, backend, objective, data, validation, modelConfig: resolved.config, fingerprint };
}

/** The loop's settings from the config, and the line that opens a run (lm-train and the browser alike). */
export function loopSettings(config: TrainConfig, setup: Pick<RunSetup, 'data'>, tokenizer: Tokenizer, backend: Backend) {
  const tc = config.training;
  return {
    training: tc,
    evalEverySteps: config.eval.everySteps,
    checkpointEverySteps: config.checkpointing.everySteps,
    keepLast: config.checkpointing.keepLast,
    describe: ({ numParameters, objective }: { numParameters: number; objective: string }) =>
      `${config.model.family} (${(numParameters / 1e6).toFixed(2)}M parameters), objective ${objective}, backend ${backend.name} (${backend.adapterInfo}); ` +
      `${setup.data.source.fileCount} corpus file(s), vocab ${tokenizer.vocabSize}, seq ${config.data.seqLength}, batch ${tc.batchSize}x${tc.gradAccumulation}, ${tc.steps} steps`,
  };
}

/** The model the objective trains, from the seed (random init) or the pretrained folder. */
export function createModel(config: TrainConfig, setup: Pick<RunSetup, 'entry' | 'modelConfig'>, backend: Backend): Promise<TrainableModel> {
  defaultGenerator.manualSeed(config.seed);
  return setup.entry.createModel(setup.modelConfig, { fromPretrained: config.model.fromPretrained, backend, settings: config.objectives[config.objective] ?? {} });
}
