// The README's figures of the Train panel: the default browser run (lm-train's `pnpm start` config:
// the bundled corpus, the 2-layer MegatronBERT, 2400 steps of 32) in headless Chromium, on WebGPU
// (SwiftShader) or the CPU fallback, from the BUILT site (pnpm --filter playground build). Prints the
// held-out masked-token accuracy at each evaluation and the wall time, as JSON lines.
//
//   npx tsx scripts/train-figures.mjs --backend cpu|webgpu [--steps 2400] [--screenshot docs/train.png --screenshot-at 300]
// (through tsx: it reuses the tests' static server, which is TypeScript)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { serveStatic } from '../test/static-server.ts';

const { values } = parseArgs({ options: { backend: { type: 'string', default: 'cpu' }, steps: { type: 'string', default: '2400' }, screenshot: { type: 'string' }, 'screenshot-at': { type: 'string' } } });
if (!['cpu', 'webgpu'].includes(values.backend)) throw new Error(`--backend: expected cpu or webgpu, got ${values.backend}`);
const here = dirname(fileURLToPath(import.meta.url));
const QUIET = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const args = values.backend === 'webgpu' ? [...QUIET, '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader'] : [...QUIET, '--disable-gpu'];
const { url, server } = await serveStatic(join(here, '..', 'dist'));
const profile = mkdtempSync(join(tmpdir(), 'lm-train-figures-'));
const context = await chromium.launchPersistentContext(profile, { executablePath: process.env.LM_CHROMIUM ?? '/usr/bin/chromium', headless: true, args, viewport: { width: 1100, height: 1300 } });
try {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => !!window.__lmTrain?.backend && document.querySelectorAll('[data-testid=train-objective] option').length > 0, undefined, { timeout: 120_000 });
  const backend = await page.evaluate(() => window.__lmTrain.backend);
  await page.fill('[data-testid=train-steps]', values.steps);
  await page.fill('[data-testid=train-ckpt-every]', '800');
  const t0 = Date.now();
  await page.click('[data-testid=train-start]');
  if (values.screenshot && values['screenshot-at']) {
    await page.waitForFunction((n) => (window.__lmTrain?.records.filter((r) => r.type === 'train').length ?? 0) >= n, Number(values['screenshot-at']), { timeout: 0 });
    await page.locator('#train').screenshot({ path: values.screenshot });
  }
  await page.waitForFunction(() => ['done', 'error'].includes(window.__lmTrain?.state), undefined, { timeout: 0, polling: 1000 });
  const seconds = (Date.now() - t0) / 1000;
  const st = await page.evaluate(() => ({ state: window.__lmTrain.state, error: window.__lmTrain.error, records: window.__lmTrain.records }));
  if (st.state !== 'done') throw new Error(`the run failed: ${st.error}`);
  for (const r of st.records.filter((x) => x.type === 'eval')) console.log(JSON.stringify({ step: r.step, mlmAccuracy: r.mlmAccuracy, perplexity: r.perplexity, nspAccuracy: r.nspAccuracy }));
  const train = st.records.filter((x) => x.type === 'train');
  const tps = train.slice(-50).reduce((a, r) => a + r.tokensPerSecond, 0) / Math.min(50, train.length);
  console.log(JSON.stringify({ backend: backend.name, adapter: backend.adapterInfo, steps: train.length, seconds, tokensPerSecond: Math.round(tps) }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  server.close();
}
