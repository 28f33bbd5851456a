// The Reformer family: its config checks (named before anything is allocated), and a short causal-LM
// run through the reversible layers whose loss falls and whose export ReformerModelWithLMHead reads back.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReformerModelWithLMHead } from '@lm/reformer';
import { noGrad, tensor } from '@lm/tensor-gpu';
import { ConfigError } from '../core/errors.js';
import { makeTinyCorpus, tinyConfig } from '../test-helpers.js';
import { train } from '../trainer.js';
import { reformer } from './reformer.js';

const quiet = { print: () => {}, tty: false };

const model = {
  family: 'reformer',
  config: {
    hiddenSize: 16,
    numAttentionHeads: 2,
    attentionHeadSize: 8,
    feedForwardSize: 32,
    attnLayers: ['local', 'lsh'],
    axialPosShape: [4, 8],
    axialPosEmbdsDim: [8, 8],
    maxPositionEmbeddings: 32,
    localAttnChunkLength: 8,
    lshAttnChunkLength: 8,
    numBuckets: 4,
    numHashes: 2,
    hiddenDropoutProb: 0,
    lshAttentionProbsDropoutProb: 0,
    localAttentionProbsDropoutProb: 0,
    hashSeed: 3,
  },
};

describe('reformer family', () => {
  it('refuses bad config fields by name before allocating', async () => {
    const resolve = (overrides: Record<string, unknown>) => reformer.resolveConfig({ fromPretrained: null, overrides: { ...model.config, ...overrides }, vocabSize: 50 });
    await expect(resolve({ numBuckets: 3 })).rejects.toThrow(/model\.config: ReformerConfig: num_buckets 3 must be even/);
    await expect(resolve({ attnLayers: ['local', 'full'] })).rejects.toThrow(/attn_layers\[1\] is "full"/);
    await expect(resolve({ axialPosShape: [4, 4] })).rejects.toThrow(/axial_pos_shape \[4, 4\] multiplies to 16, but max_position_embeddings is 32/);
    await expect(resolve({ localAttnChunkLength: 6 })).rejects.toThrow(/maxPositionEmbeddings: 32 \(the training length\) is not a multiple of the chunk lengths' least common multiple 24/);
    await expect(resolve({ numLayers: 2 })).rejects.toThrow(ConfigError);
    const ok = await resolve({});
    expect(ok.config.isDecoder).toBe(true);
    expect(ok.config.numHiddenLayers).toBe(2);
    expect(ok.maxPositions).toBe(32);
  });

  it('trains causal LM through the reversible layers, loss falls, and the export loads with fromPretrained', async () => {
    const c = makeTinyCorpus();
    const exportDir = join(c.dir, 'export');
    const losses: number[] = [];
    const config = tinyConfig(c, {
      model,
      objective: 'causal-lm',
      data: { seqLength: 32 },
      training: { steps: 24, batchSize: 8, lr: 1e-2, warmupSteps: 1 },
      eval: { everySteps: 0 },
      output: { export: exportDir },
    });
    const result = await train({ config, ...quiet, onStep: (r) => losses.push(Number(r.loss)) });
    expect(result.step).toBe(24);
    expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.8);
    const loaded = await ReformerModelWithLMHead.fromPretrained(exportDir);
    expect(loaded.config.attnLayers).toEqual(['local', 'lsh']);
    const logits = noGrad(() => loaded.forward({ inputIds: tensor([[2, 5, 6, 7]], { dtype: 'int32' }) }).logits);
    expect(logits.shape).toEqual([1, 4, c.words.length]);
    loaded.dispose();
  });
});
