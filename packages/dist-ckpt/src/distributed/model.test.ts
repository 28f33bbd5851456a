// Model-level resharding with @lm/tensor-gpu tensors and Hugging Face MegatronBERT names and shapes
// (MegatronBertForMaskedLM, tiny dims). The same test against the real `MegatronBertForMaskedLM`
// belongs in @lm/megatron-bert (this package cannot depend on it: megatron-bert -> layers -> dist-ckpt).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { fromHost, type Tensor } from '@lm/tensor-gpu';
import { afterAll, describe, expect, it } from 'vitest';

import { localProcessGroups } from './group.js';
import { isMainReplica } from './mapping.js';
import { moduleShardedStateDict, parallelKind, tpSlice, type ParallelKind } from './model.js';
import { DistCheckpoint, load, save } from './serialization.js';
import { rng } from './test-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'dist-ckpt-model-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const H = 8;
const I = 16;
const V = 12;
const P = 10;
const LAYERS = 2;

/** HF MegatronBertForMaskedLM parameter names and shapes (the decoder is tied to the word embeddings). */
function megatronBertShapes(): Array<[string, number[]]> {
  const out: Array<[string, number[]]> = [
    ['bert.embeddings.word_embeddings.weight', [V, H]],
    ['bert.embeddings.position_embeddings.weight', [P, H]],
    ['bert.embeddings.token_type_embeddings.weight', [2, H]],
  ];
  for (let i = 0; i < LAYERS; i++) {
    const l = `bert.encoder.layer.${i}`;
    out.push(
      [`${l}.attention.ln.weight`, [H]],
      [`${l}.attention.ln.bias`, [H]],
      [`${l}.attention.self.query.weight`, [H, H]],
      [`${l}.attention.self.query.bias`, [H]],
      [`${l}.attention.self.key.weight`, [H, H]],
      [`${l}.attention.self.key.bias`, [H]],
      [`${l}.attention.self.value.weight`, [H, H]],
      [`${l}.attention.self.value.bias`, [H]],
      [`${l}.attention.output.dense.weight`, [H, H]],
      [`${l}.attention.output.dense.bias`, [H]],
      [`${l}.ln.weight`, [H]],
      [`${l}.ln.bias`, [H]],
      [`${l}.intermediate.dense.weight`, [I, H]],
      [`${l}.intermediate.dense.bias`, [I]],
      [`${l}.output.dense.weight`, [H, I]],
      [`${l}.output.dense.bias`, [H]],
    );
  }
  out.push(
    ['bert.encoder.ln.weight', [H]],
    ['bert.encoder.ln.bias', [H]],
    ['cls.predictions.transform.dense.weight', [H, H]],
    ['cls.predictions.transform.dense.bias', [H]],
    ['cls.predictions.transform.LayerNorm.weight', [H]],
    ['cls.predictions.transform.LayerNorm.bias', [H]],
    ['cls.predictions.bias', [V]],
  );
  return out;
}

const TIED = 'cls.predictions.decoder.weight';
const WORD = 'bert.embeddings.word_embeddings.weight';

function fullWeights(seed: number): Map<string, { shape: number[]; data: Float32Array }> {
  const random = rng(seed);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of megatronBertShapes()) {
    out.set(name, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).map(() => random() * 2 - 1) });
  }
  return out;
}

/** The tensors one TP rank of the model holds (`fill`: its slice of `full`, or zeros), with the tie kept. */
function rankStateDict(full: Map<string, { shape: number[]; data: Float32Array }>, tpRank: number, tpSize: number, zeros = false): Map<string, Tensor> {
  const sd = new Map<string, Tensor>();
  for (const [name, w] of full) {
    const local = tpSlice(w, parallelKind(name), tpRank, tpSize);
    sd.set(name, fromHost(zeros ? new Float32Array(local.data.length) : local.data, local.shape, 'float32'));
    if (name === WORD) sd.set(TIED, sd.get(WORD)!);
  }
  return sd;
}

describe('moduleShardedStateDict (MegatronBERT names)', () => {
  it('assigns Megatron parallel kinds and replica ids, the tied decoder as a replica of the word embeddings', () => {
    const kinds: Record<string, ParallelKind> = {
      [WORD]: 'vocab',
      'bert.embeddings.position_embeddings.weight': 'replicated',
      'bert.encoder.layer.0.attention.self.query.weight': 'column',
      'bert.encoder.layer.0.attention.self.query.bias': 'column',
      'bert.encoder.layer.0.attention.output.dense.weight': 'row',
      'bert.encoder.layer.0.attention.output.dense.bias': 'replicated',
      'bert.encoder.layer.0.intermediate.dense.weight': 'column',
      'bert.encoder.layer.0.output.dense.weight': 'row',
      'bert.encoder.layer.0.output.dense.bias': 'replicated',
      'bert.encoder.layer.0.ln.weight': 'replicated',
      'cls.predictions.bias': 'vocab',
      [TIED]: 'vocab',
      'cls.predictions.transform.dense.weight': 'replicated',
    };
    for (const [name, kind] of Object.entries(kinds)) expect(parallelKind(name), name).toBe(kind);
    const sd = moduleShardedStateDict(rankStateDict(fullWeights(1), 1, 2), { tpRank: 1, tpSize: 2, dpRank: 3 });
    expect(sd[WORD]).toMatchObject({ key: WORD, globalShape: [V, H], globalOffset: [V / 2, 0], replicaId: [0, 0, 3] });
    expect(sd[TIED]).toMatchObject({ key: WORD, globalShape: [V, H], replicaId: [1, 0, 3] });
    expect(sd['bert.encoder.layer.1.output.dense.weight']).toMatchObject({ globalShape: [H, I], globalOffset: [0, I / 2] });
    expect(sd['bert.encoder.ln.weight']).toMatchObject({ globalShape: [H], globalOffset: [0], replicaId: [0, 1, 3] });
  });

  it('TP=2 (x DP=2) save loads under TP=1 and TP=4 with identical full weights', async () => {
    const full = fullWeights(42);
    const dir = join(root, 'tp2');
    // Save: tp=2, dp=2 -> 4 simulated ranks; dp rank 1 holds replicas and writes nothing.
    const groups = localProcessGroups(4);
    await Promise.all(
      [0, 1, 2, 3].map((r) => {
        const tp = r % 2;
        const dp = Math.floor(r / 2);
        const sd = moduleShardedStateDict(rankStateDict(full, tp, 2), { tpRank: tp, tpSize: 2, dpRank: dp });
        return save({ model: sd, iteration: 7 }, dir, { group: groups[r], coords: { tp, dp } });
      }),
    );
    const ckpt = await DistCheckpoint.open(dir);
    expect(Object.keys(ckpt.metadata.files).sort()).toEqual(['tp0_dp0.safetensors', 'tp1_dp0.safetensors']);
    expect(ckpt.tensorKeys).not.toContain(TIED);
    expect(ckpt.tensor(WORD).shards).toHaveLength(2);
    await ckpt.close();

    // TP=1: one rank, full shapes.
    const one = rankStateDict(full, 0, 1, true);
    const r1 = await load({ model: moduleShardedStateDict(one, { tpRank: 0, tpSize: 1 }) }, dir, { strict: 'raise_all' });
    expect(r1.stateDict.iteration).toBe(7);
    for (const [name, w] of full) expect(Array.from(await one.get(name)!.data()), name).toEqual(Array.from(w.data));
    expect(one.get(TIED)).toBe(one.get(WORD));

    // TP=4: four ranks, each gets exactly its slice.
    for (let tp = 0; tp < 4; tp++) {
      const local = rankStateDict(full, tp, 4, true);
      await load({ model: moduleShardedStateDict(local, { tpRank: tp, tpSize: 4 }) }, dir);
      for (const [name, w] of full) {
        const want = tpSlice(w, parallelKind(name), tp, 4);
        expect(Array.from(await local.get(name)!.data()), `${name} tp${tp}`).toEqual(Array.from(want.data));
      }
    }
  });

  it('pipeline stages renumber layers to global indices; TP=2 x PP=2 loads under TP=1 x PP=1', async () => {
    const full = fullWeights(9);
    const dir = join(root, 'pp2');
    const stageOf = (name: string): number => (/layer\.1\.|encoder\.ln|^cls\./.test(name) ? 1 : 0);
    const groups = localProcessGroups(4);
    await Promise.all(
      [0, 1, 2, 3].map((r) => {
        const tp = r % 2;
        const pp = Math.floor(r / 2);
        const all = rankStateDict(full, tp, 2);
        // Stage-local module: its own layers numbered from 0; the last stage holds a copy of the word embeddings for the head.
        const stage = new Map<string, Tensor>();
        for (const [name, t] of all) {
          if (name === TIED) {
            if (pp === 1) stage.set(TIED, fromHost(tpSlice(full.get(WORD)!, 'vocab', tp, 2).data, [V / 2, H], 'float32'));
          } else if (stageOf(name) === pp) stage.set(name.replace('layer.1.', 'layer.0.'), t);
        }
        const sd = moduleShardedStateDict(stage, { tpRank: tp, tpSize: 2, ppRank: pp, ppSize: 2 }, { ties: { [TIED]: WORD } });
        if (pp === 1) expect(sd[TIED].replicaId).toEqual([1, 0, 0]);
        return save(sd, dir, { group: groups[r], coords: { tp, pp } });
      }),
    );
    const one = rankStateDict(full, 0, 1, true);
    const r = await load(moduleShardedStateDict(one, { tpRank: 0, tpSize: 1 }), dir, { strict: 'raise_all' });
    expect(r.missingKeys).toEqual([]);
    for (const [name, w] of full) expect(Array.from(await one.get(name)!.data()), name).toEqual(Array.from(w.data));
  });

  it('T5-style shared embeddings: exactly one instance is the main replica', () => {
    const shared = fromHost(new Float32Array(V * H), [V, H], 'float32');
    const sd = new Map<string, Tensor>([
      ['shared.weight', shared],
      ['encoder.embed_tokens.weight', shared],
      ['decoder.embed_tokens.weight', shared],
      ['lm_head.weight', shared],
    ]);
    for (const tp of [0, 1]) {
      const out = moduleShardedStateDict(sd, { tpRank: tp, tpSize: 2 }, { rules: [{ pattern: /(shared|embed_tokens|lm_head)\.weight$/, kind: 'vocab' }] });
      const leaves = Object.values(out);
      expect(new Set(leaves.map((l) => l.key))).toEqual(new Set(['shared.weight']));
      expect(leaves.filter((l) => isMainReplica(l.replicaId))).toHaveLength(1);
      expect(leaves.map((l) => l.replicaId[0])).toEqual([0, 1, 1, 1]);
    }
  });
});
