// Megatron-core T5Model beyond the parity fixtures: grouped-query linear_qkv, loading and saving, bad
// input (config fields, checkpoint keys and shapes, ids), and the loss helpers.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, manualSeed, noGrad, tensor, type Tensor } from '@lm/tensor-gpu';
import { testCpuBackend } from '@lm/tensor-gpu/testing';
import { ConfigError, PretrainedLoadError } from '@lm/layers';
import { weightPathProblems } from '@lm/layers/testing';
import { MegatronT5Config } from './megatron-config.js';
import { MegatronT5Model, vocabParallelCrossEntropy } from './megatron-modeling.js';

const backend = testCpuBackend();
const tmp = mkdtempSync(join(tmpdir(), 'megatron-t5-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function config(overrides: Record<string, unknown> = {}): MegatronT5Config {
  return MegatronT5Config.fromJSON({ hidden_size: 32, num_attention_heads: 4, num_layers: 2, encoder_num_layers: 2, ffn_hidden_size: 48, vocab_size: 50, max_sequence_length: 16, hidden_dropout: 0, attention_dropout: 0, init_method_std: 0.15, ...overrides });
}

const ids = (rows: number[][]) => tensor(rows, { dtype: 'int32', backend });

async function values(t: Tensor): Promise<number[]> {
  return Array.from(await t.data(), Number);
}

const maxAbsDiff = (a: number[], b: number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

const enc = [
  [5, 9, 13, 2, 1],
  [7, 3, 1, 0, 0],
];
const dec = [
  [1, 4, 6, 8],
  [1, 8, 0, 0],
];

describe('MegatronT5Model', () => {
  it('grouped linear_qkv: 2 query groups equal 4 heads whose keys/values repeat the group rows', async () => {
    manualSeed(1);
    const grouped = new MegatronT5Model(config({ num_query_groups: 2, position_embedding_type: 'rope' }), { backend });
    const full = new MegatronT5Model(config({ num_query_groups: 4, position_embedding_type: 'rope' }), { backend });
    const hn = 8;
    for (const [name, t] of full.stateDict()) {
      const src = grouped.stateDict().get(name)!;
      let data = await values(src);
      if (name.endsWith('linear_qkv.weight') || name.endsWith('linear_qkv.bias')) {
        const width = name.endsWith('weight') ? 32 : 1;
        const rowsOf = (start: number, n: number) => data.slice(start * width, (start + n) * width);
        const out: number[] = [];
        for (let h = 0; h < 4; h++) {
          const g = Math.floor(h / 2);
          const base = g * 4 * hn; // group g: [q_{2g}, q_{2g+1}, k_g, v_g]
          out.push(...rowsOf(base + (h % 2) * hn, hn), ...rowsOf(base + 2 * hn, hn), ...rowsOf(base + 3 * hn, hn));
        }
        data = out;
      }
      noGrad(() => t.copy_(fromHost(Float32Array.from(data), t.shape, 'float32', backend)));
    }
    const inputs = { encoderInputIds: ids(enc), decoderInputIds: ids(dec) };
    const a = noGrad(() => grouped.forward(inputs).logits!);
    const b = noGrad(() => full.forward(inputs).logits!);
    expect(a.shape).toEqual([2, 4, 50]);
    expect(maxAbsDiff(await values(a), await values(b))).toBeLessThan(1e-5);
    [grouped, full].forEach((m) => m.dispose());
  });

  it('saves named_parameters() and reloads the same lm_loss; shared output has only a bias', async () => {
    manualSeed(2);
    const model = new MegatronT5Model(config(), { backend });
    expect(weightPathProblems(model)).toEqual([]);
    expect([...model.stateDict().keys()].filter((k) => k.startsWith('lm_head'))).toEqual(['lm_head.output_layer.bias']);
    const dir = join(tmp, 'shared');
    await model.savePretrained(dir);
    const loaded = await MegatronT5Model.fromPretrained(dir, { backend });
    const inputs = { encoderInputIds: ids(enc), decoderInputIds: ids(dec), lmLabels: ids([[4, 6, 8, 2], [8, -1, -1, -1]]) };
    const a = noGrad(() => model.forward(inputs).lmLoss!);
    const b = noGrad(() => loaded.forward(inputs).lmLoss!);
    expect(a.shape).toEqual([2, 4]);
    expect(await values(b)).toEqual(await values(a));
    [model, loaded].forEach((m) => m.dispose());
  });

  it('names missing keys, wrong shapes and unsupported config fields', async () => {
    manualSeed(3);
    const untied = new MegatronT5Model(config({ share_embeddings_and_output_weights: false }), { backend });
    const dir = join(tmp, 'untied');
    await untied.savePretrained(dir);
    // The same weights read as a shared-output model: lm_head.output_layer.bias is missing.
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config().toJSON()));
    await expect(MegatronT5Model.fromPretrained(dir, { backend })).rejects.toThrow(PretrainedLoadError);
    await expect(MegatronT5Model.fromPretrained(dir, { backend })).rejects.toThrow(/missing weights: lm_head\.output_layer\.bias/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config({ share_embeddings_and_output_weights: false, ffn_hidden_size: 40 }).toJSON()));
    await expect(MegatronT5Model.fromPretrained(dir, { backend })).rejects.toThrow(/shape mismatches: encoder\.layers\.0\.mlp\.linear_fc1\.weight: checkpoint \[48,32\], model \[40,32\]/);
    untied.dispose();
    expect(() => new MegatronT5Model(config({ qk_layernorm: true }), { backend })).toThrow(ConfigError);
    expect(() => new MegatronT5Model(config({ qk_layernorm: true }), { backend })).toThrow(/qk_layernorm/);
    expect(() => new MegatronT5Model(config({ position_embedding_type: 'relative' }), { backend })).toThrow(/position_embedding_type/);
    expect(() => new MegatronT5Model(config({ activation_func: 'nope' }), { backend })).toThrow(/activation_func "nope"/);
  });

  it('rejects ids outside the vocabulary, sequences past max_sequence_length and bad mask shapes', () => {
    const model = new MegatronT5Model(config(), { backend });
    expect(() => model.forward({ encoderInputIds: ids([[1, 50]]), decoderInputIds: ids([[1]]) })).toThrow(/encoderInputIds id 50 at flat index 1 is outside the vocabulary \[0, 50\)/);
    expect(() => model.forward({ encoderInputIds: ids([[1, 2]]), decoderInputIds: ids([[1, -4]]) })).toThrow(/decoderInputIds id -4/);
    expect(() => model.forward({ encoderInputIds: ids([Array.from({ length: 17 }, () => 3)]), decoderInputIds: ids([[1]]) })).toThrow(/exceeds max_sequence_length 16/);
    expect(() => model.forward({ encoderInputIds: ids(enc), decoderInputIds: ids(dec), encoderAttnMask: ids([[1, 0]]) })).toThrow(/encoderAttnMask must be \[batch 2, 1, 5, 5\]/);
    model.dispose();
  });

  it('a null decoder mask is the causal mask; bool and 0/1 masks agree', async () => {
    manualSeed(4);
    const model = new MegatronT5Model(config(), { backend });
    const causal = Array.from({ length: 4 }, (_, i) => Array.from({ length: 4 }, (_, j) => j > i));
    const mask = tensor([[causal], [causal]], { dtype: 'bool', backend });
    const a = noGrad(() => model.forward({ encoderInputIds: ids(enc), decoderInputIds: ids(dec) }).logits!);
    const b = noGrad(() => model.forward({ encoderInputIds: ids(enc), decoderInputIds: ids(dec), decoderAttnMask: mask }).logits!);
    const c = noGrad(() => model.forward({ encoderInputIds: ids(enc), decoderInputIds: ids(dec), decoderAttnMask: mask.toInt() }).logits!);
    expect(await values(b)).toEqual(await values(a));
    expect(await values(c)).toEqual(await values(a));
    model.dispose();
  });
});

describe('vocabParallelCrossEntropy', () => {
  it('is logsumexp(l) - l[y], and logsumexp(l) - max(l) for labels outside the vocabulary', async () => {
    const logits = tensor([[[1, 2, 4], [0.5, -1, 3]]], { backend });
    const loss = await values(vocabParallelCrossEntropy(logits, ids([[2, -1]])));
    const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
    expect(Math.abs(loss[0] - (lse([1, 2, 4]) - 4))).toBeLessThan(1e-6);
    expect(Math.abs(loss[1] - (lse([0.5, -1, 3]) - 3))).toBeLessThan(1e-6);
    expect(Math.abs((await MegatronT5Model.maskedLoss(tensor([[2, 4]], { backend }), tensor([[1, 0]], { backend })).item()) - 2)).toBeLessThan(1e-7);
  });
});
