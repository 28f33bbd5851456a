import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, roundToFloat16, type Tensor } from '@lm/tensor-gpu';
import { gradcheck, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import {
  RotaryEmbedding,
  applyRotaryPosEmb,
  applyRotaryPosEmbIndex,
  cosSinTensors,
  rotaryAngles,
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

  it('applyRotaryPosEmbIndex: float16-rounded inv_freq, [maxPos, 1, dim] tables gathered per (seq, batch)', async () => {
    const invFreq = rotaryInvFreq(4, { halfPrecision: true });
    const { cos, sin } = cosSinTensors(rotaryAngles(Float32Array.from({ length: 6 }, (_, i) => i), invFreq), [6, 1, 4], backend);
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
    // rows = (s, b, h) flattened with seq 1 each.
    const position = (r: number) => pos[Math.floor(r / (B * H))][Math.floor(r / H) % B];
    await expectClose(y, directRope(await q.data(), S * B * H, 1, D, D, position, { theta: invFreq }), 2e-5, 2e-5, [S, B, H, D]);
    [cos, sin, ids, q, y].forEach((t) => t.dispose());
  });
});

describe('rotary gradients (finite differences, cpu)', () => {
  const backend = testCpuBackend();
  it('applyRotaryPosEmb (partial, interleaved)', () => {
    for (const interleaved of [false, true]) {
      const rope = new RotaryEmbedding(6, { rotaryPercent: 2 / 3, interleaved });
      const run = (x: Tensor) => {
        const cs = rope.forward(3, { backend });
        return rope.apply(x, cs);
      };
      const r = gradcheck(run, [{ shape: [2, 3, 6] }], backend);
      expect(r.worst, r.detail).toBeLessThanOrEqual(1);
    }
  });
});
