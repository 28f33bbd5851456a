// Parity of the attention pieces with the reference fixtures (shared/fixtures): the first layers of
// MegatronBERT (relative_key) and T5 v1.1 (relative buckets, no scaling, gated-gelu), written on
// these building blocks the way a family's modules use them, and compared with the reference's
// attentions / hidden states. (ChatGLM's 2D rotary parity lives in @lm/chatglm.) Skipped when no
// fixtures are found.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, it } from 'vitest';
import { embedding, fromHost, layerNorm, noGrad, rmsNorm, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { safetensorsF32, type HostTensor } from '../testing/fixtures.js';
import { attentionCore } from './attention.js';
import { resolveActivation } from './feed-forward.js';
import { getExtendedAttentionMask } from './masks.js';
import { relativeKeyScores, t5PositionBias } from './position.js';
import { expectClose, testBackends } from './testing.js';

/** `shared/fixtures` above this package (or LM_FIXTURES). */
function findFixtures(): string | null {
  if (process.env.LM_FIXTURES) return resolve(process.env.LM_FIXTURES);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'shared', 'fixtures');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

const fixtures = findFixtures();
if (!fixtures) console.warn('[attention] fixture parity SKIPPED: no shared/fixtures found above this package');
const backends = await testBackends();
afterAll(async () => (await testWebGPUBackend())?.destroy());

interface Case {
  weights: Map<string, HostTensor>;
  expected: Map<string, HostTensor>;
  inputs: Record<string, number[][]>;
  config: Record<string, unknown>;
}

function loadCase(family: string, name: string): Case {
  const dir = join(fixtures!, family, name);
  return {
    weights: safetensorsF32(readFileSync(join(dir, 'model.safetensors'))),
    expected: safetensorsF32(readFileSync(join(dir, 'expected.safetensors'))),
    inputs: JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')).inputs,
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
  };
}

const upload = (t: HostTensor, backend: Backend) => fromHost(t.data, t.shape, 'float32', backend);
const ints = (rows: number[][], backend: Backend) => fromHost(Int32Array.from(rows.flat()), [rows.length, rows[0].length], 'int32', backend);

/** [batch, seq, heads * headDim] -> [batch, heads, seq, headDim] */
const splitHeads = (x: Tensor, heads: number) => x.reshape(x.shape[0], x.shape[1], heads, -1).permute(0, 2, 1, 3);
/** [batch, heads, seq, headDim] -> [batch, seq, heads * headDim] */
const mergeHeads = (x: Tensor) => x.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1);

describe.skipIf(!fixtures).each(backends)('fixture parity on %s', (_name, backend) => {
  it('megatron-bert/relative_key: attentions.0 and attentions.1 (relative_key scores, extended mask)', async () => {
    const c = loadCase('megatron-bert', 'relative_key');
    const H = c.config.hidden_size as number;
    const w = (k: string) => upload(c.weights.get(k)!, backend);
    const attentions = noGrad(() =>
      scope(() => {
        const ids = ints(c.inputs.input_ids, backend);
        const tt = ints(c.inputs.token_type_ids, backend);
        const mask = getExtendedAttentionMask(ints(c.inputs.attention_mask, backend), ids.shape); // [b, 1, 1, k]
        const eps = c.config.layer_norm_eps as number;
        const ln = (x: Tensor, p: string) => layerNorm(x, H, w(`${p}.weight`), w(`${p}.bias`), eps);
        const dense = (x: Tensor, p: string) => x.matmul(w(`${p}.weight`).transpose(0, 1)).add(w(`${p}.bias`));
        const heads = c.config.num_attention_heads as number;
        // MegatronBertSelfAttention with relative_key: q.k^T + distance scores, then / sqrt(headDim).
        const self = (x: Tensor, layer: number) => {
          const p = `encoder.layer.${layer}.attention.self`;
          const [q, k, v] = ['query', 'key', 'value'].map((n) => splitHeads(dense(x, `${p}.${n}`), heads)); // [b, heads, s, hd]
          const extraScores = relativeKeyScores(q, k, w(`${p}.distance_embedding.weight`), { type: 'relative_key', maxPositionEmbeddings: c.config.max_position_embeddings as number });
          const { context, attentions } = attentionCore(q, k, v, { mask, extraScores, outputAttentions: true });
          return { output: mergeHeads(context), attentions: attentions! };
        };
        // relative_key: word + token-type embeddings, no absolute positions, no embedding LayerNorm.
        const h0 = embedding(w('embeddings.word_embeddings.weight'), ids).add(embedding(w('embeddings.token_type_embeddings.weight'), tt));
        const a0 = self(ln(h0, 'encoder.layer.0.attention.ln'), 0);
        const attnOut = dense(a0.output, 'encoder.layer.0.attention.output.dense').add(h0);
        const inter = dense(ln(attnOut, 'encoder.layer.0.ln'), 'encoder.layer.0.intermediate.dense').gelu();
        const h1 = dense(inter, 'encoder.layer.0.output.dense').add(attnOut);
        const a1 = self(ln(h1, 'encoder.layer.1.attention.ln'), 1);
        return [a0.attentions, a1.attentions];
      }),
    );
    await expectClose(attentions[0], c.expected.get('attentions.0')!.data, 1e-4, 1e-4, c.expected.get('attentions.0')!.shape);
    await expectClose(attentions[1], c.expected.get('attentions.1')!.data, 1e-4, 1e-4, c.expected.get('attentions.1')!.shape);
    attentions.forEach((t) => t.dispose());
  });

  it('hf-t5/v1_1_encoder_model: block 0 (bucketed bias, no scaling, gated-gelu) and block 1 reusing the bias', async () => {
    const c = loadCase('hf-t5', 'v1_1_encoder_model');
    const cfg = c.config as Record<string, number>;
    const relOpts = { bidirectional: true, numBuckets: cfg.relative_attention_num_buckets, maxDistance: cfg.relative_attention_max_distance };
    const out = noGrad(() =>
      scope(() => {
        const w = (k: string) => upload(c.weights.get(k)!, backend);
        const ids = ints(c.inputs.input_ids, backend);
        const mask = getExtendedAttentionMask(ints(c.inputs.attention_mask, backend), ids.shape);
        const norm = (x: Tensor, k: string) => rmsNorm(x, w(k), cfg.layer_norm_epsilon);
        const linear = (x: Tensor, k: string) => x.matmul(w(k).transpose(0, 1)); // T5 has no biases
        // T5Attention: no 1/sqrt(d) scaling; position_bias (block 0 computes it) + mask on the scores.
        const attn = (x: Tensor, block: number, positionBias: Tensor) => {
          const p = `encoder.block.${block}.layer.0.SelfAttention`;
          const [q, k, v] = ['q', 'k', 'v'].map((n) => splitHeads(linear(x, `${p}.${n}.weight`), cfg.num_heads)); // [b, heads, s, d_kv]
          const { context, attentions } = attentionCore(q, k, v, { mask, positionBias, scale: 1, outputAttentions: true });
          return { output: linear(mergeHeads(context), `${p}.o.weight`), attentions: attentions! };
        };
        // T5DenseGatedActDense: wo(gelu_new(wi_0 x) * wi_1 x), through Linear-free matmuls here.
        const act = resolveActivation('gelu_new');
        const ff = (x: Tensor) => {
          const p = 'encoder.block.0.layer.1.DenseReluDense';
          const gate = act.fn(linear(x, `${p}.wi_0.weight`));
          return linear(gate.mul(linear(x, `${p}.wi_1.weight`)), `${p}.wo.weight`);
        };
        const h0 = embedding(w('shared.weight'), ids);
        const S = ids.shape[1];
        const positionBias = t5PositionBias(w('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), S, S, relOpts); // [1, heads, S, S]
        const a0 = attn(norm(h0, 'encoder.block.0.layer.0.layer_norm.weight'), 0, positionBias);
        const h = h0.add(a0.output);
        const h1 = h.add(ff(norm(h, 'encoder.block.0.layer.1.layer_norm.weight')));
        const a1 = attn(norm(h1, 'encoder.block.1.layer.0.layer_norm.weight'), 1, positionBias);
        return [h0, a0.attentions, h1, a1.attentions];
      }),
    );
    const names = ['hidden_states.0', 'attentions.0', 'hidden_states.1', 'attentions.1'];
    for (let i = 0; i < names.length; i++) await expectClose(out[i], c.expected.get(names[i])!.data, 1e-4, 1e-4, c.expected.get(names[i])!.shape);
    out.forEach((t) => t.dispose());
  });
});
