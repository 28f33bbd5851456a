import { afterAll, describe, expect, it } from 'vitest';
import { Generator, fromHost, memory, type Backend, type Tensor } from '@lm/tensor-gpu';
import { testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import type { EarlyStopping } from './beam-search.js';
import { GenerationError } from './errors.js';
import { generate, stepWithoutCache, stream, type GenerateOptions, type StreamEvent } from './generate.js';
import type { KVCache } from './cache.js';
import { fakeForward, fakeModel, hostLogits, logSoftmax, randomTable, table, type FakeModel, type Table } from './testing.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

const f = Math.fround;
const NEG = -1e9;

// ---- host references --------------------------------------------------------------------------

/** Greedy search from HF's `_sample` loop (do_sample=False): eos / stop sequences end a row, pads after. */
function refGreedy(t: Table, prompts: number[][], o: { maxNew: number; eos?: number[]; pad?: number; minNew?: number; stops?: number[][] }): number[][] {
  const rows = prompts.map((p) => [...p]);
  const running = rows.map(() => true);
  for (let step = 0; step < o.maxNew && running.some(Boolean); step++) {
    rows.forEach((r, b) => {
      if (!running[b]) return void r.push(o.pad!);
      const logits = hostLogits(t, r).map((v, j) => (step < (o.minNew ?? 0) && o.eos?.includes(j) ? -Infinity : v));
      const tok = logits.indexOf(Math.max(...logits));
      r.push(tok);
      if (o.eos?.includes(tok) || o.stops?.some((s) => s.length <= r.length && s.every((x, i) => r[r.length - s.length + i] === x))) running[b] = false;
    });
  }
  return rows;
}

interface BeamRef {
  K: number;
  maxNew: number;
  lp: number;
  early: EarlyStopping;
  eos: number[];
  pad: number;
  nRet?: number;
}

/**
 * HF's `_beam_search` + BeamSearchScorer written out literally on the host: float32 running scores,
 * a full sort of the numBeams * vocab candidates, hypotheses scored sum / generatedLen ** lp.
 */
function refBeam(t: Table, prompts: number[][], o: BeamRef): { sequences: number[][]; scores: number[] } {
  const { K, lp } = o;
  const B = prompts.length;
  const V = t.vocab;
  const n = Math.max(2, 1 + o.eos.length) * K;
  let rows = prompts.flatMap((p) => Array.from({ length: K }, () => [...p]));
  let beamScores: number[] = rows.map((_, i) => (i % K === 0 ? 0 : NEG));
  const hyps = prompts.map(() => ({ beams: [] as { score: number; tokens: number[] }[], worst: 1e9 }));
  const done = prompts.map(() => false);
  const add = (h: (typeof hyps)[number], tokens: number[], sum: number, len: number) => {
    const score = sum / len ** lp;
    if (h.beams.length < K || score > h.worst) {
      h.beams.push({ score, tokens });
      if (h.beams.length > K) {
        const sorted = h.beams.map((x, i) => [x.score, i]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        h.beams.splice(sorted[0][1], 1);
        h.worst = sorted[1][0];
      } else h.worst = Math.min(score, h.worst);
    }
  };
  const isDone = (h: (typeof hyps)[number], best: number, len: number) => {
    if (h.beams.length < K) return false;
    if (o.early === true) return true;
    if (o.early === false) return h.worst >= best / len ** lp;
    return h.worst >= best / (lp > 0 ? o.maxNew : len) ** lp;
  };
  let generated = 0;
  for (let step = 0; step < o.maxNew; step++) {
    const logp = rows.map((r) => logSoftmax(hostLogits(t, r)).map(f));
    const next: { rows: number[][]; scores: number[] } = { rows: [], scores: [] };
    for (let b = 0; b < B; b++) {
      if (done[b]) {
        for (let k = 0; k < K; k++) {
          next.rows.push([...rows[b * K], o.pad]);
          next.scores.push(0);
        }
        continue;
      }
      const cands: { score: number; beam: number; token: number; flat: number }[] = [];
      for (let k = 0; k < K; k++) for (let v = 0; v < V; v++) cands.push({ score: f(logp[b * K + k][v] + beamScores[b * K + k]), beam: k, token: v, flat: k * V + v });
      cands.sort((x, y) => y.score - x.score || x.flat - y.flat);
      let filled = 0;
      for (let rank = 0; rank < n && filled < K; rank++) {
        const c = cands[rank];
        const row = rows[b * K + c.beam];
        if (o.eos.includes(c.token)) {
          if (rank >= K) continue;
          add(hyps[b], [...row, c.token], c.score, step + 1);
        } else {
          next.rows.push([...row, c.token]);
          next.scores.push(c.score);
          filled++;
        }
      }
      done[b] ||= isDone(hyps[b], cands[0].score, step + 1);
    }
    rows = next.rows;
    beamScores = next.scores;
    generated = step + 1;
    if (done.every(Boolean)) break;
  }
  const out: { sequences: number[][]; scores: number[] } = { sequences: [], scores: [] };
  hyps.forEach((h, b) => {
    if (!done[b]) for (let k = 0; k < K; k++) add(h, rows[b * K + k], beamScores[b * K + k], generated);
    const sorted = h.beams.map((x, i) => [x, i] as const).sort((x, y) => x[0].score - y[0].score || x[1] - y[1]);
    for (let j = 0; j < (o.nRet ?? 1); j++) {
      out.sequences.push(sorted[sorted.length - 1 - j][0].tokens);
      out.scores.push(sorted[sorted.length - 1 - j][0].score);
    }
  });
  const len = Math.max(...out.sequences.map((s) => s.length));
  out.sequences = out.sequences.map((s) => [...s, ...new Array<number>(len - s.length).fill(o.pad)]);
  return out;
}

/** Every finished continuation (ending in eos, or maxNew long) with its length-penalized score, best first. */
function bruteForce(t: Table, prompt: number[], maxNew: number, eos: number, lp: number): { tokens: number[]; sum: number; score: number }[] {
  const out: { tokens: number[]; sum: number; score: number }[] = [];
  const walk = (ids: number[], sum: number, len: number) => {
    const logp = logSoftmax(hostLogits(t, ids));
    for (let v = 0; v < t.vocab; v++) {
      const s = sum + logp[v];
      const next = [...ids, v];
      if (v === eos || len + 1 === maxNew) out.push({ tokens: next, sum: s, score: s / (len + 1) ** lp });
      else walk(next, s, len + 1);
    }
  };
  walk(prompt, 0, 0);
  return out.sort((a, b) => b.score - a.score);
}

const totalLogprob = (t: Table, seq: number[], promptLen: number) => {
  let s = 0;
  for (let i = promptLen; i < seq.length; i++) s += logSoftmax(hostLogits(t, seq.slice(0, i)))[seq[i]];
  return s;
};

// A table where greedy is suboptimal: after 0, token 1 (p .5) leads to a flat distribution, token 2
// (p .45) to eos with p .95. Vocabulary 4, eos 3.
const l = Math.log;
const TRAP = table([
  [l(0.05), l(0.5), l(0.45), l(0.05)],
  [l(0.25), l(0.25), l(0.25), l(0.25)],
  [l(0.05 / 3), l(0.05 / 3), l(0.05 / 3), l(0.95)],
  [l(0.25), l(0.25), l(0.25), l(0.25)],
]);

// A chain for eos/stop handling (vocab 5, eos 4): 0 -> 1 -> 2 -> eos; 3 -> 3 -> ...; after 2 the
// runner-up is 0.
const CHAIN = table([
  [0, 3, 1, 0, -1],
  [0, 0, 3, 1, 0],
  [1, -1, -1, -1, 3],
  [0, 0, 0, 3, 0],
  [1, 0, 0, 0, 0],
]);

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('generate on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const ids = (rows: number[][]): Tensor => fromHost(Int32Array.from(rows.flat()), [rows.length, rows[0].length], 'int32', backend);

    /** Runs fn with a fresh fake model and input ids, then checks every tensor was freed. */
    async function withModel<T>(t: Table, prompts: number[][], fn: (m: FakeModel, input: Tensor) => Promise<T>): Promise<T> {
      const before = memory().tensors;
      const m = fakeModel(t, backend);
      const input = ids(prompts);
      const baseline = memory().tensors;
      try {
        const out = await fn(m, input);
        expect(memory().tensors, 'tensors left after generation').toBe(baseline);
        return out;
      } finally {
        input.dispose();
        m.dispose();
        expect(memory().tensors).toBe(before);
      }
    }

    it('greedy follows the argmax path, stops rows at eos and pads them; the cache grows by one per step', async () => {
      const prompts = [
        [1, 0],
        [1, 3],
      ];
      await withModel(CHAIN, prompts, async (m, input) => {
        const out = await generate(m.step, input, { maxNewTokens: 5, eosTokenId: 4, padTokenId: 0 });
        expect(out.sequences).toEqual([
          [1, 0, 1, 2, 4, 0, 0],
          [1, 3, 3, 3, 3, 3, 3],
        ]);
        expect(out.sequences).toEqual(refGreedy(CHAIN, prompts, { maxNew: 5, eos: [4], pad: 0 }));
        expect(out.finishReasons).toEqual(['eos', 'length']);
        expect(m.calls).toEqual([
          { rows: 2, newLen: 2, pastLen: 0 },
          ...[2, 3, 4, 5].map((pastLen) => ({ rows: 2, newLen: 1, pastLen })),
        ]);
      });
    });

    it('greedy on a random table matches the host reference; stops when every row has ended', async () => {
      const t = table(randomTable(7, 11), randomTable(7, 12));
      const prompts = [
        [0, 1, 2],
        [6, 5, 4],
        [3, 3, 3],
      ];
      await withModel(t, prompts, async (m, input) => {
        const out = await generate(m.step, input, { maxNewTokens: 9, eosTokenId: [5, 6], padTokenId: 2 });
        expect(out.sequences).toEqual(refGreedy(t, prompts, { maxNew: 9, eos: [5, 6], pad: 2 }));
      });
      await withModel(CHAIN, [[0]], async (m, input) => {
        const out = await generate(m.step, input, { maxNewTokens: 10, eosTokenId: 4 });
        expect(out.sequences).toEqual([[0, 1, 2, 4]]);
        expect(m.calls.length).toBe(3);
      });
    });

    it('minNewTokens delays eos; stopSequences end rows (stop tokens too); no eos runs to maxNewTokens', async () => {
      const prompts = [
        [1, 0],
        [1, 3],
      ];
      await withModel(CHAIN, prompts, async (m, input) => {
        const out = await generate(m.step, input, { maxNewTokens: 6, eosTokenId: 4, padTokenId: 0, minNewTokens: 4 });
        expect(out.sequences).toEqual(refGreedy(CHAIN, prompts, { maxNew: 6, eos: [4], pad: 0, minNew: 4 }));
        expect(out.sequences[0].slice(2, 6)).not.toContain(4);

        const stopped = await generate(m.step, input, { maxNewTokens: 6, eosTokenId: 4, padTokenId: 0, stopSequences: [[3, 3, 3]] });
        expect(stopped.sequences).toEqual([
          [1, 0, 1, 2, 4],
          [1, 3, 3, 3, 0],
        ]);
        expect(stopped.finishReasons).toEqual(['eos', 'stop']);

        const stopToken = await generate(m.step, input, { maxNewTokens: 6, padTokenId: 0, stopSequences: [[2]] });
        expect(stopToken.sequences[0]).toEqual([1, 0, 1, 2, 0, 0, 0, 0]);
        expect(stopToken.finishReasons).toEqual(['stop', 'length']);

        const noEos = await generate(m.step, input, { maxNewTokens: 4 });
        expect(noEos.sequences[0]).toEqual([1, 0, 1, 2, 4, 0]);
        expect(noEos.sequences).toEqual(refGreedy(CHAIN, prompts, { maxNew: 4 }));
      });
    });

    it('repetition penalty and no-repeat n-grams change the greedy path as HF would', async () => {
      // After 3 the scores are [0, 0, 1, 3, 0]: 3 wins until a penalty of 4 on the seen ids 1 and 3
      // turns its 3 into 0.75 (s > 0 is divided), so 2 wins.
      const rep = table([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, 3, 0], [0, 0, 0, 0, 0]]);
      await withModel(rep, [[1, 3]], async (m, input) => {
        expect((await generate(m.step, input, { maxNewTokens: 3 })).sequences[0]).toEqual([1, 3, 3, 3, 3]);
        const out = await generate(m.step, input, { maxNewTokens: 3, repetitionPenalty: 4, outputScores: true });
        expect(out.scores![0]).toEqual(Float32Array.from([0, 0, 1, 0.75, 0]));
        expect(out.sequences[0]).toEqual([1, 3, 2, 0, 0]);
      });
      await withModel(CHAIN, [[1, 3]], async (m, input) => {
        // [1,3] -> 3; then the bigram (3,3) exists, so 3 is banned after 3 and the first max of [0,0,0,-inf,0] is 0; then 0 -> 1.
        const ngram = await generate(m.step, input, { maxNewTokens: 3, noRepeatNgramSize: 2, eosTokenId: 4 });
        expect(ngram.sequences[0]).toEqual([1, 3, 3, 0, 1]);
      });
    });

    it('stream yields the tokens generate returns, row by row, as each step is read', async () => {
      const t = table(randomTable(6, 21), randomTable(6, 22));
      const prompts = [
        [0, 1],
        [2, 3],
        [4, 5],
      ];
      await withModel(t, prompts, async (m, input) => {
        const opts: GenerateOptions<KVCache> = { maxNewTokens: 8, eosTokenId: 4, padTokenId: 0 };
        const out = await generate(m.step, input, opts);
        const events: StreamEvent[] = [];
        for await (const ev of stream(m.step, input, opts)) events.push(ev);
        prompts.forEach((_, b) => {
          const mine = events.filter((e) => e.batchIndex === b);
          const generated = out.sequences[b].slice(2, 2 + mine.length);
          expect(mine.map((e) => e.token)).toEqual(generated);
          expect(mine.map((e) => e.step)).toEqual(mine.map((_, i) => i));
          expect(mine.slice(0, -1).every((e) => !e.done)).toBe(true);
          expect(mine.at(-1)!.done).toBe(true);
          expect(mine.at(-1)!.finishReason).toBe(out.finishReasons![b]);
          // After the last event the row is only padding.
          expect(out.sequences[b].slice(2 + mine.length).every((x) => x === 0)).toBe(true);
        });
        // Events arrive step by step: every event of step s before any of step s + 1.
        expect(events.map((e) => e.step)).toEqual([...events.map((e) => e.step)].sort((a, b) => a - b));
      });
    });

    it('stream frees the cache when the consumer breaks early, and stops calling the model', async () => {
      await withModel(CHAIN, [[1, 3]], async (m, input) => {
        const got: number[] = [];
        for await (const ev of stream(m.step, input, { maxNewTokens: 50 })) {
          got.push(ev.token);
          if (got.length === 3) break;
        }
        expect(got).toEqual([3, 3, 3]);
        expect(m.calls.length).toBe(3);
      });
      // An error thrown by the consumer frees it too.
      await withModel(CHAIN, [[1, 3]], async (m, input) => {
        await expect(
          (async () => {
            for await (const ev of stream(m.step, input, { maxNewTokens: 50 })) if (ev.step === 1) throw new Error('consumer');
          })(),
        ).rejects.toThrow('consumer');
      });
    });

    it('seeded sampling is reproducible; a generator is advanced by its draws', async () => {
      const t = table(randomTable(8, 31, 1), randomTable(8, 32, 1));
      const prompts = Array.from({ length: 16 }, (_, i) => [i % 8, (i * 3) % 8]);
      await withModel(t, prompts, async (m, input) => {
        const opts: GenerateOptions<KVCache> = { maxNewTokens: 6, doSample: true, topK: 0 };
        const a = await generate(m.step, input, { ...opts, seed: 7 });
        const b = await generate(m.step, input, { ...opts, seed: 7 });
        const c = await generate(m.step, input, { ...opts, seed: 8 });
        expect(a.sequences).toEqual(b.sequences);
        expect(c.sequences).not.toEqual(a.sequences);
        const g = new Generator(7);
        const d = await generate(m.step, input, { ...opts, generator: g });
        expect(d.sequences).toEqual(a.sequences);
        expect(g.offset).toBe(6 * 16 * 8); // one uniform per row and vocabulary entry per step
        const e = await generate(m.step, input, { ...opts, generator: g });
        expect(e.sequences).not.toEqual(a.sequences);
        // stream draws the same tokens.
        const streamed = new Map<number, number[]>();
        for await (const ev of stream(m.step, input, { ...opts, seed: 7 })) streamed.set(ev.batchIndex, [...(streamed.get(ev.batchIndex) ?? []), ev.token]);
        prompts.forEach((_, r) => expect(streamed.get(r)).toEqual(a.sequences[r].slice(2)));
      });
    });

    it('sampled frequencies follow the processed distribution (temperature, top-k, top-p)', async () => {
      const t = table([
        [0.3, 1.2, -0.4, 0.9, 0.0, -1.5],
        ...Array.from({ length: 5 }, () => [0, 0, 0, 0, 0, 0]),
      ]);
      const N = 4000;
      const prompts = Array.from({ length: N }, () => [0]);
      const check = async (opts: GenerateOptions<KVCache>, want: number[]) => {
        await withModel(t, prompts, async (m, input) => {
          const out = await generate(m.step, input, { maxNewTokens: 1, doSample: true, seed: 123, ...opts });
          const counts = new Array<number>(6).fill(0);
          for (const s of out.sequences) counts[s[1]]++;
          counts.forEach((c, v) => {
            if (want[v] === 0) expect(c, `token ${v} was filtered out`).toBe(0);
            // 4.5 standard deviations of a binomial frequency.
            else expect(Math.abs(c / N - want[v]), `token ${v}: ${c / N} vs ${want[v]}`).toBeLessThan(4.5 * Math.sqrt((want[v] * (1 - want[v])) / N));
          });
        });
      };
      const softmax = (x: number[]) => logSoftmax(x).map(Math.exp);
      const row = t.a[0];
      await check({ topK: 0 }, softmax(row));
      await check({ topK: 0, temperature: 0.5 }, softmax(row.map((x) => x / 0.5)));
      // top-k 3 keeps 1.2, 0.9, 0.3.
      await check({ topK: 3 }, softmax(row.map((x) => (x >= 0.3 ? x : -Infinity))));
      // top-p 0.6: the nucleus is {1, 3} (p .368 + .273 >= .6; the rest, cumulative .359, is <= .4).
      const p = softmax(row);
      const keep = [1, 3];
      expect(p[1]).toBeLessThan(0.6);
      expect(p[1] + p[3]).toBeGreaterThan(0.61);
      await check({ topK: 0, topP: 0.6 }, softmax(row.map((x, v) => (keep.includes(v) ? x : -Infinity))));
    });

    it('beam search beats greedy where greedy is suboptimal', async () => {
      await withModel(TRAP, [[0]], async (m, input) => {
        const greedy = await generate(m.step, input, { maxNewTokens: 2, eosTokenId: 3 });
        expect(greedy.sequences[0]).toEqual([0, 1, 0]);
        const beam = await generate(m.step, input, { maxNewTokens: 2, eosTokenId: 3, numBeams: 2 });
        expect(beam.sequences[0]).toEqual([0, 2, 3]);
        const g = totalLogprob(TRAP, greedy.sequences[0], 1);
        const b = totalLogprob(TRAP, beam.sequences[0], 1);
        expect(b).toBeGreaterThan(g);
        expect(beam.sequenceScores![0]).toBeCloseTo(b / 2, 5);
      });
    });

    it('exhaustive beam search returns the brute-force best under each length penalty', async () => {
      // Vocabulary 4 (eos 3), 3 new tokens: 36 beams hold every live prefix, so with earlyStopping
      // 'never' the result is the best of all 40 finished continuations.
      const t = table(randomTable(4, 41, 1.5), randomTable(4, 42, 1.5));
      const prompts = [
        [0, 1],
        [2, 2],
      ];
      for (const lp of [1, 0, 2, -0.5]) {
        await withModel(t, prompts, async (m, input) => {
          const out = await generate(m.step, input, { maxNewTokens: 3, eosTokenId: 3, padTokenId: 0, numBeams: 36, lengthPenalty: lp, earlyStopping: 'never', numReturnSequences: 3 });
          prompts.forEach((p, b) => {
            const all = bruteForce(t, p, 3, 3, lp);
            expect(all.length).toBe(1 + 3 + 36);
            expect(all[2].score - all[3].score, 'brute-force ranks too close to compare').toBeGreaterThan(1e-4);
            for (let j = 0; j < 3; j++) {
              const seq = out.sequences[b * 3 + j];
              expect(seq.slice(0, all[j].tokens.length), `lp ${lp} item ${b} rank ${j}`).toEqual(all[j].tokens);
              expect(out.sequenceScores![b * 3 + j]).toBeCloseTo(all[j].score, 4);
            }
          });
          // The first call ran on the batch rows; then one row per beam, one new token each.
          expect(m.calls[0]).toEqual({ rows: 2, newLen: 2, pastLen: 0 });
          expect(m.calls.slice(1)).toEqual([2, 3].map((pastLen) => ({ rows: 72, newLen: 1, pastLen })));
        });
      }
    });

    it('beam search matches HF BeamSearchScorer for early stopping true / false / never', async () => {
      const t = table(randomTable(6, 51, 2), randomTable(6, 52, 2));
      const prompts = [
        [0, 1],
        [4, 2],
        [3, 3],
      ];
      const cases: BeamRef[] = [
        { K: 2, maxNew: 6, lp: 1, early: false, eos: [5], pad: 0 },
        { K: 3, maxNew: 6, lp: 1, early: true, eos: [5], pad: 0, nRet: 2 },
        { K: 3, maxNew: 5, lp: 0.5, early: 'never', eos: [5], pad: 0, nRet: 3 },
        { K: 2, maxNew: 6, lp: -1, early: false, eos: [4, 5], pad: 1 },
        { K: 4, maxNew: 4, lp: 2, early: true, eos: [1], pad: 0 },
      ];
      for (const c of cases) {
        const want = refBeam(t, prompts, c);
        await withModel(t, prompts, async (m, input) => {
          const out = await generate(m.step, input, {
            maxNewTokens: c.maxNew,
            numBeams: c.K,
            lengthPenalty: c.lp,
            earlyStopping: c.early,
            eosTokenId: c.eos,
            padTokenId: c.pad,
            numReturnSequences: c.nRet ?? 1,
          });
          expect(out.sequences, JSON.stringify(c)).toEqual(want.sequences);
          out.sequenceScores!.forEach((s, i) => expect(s).toBeCloseTo(want.scores[i], 4));
        });
      }
    });

    it("earlyStopping 'never' with a positive length penalty bounds by maxNewTokens, not the current length", async () => {
      // Found by search: here bounding by the current length would stop item 1 at [2, 3, 4] too early.
      const a = randomTable(5, 10, 2).map((r) => r.map((v, j) => (j === 4 ? v - 1 : v)));
      const t = table(a, randomTable(5, 1010, 2));
      const prompts = [
        [0, 1],
        [2, 3],
      ];
      const c: BeamRef = { K: 2, maxNew: 6, lp: 1, early: 'never', eos: [4], pad: 0 };
      const want = refBeam(t, prompts, c);
      expect(want.sequences[1]).toEqual([2, 3, 1, 3, 2, 3, 4, 0]);
      await withModel(t, prompts, async (m, input) => {
        const out = await generate(m.step, input, { maxNewTokens: 6, numBeams: 2, lengthPenalty: 1, earlyStopping: 'never', eosTokenId: 4, padTokenId: 0 });
        expect(out.sequences).toEqual(want.sequences);
      });
    });

    it('beam search stops early once every batch item is done', async () => {
      // CHAIN: [0] -> ... eos after 3 tokens; with earlyStopping true and 2 beams the loop ends as soon
      // as two hypotheses have finished, well before maxNewTokens.
      await withModel(CHAIN, [[0]], async (m, input) => {
        const c: BeamRef = { K: 2, maxNew: 30, lp: 1, early: true, eos: [4], pad: 0 };
        const out = await generate(m.step, input, { maxNewTokens: 30, numBeams: 2, earlyStopping: true, eosTokenId: 4 });
        expect(out.sequences).toEqual(refBeam(CHAIN, [[0]], c).sequences);
        expect(out.sequences[0]).toEqual([0, 1, 2, 4]);
        expect(m.calls.length).toBeLessThan(10);
      });
    });

    it('stepWithoutCache reruns a full-sequence forward and gives the same greedy, sampled and beam results', async () => {
      const t = table(randomTable(6, 61, 2), randomTable(6, 62, 2));
      const prompts = [
        [0, 1],
        [4, 2],
      ];
      const settings: GenerateOptions<never>[] = [
        { maxNewTokens: 5, eosTokenId: 5, padTokenId: 0 },
        { maxNewTokens: 5, eosTokenId: 5, padTokenId: 0, doSample: true, seed: 3, topK: 4 },
        { maxNewTokens: 5, eosTokenId: 5, padTokenId: 0, numBeams: 3, numReturnSequences: 2 },
      ];
      for (const opts of settings) {
        const withCache = await withModel(t, prompts, (m, input) => generate(m.step, input, opts));
        const before = memory().tensors;
        const full = fakeForward(t, backend);
        const input = ids(prompts);
        const out = await generate(stepWithoutCache(full.forward), input, opts);
        input.dispose();
        full.dispose();
        expect(memory().tensors).toBe(before);
        expect(out.sequences).toEqual(withCache.sequences);
        expect(full.calls[0]).toEqual([2, 2]);
        if (opts.numBeams) expect(full.calls[1]).toEqual([6, 3]);
      }
    });

    it('rejects bad options with GenerationError', async () => {
      await withModel(CHAIN, [[0], [1]], async (m, input) => {
        await expect(generate(m.step, input, { maxNewTokens: -1 })).rejects.toThrow(/maxNewTokens/);
        await expect(generate(m.step, input, { numBeams: 2, doSample: true })).rejects.toThrow(GenerationError);
        await expect(generate(m.step, input, { stopSequences: [[1]] })).rejects.toThrow(/padTokenId/);
        await expect(generate(m.step, input, { numBeams: 2, numReturnSequences: 3 })).rejects.toThrow(/numReturnSequences/);
        const asFloat = input.toFloat();
        await expect(generate(m.step, asFloat, {})).rejects.toThrow(/int32/);
        asFloat.dispose();
        expect(() => stream(m.step, input, { numBeams: 2 })).toThrow(/beam search cannot stream/);
        const bad = (() => ({ logits: input.toFloat().reshape(1, 2), cache: [] })) as never;
        await expect(generate(bad, input, { maxNewTokens: 2 })).rejects.toThrow(/expected \[2, vocab\]/);
        expect(m.calls.length).toBe(0);
      });
    });
  });
});
