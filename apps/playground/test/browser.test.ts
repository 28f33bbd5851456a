// Browser smoke test: the BUILT playground served from 127.0.0.1, opened in headless Chromium
// (playwright-core driving the system's /usr/bin/chromium) with WebGPU on SwiftShader, as
// WEBGPU.md describes. The page's checks (raw WGSL, then @lm/tensor-gpu) must pass.
//
// Skips with a message when Chromium is absent or the browser exposes no WebGPU adapter, unless
// LM_REQUIRE_WEBGPU=1 (CI), which turns both into failures.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveStatic } from './static-server.js';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist');
const artifacts = join(here, '..', 'artifacts');
const executablePath = process.env.LM_CHROMIUM ?? '/usr/bin/chromium';
const requireWebGPU = ['1', 'true', 'yes'].includes(String(process.env.LM_REQUIRE_WEBGPU ?? '').toLowerCase());
const haveChromium = existsSync(executablePath);

// Flags from WEBGPU.md (headless WebGPU on SwiftShader) plus a quiet, fresh profile.
const ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

interface SmokeResult {
  status: 'pass' | 'fail' | 'unavailable';
  checks: { name: string; status: string; adapter: string; detail: string }[];
}

if (!haveChromium && !requireWebGPU) {
  console.warn(
    `[playground browser test] SKIPPED: no Chromium at ${executablePath} ` +
      '(apt-get install -y chromium libvulkan1, or set LM_CHROMIUM; LM_REQUIRE_WEBGPU=1 makes this a failure)',
  );
}

describe.skipIf(!haveChromium && !requireWebGPU)('playground in headless Chromium', () => {
  let server: Server | undefined;
  let context: BrowserContext | undefined;
  let profile: string | undefined;
  let result: SmokeResult | undefined;
  const browserLog: string[] = [];

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`LM_REQUIRE_WEBGPU=1 but no Chromium at ${executablePath}`);
    if (!existsSync(join(dist, 'index.html'))) throw new Error(`no built site at ${dist}: run the playground build first`);
    const served = await serveStatic(dist);
    server = served.server;
    profile = mkdtempSync(join(tmpdir(), 'lm-playground-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: ARGS });
    const page = await context.newPage();
    page.on('console', (msg) => browserLog.push(`[${msg.type()}] ${msg.text()}`));
    page.on('pageerror', (err) => browserLog.push(`[pageerror] ${err.message}`));
    await page.goto(served.url);
    await page.waitForFunction(() => document.documentElement.dataset.smoke !== undefined, undefined, { timeout: 150_000 });
    result = (await page.evaluate(() => (window as unknown as { __lmSmoke?: unknown }).__lmSmoke)) as SmokeResult;
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'playground-smoke.png'), fullPage: true });
    console.log(
      `[playground browser test] ${result.status}\n` +
        result.checks.map((c) => `  ${c.status.padEnd(11)} ${c.name}\n    adapter: ${c.adapter}\n    ${c.detail}`).join('\n'),
    );
  });

  afterAll(async () => {
    await context?.close();
    server?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('runs every check with WebGPU available and passing', (ctx) => {
    expect(result, browserLog.join('\n')).toBeDefined();
    if (result!.status === 'unavailable' && !requireWebGPU) {
      console.warn('[playground browser test] SKIPPED: the browser exposes no WebGPU adapter (LM_REQUIRE_WEBGPU=1 makes this a failure)');
      ctx.skip();
    }
    const failed = result!.checks.filter((c) => c.status !== 'pass');
    expect(failed, `${JSON.stringify(failed, null, 2)}\n${browserLog.join('\n')}`).toEqual([]);
    expect(result!.status).toBe('pass');
  });

  it('reads back the doubled values from the raw WGSL kernel', () => {
    const wgsl = result?.checks.find((c) => c.name.startsWith('raw WGSL'));
    if (result?.status === 'unavailable' && !requireWebGPU) return;
    expect(wgsl?.status, wgsl?.detail).toBe('pass');
    expect(wgsl?.detail).toMatch(/all 1024 values doubled/);
    expect(wgsl?.adapter).toMatch(/swiftshader|google|\w/i);
  });
});
