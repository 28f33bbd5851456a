// A real MegatronBertForMaskedLM saved as a Megatron-style distributed checkpoint under tensor
// parallelism 2 (simulated ranks) loads under TP=1 and TP=4 with identical full weights.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { load, localProcessGroups, moduleShardedStateDict, parallelKind, save, tpSlice } from '@lm/dist-ckpt';
import { cpu, fromHost, manualSeed, type Tensor } from '@lm/tensor-gpu';
import { MegatronBertConfig } from './config.js';
import { MegatronBertForMaskedLM } from './modeling.js';

const root = mkdtempSync(join(tmpdir(), 'megatron-bert-dist-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const config = () =>
  new MegatronBertConfig({ vocabSize: 12, hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 16, maxPositionEmbeddings: 10 });
const TIED = 'cls.predictions.decoder.weight';
const WORD = 'bert.embeddings.word_embeddings.weight';
/** The model's tied aliases: name -> the name that owns the tensor. */
const TIES: Record<string, string> = { [TIED]: WORD, 'cls.predictions.decoder.bias': 'cls.predictions.bias' };

/** Host copies of every tensor in the model's state dict (tied names share one entry's data). */
async function hostWeights(model: MegatronBertForMaskedLM): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of model.stateDict()) {
    if (t.dtype !== 'float32') continue;
    out.set(name, { shape: [...t.shape], data: (await t.data()) as Float32Array });
  }
  return out;
}

/** The tensors one TP rank holds: its slice of each float weight, with the decoder tied to the embeddings. */
function rankStateDict(full: Map<string, { shape: number[]; data: Float32Array }>, tp: number, tpSize: number, zeros = false): Map<string, Tensor> {
  const sd = new Map<string, Tensor>();
  for (const [name, w] of full) {
    if (name in TIES) continue;
    const local = tpSlice(w, parallelKind(name), tp, tpSize);
    sd.set(name, fromHost(zeros ? new Float32Array(local.data.length) : local.data, local.shape, 'float32', cpu()));
  }
  for (const [alias, owner] of Object.entries(TIES)) sd.set(alias, sd.get(owner)!);
  return sd;
}

describe('MegatronBertForMaskedLM as a distributed checkpoint', () => {
  it('saved under TP=2 loads under TP=1 (into a real model) and TP=4 with identical weights', async () => {
    manualSeed(11);
    const model = new MegatronBertForMaskedLM(config(), { backend: cpu() });
    const full = await hostWeights(model);
    expect(full.get(TIED)!.data).toEqual(full.get(WORD)!.data);
    const dir = join(root, 'tp2');
    const groups = localProcessGroups(2);
    await Promise.all(
      [0, 1].map((tp) => save({ model: moduleShardedStateDict(rankStateDict(full, tp, 2), { tpRank: tp, tpSize: 2 }) }, dir, { group: groups[tp], coords: { tp } })),
    );

    // TP=1: straight into a differently initialised real model; the tie survives.
    manualSeed(99);
    const other = new MegatronBertForMaskedLM(config(), { backend: cpu() });
    const floatWeights = new Map([...other.stateDict()].filter(([, t]) => t.dtype === 'float32'));
    await load({ model: moduleShardedStateDict(floatWeights, { tpRank: 0, tpSize: 1 }) }, dir, { strict: 'raise_all' });
    for (const [name, w] of full) expect(Array.from(await other.stateDict().get(name)!.data()), name).toEqual(Array.from(w.data));
    expect(other.stateDict().get(TIED)).toBe(other.stateDict().get(WORD));

    // TP=4: each rank receives exactly its slice.
    for (let tp = 0; tp < 4; tp++) {
      const local = rankStateDict(full, tp, 4, true);
      await load({ model: moduleShardedStateDict(local, { tpRank: tp, tpSize: 4 }) }, dir);
      for (const [name, w] of full) {
        if (name in TIES) continue;
        expect(Array.from(await local.get(name)!.data()), `${name} tp${tp}`).toEqual(Array.from(tpSlice(w, parallelKind(name), tp, 4).data));
      }
    }
    model.dispose();
    other.dispose();
  });
});
