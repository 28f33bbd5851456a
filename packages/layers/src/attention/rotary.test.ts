import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, roundToFloat16, type Tensor } from '@lm/tensor-gpu';
import { gradcheck, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import {
  ChatGLMRotaryEmbedding,
  RotaryEmbedding,
  applyChatGLMRotary2D,
  applyRotaryPosEmb,
  applyRotaryPosEmbIndex,
  rotaryInvFreq,
  rotateHalf,
  rotateInterleaved,
} from './rotary.js';
import { expectClose, randomTensor, testBackends } from './testing.js';

const backends = await testBackends();
afterAll(async () => (await testWebGPUBackend())?.destroy());

/**
 * Direct RoPE on host values x [rows, seq, d] (position p of row r = positions(r, s)): channel pairs
 * (i, i + rot/2) (or (2i, 2i+1) interleaved) of the first `rot` channels rotate by angle p * theta_i
 * with theta_i = base^(-2i/rot); the rest pass through. Float64 throughout.
 */
function directRope(x: ArrayLike<number>, rows: number, seq: number, d: number, rot: number, position: (r: number, s: number) => number, opts: { interleaved?: boolean; base?: number; theta?: ArrayLike<number> } = {}): number[] {
  const out = Array.from(x);
  const half = rot / 2;
  for (let r = 0; r < rows; r++) {
    for (let s = 0; s < seq; s++) {
      const o = (r * seq + s) * d;
      const p = position(r, s);
      for (let i = 0; i < half; i++) {
        const theta = opts.theta ? opts.theta[i] : Math.pow(opts.base ?? 10000, (-2 * i) / rot);
        const [c, sn] = [Math.cos(p * theta), Math.sin(p * theta)];
        const [a, b] = opts.interleaved ? [o + 2 * i, o + 2 * i + 1] : [o + i, o + i + half];
        out[a] = x[a] * c - x[b] * sn;
        out[b] = x[b] * c + x[a] * sn;
      }
    }
  }
  return out;
}

describe('rotaryInvFreq', () => {
  it('is 1 / base^(2i/dim), optionally rounded to float16 (ChatGLM inv_freq.half())', () => {
    const f = rotaryInvFreq(8);
    expect(f).toHaveLength(4);
    f.forEach((v, i) => expect(v).toBeCloseTo(Math.pow(10000, -(2 * i) / 8), 7));
    const h = rotaryInvFreq(8, { halfPrecision: true });
    h.forEach((v, i) => expect(v).toBe(roundToFloat16(f[i])));
    expect(h[1]).not.toBe(f[1]); // 0.1 is not a float16 value
    expect(rotaryInvFreq(6, { base: 100 })[1]).toBeCloseTo(Math.pow(100, -2 / 6), 7);
  });
});

describe.each(backends)('rotary on %s', (_name, backend) => {
  it('rotateHalf and rotateInterleaved', async () => {
    const x = fromHost(Float32Array.from([1, 2, 3, 4, 5, 6]), [1, 6], 'float32', backend);
    await expectClose(rotateHalf(x), [-4, -5, -6, 1, 2, 3]);
    await expectClose(rotateInterleaved(x), [-2, 1, -4, 3, -6, 5]);
    x.dispose();
  });

  it('RotaryEmbedding (Megatron) full and partial rotary, rotate-half and interleaved, match the direct formula', async () => {
    const [b, h, s, d] = [2, 2, 5, 8];
    const x = randomTensor([b, h, s, d], 11, backend);
    const xh = await x.data();
    for (const rotaryPercent of [1, 0.5]) {
      for (const interleaved of [false, true]) {
        const rope = new RotaryEmbedding(d, { rotaryPercent, interleaved });
        expect(rope.dim).toBe(d * rotaryPercent);
        const cs = rope.forward(s, { offset: 3, backend }); // [s, dim], broadcasts over [b, h, s, dim]
        expect([...cs.cos.shape]).toEqual([s, rope.dim]);
        const y = rope.apply(x, cs);
        await expectClose(y, directRope(xh, b * h, s, d, rope.dim, (_r, si) => si + 3, { interleaved }), 2e-5, 2e-5, [b, h, s, d]);
        [y, cs.cos, cs.sin].forEach((t) => t.dispose());
      }
    }
    const interp = new RotaryEmbedding(d, { seqLenInterpolationFactor: 2, base: 500 });
    const cs = interp.forward(s, { backend });
    const y = applyRotaryPosEmb(x, cs.cos, cs.sin);
    await expectClose(y, directRope(xh, b * h, s, d, d, (_r, si) => si / 2, { base: 500 }), 2e-5, 2e-5);
    [x, y, cs.cos, cs.sin].forEach((t) => t.dispose());
  });

  it("ChatGLM rotary: fp16 inv_freq buffer, [seq, 1, dim] caches, positions gathered per (seq, batch)", async () => {
    const rope = new ChatGLMRotaryEmbedding(4, { backend });
    expect([...rope.stateDict().keys()]).toEqual(['inv_freq']);
    expect(Array.from(await rope.stateDict().get('inv_freq')!.data())).toEqual(Array.from(rotaryInvFreq(4, { halfPrecision: true })));
    const { cos, sin } = rope.forward(6);
    expect([...cos.shape]).toEqual([6, 1, 4]);
    expect(cos.backend).toBe(backend);
    // q [seq 3, batch 2, heads 2, dim 4], 1-D positions [seq, batch].
    const [S, B, H, D] = [3, 2, 2, 4];
    const pos = [
      [0, 5],
      [1, 2],
      [4, 0],
    ];
    const ids = fromHost(Int32Array.from(pos.flat()), [S, B], 'int32', backend);
    const q = randomTensor([S, B, H, D], 5, backend);
    const y = applyRotaryPosEmbIndex(q, cos, sin, ids);
    const theta = rope.invFreq;
    // rows = (s, b, h) flattened with seq 1 each.
    const position = (r: number) => pos[Math.floor(r / (B * H))][Math.floor(r / H) % B];
    await expectClose(y, directRope(await q.data(), S * B * H, 1, D, D, position, { theta }), 2e-5, 2e-5, [S, B, H, D]);
    [cos, sin, ids, q, y].forEach((t) => t.dispose());
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
    const e1 = directRope(firsts, rows, 1, half, half, (r) => posIds[sb(r)[1]][sb(r)[0]], { theta });
    const e2 = directRope(seconds, rows, 1, half, half, (r) => blockIds[sb(r)[1]][sb(r)[0]], { theta });
    const expected: number[] = [];
    for (let r = 0; r < rows; r++) expected.push(...e1.slice(r * half, (r + 1) * half), ...e2.slice(r * half, (r + 1) * half));
    await expectClose(y, expected, 2e-5, 2e-5, [S, B, H, D]);
    [p, bp, cos, sin, x, y].forEach((t) => t.dispose());
    rope.dispose();
  });
});

describe('rotary gradients (finite differences, cpu)', () => {
  const backend = testCpuBackend();
  it('applyRotaryPosEmb (partial, interleaved) and the ChatGLM 2D variant', () => {
    for (const interleaved of [false, true]) {
      const rope = new RotaryEmbedding(6, { rotaryPercent: 2 / 3, interleaved });
      const run = (x: Tensor) => {
        const cs = rope.forward(3, { backend });
        return rope.apply(x, cs);
      };
      const r = gradcheck(run, [{ shape: [2, 3, 6] }], backend);
      expect(r.worst, r.detail).toBeLessThanOrEqual(1);
    }
    const glm = new ChatGLMRotaryEmbedding(2, { backend });
    const run2d = (x: Tensor) => {
      const { cos, sin } = glm.forward(4);
      const ids = fromHost(Int32Array.from([0, 3, 1, 2]), [2, 2], 'int32', backend);
      const block = fromHost(Int32Array.from([1, 0, 2, 3]), [2, 2], 'int32', backend);
      return applyChatGLMRotary2D(x, cos, sin, ids, block);
    };
    const r = gradcheck(run2d, [{ shape: [2, 2, 1, 4] }], backend);
    expect(r.worst, r.detail).toBeLessThanOrEqual(1);
  });
});
