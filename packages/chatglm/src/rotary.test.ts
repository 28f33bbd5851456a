// ChatGLM-6B's rotary module and 2D rotary: against the direct rotation formula computed here in
// float64, by finite differences, and against the reference fixture (rotated keys and the first
// layer's attentions of chatglm/model_auto_masks_2d).
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { attentionCore, prefixLMMask, rotaryInvFreq } from '@lm/layers';
import { safetensorsF32, type HostTensor } from '@lm/layers/testing';
import { embedding, fromHost, layerNorm, noGrad, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { compareArrays, findSharedFixtures, gradcheck, seededRandom, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { ChatGLMRotaryEmbedding, applyChatGLMRotary2D } from './rotary.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());
const backends: [string, Backend][] = webgpu ? [['cpu', testCpuBackend()], ['webgpu', webgpu]] : [['cpu', testCpuBackend()]];
const fixtures = findSharedFixtures(import.meta.url);

async function expectClose(actual: Tensor, expected: ArrayLike<number>, atol: number, rtol: number, shape: readonly number[]): Promise<void> {
  expect([...actual.shape]).toEqual([...shape]);
  const got = Array.from(await actual.data());
  const cmp = compareArrays(got, expected, atol, rtol);
  expect(cmp.ok, `max |diff| ${cmp.maxAbs} at ${cmp.at}: got ${got[cmp.at]}, expected ${expected[cmp.at]}`).toBe(true);
}

/** Seeded normal values as a float32 tensor. */
function randomTensor(shape: readonly number[], seed: number, backend: Backend): Tensor {
  const rnd = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return fromHost(Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd())), shape, 'float32', backend);
}

/**
 * Rotate-half RoPE of one position per row on host values x [rows, d]: channel pairs (i, i + d/2)
 * rotate by angle position(r) * theta_i. Float64.
 */
function directRope(x: ArrayLike<number>, rows: number, d: number, position: (r: number) => number, theta: ArrayLike<number>): number[] {
  const out = Array.from(x);
  const half = d / 2;
  for (let r = 0; r < rows; r++) {
    const p = position(r);
    for (let i = 0; i < half; i++) {
      const [c, sn] = [Math.cos(p * theta[i]), Math.sin(p * theta[i])];
      const [a, b] = [r * d + i, r * d + i + half];
      out[a] = x[a] * c - x[b] * sn;
      out[b] = x[b] * c + x[a] * sn;
    }
  }
  return out;
}

describe.each(backends)('ChatGLM rotary on %s', (_name, backend) => {
  it("ChatGLM rotary: fp16 inv_freq buffer, [seq, 1, dim] cos/sin caches of cat(freqs, freqs)", async () => {
    const rope = new ChatGLMRotaryEmbedding(4, { backend });
    expect([...rope.stateDict().keys()]).toEqual(['inv_freq']);
    expect(Array.from(await rope.stateDict().get('inv_freq')!.data())).toEqual(Array.from(rotaryInvFreq(4, { halfPrecision: true })));
    const { cos, sin } = rope.forward(6);
    expect([...cos.shape]).toEqual([6, 1, 4]);
    expect(cos.backend).toBe(backend);
    // emb = cat(freqs, freqs) with freqs[p, i] = p * inv_freq[i]: cos/sin[p, 0, j] of angle p * theta[j mod 2].
    const theta = rope.invFreq;
    const angles = Array.from({ length: 6 * 4 }, (_, k) => Math.floor(k / 4) * theta[k % 2]);
    await expectClose(cos, angles.map(Math.cos), 1e-6, 1e-6, [6, 1, 4]);
    await expectClose(sin, angles.map(Math.sin), 1e-6, 1e-6, [6, 1, 4]);
    [cos, sin].forEach((t) => t.dispose());
    rope.dispose();
  });

  it('ChatGLM 2D rotary: first half by position ids, second half by block position ids', async () => {
    const [S, B, H, D] = [4, 2, 2, 8];
    const rope = new ChatGLMRotaryEmbedding(D / 2, { backend });
    const posIds = [
      [0, 1, 2, 2],
      [0, 1, 1, 1],
    ]; // [batch, seq]
    const blockIds = [
      [0, 0, 1, 2],
      [0, 0, 1, 2],
    ];
    const toSeqFirst = (m: number[][]) => fromHost(Int32Array.from({ length: S * B }, (_, i) => m[i % B][Math.floor(i / B)]), [S, B], 'int32', backend);
    const p = toSeqFirst(posIds);
    const bp = toSeqFirst(blockIds);
    const { cos, sin } = rope.forward(3);
    const x = randomTensor([S, B, H, D], 9, backend);
    const y = applyChatGLMRotary2D(x, cos, sin, p, bp);
    // Expected: apply the direct formula to each half with its ids.
    const xh = Array.from(await x.data());
    const theta = rope.invFreq;
    const half = D / 2;
    const rows = S * B * H;
    const firsts: number[] = [];
    const seconds: number[] = [];
    for (let r = 0; r < rows; r++) {
      firsts.push(...xh.slice(r * D, r * D + half));
      seconds.push(...xh.slice(r * D + half, (r + 1) * D));
    }
    const sb = (r: number) => [Math.floor(r / (B * H)), Math.floor(r / H) % B];
    const e1 = directRope(firsts, rows, half, (r) => posIds[sb(r)[1]][sb(r)[0]], theta);
    const e2 = directRope(seconds, rows, half, (r) => blockIds[sb(r)[1]][sb(r)[0]], theta);
    const expected: number[] = [];
    for (let r = 0; r < rows; r++) expected.push(...e1.slice(r * half, (r + 1) * half), ...e2.slice(r * half, (r + 1) * half));
    await expectClose(y, expected, 2e-5, 2e-5, [S, B, H, D]);
    [p, bp, cos, sin, x, y].forEach((t) => t.dispose());
    rope.dispose();
  });
});

describe('ChatGLM 2D rotary gradients (finite differences, cpu)', () => {
  const backend = testCpuBackend();
  it('applyChatGLMRotary2D', () => {
    const glm = new ChatGLMRotaryEmbedding(2, { backend });
    const run2d = (x: Tensor) => {
      const { cos, sin } = glm.forward(4);
      const ids = fromHost(Int32Array.from([0, 3, 1, 2]), [2, 2], 'int32', backend);
      const block = fromHost(Int32Array.from([1, 0, 2, 3]), [2, 2], 'int32', backend);
      return applyChatGLMRotary2D(x, cos, sin, ids, block);
    };
    const r = gradcheck(run2d, [{ shape: [2, 2, 1, 4] }], backend);
    expect(r.worst, r.detail).toBeLessThanOrEqual(1);
    glm.dispose();
  });
});

describe.skipIf(!fixtures).each(backends)('ChatGLM rotary fixture parity on %s', (_name, backend) => {
  const loadCase = (name: string) => {
    const dir = join(fixtures!, 'chatglm', name);
    return {
      weights: safetensorsF32(readFileSync(join(dir, 'model.safetensors'))),
      expected: safetensorsF32(readFileSync(join(dir, 'expected.safetensors'))),
      inputs: JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')).inputs as Record<string, number[][]>,
      config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, number>,
    };
  };
  const upload = (t: HostTensor) => fromHost(t.data, t.shape, 'float32', backend);
  const ints = (rows: number[][]) => fromHost(Int32Array.from(rows.flat()), [rows.length, rows[0].length], 'int32', backend);

  it('chatglm/model_auto_masks_2d: rotated keys (2D rotary, fp16 inv_freq) and attentions.0 (prefix-LM mask)', async () => {
    const c = loadCase('model_auto_masks_2d');
    const cfg = c.config;
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
        const w = (k: string) => upload(c.weights.get(k)!);
        const ids = ints(c.inputs.input_ids);
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
