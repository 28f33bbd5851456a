import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertTokenizer } from '@lm/layers';
import { openCheckpoint } from '@lm/dist-ckpt';
import { MegatronBertForPreTraining, type MegatronBertConfig } from '@lm/megatron-bert';
import { memory } from '@lm/tensor-gpu';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './config.js';
import { CheckpointError, DataError } from './errors.js';
import { fillMask } from './fill-mask.js';
import { readMetrics, type MetricsRecord } from './metrics.js';
import { makeTinyCorpus, tinyConfig } from './test-helpers.js';
import { train } from './trainer.js';

const quiet = { print: () => {}, tty: false };

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
    const r1 = await train({ config: tinyConfig(a, over), ...quiet, onStep: (r) => full.push(r) });
    expect(r1.step).toBe(steps);

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
    const wa = await openCheckpoint(join(r1.checkpoint!.path, 'model.safetensors'));
    const wb = await openCheckpoint(join(r2.checkpoint!.path, 'model.safetensors'));
    for (const t of wa.tensors) expect(Array.from((await wb.readTensor(t.name)).data)).toEqual(Array.from((await wa.readTensor(t.name)).data));
    await wa.close();
    await wb.close();
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
    const ckpt = await openCheckpoint(join(result.checkpoint!.path, 'model.safetensors'));
    for (const [name, t] of model.stateDict()) {
      if (!ckpt.has(name)) continue;
      expect(Array.from(await t.data())).toEqual(Array.from((await ckpt.readTensor(name)).data));
    }
    await ckpt.close();
    model.dispose();
    const tok = await BertTokenizer.fromPretrained(exportDir);
    expect(tok.vocabSize).toBe(c.words.length);
    const [answer] = await fillMask(exportDir, ['the capital of france is [MASK] .'], { topK: 3 });
    expect(answer.predictions[0]).toHaveLength(3);
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
    await expect(train({ config, resume: join(c.dir, 'nowhere', 'step-00000001'), ...quiet })).rejects.toThrow(/--resume .*not a checkpoint folder/);
  });
});
