// Parity of the attention pieces with the reference fixtures (shared/fixtures): the first layers of
// MegatronBERT (relative_key), T5 v1.1 (relative buckets, gated-gelu) and ChatGLM-6B (2D rotary with
// fp16 inv_freq, prefix-LM mask), computed with these building blocks and compared with the
// reference's attentions / hidden states / cached keys. Skipped when no fixtures are found.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { embedding, fromHost, layerNorm, noGrad, rmsNorm, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { attentionCore, MultiHeadAttention } from './attention.js';
import { GatedMLP } from './feed-forward.js';
import { getExtendedAttentionMask, prefixLMMask } from './masks.js';
import { ChatGLMRotaryEmbedding, applyChatGLMRotary2D, rotaryInvFreq } from './rotary.js';
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

interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** The F32 tensors of a safetensors file (8-byte header length, JSON header, raw little-endian data). */
function readSafetensors(path: string): Map<string, HostTensor> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, HostTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__' || info.dtype !== 'F32') continue;
    const [a, b] = info.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const data = new Float32Array(new Uint8Array(bytes).buffer);
    out.set(name, { shape: info.shape, data });
  }
  return out;
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
    weights: readSafetensors(join(dir, 'model.safetensors')),
    expected: readSafetensors(join(dir, 'expected.safetensors')),
    inputs: JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')).inputs,
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
  };
}

const upload = (t: HostTensor, backend: Backend) => fromHost(t.data, t.shape, 'float32', backend);
const ints = (rows: number[][], backend: Backend) => fromHost(Int32Array.from(rows.flat()), [rows.length, rows[0].length], 'int32', backend);

/** Loads `prefix.*` weights of the case into a module's state dict (strict). */
function loadInto(module: MultiHeadAttention | GatedMLP, weights: Map<string, HostTensor>, prefix: string, backend: Backend): void {
  const sd = new Map<string, Tensor>();
  for (const key of module.stateDict().keys()) sd.set(key, upload(weights.get(`${prefix}.${key}`)!, backend));
  module.loadStateDict(sd);
  sd.forEach((t) => t.dispose());
}

describe.skipIf(!fixtures).each(backends)('fixture parity on %s', (_name, backend) => {
  it('megatron-bert/relative_key: attentions.0 and attentions.1 (relative_key scores, extended mask)', async () => {
    const c = loadCase('megatron-bert', 'relative_key');
    const H = c.config.hidden_size as number;
    const w = (k: string) => upload(c.weights.get(k)!, backend);
    const self = (layer: number) => {
      const m = new MultiHeadAttention({ hiddenSize: H, numHeads: c.config.num_attention_heads as number, positionEmbeddingType: 'relative_key', maxPositionEmbeddings: c.config.max_position_embeddings as number, backend });
      loadInto(m, c.weights, `encoder.layer.${layer}.attention.self`, backend);
      return m.eval();
    };
    const [self0, self1] = [self(0), self(1)];
    const attentions = noGrad(() =>
      scope(() => {
        const ids = ints(c.inputs.input_ids, backend);
        const tt = ints(c.inputs.token_type_ids, backend);
        const mask = getExtendedAttentionMask(ints(c.inputs.attention_mask, backend), ids.shape); // [b, 1, 1, k]
        const eps = c.config.layer_norm_eps as number;
        const ln = (x: Tensor, p: string) => layerNorm(x, H, w(`${p}.weight`), w(`${p}.bias`), eps);
        const dense = (x: Tensor, p: string) => x.matmul(w(`${p}.weight`).transpose(0, 1)).add(w(`${p}.bias`));
        // relative_key: word + token-type embeddings, no absolute positions, no embedding LayerNorm.
        const h0 = embedding(w('embeddings.word_embeddings.weight'), ids).add(embedding(w('embeddings.token_type_embeddings.weight'), tt));
        const a0 = self0.forward(ln(h0, 'encoder.layer.0.attention.ln'), { attentionMask: mask, outputAttentions: true });
        const attnOut = dense(a0.output, 'encoder.layer.0.attention.output.dense').add(h0);
        const inter = dense(ln(attnOut, 'encoder.layer.0.ln'), 'encoder.layer.0.intermediate.dense').gelu();
        const h1 = dense(inter, 'encoder.layer.0.output.dense').add(attnOut);
        const a1 = self1.forward(ln(h1, 'encoder.layer.1.attention.ln'), { attentionMask: mask, outputAttentions: true });
        return [a0.attentions!, a1.attentions!];
      }),
    );
    await expectClose(attentions[0], c.expected.get('attentions.0')!.data, 1e-4, 1e-4, c.expected.get('attentions.0')!.shape);
    await expectClose(attentions[1], c.expected.get('attentions.1')!.data, 1e-4, 1e-4, c.expected.get('attentions.1')!.shape);
    attentions.forEach((t) => t.dispose());
    [self0, self1].forEach((m) => m.dispose());
  });

  it('hf-t5/v1_1_encoder_model: block 0 (bucketed bias, no scaling, gated-gelu) and block 1 reusing the bias', async () => {
    const c = loadCase('hf-t5', 'v1_1_encoder_model');
    const cfg = c.config as Record<string, number>;
    const relOpts = { bidirectional: true, numBuckets: cfg.relative_attention_num_buckets, maxDistance: cfg.relative_attention_max_distance };
    const attn = (block: number) => {
      const m = new MultiHeadAttention({
        hiddenSize: cfg.d_model,
        numHeads: cfg.num_heads,
        headDim: cfg.d_kv,
        bias: false,
        scale: 1,
        outputProjection: true,
        names: { query: 'q', key: 'k', value: 'v', output: 'o' },
        relativeAttentionBias: block === 0 ? relOpts : null,
        backend,
      });
      loadInto(m, c.weights, `encoder.block.${block}.layer.0.SelfAttention`, backend);
      return m.eval();
    };
    const ff = new GatedMLP(cfg.d_model, cfg.d_ff, { bias: false, activation: 'gelu_new', backend });
    loadInto(ff, c.weights, 'encoder.block.0.layer.1.DenseReluDense', backend);
    const [attn0, attn1] = [attn(0), attn(1)];
    const out = noGrad(() =>
      scope(() => {
        const w = (k: string) => upload(c.weights.get(k)!, backend);
        const ids = ints(c.inputs.input_ids, backend);
        const mask = getExtendedAttentionMask(ints(c.inputs.attention_mask, backend), ids.shape);
        const norm = (x: Tensor, k: string) => rmsNorm(x, w(k), cfg.layer_norm_epsilon);
        const h0 = embedding(w('shared.weight'), ids);
        const a0 = attn0.forward(norm(h0, 'encoder.block.0.layer.0.layer_norm.weight'), { attentionMask: mask, outputAttentions: true });
        const h = h0.add(a0.output);
        const h1 = h.add(ff.forward(norm(h, 'encoder.block.0.layer.1.layer_norm.weight')));
        const a1 = attn1.forward(norm(h1, 'encoder.block.1.layer.0.layer_norm.weight'), { attentionMask: mask, positionBias: a0.positionBias, outputAttentions: true });
        return [h0, a0.attentions!, h1, a1.attentions!];
      }),
    );
    const names = ['hidden_states.0', 'attentions.0', 'hidden_states.1', 'attentions.1'];
    for (let i = 0; i < names.length; i++) await expectClose(out[i], c.expected.get(names[i])!.data, 1e-4, 1e-4, c.expected.get(names[i])!.shape);
    out.forEach((t) => t.dispose());
    [attn0, attn1, ff].forEach((m) => m.dispose());
  });

  it('chatglm/model_auto_masks_2d: rotated keys (2D rotary, fp16 inv_freq) and attentions.0 (prefix-LM mask)', async () => {
    const c = loadCase('chatglm', 'model_auto_masks_2d');
    const cfg = c.config as Record<string, number>;
    const [H, heads] = [cfg.hidden_size, cfg.num_attention_heads];
    const hd = H / heads;
    const rope = new ChatGLMRotaryEmbedding(hd / 2, { backend });
    // The checkpoint's inv_freq buffer holds the same fp16-rounded values.
    expect(Array.from(c.weights.get('layers.0.attention.rotary_emb.inv_freq')!.data)).toEqual(Array.from(rotaryInvFreq(hd / 2, { halfPrecision: true })));
    // Derived per the case notes: context = index of <bos>; [gMASK] row 0 at 6, [MASK] row 1 at 2.
    const ctx = [7, 6];
    const maskPos = [6, 2];
    const S = 10;
    const posIds = ctx.map((cl, b) => Array.from({ length: S }, (_, i) => (i < cl ? i : maskPos[b])));
    const blockIds = ctx.map((cl) => Array.from({ length: S }, (_, i) => (i < cl ? 0 : i - cl + 1)));
    const seqFirst = (m: number[][]) => fromHost(Int32Array.from({ length: S * 2 }, (_, i) => m[i % 2][Math.floor(i / 2)]), [S, 2], 'int32', backend);
    const [keys, probs] = noGrad(() =>
      scope(() => {
        const w = (k: string) => upload(c.weights.get(k)!, backend);
        const ids = ints(c.inputs.input_ids, backend);
        const x = embedding(w('word_embeddings.weight'), ids).transpose(0, 1); // [S, B, H]
        const ln = layerNorm(x, H, w('layers.0.input_layernorm.weight'), w('layers.0.input_layernorm.bias'), cfg.layernorm_epsilon);
        const qkv = ln.matmul(w('layers.0.attention.query_key_value.weight').transpose(0, 1)).add(w('layers.0.attention.query_key_value.bias'));
        const [q, k, v] = qkv.reshape(S, 2, heads, 3 * hd).chunk(3, -1); // [S, B, heads, hd] each
        const { cos, sin } = rope.forward(Math.max(...posIds.flat(), ...blockIds.flat()) + 1);
        const [p, bp] = [seqFirst(posIds), seqFirst(blockIds)];
        const qr = applyChatGLMRotary2D(q, cos, sin, p, bp);
        const kr = applyChatGLMRotary2D(k, cos, sin, p, bp);
        // Layer 0 (layer scaling coefficient 1): softmax(q.k / sqrt(hd)) with masked positions filled.
        const toHeads = (t: Tensor) => t.permute(1, 2, 0, 3); // [B, heads, S, hd]
        const keep = prefixLMMask(ctx, S, { backend }); // [B, 1, S, S]
        const { attentions } = attentionCore(toHeads(qr), toHeads(kr), toHeads(v), { mask: keep, outputAttentions: true, implementation: 'explicit' });
        return [kr, attentions!.reshape(2 * heads, S, S)];
      }),
    );
    await expectClose(keys, c.expected.get('past_key_values.0.0')!.data, 1e-4, 1e-4, c.expected.get('past_key_values.0.0')!.shape);
    await expectClose(probs, c.expected.get('attentions.0')!.data, 1e-4, 1e-4, c.expected.get('attentions.0')!.shape);
    [keys, probs].forEach((t) => t.dispose());
    rope.dispose();
  });
});
