// The training loop. Everything that can be checked is checked first (`prepare`): the config, the
// output and checkpoint folders, the tokenizer, the model config against the data (sequence length
// vs positions, vocabulary), the corpus (at least one training batch, the validation batches) and the
// backend — so bad input fails before any training and before any old checkpoint is touched.
//
// Then, per optimizer step: `gradAccumulation` micro-batches, each forward + backward inside its own
// memory scope (gradients accumulate on the parameters); global-norm clipping, AdamW, the LR schedule,
// in another scope. Only scalars are read back. With `training.float16` the model computes in float16,
// AdamW updates float32 main weights, and the loss is scaled dynamically (a step whose gradients
// overflow is skipped and the scale halved, as Megatron's fp16 optimizer does). Periodic evaluation on a fixed held-out set, a metrics
// line per step, checkpoints every N steps and when asked to stop (SIGINT/SIGTERM), a plot and a
// Hugging Face export at the end. The objective is pluggable (objectives/objective.ts).

import { access, mkdir } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname } from 'node:path';
import {
  AdamW,
  DynamicLossScaler,
  Float16MainParams,
  LRScheduler,
  clipGradNorm,
  linearWarmupConstant,
  linearWarmupCosineDecay,
  linearWarmupLinearDecay,
  type LRSchedulerStateDict,
  type LrLambda,
  type OptimizerState,
  type OptimizerStateDict,
  type AdamHyperparams,
  type LossScalerState,
} from '@lm/layers';
import { defaultGenerator, fromHost, init, memory, noGrad, scope, stack, type Backend, type Tensor } from '@lm/tensor-gpu';
import { DistCheckpointStore, findResume, type CheckpointRef, type HostTensor } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { PretrainingData, type Batch, type DataPosition, type TrainBatches } from './data/pretraining.js';
import { loadTokenizer, type PretrainingTokenizer } from './data/tokenizer.js';
import { CheckpointError, ConfigError, DataError } from './errors.js';
import { MetricsLog, type MetricsRecord } from './metrics.js';
import { getFamily, type TrainableModel } from './models/index.js';
import { MaskedLMObjective } from './objectives/mlm-nsp.js';
import { addSums, type Objective } from './objectives/objective.js';
import { renderPlot } from './plot.js';
import { Progress } from './progress.js';

/** The trainer's own state, saved as the checkpoint's common state (`trainer`). */
export interface TrainerState {
  version: 2;
  step: number;
  data: DataPosition;
  generator: { seed: number; offset: number };
  scheduler: LRSchedulerStateDict;
  /** Parameter groups (parameters by index) and per-parameter numbers (AdamW's `step`) by parameter name. */
  optimizer: { paramGroups: OptimizerStateDict<AdamHyperparams>['paramGroups']; numbers: Record<string, Record<string, number>> };
  /** Dynamic loss scaling (float16 runs). */
  lossScale: LossScalerState | null;
  /** Steps skipped because float16 gradients overflowed. */
  skippedSteps: number;
  tokensSeen: number;
  elapsedSeconds: number;
  /** The parts of the config that must match for an exact resume. */
  fingerprint: string;
}

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

export interface EvalResult {
  loss: number;
  mlmLoss: number;
  perplexity: number;
  mlmAccuracy: number;
  nspAccuracy?: number;
  [key: string]: number | undefined;
}

export interface TrainResult {
  step: number;
  interrupted: boolean;
  lastLoss: number | null;
  eval: EvalResult | null;
  checkpoint: CheckpointRef | null;
  exportDir: string | null;
  metricsPath: string;
  plotPath: string | null;
  wallSeconds: number;
  trainSeconds: number;
  tokensPerSecond: number;
  backend: string;
  numParameters: number;
}

type Model = TrainableModel;

/** Everything `prepare` checked and built; nothing is trained or written over yet. */
export interface Prepared {
  config: TrainConfig;
  backend: Backend;
  tokenizer: PretrainingTokenizer;
  data: PretrainingData;
  validation: Batch[];
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

function scheduleFor(t: TrainConfig['training']): LrLambda {
  if (t.schedule === 'cosine') return linearWarmupCosineDecay(t.warmupSteps, t.steps, 0.5, t.minLrRatio);
  if (t.schedule === 'constant') return linearWarmupConstant(t.warmupSteps);
  return linearWarmupLinearDecay(t.warmupSteps, t.steps);
}

/** Checks everything that can be checked before training, in the order a person would fix it. */
export async function prepare(config: TrainConfig, resume: string | true | null = null): Promise<Prepared> {
  const family = getFamily(config.model.family);
  if (!family.objectives.includes(config.objective)) {
    throw new ConfigError(`objective: ${config.model.family} supports ${family.objectives.map((o) => JSON.stringify(o)).join(', ')}, got ${JSON.stringify(config.objective)}`);
  }
  await checkWritableDir(config.checkpointing.dir, 'checkpointing.dir');
  await checkWritableDir(dirname(config.output.metrics), 'output.metrics');
  if (config.output.plot) await checkWritableDir(dirname(config.output.plot), 'output.plot');
  if (config.output.export) await checkWritableDir(config.output.export, 'output.export');

  const store = new DistCheckpointStore<TrainerState>(config.checkpointing.dir);
  let resumeFrom: CheckpointRef | null = null;
  if (resume) {
    resumeFrom = await findResume(store, resume);
  } else {
    const existing = await store.list();
    if (existing.length && !config.checkpointing.overwrite) {
      throw new CheckpointError(
        `checkpointing.dir: ${config.checkpointing.dir} already holds ${existing.length} checkpoint(s) (newest: step ${existing[existing.length - 1].step}); ` +
          'pass --resume to continue from them, choose another checkpointing.dir, or set checkpointing.overwrite: true to replace them',
      );
    }
  }

  const tokenizerPath = config.data.tokenizer ?? config.model.fromPretrained;
  if (!tokenizerPath) throw new ConfigError('data.tokenizer: required (a vocab.txt, a tokenizer.json, or a folder with one) when model.fromPretrained is not set');
  const tokenizer = await loadTokenizer(tokenizerPath, { lowercase: config.data.lowercase });

  const resolved = await family.resolveConfig({ fromPretrained: config.model.fromPretrained, overrides: config.model.config, vocabSize: tokenizer.vocabSize });
  if (config.data.seqLength > resolved.maxPositions) {
    throw new ConfigError(`data.seqLength: ${config.data.seqLength} exceeds the model's maxPositionEmbeddings (${resolved.maxPositions}); lower data.seqLength or raise model.config.maxPositionEmbeddings`);
  }
  if (tokenizer.vocabSize > resolved.vocabSize) {
    throw new ConfigError(`model.config.vocabSize: ${resolved.vocabSize} is smaller than the tokenizer's vocabulary (${tokenizer.vocabSize} tokens in ${tokenizerPath})`);
  }

  const data = await PretrainingData.open(tokenizer, {
    ...config.data,
    seed: config.data.shuffleSeed ?? config.seed,
    nextSentencePrediction: config.objective === 'mlm-nsp',
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
    throw new DataError(`data.validationFraction: ${config.data.validationFraction} of the corpus held out no document with a sentence pair; raise it or add documents`);
  }

  const backend = await init(config.backend);
  if (config.training.float16 && !backend.supportsFloat16) {
    throw new ConfigError(
      `training.float16: the ${backend.name} backend (${backend.adapterInfo}) has no float16 support (WebGPU needs the adapter's shader-f16 feature); train in float32 (training.float16: false)`,
    );
  }
  const fingerprint = JSON.stringify({ model: config.model, data: config.data, seed: config.seed, objective: config.objective, batch: config.training.batchSize, accum: config.training.gradAccumulation });
  return { config, backend, tokenizer, data, validation, store, resumeFrom, modelConfig: resolved.config, fingerprint };
}

/**
 * The optimizer's state keyed by parameter name (`exp_avg.<name>`), so a checkpoint does not depend on
 * parameter order and each state tensor is sharded like its parameter.
 */
function optimizerPayload(optimizer: AdamW, paramNames: readonly string[]): { tensors: Map<string, Tensor>; json: TrainerState['optimizer'] } {
  const sd = optimizer.stateDict();
  const tensors = new Map<string, Tensor>();
  const numbers: Record<string, Record<string, number>> = {};
  for (const [idx, rec] of sd.state) {
    for (const [key, v] of Object.entries(rec)) {
      if (typeof v === 'number') (numbers[paramNames[idx]] ??= {})[key] = v;
      else tensors.set(`${key}.${paramNames[idx]}`, v);
    }
  }
  return { tensors, json: { paramGroups: sd.paramGroups, numbers } };
}

async function restoreOptimizer(optimizer: AdamW, paramNames: readonly string[], json: TrainerState['optimizer'], tensors: Map<string, HostTensor>, backend: Backend): Promise<void> {
  const index = new Map(paramNames.map((n, i) => [n, i]));
  const indexOf = (name: string, what: string): number => {
    const i = index.get(name);
    if (i === undefined) throw new CheckpointError(`checkpoint: optimizer ${what} for '${name}', which the model does not have`);
    return i;
  };
  const state = new Map<number, OptimizerState>();
  const temps: Tensor[] = [];
  for (const [name, rec] of Object.entries(json.numbers)) state.set(indexOf(name, 'state'), { ...rec });
  try {
    for (const [key, t] of tensors) {
      const dot = key.indexOf('.');
      const i = indexOf(key.slice(dot + 1), `'${key.slice(0, dot)}'`);
      const rec = state.get(i) ?? {};
      const tensor = fromHost(t.data, t.shape, 'float32', backend);
      temps.push(tensor);
      rec[key.slice(0, dot)] = tensor;
      state.set(i, rec);
    }
    optimizer.loadStateDict({ state, paramGroups: json.paramGroups });
  } finally {
    for (const t of temps) t.dispose();
  }
}

/** Runs the objective over fixed batches without gradients or dropout. */
export async function evaluate(model: Model, objective: Objective<Batch, Model>, batches: readonly Batch[]): Promise<EvalResult> {
  const wasTraining = model.module.training;
  model.module.eval();
  let sums: Record<string, number> = {};
  try {
    for (const batch of batches) {
      const keys: string[] = [];
      const packed = scope(() =>
        noGrad(() => {
          const out = objective.compute(model, batch);
          keys.push(...Object.keys(out.sums));
          return stack(keys.map((k) => out.sums[k]));
        }),
      );
      const values = await packed.data();
      packed.dispose();
      sums = addSums(sums, Object.fromEntries(keys.map((k, i) => [k, values[i]])));
    }
  } finally {
    model.module.train(wasTraining);
  }
  return objective.summarize(sums) as EvalResult;
}

function round(v: number, digits = 6): number {
  return Number(v.toPrecision(digits));
}

/** Trains per the config; resolves when done, or when `shouldStop` asked for a clean stop. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const print = options.print ?? ((l: string) => console.log(l));
  const prepared = await prepare(options.config, options.resume ?? null);
  const { config, backend, tokenizer, data, validation, store, resumeFrom, fingerprint } = prepared;
  const family = getFamily(config.model.family);
  const tc = config.training;

  if (config.checkpointing.overwrite && !resumeFrom) await store.clear();

  defaultGenerator.manualSeed(config.seed);
  const model = await family.create(prepared.modelConfig, { fromPretrained: config.model.fromPretrained, backend });
  const objective = new MaskedLMObjective(config.objective === 'mlm-nsp', backend);
  const paramNames = [...model.module.namedParameters()].map(([name]) => name);
  let resumed: { state: TrainerState; optimizer: Map<string, HostTensor> } | null = null;
  if (resumeFrom) {
    // Weights go into the float32 model, before any cast, so the main weights are the saved ones exactly.
    resumed = await store.load(resumeFrom, model.module.stateDict());
  }
  // float16: float32 main copies of the weights for AdamW, the model itself in float16.
  const main = tc.float16 ? new Float16MainParams(model.module.parameters()) : null;
  if (main) main.bindModel(model.module.cast('float16').parameters());
  const scaler = main ? new DynamicLossScaler({ initScale: tc.lossScale.initial, growthInterval: tc.lossScale.growthInterval, minScale: tc.lossScale.minimum }) : null;
  // What AdamW updates and clipping sees: the main weights (float16) or the model's own (float32).
  const params = main ? main.params : [...model.module.parameters()];
  const decay = params.filter((p) => p.shape.length >= 2);
  const noDecay = params.filter((p) => p.shape.length < 2);
  // The optimizer numbers its parameters group by group; these are their names in that order.
  const nameOf = new Map(params.map((p, i) => [p, paramNames[i]]));
  const optimizerParamNames = [...decay, ...noDecay].map((p) => nameOf.get(p)!);
  const optimizer = new AdamW(
    [
      { params: decay, weightDecay: tc.weightDecay },
      ...(noDecay.length ? [{ params: noDecay, weightDecay: 0 }] : []),
    ],
    { lr: tc.lr, betas: tc.betas, eps: tc.eps },
  );
  const scheduler = new LRScheduler(optimizer, scheduleFor(tc));
  const numParameters = model.module.numParameters();

  let step = 0;
  let position: DataPosition = { epoch: 0, index: 0 };
  let tokensSeen = 0;
  let elapsedBefore = 0;
  let skippedSteps = 0;
  if (resumeFrom && resumed) {
    const s = resumed.state;
    if (s.version !== 2) throw new CheckpointError(`--resume ${resumeFrom.path}: trainer state version ${String(s.version)}, this lm-train reads version 2`);
    if (s.fingerprint !== fingerprint) print(`warning: resuming ${resumeFrom.path} with a different model/data/batch config than it was saved with; the run will not continue exactly`);
    await restoreOptimizer(optimizer, optimizerParamNames, s.optimizer, resumed.optimizer, backend);
    scheduler.loadStateDict(s.scheduler);
    if (scaler && s.lossScale) scaler.loadStateDict(s.lossScale);
    defaultGenerator.setState(s.generator);
    step = s.step;
    position = s.data;
    tokensSeen = s.tokensSeen;
    elapsedBefore = s.elapsedSeconds;
    skippedSteps = s.skippedSteps;
  }
  // The weights a checkpoint holds: float32 (the main copies in a float16 run), under the model's names.
  const checkpointWeights = (): Map<string, Tensor> => {
    const mainOf = new Map(main ? main.modelParams.map((p, i) => [p, main.params[i]] as const) : []);
    return new Map([...model.module.stateDict()].map(([name, t]) => [name, mainOf.get(t) ?? t]));
  };

  const metrics = new MetricsLog(config.output.metrics);
  metrics.start(resumeFrom ? step : null);
  const batches: TrainBatches = data.trainBatches(tc.batchSize, position);
  print(
    `lm-train: ${config.model.family} (${(numParameters / 1e6).toFixed(2)}M parameters), objective ${objective.name}, backend ${backend.name} (${backend.adapterInfo}); ` +
      `${data.files.length} corpus file(s), vocab ${tokenizer.vocabSize}, seq ${config.data.seqLength}, batch ${tc.batchSize}x${tc.gradAccumulation}, ${tc.steps} steps` +
      (resumeFrom ? `; resumed from step ${step} (${resumeFrom.path})` : ''),
  );
  if (main) {
    print(
      `float16: model in float16, float32 main weights, dynamic loss scale from ${scaler!.scale}` +
        (backend.name === 'cpu' ? ' (the cpu backend emulates float16: float32 arithmetic rounded on every write, slower than float32; useful to check numerics)' : ''),
    );
  }

  let lastSaved: CheckpointRef | null = resumeFrom;
  const saveCheckpoint = async (): Promise<CheckpointRef> => {
    if (lastSaved && lastSaved.step === step) return lastSaved;
    const opt = optimizerPayload(optimizer, optimizerParamNames);
    const state: TrainerState = {
      version: 2,
      step,
      data: batches.position,
      generator: defaultGenerator.getState(),
      scheduler: scheduler.stateDict(),
      optimizer: opt.json,
      lossScale: scaler ? scaler.stateDict() : null,
      skippedSteps,
      tokensSeen,
      elapsedSeconds: elapsedBefore + (performance.now() - trainStart) / 1000,
      fingerprint,
    };
    const ref = await store.save(step, { model: checkpointWeights(), optimizer: opt.tensors, state });
    await store.prune(config.checkpointing.keepLast);
    lastSaved = ref;
    return ref;
  };

  let lastEval: EvalResult | null = null;
  const runEval = async (): Promise<EvalResult | null> => {
    if (validation.length === 0) return null;
    const r = await evaluate(model, objective, validation);
    const rec: MetricsRecord = { type: 'eval', step };
    for (const [k, v] of Object.entries(r)) if (typeof v === 'number') rec[k] = round(v);
    metrics.append(rec);
    lastEval = r;
    return r;
  };
  const fmtEval = (r: EvalResult) =>
    `eval @ step ${step}: loss ${r.loss.toFixed(4)}, perplexity ${r.perplexity.toFixed(2)}, masked-token accuracy ${(100 * r.mlmAccuracy).toFixed(1)}%` +
    (r.nspAccuracy !== undefined ? `, next-sentence accuracy ${(100 * r.nspAccuracy).toFixed(1)}%` : '');

  const progress = new Progress({ total: tc.steps, start: step, tty: options.tty, logEvery: tc.logEvery, print });
  const trainStart = performance.now();
  let lastLoss: number | null = null;
  let tpsAvg = 0;
  let interrupted = false;
  try {
    if (step === 0 && validation.length && config.eval.everySteps > 0) progress.log(fmtEval((await runEval())!));
    while (step < tc.steps) {
      const stepStart = performance.now();
      let stepTokens = 0;
      let sums: Record<string, number> = {};
      let lossSum = 0;
      for (let micro = 0; micro < tc.gradAccumulation; micro++) {
        const batch = await batches.next();
        stepTokens += objective.tokens(batch);
        const keys: string[] = [];
        const packed = scope(() => {
          const out = objective.compute(model, batch);
          const factor = (scaler ? scaler.scale : 1) / tc.gradAccumulation;
          const scaled = factor !== 1 ? out.loss.mulScalar(factor) : out.loss;
          scaled.backward();
          keys.push('loss', ...Object.keys(out.sums));
          return noGrad(() => stack([out.loss.detach(), ...Object.values(out.sums)]));
        });
        const values = await packed.data();
        packed.dispose();
        lossSum += values[0];
        sums = addSums(sums, Object.fromEntries(keys.slice(1).map((k, i) => [k, values[i + 1]])));
      }
      const lr = scheduler.getLastLr()[0];
      const lossScale = scaler?.scale;
      let skipped = false;
      if (main && scaler) {
        const foundInf = main.unscaleGrads(scaler.scale);
        skipped = (await foundInf.item()) !== 0;
        foundInf.dispose();
        scaler.update(skipped);
      }
      let normValue: number | null = null;
      if (skipped) {
        // Megatron: an overflowed step changes nothing but the loss scale (no update, no LR step).
        optimizer.zeroGrad();
        skippedSteps++;
      } else {
        const gradNorm = scope(() => {
          const norm = tc.clipNorm > 0 ? clipGradNorm(params, tc.clipNorm) : null;
          optimizer.step();
          optimizer.zeroGrad();
          scheduler.step();
          return norm;
        });
        main?.copyToModel();
        normValue = gradNorm ? await gradNorm.item() : null;
        gradNorm?.dispose();
      }
      step++;
      tokensSeen += stepTokens;
      const seconds = (performance.now() - stepStart) / 1000;
      const tps = stepTokens / seconds;
      tpsAvg = tpsAvg === 0 ? tps : 0.9 * tpsAvg + 0.1 * tps;
      const loss = lossSum / tc.gradAccumulation;
      lastLoss = loss;
      const summary = objective.summarize(sums);
      const rec: MetricsRecord = { type: 'train', step, loss: round(loss), lr: round(lr), tokens: stepTokens, tokensPerSecond: Math.round(tps), seconds: round(seconds, 4) };
      for (const [k, v] of Object.entries(summary)) if (k !== 'loss') rec[k] = round(v);
      if (normValue !== null) rec.gradNorm = round(normValue);
      if (lossScale !== undefined) rec.lossScale = lossScale;
      if (skipped) rec.skipped = 1;
      metrics.append(rec);
      options.onStep?.(rec);
      progress.update(step, { loss, tokensPerSecond: tpsAvg, lr });
      if (!Number.isFinite(loss)) throw new Error(`step ${step}: the loss is ${loss}; lower training.lr or enable clipping (training.clipNorm)`);

      if (config.eval.everySteps > 0 && step % config.eval.everySteps === 0 && step < tc.steps) progress.log(fmtEval((await runEval())!));
      if (config.checkpointing.everySteps > 0 && step % config.checkpointing.everySteps === 0 && step < tc.steps) {
        const ref = await saveCheckpoint();
        progress.log(`checkpoint: ${ref.path}`);
      }
      if (options.shouldStop?.()) {
        interrupted = true;
        break;
      }
    }
  } finally {
    progress.stop();
    await batches.close();
  }
  const trainSeconds = (performance.now() - trainStart) / 1000;

  let exportDir: string | null = null;
  if (!interrupted && validation.length) print(fmtEval((await runEval())!));
  const checkpoint = await saveCheckpoint();
  print(interrupted ? `interrupted at step ${step}: checkpoint saved to ${checkpoint.path}; continue with --resume` : `checkpoint: ${checkpoint.path}`);
  let plotPath: string | null = null;
  if (config.output.plot) {
    plotPath = await renderPlot(config.output.metrics, config.output.plot, `${config.model.family} ${objective.name} (${tc.steps} steps)`);
    print(`plot: ${plotPath}`);
  }
  print(`metrics: ${config.output.metrics}`);
  if (main) {
    // Back to float32 with the main weights: the export holds what the optimizer trained, unrounded.
    model.module.cast('float32');
    noGrad(() => [...model.module.parameters()].forEach((p, i) => p.copy_(main.params[i])));
    main.dispose();
  }
  if (!interrupted && config.output.export) {
    await model.exportTo(config.output.export, tokenizer);
    exportDir = config.output.export;
    print(`export: ${exportDir} (config.json, model.safetensors, vocab.txt, tokenizer_config.json)`);
  }
  optimizer.dispose();
  model.module.dispose();
  const trainedTokens = tokensSeen;
  return {
    step,
    interrupted,
    lastLoss,
    eval: lastEval,
    checkpoint,
    exportDir,
    metricsPath: config.output.metrics,
    plotPath,
    wallSeconds: (performance.now() - t0) / 1000,
    trainSeconds,
    tokensPerSecond: trainedTokens > 0 ? tpsAvg : 0,
    backend: backend.name,
    numParameters,
  };
}

/** Live tensors and backend bytes, for leak checks and benchmarks. */
export function memorySnapshot(): { tensors: number; bytes: number } {
  const m = memory();
  return { tensors: m.tensors, bytes: Object.values(m.backends).reduce((a, b) => a + b.bytes, 0) };
}
