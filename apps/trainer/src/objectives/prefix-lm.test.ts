import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DistCheckpoint } from '@lm/dist-ckpt';
import { AdamW } from '@lm/layers';
import { MegatronBertConfig, MegatronBertForCausalLM } from '@lm/megatron-bert';
import { fromHost, init, manualSeed, scope } from '@lm/tensor-gpu';
import { describe, expect, it } from 'vitest';
import { loadWordPieceTokenizer } from '../data/tokenizer.js';
import { readMetrics } from '../metrics.js';
import { makeTinyCorpus, tinyConfig } from '../test-helpers.js';
import { train } from '../trainer.js';
import { PrefixLMObjective, PrefixTunedModel, prefixSettings, type PrefixableDecoder } from './prefix-lm.js';

const backend = await init('cpu');

function tinyDecoder(): MegatronBertForCausalLM {
  manualSeed(3);
  const config = new MegatronBertConfig({ vocabSize: 50, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 32, isDecoder: true, hiddenDropoutProb: 0, attentionProbsDropoutProb: 0 });
  return new MegatronBertForCausalLM(config, { backend });
}

function prefixed(base: MegatronBertForCausalLM, preSeqLen = 3, prefixProjection = false): PrefixTunedModel<MegatronBertConfig> {
  const c = base.config;
  return new PrefixTunedModel(c, base as unknown as PrefixableDecoder, { numLayers: 2, numHeads: 2, headDim: 8 }, prefixSettings({ preSeqLen, prefixProjection }, c.hiddenSize), { backend });
}

describe('prefix tuning (P-tuning v2) of a frozen decoder', () => {
  it('lays the prefix table out as every layer\'s key and value, [batch, heads, preSeqLen, headDim] (get_prompt)', async () => {
    const model = prefixed(tinyDecoder());
    const table = await model.prefix_encoder.embedding.weight.data(); // [P, layers * 2 * heads * headDim]
    const past = model.pastKeyValues(2);
    expect(past).toHaveLength(2);
    for (let l = 0; l < 2; l++) {
      for (let kv = 0; kv < 2; kv++) {
        expect(past[l][kv].shape).toEqual([2, 2, 3, 8]);
        const got = await past[l][kv].contiguous().data();
        for (const [b, h, p, d] of [[0, 0, 0, 0], [1, 1, 2, 7], [0, 1, 1, 3]]) {
          expect(got[((b * 2 + h) * 3 + p) * 8 + d]).toBe(table[p * 64 + ((2 * l + kv) * 2 + h) * 8 + d]);
        }
      }
    }
    model.dispose();
  });

  it('trains the prefix encoder alone: the registry, the gradients and the optimizer hold only prefix_encoder.*', async () => {
    const base = tinyDecoder();
    const before = new Map(await Promise.all([...base.stateDict()].map(async ([k, t]) => [k, Array.from(await t.data())] as const)));
    const model = prefixed(base, 3, true);
    expect([...model.stateDict().keys()].sort()).toEqual([
      'prefix_encoder.embedding.weight',
      'prefix_encoder.trans.0.bias',
      'prefix_encoder.trans.0.weight',
      'prefix_encoder.trans.2.bias',
      'prefix_encoder.trans.2.weight',
    ]);
    const tokenizer = await loadWordPieceTokenizer(makeTinyCorpus().vocab, { lowercase: true });
    const objective = new PrefixLMObjective(tokenizer, { seqLength: 8, backend });
    const batch = objective.collate([Int32Array.from([2, 10, 11, 12, 3]), Int32Array.from([2, 13, 14, 3])]);
    const optimizer = new AdamW([...model.parameters()], { lr: 1e-2 });
    const losses: number[] = [];
    for (let step = 0; step < 20; step++) {
      const loss = scope(() => {
        const out = objective.compute(model, batch);
        out.loss.backward();
        return out.loss.detach();
      });
      losses.push(await loss.item());
      loss.dispose();
      if (step === 0) {
        for (const p of base.parameters()) expect(p.grad).toBeNull();
        for (const p of model.parameters()) expect(p.grad).not.toBeNull();
      }
      optimizer.step();
      optimizer.zeroGrad();
    }
    // A random frozen decoder leaves the prefix little to fit, but every step lowers the loss (3.91 -> 3.79 measured).
    for (let i = 1; i < losses.length; i++) expect(losses[i]).toBeLessThan(losses[i - 1]);
    expect(losses.at(-1)!).toBeLessThan(losses[0] - 0.1);
    // The frozen model is bit for bit what it was.
    for (const [k, t] of base.stateDict()) expect(Array.from(await t.data())).toEqual(before.get(k));
    optimizer.dispose();
    model.dispose();
  });

  it('keeps the decoder causal: a position\'s logits do not depend on later tokens, and the prefix changes them', async () => {
    const model = prefixed(tinyDecoder());
    model.eval();
    const run = async (ids: number[]) => {
      const t = fromHost(Int32Array.from(ids), [1, ids.length], 'int32', backend);
      const out = scope(() => model.forward({ inputIds: t, attentionMask: fromHost(new Int32Array(ids.length).fill(1), [1, ids.length], 'int32', backend) }).logits);
      const data = Array.from(await out.data());
      out.dispose();
      t.dispose();
      return data;
    };
    const full = await run([2, 10, 11, 12]);
    const head = await run([2, 10]);
    full.slice(0, head.length).forEach((v, i) => expect(v).toBeCloseTo(head[i], 5));
    const plain = model.base.forward({ inputIds: fromHost(Int32Array.from([2, 10]), [1, 2], 'int32', backend), attentionMask: fromHost(Int32Array.from([1, 1]), [1, 2], 'int32', backend), pastKeyValues: null, useCache: false });
    expect(Array.from(await plain.logits.data())).not.toEqual(head);
    model.dispose();
  });

  it('refuses unknown or bad settings, naming the field', () => {
    expect(() => prefixSettings({ preSeqLen: 0, prefixProjetion: true }, 16)).toThrow(/objectives\.prefix-lm\.prefixProjetion: unknown field[\s\S]*objectives\.prefix-lm\.preSeqLen: expected an integer >= 1, got 0/);
  });
});

describe('prefix-lm through lm-train: a causal-lm export, then a prefix tuned on it', () => {
  it('checkpoints and the export hold the prefix encoder alone; the loss falls', async () => {
    const c = makeTinyCorpus();
    const decoderDir = join(c.dir, 'decoder');
    const model = { config: { hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 40, hiddenDropoutProb: 0, attentionProbsDropoutProb: 0 } };
    await train({ config: tinyConfig(c, { model, objective: 'causal-lm', training: { steps: 4 }, eval: { everySteps: 0 }, output: { export: decoderDir } }), print: () => {}, tty: false });

    await expect(train({ config: tinyConfig(c, { model, objective: 'prefix-lm', checkpointing: { dir: join(c.dir, 'no-base') } }), print: () => {}, tty: false })).rejects.toThrow(
      /model\.fromPretrained: prefix-lm tunes a prefix for a trained decoder and keeps it frozen; set it to a MegatronBertForCausalLM export/,
    );
    const config = tinyConfig(c, {
      model: { fromPretrained: decoderDir, config: {} },
      objective: 'prefix-lm',
      objectives: { 'prefix-lm': { preSeqLen: 4 } },
      training: { steps: 12, lr: 5e-2, warmupSteps: 0 },
      checkpointing: { dir: join(c.dir, 'prefix-ckpt'), everySteps: 0 },
      eval: { everySteps: 0 },
      output: { export: join(c.dir, 'prefix'), metrics: join(c.dir, 'prefix', 'metrics.jsonl'), prompts: ['the capital of france is'] },
    });
    const lines: string[] = [];
    const result = await train({ config, print: (l) => lines.push(l), tty: false });
    expect(result.numParameters).toBe(4 * 1 * 2 * 16);
    const losses = readMetrics(config.output.metrics).filter((r) => r.type === 'train').map((r) => r.loss as number);
    expect(losses.at(-1)!).toBeLessThan(losses[0]);
    const ckpt = await DistCheckpoint.open(result.checkpoint!.path);
    expect([...ckpt.tensorKeys].sort()).toEqual(['model.prefix_encoder.embedding.weight', 'optimizer.exp_avg.prefix_encoder.embedding.weight', 'optimizer.exp_avg_sq.prefix_encoder.embedding.weight']);
    await ckpt.close();
    // The export: the decoder's config plus P-tuning's fields, and the prefix weights alone.
    const exportedConfig = JSON.parse(readFileSync(join(c.dir, 'prefix', 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(exportedConfig).toMatchObject({ pre_seq_len: 4, prefix_projection: false, is_decoder: true, hidden_size: 16 });
    const header = readFileSync(join(c.dir, 'prefix', 'model.safetensors'));
    const keys = Object.keys(JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString()) as object).filter((k) => k !== '__metadata__');
    expect(keys).toEqual(['prefix_encoder.embedding.weight']);
    expect(result.showcase).toHaveLength(1);
    expect(result.showcase[0]).toMatch(/^the capital of france is -> /);
    expect(lines.join('\n')).toMatch(/greedy continuations \(prefix-lm\):/);
  });
});
