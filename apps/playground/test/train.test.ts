// End-to-end tests of the Train panel in the BUILT playground (dist/), in headless Chromium, against
// lm-train itself run in this Node process (apps/trainer's `train`, cpu backend) on the same corpus,
// tokenizer, seed and config:
//
// - WebGPU (SwiftShader) and the cpu fallback: a short run in the page; the loss falls, the stats and
//   the curve show; the exported parameters equal Node's within float tolerance.
// - Reload mid-run: the page finds the run in IndexedDB and Resume ends with the parameters of an
//   uninterrupted run.
// - A checkpoint made in the page (.tar download) resumes in Node with `train({ resume })`, and one
//   made by Node, dropped on the page, resumes there; both end at Node's uninterrupted parameters.
// - Bad input: an empty file and a binary file as corpus, a model the adapter cannot hold, a
//   checkpoint of another family: a clear message in the page, and the stored run is kept.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSafetensorsBytes } from '@lm/dist-ckpt';
import { webgpuRequired } from '@lm/tensor-gpu/testing';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../trainer/src/config.js';
import { train } from '../../trainer/src/trainer.js';
import { readTar, writeTar } from '../src/train/tar.js';
import type { MetricsRecord, NamedBytes } from '../src/train/protocol.js';
import { haveChromium, launch, NO_WEBGPU_ARGS, WEBGPU_ARGS } from './chromium.js';
import { serveStatic } from './static-server.js';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist');
const trainerDir = join(here, '..', '..', 'trainer');
const artifacts = join(here, '..', 'artifacts');
const requireWebGPU = webgpuRequired();


/** The run of these tests: lm-train's default run (configs/default.yaml), the tiny model, 12 steps. */
const STEPS = 12;
const HALF = 6;
const FORM = { size: 'tiny', steps: STEPS, batch: 8, lr: '3e-3', evalEvery: HALF, ckptEvery: 4, seed: 42 };
const NODE_OVERRIDES: [string, unknown][] = [
  ['model.config.hiddenSize', 32],
  ['model.config.numHiddenLayers', 1],
  ['model.config.numAttentionHeads', 2],
  ['model.config.intermediateSize', 64],
  ['training.steps', STEPS],
  ['training.batchSize', 8],
  ['training.lr', 3e-3],
  ['eval.everySteps', HALF],
  ['checkpointing.everySteps', 4],
  ['checkpointing.keepLast', 10],
  ['seed', 42],
  ['backend', 'cpu'],
  ['output.plot', null],
  ['output.fillMask', []],
];
/** WebGPU (SwiftShader) and the cpu backend sum in different orders; 12 AdamW steps keep them this close. */
const WEBGPU_TOLERANCE = 2e-4;
/** The page's cpu backend is the engine Node runs: the same kernels, one thread in the page. */
const CPU_TOLERANCE = 1e-5;

type Weights = Map<string, Float32Array>;

async function weightsOf(bytes: Uint8Array): Promise<Weights> {
  const st = await openSafetensorsBytes(bytes);
  const out: Weights = new Map();
  for (const t of st.tensors) out.set(t.name, (await st.readTensor(t.name)).data as Float32Array);
  await st.close();
  return out;
}

function maxDiff(a: Weights, b: Weights): { max: number; where: string } {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  expect(a.size).toBeGreaterThan(10);
  let max = 0;
  let where = '';
  for (const [name, x] of a) {
    const y = b.get(name)!;
    expect(x).toBeInstanceOf(Float32Array);
    expect(y.length, name).toBe(x.length);
    for (let i = 0; i < x.length; i++) {
      const d = Math.abs(x[i] - y[i]);
      if (!(d <= max)) {
        max = d;
        where = `${name}[${i}]: ${x[i]} vs ${y[i]}`;
      }
    }
  }
  return { max, where };
}

/** lm-train in this process: the run of the page's form, optionally resumed from a checkpoint folder. */
async function nodeRun(dir: string, steps = STEPS, resume: string | null = null): Promise<{ weights: Weights; records: MetricsRecord[] }> {
  const config = loadConfig({
    file: join(trainerDir, 'configs', 'default.yaml'),
    overrides: [
      ...NODE_OVERRIDES,
      ['training.steps', steps],
      ['checkpointing.dir', join(dir, 'checkpoints')],
      ['checkpointing.overwrite', !resume],
      ['output.metrics', join(dir, 'metrics.jsonl')],
      ['output.export', join(dir, 'export')],
    ],
  });
  await train({ config, resume, print: () => undefined, tty: false });
  const records = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as MetricsRecord);
  return { weights: await weightsOf(readFileSync(join(dir, 'export', 'model.safetensors'))), records };
}

declare global {
  interface Window {
    __lmTrain?: { state: string; storedKnown: boolean; records: MetricsRecord[]; stored: { checkpoints: number[]; steps: number } | null; error: string | null; backend: { name: string; adapterInfo: string; fallbackReason?: string } | null };
  }
}

/** Opens the page and waits for the training worker to report its backend and stored run. */
async function openPage(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForFunction(() => !!window.__lmTrain?.backend && window.__lmTrain.storedKnown, undefined, { timeout: 90_000 });
}

async function fillForm(page: Page, form = FORM): Promise<void> {
  await page.selectOption('[data-testid=train-size]', form.size);
  await page.fill('[data-testid=train-steps]', String(form.steps));
  await page.fill('[data-testid=train-batch]', String(form.batch));
  await page.fill('[data-testid=train-lr]', form.lr);
  await page.fill('[data-testid=train-eval-every]', String(form.evalEvery));
  await page.fill('[data-testid=train-ckpt-every]', String(form.ckptEvery));
  await page.fill('[data-testid=train-seed]', String(form.seed));
}

async function waitState(page: Page, states: string[], timeout = 300_000): Promise<string> {
  const handle = await page.waitForFunction((s) => (s.includes(window.__lmTrain?.state ?? '') ? window.__lmTrain!.state : null), states, { timeout });
  return (await handle.jsonValue()) as string;
}

async function pageFiles(page: Page, button: 'train-download-export' | 'train-download-checkpoint'): Promise<{ name: string; files: NamedBytes[] }> {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid=${button}]`)]);
  const path = await download.path();
  return { name: download.suggestedFilename(), files: readTar(new Uint8Array(readFileSync(path)), download.suggestedFilename()) };
}

async function pageWeights(page: Page): Promise<Weights> {
  const { files } = await pageFiles(page, 'train-download-export');
  const st = files.find((f) => f.name === 'export/model.safetensors');
  if (!st) throw new Error(`the export has no model.safetensors: ${files.map((f) => f.name).join(', ')}`);
  return weightsOf(st.bytes);
}

const trainRecords = (records: MetricsRecord[]) => records.filter((r) => r.type === 'train');

let server: Server | null = null;
let base = '';
let work = '';
let node: { weights: Weights; records: MetricsRecord[] };

beforeAll(async () => {
  if (!haveChromium) return;
  if (!existsSync(join(dist, 'index.html'))) throw new Error(`no built site at ${dist}: run \`pnpm --filter playground build\` first`);
  ({ url: base, server } = await serveStatic(dist));
  work = mkdtempSync(join(tmpdir(), 'lm-playground-train-node-'));
  mkdirSync(artifacts, { recursive: true });
  node = await nodeRun(join(work, 'reference'));
});

afterAll(async () => {
  server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Writes a checkpoint's files (paths step-NNNNNNNN/...) under `dir`. */
function writeFiles(dir: string, files: readonly NamedBytes[]): void {
  for (const f of files) {
    mkdirSync(dirname(join(dir, f.name)), { recursive: true });
    writeFileSync(join(dir, f.name), f.bytes);
  }
}

/** A checkpoint folder of Node's reference run as the page's .tar. */
function nodeCheckpointTar(step: number, edit?: (name: string, bytes: Uint8Array) => Uint8Array): string {
  const folder = `step-${String(step).padStart(8, '0')}`;
  const root = join(work, 'reference', 'checkpoints');
  const files: NamedBytes[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p);
      else {
        const bytes = new Uint8Array(readFileSync(join(root, p)));
        files.push({ name: p, bytes: edit ? edit(p, bytes) : bytes });
      }
    }
  };
  walk(folder);
  const tar = join(work, `${folder}${edit ? '-edited' : ''}.tar`);
  writeFileSync(tar, writeTar(files));
  return tar;
}

async function storedSteps(page: Page): Promise<number[]> {
  return page.evaluate(() => window.__lmTrain?.stored?.checkpoints ?? []);
}

/** Waits for the panel's next error message (the test forgets the one before). */
async function expectError(page: Page, pattern: RegExp, action: () => Promise<void>): Promise<void> {
  await page.evaluate(() => (window.__lmTrain!.error = null));
  await action();
  await page.waitForFunction(() => !!window.__lmTrain?.error, undefined, { timeout: 120_000 });
  const shown = await page.textContent('[data-testid=train-error]');
  expect(shown).toMatch(pattern);
  expect(await page.isVisible('[data-testid=train-error]')).toBe(true);
}

let webgpuWeights: Weights | null = null;

describe.runIf(haveChromium || requireWebGPU)('Train panel on WebGPU (SwiftShader)', () => {
  it('trains in the worker: the loss falls and the parameters equal lm-train\'s in Node', async () => {
    const b = await launch(WEBGPU_ARGS, 1300);
    try {
      await openPage(b.page, base);
      const info = await b.page.evaluate(() => window.__lmTrain!.backend!);
      if (info.name !== 'webgpu' && !requireWebGPU) return console.warn(`[playground train test] SKIPPED: no WebGPU adapter (${info.fallbackReason})`);
      expect(info.name).toBe('webgpu');
      expect(await b.page.textContent('[data-testid=train-backend]')).toContain('swiftshader');
      await fillForm(b.page);
      await b.page.click('[data-testid=train-start]');
      expect(await waitState(b.page, ['done', 'error'])).toBe('done');
      const records = await b.page.evaluate(() => window.__lmTrain!.records);
      const losses = trainRecords(records).map((r) => r.loss as number);
      expect(losses).toHaveLength(STEPS);
      // The page's losses are Node's, step by step, within float tolerance.
      const nodeLosses = trainRecords(node.records).map((r) => r.loss as number);
      for (let i = 0; i < STEPS; i++) expect(Math.abs(losses[i] - nodeLosses[i]), `step ${i + 1}`).toBeLessThan(1e-3);
      expect(losses.slice(-3).reduce((x, y) => x + y) / 3).toBeLessThan(losses.slice(0, 3).reduce((x, y) => x + y) / 3 - 0.1);
      expect(await b.page.textContent('[data-testid=train-stat-step]')).toContain(`${STEPS} / ${STEPS}`);
      expect(await b.page.textContent('[data-testid=train-stats]')).toMatch(/tokens\/s\s+[\d,]+/);
      webgpuWeights = await pageWeights(b.page);
      const { max, where } = maxDiff(webgpuWeights, node.weights);
      console.log(`[playground train test] webgpu vs node after ${STEPS} steps: max |diff| ${max.toExponential(2)} (${where})`);
      expect(max, where).toBeLessThan(WEBGPU_TOLERANCE);
      await b.page.screenshot({ path: join(artifacts, 'train-webgpu.png'), fullPage: true });
      // The trained model opens in the inference panel.
      await b.page.evaluate(() => delete document.documentElement.dataset.model);
      await b.page.click('[data-testid=train-open]');
      await b.page.waitForFunction(() => ['ready', 'error'].includes(document.documentElement.dataset.model ?? ''), undefined, { timeout: 60_000 });
      expect(await b.page.getAttribute('html', 'data-model'), (await b.page.textContent('#model')) ?? '').toBe('ready');
      expect(await b.page.textContent('#model')).toContain('trained in this page');
      expect(await b.page.textContent('#model')).toMatch(/hidden size\s*32/);
      expect(b.log.filter((l) => l.startsWith('[pageerror]'))).toEqual([]);
    } finally {
      await b.close();
    }
  }, 600_000);

  it('resumes after a reload mid-run and ends with the parameters of the uninterrupted run', async () => {
    const b = await launch(WEBGPU_ARGS, 1300);
    try {
      await openPage(b.page, base);
      if ((await b.page.evaluate(() => window.__lmTrain!.backend!.name)) !== 'webgpu' && !requireWebGPU) return;
      await fillForm(b.page);
      await b.page.click('[data-testid=train-start]');
      // Reload once a checkpoint is stored and the run is past it.
      await b.page.waitForFunction(() => (window.__lmTrain?.stored?.checkpoints.length ?? 0) > 0 && window.__lmTrain!.state === 'running', undefined, { timeout: 300_000 });
      const before = await storedSteps(b.page);
      await b.page.reload();
      await openPage(b.page, base);
      const after = await storedSteps(b.page);
      expect(after.length).toBeGreaterThan(0);
      expect(after.at(-1)).toBeGreaterThanOrEqual(before.at(-1)!);
      expect(after.at(-1)).toBeLessThan(STEPS);
      expect(await b.page.textContent('[data-testid=train-stored]')).toContain('press Resume');
      // The curve comes back from the stored metrics.
      expect((await b.page.evaluate(() => window.__lmTrain!.records)).filter((r) => r.type === 'train').length).toBeGreaterThanOrEqual(after.at(-1)!);
      await b.page.click('[data-testid=train-resume]');
      expect(await waitState(b.page, ['done', 'error'])).toBe('done');
      const records = trainRecords(await b.page.evaluate(() => window.__lmTrain!.records));
      expect(records.map((r) => r.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
      const weights = await pageWeights(b.page);
      const { max, where } = maxDiff(weights, webgpuWeights ?? node.weights);
      console.log(`[playground train test] webgpu resumed from step ${after.at(-1)} vs uninterrupted: max |diff| ${max.toExponential(2)} (${where})`);
      expect(max, where).toBeLessThan(webgpuWeights ? 1e-6 : WEBGPU_TOLERANCE);
      expect(b.log.filter((l) => l.startsWith('[pageerror]'))).toEqual([]);
    } finally {
      await b.close();
    }
  }, 600_000);
});

describe.runIf(haveChromium || requireWebGPU)('Train panel on the CPU fallback (WebGPU disabled)', () => {
  it('trains, pauses, resumes; its checkpoint resumes in Node, and a Node checkpoint resumes in the page', async () => {
    const b = await launch(NO_WEBGPU_ARGS, 1300);
    try {
      await openPage(b.page, base);
      const info = await b.page.evaluate(() => window.__lmTrain!.backend!);
      expect(info.name).toBe('cpu');
      expect(await b.page.textContent('[data-testid=train-backend]')).toContain('CPU fallback');
      expect(await b.page.textContent('[data-testid=train-backend]')).toContain(info.fallbackReason!);
      await fillForm(b.page);
      await b.page.click('[data-testid=train-start]');
      // Paused as soon as it starts (the cpu backend takes the 12 steps in about a second): after step 1 or a little later.
      await waitState(b.page, ['starting', 'running']);
      await b.page.click('[data-testid=train-pause]');
      expect(await waitState(b.page, ['paused', 'done', 'error'])).toBe('paused');
      const paused = (await storedSteps(b.page)).at(-1)!;
      expect(paused).toBeGreaterThanOrEqual(1);
      expect(paused).toBeLessThan(STEPS);

      // The paused run's checkpoint, downloaded, resumes in Node (lm-train's train({ resume })).
      const ckpt = await pageFiles(b.page, 'train-download-checkpoint');
      expect(ckpt.name).toBe(`step-${String(paused).padStart(8, '0')}.tar`);
      const fromPage = join(work, 'from-page');
      writeFiles(join(fromPage, 'checkpoints'), ckpt.files);
      const resumedInNode = await nodeRun(fromPage, STEPS, join(fromPage, 'checkpoints', `step-${String(paused).padStart(8, '0')}`));
      let d = maxDiff(resumedInNode.weights, node.weights);
      console.log(`[playground train test] page (cpu) checkpoint at step ${paused} resumed in Node vs Node: max |diff| ${d.max.toExponential(2)} (${d.where})`);
      expect(d.max, d.where).toBeLessThan(CPU_TOLERANCE);

      // Resume in the page.
      await b.page.click('[data-testid=train-resume]');
      expect(await waitState(b.page, ['done', 'error'])).toBe('done');
      d = maxDiff(await pageWeights(b.page), node.weights);
      console.log(`[playground train test] page (cpu, paused at ${paused}) vs Node: max |diff| ${d.max.toExponential(2)} (${d.where})`);
      expect(d.max, d.where).toBeLessThan(CPU_TOLERANCE);
      await b.page.screenshot({ path: join(artifacts, 'train-cpu-fallback.png'), fullPage: true });

      // Node's checkpoint at step 4, dropped on the page as a .tar, resumes there and ends where Node ended.
      await b.page.evaluate(() => (window.__lmTrain!.records = []));
      await b.page.setInputFiles('[data-testid=train-checkpoint-input]', nodeCheckpointTar(4));
      await b.page.evaluate(() => (window.__lmTrain!.error = null));
      await b.page.waitForFunction((n) => !!window.__lmTrain!.error || (window.__lmTrain!.state === 'done' && window.__lmTrain!.records.some((r) => r.type === 'train' && r.step === n)), STEPS, {
        timeout: 300_000,
      });
      expect(await b.page.evaluate(() => window.__lmTrain!.error)).toBeNull();
      const steps = trainRecords(await b.page.evaluate(() => window.__lmTrain!.records)).map((r) => r.step);
      expect(steps[0]).toBe(5);
      d = maxDiff(await pageWeights(b.page), node.weights);
      console.log(`[playground train test] Node checkpoint at step 4 resumed in the page (cpu) vs Node: max |diff| ${d.max.toExponential(2)} (${d.where})`);
      expect(d.max, d.where).toBeLessThan(CPU_TOLERANCE);
      expect(b.log.filter((l) => l.startsWith('[pageerror]'))).toEqual([]);
    } finally {
      await b.close();
    }
  }, 600_000);

  it('refuses bad input with a clear message and keeps the stored run', async () => {
    const b = await launch(NO_WEBGPU_ARGS, 1300);
    try {
      await openPage(b.page, base);
      await fillForm(b.page, { ...FORM, steps: 4, ckptEvery: 4, evalEvery: 0 });
      await b.page.click('[data-testid=train-start]');
      expect(await waitState(b.page, ['done', 'error'])).toBe('done');
      const kept = await storedSteps(b.page);
      expect(kept).toEqual([4]);

      const stillStored = async () => {
        expect(await storedSteps(b.page)).toEqual(kept);
        expect(await b.page.textContent('[data-testid=train-stored]')).toContain('checkpoints at step 4');
      };
      const bad = join(work, 'bad');
      mkdirSync(bad, { recursive: true });
      writeFileSync(join(bad, 'empty.txt'), '');
      writeFileSync(join(bad, 'image.txt'), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]));

      await b.page.setInputFiles('[data-testid=train-corpus-input]', join(bad, 'empty.txt'));
      await expectError(b.page, /the corpus is empty \(1 file\(s\) without text: empty\.txt\)/, () => b.page.click('[data-testid=train-start]'));
      await stillStored();

      await b.page.setInputFiles('[data-testid=train-corpus-input]', join(bad, 'image.txt'));
      await expectError(b.page, /image\.txt is not a text file \(a zero byte at offset 8\)/, () => b.page.click('[data-testid=train-start]'));
      await stillStored();

      await b.page.click('text=use the bundled corpus');
      await b.page.selectOption('[data-testid=train-size]', 'custom');
      await b.page.fill('[data-testid=train-custom]', JSON.stringify({ hiddenSize: 4096, numHiddenLayers: 8, numAttentionHeads: 32, intermediateSize: 16384 }));
      await expectError(b.page, /model\.config: [\d.]+M parameters with batch 8 x seq 24 needs about [\d.]+ MiB .*more than this page can hold/, () =>
        b.page.click('[data-testid=train-start]'),
      );
      await stillStored();

      await b.page.selectOption('[data-testid=train-size]', 'tiny');
      const otherFamily = nodeCheckpointTar(4, (name, bytes) =>
        name.endsWith('metadata.json') ? new TextEncoder().encode(new TextDecoder().decode(bytes).replaceAll('megatron-bert', 't5')) : bytes,
      );
      await expectError(b.page, /checkpoint step-00000004: written for model family "t5", this run trains "megatron-bert"/, () =>
        b.page.setInputFiles('[data-testid=train-checkpoint-input]', otherFamily),
      );
      await stillStored();
      // And after a reload (what IndexedDB holds).
      await b.page.reload();
      await openPage(b.page, base);
      await stillStored();
    } finally {
      await b.close();
    }
  }, 600_000);
});
