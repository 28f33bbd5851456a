// A real MegatronT5Model saved as a Megatron-style distributed checkpoint by two simulated
// tensor-parallel ranks loads under TP=1 (into the model) and TP=4 with identical weights, and computes
// the same lm_loss after the round trip.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { load, localProcessGroups, parallelKind, save, tpSlice } from '@lm/dist-ckpt';
import { cpu, fromHost, manualSeed, noGrad, tensor, type Tensor } from '@lm/tensor-gpu';
import { MegatronT5Config } from './megatron-config.js';
import { MEGATRON_T5_RULES, MegatronT5Model, megatronT5ShardedStateDict } from './megatron-modeling.js';

const root = mkdtempSync(join(tmpdir(), 'megatron-t5-dist-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const config = (shared: boolean) =>
  MegatronT5Config.fromJSON({ hidden_size: 16, num_attention_heads: 4, num_query_groups: 2, num_layers: 2, encoder_num_layers: 2, ffn_hidden_size: 32, vocab_size: 24, max_sequence_length: 8, hidden_dropout: 0, attention_dropout: 0, share_embeddings_and_output_weights: shared });

type Host = Map<string, { shape: number[]; data: Float32Array }>;

async function hostWeights(model: MegatronT5Model): Promise<Host> {
  const out: Host = new Map();
  for (const [name, t] of model.stateDict()) out.set(name, { shape: [...t.shape], data: (await t.data()) as Float32Array });
  return out;
}

function rankStateDict(full: Host, tp: number, tpSize: number, zeros = false): Map<string, Tensor> {
  const sd = new Map<string, Tensor>();
  for (const [name, w] of full) {
    const local = tpSlice(w, parallelKind(name, MEGATRON_T5_RULES), tp, tpSize);
    sd.set(name, fromHost(zeros ? new Float32Array(local.data.length) : local.data, local.shape, 'float32', cpu()));
  }
  return sd;
}

describe('MegatronT5Model as a distributed checkpoint', () => {
  for (const shared of [true, false]) {
    it(`saved under TP=2 loads under TP=1 and TP=4 (${shared ? 'shared' : 'untied'} output layer)`, async () => {
      manualSeed(21);
      const model = new MegatronT5Model(config(shared), { backend: cpu() });
      const full = await hostWeights(model);
      expect(parallelKind('decoder.layers.1.self_attention.linear_qkv.weight', MEGATRON_T5_RULES)).toBe('column');
      expect(parallelKind('encoder.layers.0.mlp.linear_fc2.weight', MEGATRON_T5_RULES)).toBe('row');
      expect(parallelKind(shared ? 'lm_head.output_layer.bias' : 'lm_head.output_layer.weight', MEGATRON_T5_RULES)).toBe('vocab');
      const dir = join(root, `tp2-${shared}`);
      const groups = localProcessGroups(2);
      await Promise.all([0, 1].map((tp) => save({ model: megatronT5ShardedStateDict(rankStateDict(full, tp, 2), { tpRank: tp, tpSize: 2 }) }, dir, { group: groups[tp], coords: { tp } })));

      manualSeed(99);
      const other = new MegatronT5Model(config(shared), { backend: cpu() });
      await load({ model: other.shardedStateDict() }, dir, { strict: 'raise_all' });
      for (const [name, w] of full) expect(Array.from(await other.stateDict().get(name)!.data()), name).toEqual(Array.from(w.data));
      const inputs = { encoderInputIds: tensor([[3, 5, 7, 1]], { dtype: 'int32' }), decoderInputIds: tensor([[1, 4, 6]], { dtype: 'int32' }), lmLabels: tensor([[4, 6, 2]], { dtype: 'int32' }) };
      const a = noGrad(() => model.forward(inputs).lmLoss!);
      const b = noGrad(() => other.forward(inputs).lmLoss!);
      expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));

      for (let tp = 0; tp < 4; tp++) {
        const local = rankStateDict(full, tp, 4, true);
        await load({ model: megatronT5ShardedStateDict(local, { tpRank: tp, tpSize: 4 }) }, dir);
        for (const [name, w] of full) {
          expect(Array.from(await local.get(name)!.data()), `${name} tp${tp}`).toEqual(Array.from(tpSlice(w, parallelKind(name, MEGATRON_T5_RULES), tp, 4).data));
        }
      }
      model.dispose();
      other.dispose();
    });
  }
});
