// The training loop, one piece of code for every family and objective, and free of Node: files,
// signals, the progress bar and the plot writer reach it through the ports (ports.ts), so the same
// loop runs under `lm-train` and in a browser worker. (core.test.ts checks that nothing it imports
// touches `node:*`.)
//
// Per optimizer step: `gradAccumulation` micro-batches, each forward + backward inside its own memory
// scope (gradients accumulate on the parameters); global-norm clipping, AdamW, the LR schedule, in
// another scope. Only scalars are read back. With `training.float16` the model computes in float16,
// AdamW updates float32 main weights, and the loss is scaled dynamically (a step whose gradients
// overflow is skipped and the scale halved, as Megatron's fp16 optimizer does). Periodic evaluation
// on a fixed held-out set, a metrics record per step, checkpoints every N steps and when asked to stop,
// and at the end: a final evaluation and checkpoint, the plot, the export and the objective's showcase.

import {
  AdamW,
  DynamicLossScaler,
  Float16MainParams,
  LRScheduler,
  clipGradNorm,
  linearWarmupConstant,
  linearWarmupCosineDecay,
  linearWarmupLinearDecay,
  type AdamHyperparams,
  type LRSchedulerStateDict,
  type LossScalerState,
  type LrLambda,
  type OptimizerState,
  type OptimizerStateDict,
} from '@lm/layers';
import { defaultGenerator, fromHost, noGrad, scope, stack, type Backend, type Tensor } from '@lm/tensor-gpu';
import type { DataPosition, TrainBatches } from './data.js';
import { CheckpointError } from './errors.js';
import type { TrainableModel } from './family.js';
import { addSums, type Objective, type ObjectiveMetrics } from './objective.js';
import type { CheckpointRef, CheckpointStore, HostTensor, MetricsRecord, MetricsSink, ProgressSink } from './ports.js';

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

/** The optimization settings (config `training`). */
export interface LoopTraining {
  steps: number;
  batchSize: number;
  gradAccumulation: number;
  lr: number;
  warmupSteps: number;
  schedule: 'linear' | 'cosine' | 'constant';
  minLrRatio: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  clipNorm: number;
  float16: boolean;
  lossScale: { initial: number; growthInterval: number; minimum: number };
}

export interface LoopOptions<M extends TrainableModel, B> {
  training: LoopTraining;
  /** Evaluate every N steps (0: only at the end). */
  evalEverySteps: number;
  /** Checkpoint every N steps (0: only at the end and when stopped). */
  checkpointEverySteps: number;
  keepLast: number;
  model: M;
  objective: Objective<unknown, B, M>;
  backend: Backend;
  /** The training stream from a position. */
  trainBatches: (start: DataPosition) => TrainBatches<unknown, B>;
  validation: readonly B[];
  store: CheckpointStore<TrainerState, Tensor>;
  resumeFrom: CheckpointRef | null;
  fingerprint: string;
  metrics: MetricsSink;
  progress: (total: number, start: number) => ProgressSink;
  print: (line: string) => void;
  /** The run's first line: what is trained on what (the loop adds parameters, objective, backend and sizes). */
  describeRun: (info: { numParameters: number; objective: string; step: number }) => string;
  /** Polled after every step; true stops the run cleanly with a checkpoint. */
  shouldStop?: () => boolean;
  /** Called after each optimizer step with its metrics (tests). */
  onStep?: (record: MetricsRecord) => void;
  /** Renders the metrics to a plot; returns where (null: no plot). */
  plot?: (title: string) => Promise<string | null>;
  /** Exports the trained model (float32); returns a line describing where, or null. */
  exportModel?: (model: M) => Promise<string | null>;
  /** Lines to print at the end (a greedy continuation), from the trained model in eval mode. */
  showcase?: (model: M) => Promise<string[]>;
}

export interface LoopResult {
  step: number;
  interrupted: boolean;
  lastLoss: number | null;
  eval: ObjectiveMetrics | null;
  checkpoint: CheckpointRef;
  plotPath: string | null;
  exported: string | null;
  showcase: string[];
  trainSeconds: number;
  tokensPerSecond: number;
  numParameters: number;
}

function scheduleFor(t: LoopTraining): LrLambda {
  if (t.schedule === 'cosine') return linearWarmupCosineDecay(t.warmupSteps, t.steps, 0.5, t.minLrRatio);
  if (t.schedule === 'constant') return linearWarmupConstant(t.warmupSteps);
  return linearWarmupLinearDecay(t.warmupSteps, t.steps);
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
export async function evaluate<M extends TrainableModel, B>(model: M, objective: Objective<unknown, B, M>, batches: readonly B[]): Promise<ObjectiveMetrics> {
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
  return objective.summarize(sums);
}

function round(v: number, digits = 6): number {
  return Number(v.toPrecision(digits));
}

/** Trains until `training.steps`, or until `shouldStop` asks for a clean stop. */
export async function runLoop<M extends TrainableModel, B>(o: LoopOptions<M, B>): Promise<LoopResult> {
  const { model, objective, backend, store, resumeFrom, fingerprint, print } = o;
  const tc = o.training;

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

  o.metrics.start(resumeFrom ? step : null);
  const batches = o.trainBatches(position);
  print(o.describeRun({ numParameters, objective: objective.name, step }));
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
    await store.prune(o.keepLast);
    lastSaved = ref;
    return ref;
  };

  let lastEval: ObjectiveMetrics | null = null;
  const runEval = async (): Promise<ObjectiveMetrics> => {
    const r = await evaluate(model, objective, o.validation);
    const rec: MetricsRecord = { type: 'eval', step };
    for (const [k, v] of Object.entries(r)) rec[k] = round(v);
    o.metrics.append(rec);
    lastEval = r;
    return r;
  };
  const fmtEval = (r: ObjectiveMetrics) => `eval @ step ${step}: loss ${r.loss.toFixed(4)}, ${objective.describe(r)}`;

  const progress = o.progress(tc.steps, step);
  const trainStart = performance.now();
  let lastLoss: number | null = null;
  let tpsAvg = 0;
  let interrupted = false;
  try {
    if (step === 0 && o.validation.length && o.evalEverySteps > 0) progress.log(fmtEval(await runEval()));
    while (step < tc.steps) {
      const stepStart = performance.now();
      let stepTokens = 0;
      let sums: Record<string, number> = {};
      let lossSum = 0;
      // Each micro-batch's [loss, ...sums] stays on the device; the step reads them back once.
      const packed: Tensor[] = [];
      let keys: string[] = [];
      for (let micro = 0; micro < tc.gradAccumulation; micro++) {
        const batch = await batches.next();
        stepTokens += objective.tokens(batch);
        packed.push(
          scope(() => {
            const out = objective.compute(model, batch);
            const factor = (scaler ? scaler.scale : 1) / tc.gradAccumulation;
            const scaled = factor !== 1 ? out.loss.mulScalar(factor) : out.loss;
            scaled.backward();
            keys = Object.keys(out.sums);
            return noGrad(() => stack([out.loss.detach(), ...keys.map((k) => out.sums[k])]));
          }),
        );
      }
      const all = packed.length === 1 ? packed[0] : scope(() => noGrad(() => stack(packed)));
      const values = await all.data();
      for (const t of new Set([all, ...packed])) t.dispose();
      const width = keys.length + 1;
      for (let micro = 0; micro < packed.length; micro++) {
        lossSum += values[micro * width];
        sums = addSums(sums, Object.fromEntries(keys.map((k, i) => [k, values[micro * width + i + 1]])));
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
      o.metrics.append(rec);
      o.onStep?.(rec);
      progress.update(step, { loss, tokensPerSecond: tpsAvg, lr });
      if (!Number.isFinite(loss)) throw new Error(`step ${step}: the loss is ${loss}; lower training.lr or enable clipping (training.clipNorm)`);

      if (o.evalEverySteps > 0 && step % o.evalEverySteps === 0 && step < tc.steps && o.validation.length) progress.log(fmtEval(await runEval()));
      if (o.checkpointEverySteps > 0 && step % o.checkpointEverySteps === 0 && step < tc.steps) {
        const ref = await saveCheckpoint();
        progress.log(`checkpoint: ${ref.path}`);
      }
      if (o.shouldStop?.()) {
        interrupted = true;
        break;
      }
    }
  } finally {
    progress.stop();
    await batches.close();
  }
  const trainSeconds = (performance.now() - trainStart) / 1000;

  if (!interrupted && o.validation.length) print(fmtEval(await runEval()));
  const checkpoint = await saveCheckpoint();
  print(interrupted ? `interrupted at step ${step}: checkpoint saved to ${checkpoint.path}; continue with --resume` : `checkpoint: ${checkpoint.path}`);
  const plotPath = o.plot ? await o.plot(`${objective.name} (${tc.steps} steps)`) : null;
  if (main) {
    // Back to float32 with the main weights: the export holds what the optimizer trained, unrounded.
    model.module.cast('float32');
    noGrad(() => [...model.module.parameters()].forEach((p, i) => p.copy_(main.params[i])));
    main.dispose();
  }
  const exported = !interrupted && o.exportModel ? await o.exportModel(model) : null;
  let showcase: string[] = [];
  if (!interrupted && o.showcase) {
    model.module.eval();
    showcase = await o.showcase(model);
  }
  optimizer.dispose();
  return { step, interrupted, lastLoss, eval: lastEval, checkpoint, plotPath, exported, showcase, trainSeconds, tokensPerSecond: tokensSeen > 0 ? tpsAvg : 0, numParameters };
}
