// End-to-end test of the REALM panel in the BUILT playground (dist/, ?model=realm), in headless Chromium
// on WebGPU (SwiftShader) and with WebGPU disabled (the cpu fallback): the answer, the retrieved blocks
// and their relevance scores shown in the page must be what @lm/realm computes in this Node process
// (cpu backend) from the same files, before and after a document is dropped on the panel and indexed in
// the browser (with its progress bar); the answer span is highlighted in its block. Skips like
// browser.test.ts when Chromium or a WebGPU adapter is missing, unless LM_REQUIRE_WEBGPU=1.
import { join } from 'node:path';
import { REALM_BLOCK_TOKENS, RealmBlockIndex, RealmDocumentIndex, RealmOpenQA, type OpenQAAnswer } from '@lm/realm';
import { init } from '@lm/tensor-gpu';
import type { Page } from 'playwright-core';
import { beforeAll, expect, it } from 'vitest';
import { artifacts, BACKENDS, bundledModel, describePanel } from './panel-suite.js';

const modelDir = bundledModel('realm');

// The bundled model is trained on the trainer's made-up world (apps/trainer/data/realm); it answers this
// question of that world (nedal, from the block about pevigon).
const QUESTION = 'What is the capital of pevigon?';
const QUESTION_ANSWER = 'nedal';
// A document about a country the model never saw, in the style of its world: its names are not in the
// vocabulary, so they tokenize into letter pieces.
const AFTER_QUESTION = 'What is the capital of quenmoria?';
const DROPPED = {
  name: 'quenmoria.txt',
  text: 'Quenmoria is a country in the south. The capital of quenmoria is Valtessa. People in quenmoria speak Orvish.',
};
/** Scores may differ in float32 rounding between backends; ranks may swap only between near ties. */
const TOLERANCE = 1e-4; // float32 steps at these scores (tens) are ~4e-6

interface Shown {
  answer: string;
  blocks: { id: number; score: number; source: string; text: string }[];
  mark: string | null;
}

/** Node's answers: the bundled model from dist, its block_emb + records as the index, the dropped document added as the worker adds it. */
async function reference(): Promise<{ before: OpenQAAnswer; after: OpenQAAnswer; bundled: number; added: number }> {
  const backend = await init('cpu');
  const qa = await RealmOpenQA.fromPretrained(modelDir, { backend });
  const [rows, dim] = qa.model.block_emb.shape;
  const docs = new RealmDocumentIndex(qa.model.retriever!.blockRecords, RealmBlockIndex.fromHost(Float32Array.from(await qa.model.block_emb.data()), rows, dim, backend));
  qa.useIndex(docs);
  const before = await qa.ask(QUESTION);
  // The trained model answers its example (not a comparison of the page with Node: of the model itself).
  expect(before.answer).toBe(QUESTION_ANSWER);
  const maxBlockTokens = Math.min(REALM_BLOCK_TOKENS, Math.floor(qa.model.config.readerSeqLen / 2));
  const added = await docs.addDocuments(qa.model.embedder, qa.tokenizer, [{ title: 'quenmoria', text: DROPPED.text }], { maxBlockTokens, batchSize: 4 });
  qa.useIndex(docs);
  const after = await qa.ask(AFTER_QUESTION);
  docs.dispose();
  qa.model.dispose();
  return { before, after, bundled: rows, added: added.length };
}

async function askInPage(page: Page, question: string): Promise<Shown> {
  await page.fill('[data-testid=realm-question]', question);
  await page.click('[data-testid=realm-ask]');
  await page.waitForFunction(
    (q) => {
      const el = document.querySelector<HTMLElement>('[data-testid=realm-answer]');
      return el?.dataset.question === q && (el.dataset.state === 'done' || el.dataset.state === 'error');
    },
    question,
    { timeout: 60_000 },
  );
  const state = await page.getAttribute('[data-testid=realm-answer]', 'data-state');
  if (state !== 'done') throw new Error(`ask failed in the page: ${await page.textContent('[data-testid=realm-answer]')}`);
  return page.evaluate(() => ({
    answer: document.querySelector('[data-testid=realm-answer-text]')?.textContent ?? '',
    blocks: [...document.querySelectorAll<HTMLElement>('[data-testid=realm-answer] li.realm-block')].map((li) => ({
      id: Number(li.dataset.blockId),
      score: Number(li.dataset.score),
      source: li.dataset.source ?? '',
      text: li.querySelector('.realm-block-text')?.textContent ?? '',
    })),
    mark: document.querySelector('[data-testid=realm-answer-mark]')?.textContent ?? null,
  }));
}

function expectSame(shown: Shown, node: OpenQAAnswer, bundled: number, log: string[]): void {
  const context = `page: ${JSON.stringify(shown)}\nnode: ${JSON.stringify(node)}\n${log.join('\n')}`;
  expect(log.filter((l) => l.startsWith('[pageerror]')), context).toEqual([]);
  expect(shown.blocks.length, context).toBe(node.blocks.length);
  shown.blocks.forEach((b, rank) => {
    const same = node.blocks.find((n) => n.id === b.id);
    expect(same, `rank ${rank}: block ${b.id} is not among Node's\n${context}`).toBeDefined();
    if (b.id !== node.blocks[rank].id) expect(Math.abs(same!.score - node.blocks[rank].score), `rank ${rank}\n${context}`).toBeLessThan(TOLERANCE);
    expect(Math.abs(b.score - same!.score), `score of block ${b.id}\n${context}`).toBeLessThan(TOLERANCE);
    expect(b.text, context).toBe(same!.text);
    expect(b.source, context).toBe(b.id < bundled ? 'bundled' : 'added');
  });
  expect(shown.answer, context).toBe(node.answer || '(empty span)');
  // The answer is highlighted in its block when the decoded span appears in the block's text.
  if (node.span.charStart !== null) expect(shown.mark?.toLowerCase(), context).toBe(node.answer.toLowerCase());
  else expect(shown.mark, context).toBeNull();
}

describePanel('realm', 'the REALM panel in headless Chromium', 'realm', (suite) => {
  let expected: Awaited<ReturnType<typeof reference>>;

  beforeAll(async () => {
    expected = await reference();
  });

  for (const backend of BACKENDS) {
    it(`answers over the bundled index and a dropped document as Node does (${backend.label})`, async (ctx) => {
      const browser = await suite.open(ctx, backend, 'model=realm');
      const { page, log } = browser;
      try {
        expectSame(await askInPage(page, QUESTION), expected.before, expected.bundled, log);

        // Drop a text file on the panel's documents card: indexed in the worker with a progress bar.
        await page.evaluate(async ({ name: fileName, text }) => {
          const data = new DataTransfer();
          data.items.add(new File([text], fileName, { type: 'text/plain' }));
          document.querySelector('[data-testid=realm-drop]')!.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
        }, DROPPED);
        // Asked while the document is being indexed, the question waits for it (the worker handles requests in order).
        const during = await askInPage(page, AFTER_QUESTION);
        await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector<HTMLElement>('[data-testid=realm-index-status]')?.dataset.state ?? ''), undefined, { timeout: 60_000 });
        const status = (await page.textContent('[data-testid=realm-index-status]')) ?? '';
        expect(await page.getAttribute('[data-testid=realm-index-status]', 'data-state'), status).toBe('done');
        expect(status).toContain(`added ${expected.added} block${expected.added === 1 ? '' : 's'} in `);
        expect(status).toContain(`the index now holds ${expected.bundled + expected.added}.`);
        expect(await page.$eval('[data-testid=realm-index-progress]', (el) => (el as HTMLProgressElement).value)).toBe(1);
        // The page kept its model: the drop went to the panel, not to the model loader.
        expect(await page.evaluate(() => document.documentElement.dataset.model)).toBe('ready');

        expectSame(during, expected.after, expected.bundled, log);
        expectSame(await askInPage(page, AFTER_QUESTION), expected.after, expected.bundled, log);
        await page.screenshot({ path: join(artifacts, `playground-realm-${backend.name}.png`), fullPage: true });
      } finally {
        await browser.close();
      }
    });
  }
});
