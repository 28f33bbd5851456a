import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, memory, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { GenerationError } from './errors.js';
import {
  badWords,
  bannedNgramTokens,
  composeProcessors,
  forcedEos,
  minNewTokens,
  noRepeatNgram,
  repetitionPenalty,
  temperature,
  topK,
  topP,
  type LogitsProcessor,
  type ProcessorContext,
} from './logits-process.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

const f = Math.fround;
const SCORES = [
  [1.5, -0.5, 2.25, 0.0, -3.0, 2.25, 0.625, -1.75],
  [0.1, 0.7, -1.2, 3.3, 0.7, -0.4, 1.9, -2.6],
].map((r) => r.map(f));
const CTX: ProcessorContext = {
  inputIds: [
    [0, 1, 1, 3, 1],
    [5, 2, 2, 5, 7],
  ],
  newTokens: 1,
};

// ---- float64/float32 references written from HF's formulas --------------------------------------
const refRepetition = (rows: number[][], ctx: ProcessorContext, p: number) =>
  rows.map((r, i) => r.map((s, v) => (ctx.inputIds[i].includes(v) ? (s < 0 ? f(s * f(p)) : f(s / f(p))) : s)));
const refTemperature = (rows: number[][], t: number) => rows.map((r) => r.map((s) => f(s / f(t))));
const refTopK = (rows: number[][], k: number) =>
  rows.map((r) => {
    const kth = [...r].sort((a, b) => b - a)[Math.min(k, r.length) - 1];
    return r.map((s) => (s < kth ? -Infinity : s));
  });
/** HF TopPLogitsWarper; also returns the cumulative probabilities to check they are far from the cut. */
function refTopP(rows: number[][], p: number, minKeep = 1): { out: number[][]; margin: number } {
  let margin = Infinity;
  const out = rows.map((r) => {
    const order = r.map((_, i) => i).sort((a, b) => r[a] - r[b] || a - b); // ascending, stable
    const m = Math.max(...r);
    const e = order.map((i) => Math.exp(r[i] - m));
    const total = e.reduce((a, b) => a + b, 0);
    let cum = 0;
    const res = [...r];
    order.forEach((i, k) => {
      cum += e[k] / total;
      if (Number.isFinite(r[i])) margin = Math.min(margin, Math.abs(cum - (1 - p)));
      if (cum <= f(1 - p) && k < r.length - minKeep) res[i] = -Infinity;
    });
    return res;
  });
  return { out, margin };
}

function expectScores(got: ArrayLike<number>, want: number[][], exact: boolean, what: string): void {
  const flat = want.flat();
  expect(got.length, what).toBe(flat.length);
  flat.forEach((w, i) => {
    const g = got[i];
    if (!Number.isFinite(w) || exact) expect(g, `${what}[${i}]`).toBe(w);
    else expect(Math.abs(g - w), `${what}[${i}]: ${g} vs ${w}`).toBeLessThanOrEqual(2.5e-7 * Math.abs(w) + 1e-30);
  });
}

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('logits processors on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  // The cpu backend rounds every op once, like torch; WGSL allows a little error in division.
  const exact = name === 'cpu';
  describe.skipIf(!backend)(name, () => {
    const scores = (rows = SCORES) => fromHost(Float32Array.from(rows.flat()), [rows.length, rows[0].length], 'float32', backend);
    async function run(p: LogitsProcessor, ctx = CTX, rows = SCORES): Promise<ArrayLike<number>> {
      const before = memory().tensors;
      const x = scores(rows);
      const y = scope(() => p(x, ctx));
      const out = await y.data();
      if (y !== x) y.dispose();
      x.dispose();
      expect(memory().tensors).toBe(before);
      return out;
    }

    it('repetitionPenalty: s < 0 ? s * p : s / p on the ids already present', async () => {
      for (const p of [2, 1.3, 0.7]) expectScores(await run(repetitionPenalty(p)), refRepetition(SCORES, CTX, p), exact || p === 2, `penalty ${p}`);
    });

    it('temperature divides (true division, not * 1/t)', async () => {
      for (const t of [0.7, 1.3, 3]) expectScores(await run(temperature(t)), refTemperature(SCORES, t), exact, `temperature ${t}`);
      expectScores(await run(temperature(1)), SCORES, true, 'temperature 1');
    });

    it('topK keeps the k highest and their ties', async () => {
      for (const k of [1, 2, 3, 8, 20]) expectScores(await run(topK(k)), refTopK(SCORES, k), true, `topK ${k}`);
      // Row 0 ties at 2.25 (indices 2 and 5): k=1 keeps both, as HF's `scores < kth` does.
      expect(refTopK(SCORES, 1)[0].filter(Number.isFinite)).toEqual([2.25, 2.25]);
      expectScores(await run(topK(1, { minTokensToKeep: 3 })), refTopK(SCORES, 3), true, 'topK minTokensToKeep');
    });

    it('topP removes the tail whose cumulative probability is <= 1 - p', async () => {
      for (const p of [0.3, 0.55, 0.8, 0.95]) {
        const { out, margin } = refTopP(SCORES, p);
        expect(margin, `top_p ${p} lies too close to a cumulative probability`).toBeGreaterThan(1e-4);
        expectScores(await run(topP(p)), out, true, `topP ${p}`);
      }
      // p = 0 keeps only the most likely token (minTokensToKeep 1); ties break by position.
      const { out } = refTopP(SCORES, 0);
      expectScores(await run(topP(0)), out, true, 'topP 0');
      expect(out[0].filter(Number.isFinite)).toEqual([2.25]);
      expectScores(await run(topP(0.3, { minTokensToKeep: 3 })), refTopP(SCORES, 0.3, 3).out, true, 'topP minTokensToKeep');
      expectScores(await run(topP(1)), SCORES, true, 'topP 1');
    });

    it('temperature, topK, topP compose in HF order', async () => {
      const t = refTemperature(SCORES, 0.8);
      const k = refTopK(t, 5);
      const { out } = refTopP(k, 0.7);
      const got = await run(composeProcessors(temperature(0.8), topK(5), topP(0.7)));
      expectScores(got, out, exact, 'temperature+topK+topP');
    });

    it('noRepeatNgram bans tokens that would repeat an n-gram', async () => {
      // Row 0 [0,1,1,3,1]: bigrams after 1 are (1,1), (1,3); row 1 [5,2,2,5,7]: 7 starts none.
      const want = SCORES.map((r) => [...r]);
      want[0][1] = want[0][3] = -Infinity;
      expectScores(await run(noRepeatNgram(2)), want, true, 'noRepeatNgram 2');
      expect(bannedNgramTokens([5, 2, 2, 5, 2], 3)).toEqual([2]);
      expect(bannedNgramTokens([1, 2], 4)).toEqual([]);
      expectScores(await run(noRepeatNgram(6)), SCORES, true, 'noRepeatNgram longer than the ids');
    });

    it('badWords bans single tokens always and longer sequences after their prefix', async () => {
      const want = SCORES.map((r) => [...r]);
      want[0][4] = want[1][4] = -Infinity; // [4]
      want[0][2] = -Infinity; // [1, 2]: row 0 ends with 1
      want[1][6] = -Infinity; // [5, 7, 6]: row 1 ends with 5, 7
      expectScores(await run(badWords([[4], [1, 2], [5, 7, 6], [3, 3]])), want, true, 'badWords');
    });

    it('minNewTokens masks eos until enough tokens; forcedEos forces it on the last step', async () => {
      const masked = SCORES.map((r) => r.map((s, v) => (v === 4 || v === 6 ? -Infinity : s)));
      expectScores(await run(minNewTokens(2, [4, 6])), masked, true, 'minNewTokens before');
      expectScores(await run(minNewTokens(2, [4, 6]), { ...CTX, newTokens: 2 }), SCORES, true, 'minNewTokens after');
      const forced = SCORES.map((r) => r.map((_, v) => (v === 4 ? 0 : -Infinity)));
      expectScores(await run(forcedEos(3, 4), { ...CTX, newTokens: 2 }), forced, true, 'forcedEos last step');
      expectScores(await run(forcedEos(3, 4), { ...CTX, newTokens: 1 }), SCORES, true, 'forcedEos earlier');
    });

    it('rejects ids outside the vocabulary and bad arguments', () => {
      const x: Tensor = scores();
      expect(() => repetitionPenalty(1.2)(x, { inputIds: [[8], [0]], newTokens: 0 })).toThrow(/token id 8 \(row 0\) is outside the vocabulary \[0, 8\)/);
      expect(() => repetitionPenalty(1.2)(x, { inputIds: [[1]], newTokens: 0 })).toThrow(GenerationError);
      x.dispose();
      expect(() => topK(0)).toThrow(/positive integer/);
      expect(() => topP(1.5)).toThrow(/\[0, 1\]/);
      expect(() => temperature(0)).toThrow(/positive/);
      expect(() => minNewTokens(1, [])).toThrow(/eosTokenId/);
    });
  });
});
