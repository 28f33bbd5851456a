// End-to-end tests of the BUILT playground (dist/), served from 127.0.0.1 and opened in headless
// Chromium (playwright-core driving the system's /usr/bin/chromium):
//
// 1. WebGPU on SwiftShader (the flags of WEBGPU.md): the page reports the WebGPU backend, loads the
//    bundled model, and the fill-mask panel shows the tokens and probabilities that @lm/megatron-bert
//    computes in this Node process (cpu backend) from the same files; the attention and token views
//    render; the WebGPU smoke checks pass; `?backend=cpu` switches to the cpu backend and says so.
// 2. WebGPU disabled (no WebGPU flags, --disable-gpu): the page falls back to the cpu backend, shows
//    why, and gives the same fill-mask answers; a model dropped on the page or opened from files loads,
//    and a broken or an unsupported one is reported with the loader's error.
// (The Reformer panel has its own file, reformer.test.ts, as the T5, REALM and ChatGLM panels do.)
//
// Screenshots go to artifacts/. With LM_UPDATE_SCREENSHOT=1 the WebGPU run also rewrites the README's
// docs/fill-mask.png. Skips with a message when Chromium is absent or the browser exposes no WebGPU
// adapter, unless LM_REQUIRE_WEBGPU=1 (CI), which turns both into failures (the variable is read by
// @lm/tensor-gpu/testing's webgpuRequired, as everywhere in the repository).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BertTokenizer } from '@lm/layers';
import { fillMask, MegatronBertForMaskedLM, type FillMaskCandidate } from '@lm/megatron-bert';
import { init } from '@lm/tensor-gpu';
import { webgpuRequired } from '@lm/tensor-gpu/testing';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executablePath, haveChromium, launch, NO_WEBGPU_ARGS, watch, WEBGPU_ARGS } from './chromium.js';
import { serveStatic } from './static-server.js';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist');
// The bundled model as the built site serves it (copied there from public/ by the build).
const modelDir = join(dist, 'models', 'default');
const artifacts = join(here, '..', 'artifacts');
const docsScreenshot = join(here, '..', 'docs', 'fill-mask.png');
const requireWebGPU = webgpuRequired();
const updateScreenshot = process.env.LM_UPDATE_SCREENSHOT === '1';

const SENTENCE = 'the capital of france is [MASK] .';
const TOP_K = 5;
const TOLERANCE = 1e-3;
/** Probabilities closer than this may swap ranks between backends. */
const TIE = 1e-5;


// What the page publishes for tests (src/main.ts, src/diagnostics/run.ts).
declare global {
  interface Window {
    __lm?: { backend?: { name: string; adapterInfo: string; fallbackReason?: string }; model?: { config: [string, string | number | boolean][] } };
    __lmSmoke?: { status: string; checks: { name: string; status: string; adapter: string; detail: string }[] };
  }
}

interface ShownCandidate {
  tokenId: number;
  token: string;
  score: number;
  label: string;
  value: string;
}

if (!haveChromium && !requireWebGPU) {
  console.warn(
    `[playground browser test] SKIPPED: no Chromium at ${executablePath} ` +
      '(apt-get install -y chromium libvulkan1, or set LM_CHROMIUM; LM_REQUIRE_WEBGPU=1 makes this a failure)',
  );
}

/** Opens the page and waits until the bundled model is loaded (or failed) and the backend is known. */
async function open(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.documentElement.dataset.model ?? '') || document.documentElement.dataset.backend === 'error', undefined, {
    timeout: 60_000,
  });
}

/** Types the sentence, runs fill-mask, waits for the answer and reads the bars the page shows. */
async function runFillMask(page: Page, text: string, topK: number): Promise<ShownCandidate[]> {
  await page.waitForSelector('[data-testid=fill-mask-input]');
  await page.fill('[data-testid=fill-mask-input]', text);
  await page.selectOption('[data-testid=fill-mask-topk]', String(topK));
  await page.click('[data-testid=fill-mask-run]');
  await page.waitForFunction(
    (t) => {
      const el = document.querySelector<HTMLElement>('[data-testid=fill-mask]');
      return el?.dataset.text === t && (el.dataset.state === 'done' || el.dataset.state === 'error');
    },
    text,
    { timeout: 60_000 },
  );
  const state = await page.getAttribute('[data-testid=fill-mask]', 'data-state');
  if (state !== 'done') throw new Error(`fill-mask failed in the page: ${await page.textContent('[data-testid=fill-mask]')}`);
  // Let the attention and token views of the same run render.
  await page.waitForSelector('[data-testid=attention] canvas.heatmap');
  return page.$$eval('[data-testid=fill-mask] .fill-mask-bars li', (items) =>
    items.map((li) => {
      const el = li as HTMLElement;
      return {
        tokenId: Number(el.dataset.tokenId),
        token: el.dataset.token ?? '',
        score: Number(el.dataset.score),
        label: el.querySelector('.bar-label')?.textContent ?? '',
        value: el.querySelector('.bar-value')?.textContent ?? '',
      };
    }),
  );
}

/**
 * The page's top-k must be Node's top-k: at each rank the page shows Node's token, or one whose Node
 * probability ties with it (within TIE: float32 rounding differs between backends), and the
 * probability the page shows for each token is Node's within TOLERANCE.
 */
function expectSameCandidates(shown: ShownCandidate[], expected: FillMaskCandidate[], log: string[]): void {
  const context = `page: ${JSON.stringify(shown.map((c) => [c.token, c.score]))}\nnode: ${JSON.stringify(expected.map((c) => [c.tokenStr, c.score]))}\n${log.join('\n')}`;
  // Errors in the page or its workers (the inference worker, the cpu backend's GEMM threads).
  expect(log.filter((line) => line.startsWith('[pageerror]')), context).toEqual([]);
  expect(shown.length, context).toBe(TOP_K);
  shown.forEach((c, rank) => {
    const node = expected.find((e) => e.token === c.tokenId);
    expect(node, `rank ${rank}: token ${c.token} (${c.tokenId}) is not in Node's top ${expected.length}\n${context}`).toBeDefined();
    if (c.tokenId !== expected[rank].token) {
      expect(Math.abs(node!.score - expected[rank].score), `rank ${rank}: page shows ${c.token}, Node ranks ${expected[rank].tokenStr} here\n${context}`).toBeLessThan(TIE);
    }
    expect(Math.abs(c.score - node!.score), `rank ${rank}: probability of ${c.token}\n${context}`).toBeLessThan(TOLERANCE);
    expect(c.label, context).toBe(node!.tokenStr);
    expect(c.token, context).toBe(node!.tokenStr);
    // The visible percentage is the probability, rounded for display.
    expect(Math.abs(Number.parseFloat(c.value) / 100 - node!.score), `shown "${c.value}"\n${context}`).toBeLessThan(TOLERANCE + 5e-4);
  });
}

/**
 * Node's answer, the same in each of five runs: the cpu backend's multi-threaded GEMM (worker threads in
 * Node) once returned wrong values now and then (see the README), so the reference is computed five
 * times and one run that differs fails the test, naming every answer seen.
 */
async function referenceFillMask(model: MegatronBertForMaskedLM, tokenizer: BertTokenizer): Promise<FillMaskCandidate[]> {
  const runs: { key: string; value: FillMaskCandidate[] }[] = [];
  for (let i = 0; i < 5; i++) {
    const [value] = await fillMask(model, tokenizer, SENTENCE, { topK: TOP_K + 5 });
    runs.push({ key: JSON.stringify(value.map((c) => [c.token, c.score])), value });
  }
  const differing = runs.filter((r) => r.key !== runs[0].key);
  if (differing.length > 0) {
    throw new Error(`the cpu backend gave different answers to the same fill-mask in 5 runs:\n${runs.map((r, i) => `run ${i + 1}: ${r.key}`).join('\n')}`);
  }
  return runs[0].value;
}

describe.skipIf(!haveChromium && !requireWebGPU)('playground in headless Chromium', () => {
  let server: Server | undefined;
  let url = '';
  let expected: FillMaskCandidate[] = [];
  let expectedTokens: string[] = [];

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`LM_REQUIRE_WEBGPU=1 but no Chromium at ${executablePath}`);
    if (!existsSync(join(dist, 'index.html'))) throw new Error(`no built site at ${dist}: run the playground build first`);
    mkdirSync(artifacts, { recursive: true });
    const served = await serveStatic(dist);
    server = served.server;
    url = served.url;
    // What the library computes in Node for the same files and input (cpu backend, the reference).
    const backend = await init('cpu');
    const model = await MegatronBertForMaskedLM.fromPretrained(modelDir, { backend });
    const tokenizer = await BertTokenizer.fromPretrained(modelDir);
    expected = await referenceFillMask(model, tokenizer);
    expectedTokens = tokenizer.convertIdsToTokens(tokenizer.encode(SENTENCE).inputIds) as string[];
    model.dispose();
  });

  afterAll(() => {
    server?.close();
  });

  describe('with WebGPU (SwiftShader)', () => {
    let browser: Awaited<ReturnType<typeof launch>> | undefined;
    let backend: string | undefined;
    const skipUnlessWebGPU = (ctx: { skip(): void }) => {
      if (backend !== 'webgpu' && !requireWebGPU) {
        console.warn('[playground browser test] SKIPPED: the browser exposes no WebGPU adapter (LM_REQUIRE_WEBGPU=1 makes this a failure)');
        ctx.skip();
      }
    };

    beforeAll(async () => {
      browser = await launch(WEBGPU_ARGS);
      await open(browser.page, url);
      backend = await browser.page.evaluate(() => document.documentElement.dataset.backend);
    });

    afterAll(async () => {
      await browser?.close();
    });

    it('reports the WebGPU backend with its adapter', async (ctx) => {
      skipUnlessWebGPU(ctx);
      const { page, log } = browser!;
      const reason = await page.evaluate(() => window.__lm?.backend?.fallbackReason);
      expect(backend, `the page runs on ${backend}: ${reason}\n${log.join('\n')}`).toBe('webgpu');
      // Launched with --use-webgpu-adapter=swiftshader: the adapter the page reports must be SwiftShader,
      // and the badge must show that adapter.
      const adapter = (await page.evaluate(() => window.__lm?.backend?.adapterInfo)) ?? '';
      expect(adapter, log.join('\n')).toMatch(/^webgpu: .*\bswiftshader\b/i);
      expect(await page.textContent('[data-testid=backend-name]')).toBe(`WebGPU · ${adapter.replace(/^webgpu:\s*/, '')}`);
    });

    it('fills the mask with the tokens and probabilities @lm/megatron-bert computes in Node', async (ctx) => {
      skipUnlessWebGPU(ctx);
      const { page, log } = browser!;
      expect(await page.evaluate(() => document.documentElement.dataset.model), log.join('\n')).toBe('ready');
      const shown = await runFillMask(page, SENTENCE, TOP_K);
      expectSameCandidates(shown, expected, log);
      await page.screenshot({ path: join(artifacts, 'playground-webgpu.png'), fullPage: true });
    });

    it('shows the attention of every layer and head, and the tokens', async (ctx) => {
      skipUnlessWebGPU(ctx);
      const { page } = browser!;
      const summary = (await page.evaluate(() => window.__lm?.model?.config)) ?? [];
      const heads = Number(summary.find(([k]) => k === 'attention heads')?.[1]);
      const layers = Number(summary.find(([k]) => k === 'layers')?.[1]);
      await page.selectOption('[data-testid=attention-layer]', '0');
      await page.selectOption('[data-testid=attention-head]', String(heads - 1));
      const view = await page.$eval('[data-testid=attention]', (el) => ({ ...(el as HTMLElement).dataset, thumbs: el.querySelectorAll('.thumb-button').length }));
      expect(view).toMatchObject({ layer: '0', head: String(heads - 1), thumbs: heads + 1 });
      expect(await page.$$eval('[data-testid=attention-layer] option', (o) => o.length)).toBe(layers);
      const tokens = await page.$$eval('[data-testid=tokens] tbody tr td:nth-child(2)', (cells) => cells.map((c) => c.textContent));
      expect(tokens).toEqual(expectedTokens);

      // The README's picture: the fill-mask and attention cards, the mean of the last layer's heads.
      await page.selectOption('[data-testid=attention-layer]', String(layers - 1));
      await page.selectOption('[data-testid=attention-head]', '-1');
      // Only the first two cards: the token table stays out of the picture.
      await page.$$eval('#panel > section', (cards) => cards.slice(2).forEach((c) => ((c as HTMLElement).style.display = 'none')));
      await page.$eval('#panel', (el) => ((el as HTMLElement).style.padding = '8px 8px 1px'));
      await page.locator('#panel').screenshot({ path: join(artifacts, 'fill-mask.png') });
      if (updateScreenshot) {
        mkdirSync(dirname(docsScreenshot), { recursive: true });
        await page.locator('#panel').screenshot({ path: docsScreenshot });
      }
      await page.$$eval('#panel > section', (cards) => cards.forEach((c) => ((c as HTMLElement).style.display = '')));
      await page.$eval('#panel', (el) => ((el as HTMLElement).style.padding = ''));
    });

    it('passes the WebGPU smoke checks in the diagnostics section', async (ctx) => {
      skipUnlessWebGPU(ctx);
      const { page, log } = browser!;
      await page.waitForFunction(() => document.documentElement.dataset.smoke !== undefined, undefined, { timeout: 60_000 });
      const smoke = (await page.evaluate(() => window.__lmSmoke))!;
      const failed = smoke.checks.filter((c) => c.status !== 'pass');
      expect(failed, `${JSON.stringify(failed, null, 2)}\n${log.join('\n')}`).toEqual([]);
      expect(smoke.checks.find((c) => c.name.startsWith('raw WGSL'))?.detail).toMatch(/all 1024 values doubled/);
    });

    it('runs on the cpu backend with ?backend=cpu and says so', async () => {
      const page = await browser!.context.newPage();
      const log: string[] = [];
      watch(page, log);
      await open(page, `${url}?backend=cpu`);
      expect(await page.evaluate(() => document.documentElement.dataset.backend), log.join('\n')).toBe('cpu');
      expect(await page.textContent('[data-testid=backend-reason]')).toContain('?backend=cpu');
      expectSameCandidates(await runFillMask(page, SENTENCE, TOP_K), expected, log);
      await page.close();
    });
  });

  describe('with WebGPU disabled', () => {
    let browser: Awaited<ReturnType<typeof launch>> | undefined;

    beforeAll(async () => {
      browser = await launch(NO_WEBGPU_ARGS);
      await open(browser.page, url);
    });

    afterAll(async () => {
      await browser?.close();
    });

    it('falls back to the cpu backend and shows why', async () => {
      const { page, log } = browser!;
      expect(await page.evaluate(() => document.documentElement.dataset.backend), log.join('\n')).toBe('cpu');
      expect(await page.textContent('[data-testid=backend-name]')).toMatch(/^CPU · /);
      const reason = (await page.textContent('[data-testid=backend-reason]')) ?? '';
      expect(reason).toMatch(/^CPU fallback: (navigator\.gpu is undefined|navigator\.gpu\.requestAdapter\(\) returned null)/);
      console.log(`[playground browser test] WebGPU disabled: ${reason}`);
    });

    it('fills the mask with the same tokens and probabilities', async () => {
      const { page, log } = browser!;
      expectSameCandidates(await runFillMask(page, SENTENCE, TOP_K), expected, log);
      await page.screenshot({ path: join(artifacts, 'playground-cpu-fallback.png'), fullPage: true });
    });

    it('loads a model dropped on the page', async () => {
      const { page, log } = browser!;
      await page.evaluate(async () => {
        document.documentElement.dataset.model = 'dropping';
        const data = new DataTransfer();
        for (const name of ['config.json', 'model.safetensors', 'vocab.txt']) {
          data.items.add(new File([await (await fetch(`models/default/${name}`)).blob()], name));
        }
        window.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
      });
      await page.waitForFunction(() => ['ready', 'error'].includes(document.documentElement.dataset.model ?? ''), undefined, { timeout: 30_000 });
      expect(await page.evaluate(() => document.documentElement.dataset.model), log.join('\n')).toBe('ready');
      expect(await page.textContent('[data-testid=model-name]')).toBe('config.json, model.safetensors, vocab.txt');
      expectSameCandidates(await runFillMask(page, SENTENCE, TOP_K), expected, log);
    });

    it('opens a model from files, and reports a broken or unsupported one with the loader\'s error', async () => {
      const { page, log } = browser!;
      const pick = async (files: string[]) => {
        await page.evaluate(() => (document.documentElement.dataset.model = 'picking'));
        await page.setInputFiles('[data-testid=open-files-input]', files);
        await page.waitForFunction(() => ['ready', 'error'].includes(document.documentElement.dataset.model ?? ''), undefined, { timeout: 30_000 });
        return page.evaluate(() => document.documentElement.dataset.model);
      };
      const files = ['config.json', 'model.safetensors', 'vocab.txt'].map((f) => join(modelDir, f));
      expect(await pick(files), log.join('\n')).toBe('ready');
      expect(await page.textContent('[data-testid=model-name]')).toBe('config.json, model.safetensors, vocab.txt');
      expectSameCandidates(await runFillMask(page, SENTENCE, TOP_K), expected, log);

      const broken = mkdtempSync(join(tmpdir(), 'lm-playground-broken-'));
      try {
        writeFileSync(join(broken, 'config.json'), readFileSync(join(modelDir, 'config.json')));
        writeFileSync(join(broken, 'vocab.txt'), readFileSync(join(modelDir, 'vocab.txt')));
        writeFileSync(join(broken, 'model.safetensors'), readFileSync(join(modelDir, 'model.safetensors')).subarray(0, 4096));
        expect(await pick(['config.json', 'model.safetensors', 'vocab.txt'].map((f) => join(broken, f)))).toBe('error');
        const brokenError = (await page.textContent('[data-testid=model-error]')) ?? '';
        expect(brokenError).toMatch(/Could not load the model: \w+Error/);
        expect(brokenError).toMatch(/safetensors/i);
        console.log(`[playground browser test] broken model: ${brokenError.replace(/\s+/g, ' ')}`);

        writeFileSync(join(broken, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 10 }));
        expect(await pick([join(broken, 'config.json'), join(broken, 'model.safetensors')])).toBe('error');
        expect(await page.textContent('[data-testid=model-error]')).toMatch(/UnsupportedModelError[\s\S]*model_type "gpt2"[\s\S]*"megatron-bert"/);
        // The model loaded before stays in use.
        expect(await page.textContent('[data-testid=model-error]')).toContain('Still using config.json, model.safetensors, vocab.txt');
        expectSameCandidates(await runFillMask(page, SENTENCE, TOP_K), expected, log);
      } finally {
        rmSync(broken, { recursive: true, force: true });
      }
    });
  });
});
