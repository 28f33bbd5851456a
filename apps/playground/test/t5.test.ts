// End-to-end test of the T5 panel in the BUILT playground (dist/, ?model=t5), in headless Chromium on
// WebGPU (SwiftShader) and with WebGPU disabled (the cpu fallback): the encoder ids, the generated ids and
// text (greedy, streamed token by token; beam search; seeded sampling) and a row of the cross-attention
// view shown in the page must be what @lm/t5 computes in this Node process (cpu backend) from the same
// files. Skips like browser.test.ts when Chromium or a WebGPU adapter is missing, unless LM_REQUIRE_WEBGPU=1.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExtraIdsTokenizer, T5ForConditionalGeneration, T5Tokenizer, type T5GenerateOptions } from '@lm/t5';
import { init, noGrad, tensor } from '@lm/tensor-gpu';
import type { Page } from 'playwright-core';
import { beforeAll, expect, it } from 'vitest';
import { artifacts, BACKENDS, bundledModel, describePanel } from './panel-suite.js';

const modelDir = bundledModel('t5');

const TEXT = 'the day after monday <extra_id_0> .';
const TOLERANCE = 1e-4;

interface Expected {
  inputIds: number[];
  greedy: number[];
  /** The text after each greedy token, as the page streams it. */
  prefixes: string[];
  beam: number[];
  sample: number[];
  /** Cross-attention weights [encoder] of `pick` for the greedy answer, and of the mean over heads. */
  row: number[];
  meanRow: number[];
  pick: { layer: number; head: number; row: number };
}

/** Node's answers on the cpu backend from the files the page loads. */
async function reference(): Promise<Expected & { decode(ids: number[]): string }> {
  const backend = await init('cpu');
  const model = await T5ForConditionalGeneration.fromPretrained(modelDir, { backend });
  model.eval();
  const tokenizerConfig = JSON.parse(readFileSync(join(modelDir, 'tokenizer_config.json'), 'utf8')) as { do_lower_case?: boolean };
  // The bundled model's tokenizer: spiece.model (T5Tokenizer); a vocab.txt folder gives ExtraIdsTokenizer, as in the page.
  const tokenizer = existsSync(join(modelDir, 'spiece.model'))
    ? await T5Tokenizer.fromPretrained(modelDir)
    : ExtraIdsTokenizer.fromVocab(readFileSync(join(modelDir, 'vocab.txt'), 'utf8'), { lowercase: tokenizerConfig.do_lower_case !== false });
  const eos = tokenizer.specialTokenIds.eos!;
  const pad = tokenizer.specialTokenIds.pad!;
  const start = model.config.decoderStartTokenId ?? pad;
  const decode = (ids: number[]) => tokenizer.decode(ids.filter((id) => id !== eos && id !== pad), { skipSpecialTokens: false }).trim();
  const inputIds = tokenizer.encode(TEXT).inputIds;
  const ids = tensor([inputIds], { dtype: 'int32', backend });
  const run = async (options: T5GenerateOptions) => {
    const out = (await model.generate(ids, { maxNewTokens: 16, decoderStartTokenId: start, eosTokenId: eos, ...options })).sequences[0].slice(1);
    const end = out.indexOf(eos);
    return end >= 0 ? out.slice(0, end + 1) : out;
  };
  const greedy = await run({});
  const beam = await run({ numBeams: 3, earlyStopping: true });
  const sample = await run({ doSample: true, temperature: 0.8, topK: 5, topP: 0.9, seed: 7 });
  const layer = Math.min(1, model.config.numDecoderLayers - 1);
  const rowIndex = Math.min(1, greedy.length - 1);
  const cross = noGrad(() => model.forward({ inputIds: ids, decoderInputIds: tensor([[start, ...greedy.slice(0, -1)]], { dtype: 'int32', backend }), outputAttentions: true, useCache: false }).crossAttentions!);
  const att = await cross[layer].data(); // [1, heads, decoder, encoder]
  const enc = inputIds.length;
  const rowOf = (head: number) => Array.from(att.subarray((head * greedy.length + rowIndex) * enc, (head * greedy.length + rowIndex + 1) * enc));
  // The head whose row is spread widest (highest entropy), so the comparison is not of a one-hot row.
  const entropy = (p: number[]) => -p.reduce((a, x) => a + (x > 0 ? x * Math.log(x) : 0), 0);
  const heads = Array.from({ length: model.config.numHeads }, (_, k) => k);
  const head = heads.reduce((best, k) => (entropy(rowOf(k)) > entropy(rowOf(best)) ? k : best), 0);
  const row = rowOf(head);
  const meanRow = row.map((_, j) => heads.reduce((a, k) => a + rowOf(k)[j], 0) / heads.length);
  const pick = { layer, head, row: rowIndex };
  ids.dispose();
  model.dispose();
  return { inputIds, greedy, prefixes: greedy.map((_, i) => decode(greedy.slice(0, i + 1))), beam, sample, row, meanRow, pick, decode };
}

async function waitDone(page: Page): Promise<void> {
  await page.waitForFunction(
    () => {
      const out = document.querySelector<HTMLElement>('[data-testid=t5-output]')?.dataset.state;
      const att = document.querySelector<HTMLElement>('[data-testid=t5-cross-host]')?.dataset.state;
      return out === 'error' || att === 'error' || (out === 'done' && att === 'done');
    },
    undefined,
    { timeout: 120_000 },
  );
  const state = await page.getAttribute('[data-testid=t5-output]', 'data-state');
  if (state !== 'done') throw new Error(`generation failed in the page: ${await page.textContent('[data-testid=t5-output]')}`);
  expect(await page.getAttribute('[data-testid=t5-cross-host]', 'data-state'), (await page.textContent('[data-testid=t5-cross-host]')) ?? '').toBe('done');
}

const shownIds = async (page: Page, attr: 'data-input-ids' | 'data-tokens') => ((await page.getAttribute('[data-testid=t5-output]', attr)) ?? '').split(',').filter(Boolean).map(Number);

async function generateWith(page: Page, mode: string, fields: Record<string, string>): Promise<number[]> {
  await page.selectOption('[data-testid=t5-mode]', mode);
  for (const [testid, value] of Object.entries(fields)) await page.fill(`[data-testid=${testid}]`, value);
  await page.click('[data-testid=t5-run]');
  await page.waitForFunction(() => document.querySelector<HTMLElement>('[data-testid=t5-output]')?.dataset.state === 'running', undefined, { timeout: 10_000 }).catch(() => undefined);
  await waitDone(page);
  return shownIds(page, 'data-tokens');
}

describePanel('t5', 'the T5 panel in headless Chromium', 't5', (suite) => {
  let expected: Awaited<ReturnType<typeof reference>>;

  beforeAll(async () => {
    expected = await reference();
    // The bundled tokenizer is the SentencePiece one: spm_encode --output_format=id of "the day after monday"
    // and "." gives 4 10 21 44 and 3; <extra_id_0> is 299 (200 pieces + 100 sentinels, counting down), </s> 1.
    expect(expected.inputIds).toEqual([4, 10, 21, 44, 299, 3, 1]);
  });

  for (const backend of BACKENDS) {
    it(`generates and shows cross-attention as Node does (${backend.label})`, async (ctx) => {
      // Record every text the streamed answer shows (each update replaces the span's text node).
      const recordStream = (page: Page) =>
        page.addInitScript(() => {
          const seen: string[] = [];
          (window as unknown as { __t5Stream: string[] }).__t5Stream = seen;
          new MutationObserver((records) => {
            for (const r of records) for (const n of r.addedNodes) if (n.nodeType === Node.TEXT_NODE && (n.parentElement?.dataset.testid === 't5-generated')) seen.push((n as Text).data);
          }).observe(document, { childList: true, subtree: true });
        });
      const browser = await suite.open(ctx, backend, `model=t5&text=${encodeURIComponent(TEXT)}`, { height: 1400, beforeGoto: recordStream });
      const { page, log } = browser;
      try {
        // Greedy on mount: the same encoder ids, generated ids and text as Node, streamed token by token.
        await waitDone(page);
        const context = log.join('\n');
        expect(await shownIds(page, 'data-input-ids'), context).toEqual(expected.inputIds);
        expect(await shownIds(page, 'data-tokens'), context).toEqual(expected.greedy);
        expect(await page.textContent('[data-testid=t5-generated]')).toBe(expected.decode(expected.greedy));
        const streamed = await page.evaluate(() => (window as unknown as { __t5Stream: string[] }).__t5Stream);
        // One update per token, in order: the decoded prefix after each token (then the final text again).
        expect(streamed.slice(0, expected.prefixes.length), context).toEqual(expected.prefixes);

        // The cross-attention row of one layer and head, selected in the view, against Node's weights.
        await page.selectOption('[data-testid=t5-cross-layer]', String(expected.pick.layer));
        await page.selectOption('[data-testid=t5-cross-head]', String(expected.pick.head));
        await page.selectOption('[data-testid=t5-cross-row]', String(expected.pick.row));
        const view = await page.$eval('[data-testid=t5-cross-attention]', (el) => ({ ...(el as HTMLElement).dataset }));
        expect(view).toMatchObject({ layer: String(expected.pick.layer), head: String(expected.pick.head), row: String(expected.pick.row) });
        expect(await page.$$eval('[data-testid=t5-cross-attention] canvas.heatmap', (els) => els.length)).toBe(1);
        const row = await page.$$eval('[data-testid=t5-cross-row-values] td', (tds) => tds.map((td) => Number((td as HTMLElement).dataset.value)));
        expect(row.length).toBe(expected.row.length);
        row.forEach((v, i) => expect(Math.abs(v - expected.row[i]), `encoder token ${i}: page ${v}, node ${expected.row[i]}`).toBeLessThan(TOLERANCE));
        expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-4); // a softmax row
        // The mean over heads, the view's default.
        await page.selectOption('[data-testid=t5-cross-head]', '-1');
        const mean = await page.$$eval('[data-testid=t5-cross-row-values] td', (tds) => tds.map((td) => Number((td as HTMLElement).dataset.value)));
        mean.forEach((v, i) => expect(Math.abs(v - expected.meanRow[i]), `mean of heads, encoder token ${i}`).toBeLessThan(TOLERANCE));
        await page.selectOption('[data-testid=t5-cross-head]', String(expected.pick.head));
        await page.screenshot({ path: join(artifacts, `playground-t5-${backend.name}.png`), fullPage: true });

        // Beam search and seeded sampling give Node's ids.
        expect(await generateWith(page, 'beam', { 't5-beams': '3' }), log.join('\n')).toEqual(expected.beam);
        expect(await generateWith(page, 'sample', { 't5-temperature': '0.8', 't5-top-k': '5', 't5-top-p': '0.9', 't5-seed': '7' }), log.join('\n')).toEqual(expected.sample);
        expect(log.filter((l) => l.startsWith('[pageerror]')), log.join('\n')).toEqual([]);
      } finally {
        await browser.close();
      }
    });
  }
});
