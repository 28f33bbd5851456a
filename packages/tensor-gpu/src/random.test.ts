import { describe, expect, it } from 'vitest';
import { philox, philoxFill, Generator } from './random.js';
import { cpu } from './runtime.js';
import { rand, randn, bernoulli } from './ops/creation.js';

describe('Philox4x32-10', () => {
  // Known-answer tests from Random123 (kat_vectors: philox4x32_10).
  const kat = (c: number[], k: number[]) => {
    const out = new Uint32Array(4);
    philox(c[0], c[1], k[0], k[1], out, c[2], c[3]);
    return Array.from(out, (w) => w.toString(16).padStart(8, '0'));
  };
  it('matches the Random123 known answers', () => {
    expect(kat([0, 0, 0, 0], [0, 0])).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    expect(kat([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff])).toEqual(['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    expect(kat([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])).toEqual(['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
  });

  it('draws are a function of (seed, element) only, whatever the offset', () => {
    for (const kind of ['uniform', 'normal', 'bernoulli'] as const) {
      const a = new Float32Array(13);
      philoxFill(a, kind, 42, 0, 0.3, 1);
      for (const start of [1, 2, 3, 5, 6]) {
        const b = new Float32Array(13 - start);
        philoxFill(b, kind, 42, start, 0.3, 1);
        expect(Array.from(b), `${kind} from ${start}`).toEqual(Array.from(a.subarray(start)));
      }
    }
  });

  it('has sensible statistics', async () => {
    const g = new Generator(7);
    const n = 20000;
    const u = (await rand([n], { generator: g, backend: cpu() }).data()) as Float32Array;
    const z = (await randn([n], { generator: g, backend: cpu() }).data()) as Float32Array;
    const m = (await bernoulli([n], 0.3, { generator: g, backend: cpu() }).data()) as Float32Array;
    const mean = (x: Float32Array) => x.reduce((s, v) => s + v, 0) / x.length;
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(mean(u)).toBeCloseTo(0.5, 1);
    expect(mean(z)).toBeCloseTo(0, 1);
    expect(mean(z.map((v) => v * v))).toBeCloseTo(1, 1);
    expect(mean(m)).toBeCloseTo(0.3, 1);
  });

  it('the generator advances and can be restored', async () => {
    const g = new Generator(3);
    const state = g.getState();
    const first = await rand([5], { generator: g, backend: cpu() }).data();
    const second = await rand([5], { generator: g, backend: cpu() }).data();
    expect(Array.from(second)).not.toEqual(Array.from(first));
    g.setState(state);
    expect(Array.from(await rand([5], { generator: g, backend: cpu() }).data())).toEqual(Array.from(first));
  });
});
