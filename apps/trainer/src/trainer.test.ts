import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertTokenizer } from '@lm/layers';
import { DistCheckpoint, load, moduleShardedStateDict } from '@lm/dist-ckpt';
import { MegatronBertForPreTraining, type MegatronBertConfig } from '@lm/megatron-bert';
import { memory } from '@lm/tensor-gpu';
import { testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './config.js';
import { CheckpointError, DataError } from './core/errors.js';
import { fillMask } from './fill-mask.js';
import { readMetrics, type MetricsRecord } from './metrics.js';
import { makeTinyCorpus, tinyConfig } from './test-helpers.js';
import { train } from './trainer.js';

const quiet = { print: () => {}, tty: false };

/** The model weights of a trainer checkpoint (a dist-ckpt checkpoint), by parameter name. */
async function checkpointWeights(path: string): Promise<Map<string, number[]>> {
  const ckpt = await DistCheckpoint.open(path);
  const out = new Map<string, number[]>();
  try {
    for (const key of ckpt.tensorKeys) if (key.startsWith('model.')) out.set(key.slice('model.'.length), Array.from((await ckpt.readTensor(key)).data as Float32Array));
  } finally {
    await ckpt.close();
  }
  return out;
}

function hashDir(dir: string): string {
  const h = createHash('sha256');
  for (const name of readdirSync(dir, { recursive: true }).map(String).sort()) {
    const p = join(dir, name);
    try {
      h.update(name).update(readFileSync(p));
    } catch {
      h.update(`${name}/`);
    }
  }
  return h.digest('hex');
}

describe('training', () => {
  it('a run resumed at step k matches the uninterrupted run exactly (loss, weights) on cpu', async () => {
    const steps = 7;
    const over = { training: { steps, gradAccumulation: 2 }, checkpointing: { everySteps: 3 }, eval: { everySteps: 0 } };
    const a = makeTinyCorpus();
    const full: MetricsRecord[] = [];
    const live: number[] = [];
    const r1 = await train({
      config: tinyConfig(a, over),
      ...quiet,
      onStep: (r) => {
        full.push(r);
        live.push(memory().tensors);
      },
    });
    expect(r1.step).toBe(steps);
    // Two micro-batches a step, read back together: nothing of them outlives the step.
    expect(new Set(live.slice(1)).size).toBe(1);

    const b = makeTinyCorpus();
    const cfgB = tinyConfig(b, over);
    let n = 0;
    const first = await train({ config: cfgB, ...quiet, shouldStop: () => ++n >= 3 });
    expect(first).toMatchObject({ step: 3, interrupted: true });
    const resumed: MetricsRecord[] = [];
    const r2 = await train({ config: cfgB, resume: true, ...quiet, onStep: (r) => resumed.push(r) });
    expect(r2.step).toBe(steps);
    expect(resumed.map((r) => r.step)).toEqual([4, 5, 6, 7]);
    for (const r of resumed) {
      const same = full.find((x) => x.step === r.step)!;
      expect({ step: r.step, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm }).toEqual({ step: same.step, loss: same.loss, lr: same.lr, gradNorm: same.gradNorm });
    }
    // The final weights are bit-identical too.
    const wa = await checkpointWeights(r1.checkpoint!.path);
    expect(wa.size).toBeGreaterThan(10);
    expect(await checkpointWeights(r2.checkpoint!.path)).toEqual(wa);
    // The resumed metrics file reads as one run: steps 1..7, no duplicates.
    expect(readMetrics(cfgB.output.metrics).filter((r) => r.type === 'train').map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // keepLast 2: the newest two checkpoints remain.
    expect(readdirSync(cfgB.checkpointing.dir).sort()).toEqual(['step-00000006', 'step-00000007']);
  });

  it('writes metrics and a PNG plot, evaluates, exports a folder that fromPretrained loads, and leaks nothing per step', async () => {
    const c = makeTinyCorpus();
    const exportDir = join(c.dir, 'export');
    const config = tinyConfig(c, { training: { steps: 8, lr: 3e-3 }, eval: { everySteps: 4 }, output: { export: exportDir } });
    const live: number[] = [];
    const result = await train({ config, ...quiet, onStep: () => live.push(memory().tensors) });
    // Memory stays flat over steps: the same number of live tensors after every step.
    expect(new Set(live.slice(1)).size).toBe(1);

    const records = readMetrics(config.output.metrics);
    const trainRecs = records.filter((r) => r.type === 'train');
    expect(trainRecs).toHaveLength(8);
    expect(trainRecs[0]).toMatchObject({ step: 1, type: 'train' });
    for (const k of ['loss', 'lr', 'tokensPerSecond', 'mlmLoss', 'mlmAccuracy', 'nspLoss', 'gradNorm']) expect(typeof trainRecs[0][k]).toBe('number');
    const evals = records.filter((r) => r.type === 'eval');
    expect(evals.map((r) => r.step)).toEqual([0, 4, 8]);
    for (const k of ['loss', 'perplexity', 'mlmAccuracy', 'nspAccuracy']) expect(typeof evals[0][k]).toBe('number');
    expect(evals[2].perplexity).toBeCloseTo(Math.exp(evals[2].mlmLoss as number), 3);
    expect(result.eval?.mlmAccuracy).toBe(evals[2].mlmAccuracy);

    const png = readFileSync(config.output.plot!);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.length).toBeGreaterThan(10_000);

    // Export -> fromPretrained round trip: the same weights as the final checkpoint.
    expect(readdirSync(exportDir).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer_config.json', 'vocab.txt']);
    const model = await MegatronBertForPreTraining.fromPretrained<MegatronBertForPreTraining, MegatronBertConfig>(exportDir);
    expect(model.config.hiddenSize).toBe(16);
    const weights = await checkpointWeights(result.checkpoint!.path);
    let compared = 0;
    for (const [name, t] of model.stateDict()) {
      if (!weights.has(name)) continue;
      expect(Array.from(await t.data())).toEqual(weights.get(name));
      compared++;
    }
    expect(compared).toBeGreaterThan(10);
    model.dispose();
    const tok = await BertTokenizer.fromPretrained(exportDir);
    expect(tok.vocabSize).toBe(c.words.length);
    const [answer] = await fillMask(exportDir, ['the capital of france is [MASK] .'], { topK: 3 });
    expect(answer.predictions[0]).toHaveLength(3);
  });
});

describe('checkpoints are @lm/dist-ckpt distributed checkpoints', () => {
  it('reshard: a trainer checkpoint loads under tensor parallelism 2, each rank reading its slice', async () => {
    const c = makeTinyCorpus();
    const config = tinyConfig(c, { training: { steps: 2 }, eval: { everySteps: 0 } });
    const result = await train({ config, ...quiet });
    const full = await checkpointWeights(result.checkpoint!.path);
    const name = 'bert.encoder.layer.0.attention.self.query.weight'; // column-parallel: rows split
    const dense = 'bert.encoder.layer.0.attention.output.dense.weight'; // row-parallel: columns split
    const hidden = 16;
    for (const tpRank of [0, 1]) {
      const q = new Float32Array((hidden / 2) * hidden);
      const d = new Float32Array(hidden * (hidden / 2));
      const local = new Map([
        [name, { dtype: 'F32' as const, shape: [hidden / 2, hidden], data: q }],
        [dense, { dtype: 'F32' as const, shape: [hidden, hidden / 2], data: d }],
      ]);
      await load({ model: moduleShardedStateDict(local, { tpRank, tpSize: 2 }, { keyPrefix: 'model.' }) }, result.checkpoint!.path);
      expect(Array.from(q)).toEqual(full.get(name)!.slice(tpRank * q.length, (tpRank + 1) * q.length));
      const wantD = full.get(dense)!.filter((_, i) => Math.floor((i % hidden) / (hidden / 2)) === tpRank);
      expect(Array.from(d)).toEqual(wantD);
    }
    // The optimizer state and the trainer state are in the same checkpoint.
    const ckpt = await DistCheckpoint.open(result.checkpoint!.path);
    expect(ckpt.tensorKeys).toContain(`optimizer.exp_avg.${name}`);
    expect((ckpt.common as { trainer: { step: number } }).trainer.step).toBe(2);
    await ckpt.close();
  });

  it('a step folder left by a killed save (no latest.json) is ignored by --resume and replaced', async () => {
    const c = makeTinyCorpus();
    const config = tinyConfig(c, { training: { steps: 4 }, checkpointing: { everySteps: 2, keepLast: 3 }, eval: { everySteps: 0 } });
    let n = 0;
    await train({ config, ...quiet, shouldStop: () => ++n >= 2 });
    // A crash while saving step 4: its folder exists, half written, with no published pointer.
    const partial = join(config.checkpointing.dir, 'step-00000004');
    mkdirSync(join(partial, '.ckpt-x.tmp'), { recursive: true });
    writeFileSync(join(partial, '.ckpt-x.tmp', 'rank0.safetensors'), 'garbage');
    const lines: string[] = [];
    const r = await train({ config, resume: true, print: (l) => lines.push(l), tty: false });
    expect(lines.join('\n')).toMatch(/resumed from step 2/);
    expect(r.step).toBe(4);
    expect(existsSync(join(partial, 'latest.json'))).toBe(true);
    expect(readdirSync(config.checkpointing.dir).sort()).toEqual(['step-00000002', 'step-00000004']);
  });
});

describe('float16 mixed precision (cpu emulates float16; WebGPU needs shader-f16)', () => {
  it('trains with float32 main weights and dynamic loss scaling, skips overflowed steps, resumes exactly, exports float32', async () => {
    // An initial scale of 2^20 overflows float16 gradients: the first steps are skipped while it backs off.
    const over = {
      training: { steps: 16, lr: 3e-3, float16: true, lossScale: { initial: 2 ** 20, growthInterval: 4 } },
      checkpointing: { everySteps: 6 },
      eval: { everySteps: 0 },
    };
    const a = makeTinyCorpus();
    const fullRun: MetricsRecord[] = [];
    const lines: string[] = [];
    const r1 = await train({ config: tinyConfig(a, { ...over, output: { export: join(a.dir, 'export') } }), print: (l) => lines.push(l), tty: false, onStep: (r) => fullRun.push(r) });
    expect(lines.join('\n')).toMatch(/float16: model in float16, float32 main weights, dynamic loss scale from 1048576/);
    expect(fullRun[0]).toMatchObject({ lossScale: 2 ** 20, skipped: 1 });
    // The scale follows GradScaler's rule over the skipped/clean sequence: halve on overflow, double
    // after 4 clean steps in a row. Skipped steps do not update (no gradient norm, no LR step).
    let scale = 2 ** 20;
    let clean = 0;
    let grew = 0;
    for (const r of fullRun) {
      expect(r.lossScale).toBe(scale);
      if (r.skipped === 1) {
        expect(r.gradNorm).toBeUndefined();
        scale /= 2;
        clean = 0;
      } else {
        expect(Number.isFinite(r.gradNorm)).toBe(true);
        if (++clean === 4) {
          scale *= 2;
          clean = 0;
          grew++;
        }
      }
    }
    expect(grew).toBeGreaterThan(0);
    expect(fullRun.filter((r) => r.skipped === undefined).length).toBeGreaterThan(6);
    expect(fullRun.at(-1)!.loss as number).toBeLessThan(fullRun[0].loss as number);
    // The checkpoint holds float32 main weights; the export loads into a float32 model with the same values.
    const weights = await checkpointWeights(r1.checkpoint!.path);
    const model = await MegatronBertForPreTraining.fromPretrained<MegatronBertForPreTraining, MegatronBertConfig>(join(a.dir, 'export'));
    for (const [name, t] of model.stateDict()) {
      expect(t.dtype).toBe(t.dtype === 'int32' ? 'int32' : 'float32');
      if (weights.has(name)) expect(Array.from(await t.data())).toEqual(weights.get(name));
    }
    model.dispose();

    // Interrupted at step 5 and resumed: the same losses, scales and weights as the uninterrupted run.
    const b = makeTinyCorpus();
    const cfgB = tinyConfig(b, over);
    let n = 0;
    await train({ config: cfgB, ...quiet, shouldStop: () => ++n >= 5 });
    const resumed: MetricsRecord[] = [];
    const r2 = await train({ config: cfgB, resume: true, ...quiet, onStep: (r) => resumed.push(r) });
    expect(resumed[0].step).toBe(6);
    for (const r of resumed) {
      const same = fullRun.find((x) => x.step === r.step)!;
      expect({ loss: r.loss, lossScale: r.lossScale, skipped: r.skipped, gradNorm: r.gradNorm }).toEqual({
        loss: same.loss,
        lossScale: same.lossScale,
        skipped: same.skipped,
        gradNorm: same.gradNorm,
      });
    }
    expect(await checkpointWeights(r2.checkpoint!.path)).toEqual(weights);
  });
});

// WebGPU (Dawn + SwiftShader here, required in CI with LM_REQUIRE_WEBGPU=1).
const webgpu = await testWebGPUBackend();

describe.skipIf(!webgpu)('training on webgpu', () => {
  it('takes the same steps as the cpu backend (same seed, same data: losses and gradient norms agree)', async () => {
    const over = { training: { steps: 4, lr: 3e-3 }, eval: { everySteps: 0 }, model: { config: { hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 32, hiddenDropoutProb: 0, attentionProbsDropoutProb: 0 } } };
    const runOn = async (backend: 'cpu' | 'webgpu') => {
      const c = makeTinyCorpus();
      const records: MetricsRecord[] = [];
      const r = await train({ config: { ...tinyConfig(c, over), backend }, ...quiet, onStep: (rec) => records.push(rec) });
      expect(r.backend).toBe(backend);
      return records;
    };
    const onCpu = await runOn('cpu');
    const onGpu = await runOn('webgpu');
    expect(onGpu).toHaveLength(4);
    for (const [i, r] of onGpu.entries()) {
      expect(Math.abs((r.loss as number) - (onCpu[i].loss as number))).toBeLessThan(2e-3);
      expect(Math.abs((r.gradNorm as number) - (onCpu[i].gradNorm as number))).toBeLessThan(2e-3 * (onCpu[i].gradNorm as number));
    }
  });

  it('float16: refused before training with the reason when the adapter lacks shader-f16, else trains', async () => {
    const c = makeTinyCorpus();
    const config = { ...tinyConfig(c, { training: { steps: 2, float16: true }, eval: { everySteps: 0 } }), backend: 'webgpu' as const };
    if (!webgpu!.supportsFloat16) {
      await expect(train({ config, ...quiet })).rejects.toThrow(/training\.float16: the webgpu backend \(.*\) has no float16 support \(WebGPU needs the adapter's shader-f16 feature\)/);
      expect(existsSync(config.output.metrics)).toBe(false);
    } else {
      const r = await train({ config, ...quiet });
      expect(r.step).toBe(2);
    }
  });
});

describe('bad input fails before training, and leaves old checkpoints alone', () => {
  it('a missing data file, an empty corpus, seqLength beyond the positions, an unwritable output, a bad tokenizer', async () => {
    const c = makeTinyCorpus();
    const run = (over: Parameters<typeof tinyConfig>[1]) => train({ config: tinyConfig(c, over), ...quiet });
    await expect(run({ data: { paths: [join(c.dir, 'missing.txt')] } })).rejects.toThrow(/data\.paths: .*missing\.txt does not exist/);
    const empty = join(c.dir, 'empty.txt');
    writeFileSync(empty, '');
    await expect(run({ data: { paths: [empty] } })).rejects.toThrow(DataError);
    await expect(run({ data: { seqLength: 64 } })).rejects.toThrow(/data\.seqLength: 64 exceeds the model's maxPositionEmbeddings \(32\)/);
    await expect(run({ data: { seqLength: 64 } })).rejects.toThrow(ConfigError);
    const aFile = join(c.dir, 'a-file');
    writeFileSync(aFile, 'x');
    await expect(run({ output: { metrics: join(aFile, 'sub', 'metrics.jsonl') } })).rejects.toThrow(/output\.metrics: cannot write to .*a-file\/sub \(ENOTDIR\)/);
    await expect(run({ checkpointing: { dir: join(aFile, 'ckpt') } })).rejects.toThrow(CheckpointError);
    await expect(run({ data: { tokenizer: join(c.dir, 'none.txt') } })).rejects.toThrow(/data\.tokenizer: .*none\.txt does not exist/);
    await expect(run({ model: { config: { hiddenSize: 15 } } })).rejects.toThrow(/model\.config\.hiddenSize: 15 is not a multiple of numAttentionHeads \(16\)/);
    await expect(run({ model: { config: { hidenSize: 16 } } })).rejects.toThrow(/model\.config\.hidenSize: unknown MegatronBertConfig field/);
    await expect(train({ config: tinyConfig(c, { objectives: { 'mlm-nsp': { preSeqLen: 4 } } }), ...quiet })).rejects.toThrow(/objectives\.mlm-nsp\.preSeqLen: unknown field \(mlm-nsp takes no settings of its own\)/);
    await expect(run({ model: { config: { vocabSize: 10 } } })).rejects.toThrow(/model\.config\.vocabSize: 10 is smaller than the tokenizer's vocabulary/);
    expect(existsSync(join(c.dir, 'out', 'metrics.jsonl'))).toBe(false); // nothing was trained
  });

  it('an existing checkpoint dir without --resume is an error, and nothing in it changes', async () => {
    const c = makeTinyCorpus();
    const config = tinyConfig(c, { training: { steps: 3 }, eval: { everySteps: 0 } });
    await train({ config, ...quiet });
    const before = hashDir(config.checkpointing.dir);
    const again = tinyConfig(c, { training: { steps: 3, lr: 5e-3 }, eval: { everySteps: 0 }, data: { seqLength: 64 } });
    await expect(train({ config: { ...again, data: config.data }, ...quiet })).rejects.toThrow(/already holds 1 checkpoint\(s\) \(newest: step 3\); pass --resume/);
    await expect(train({ config: { ...config, checkpointing: { ...config.checkpointing, overwrite: true }, data: again.data }, ...quiet })).rejects.toThrow(ConfigError);
    expect(hashDir(config.checkpointing.dir)).toBe(before);
    await expect(train({ config, resume: join(c.dir, 'nowhere', 'step-00000001'), ...quiet })).rejects.toThrow(/--resume .*not a complete checkpoint folder/);
  });
});
