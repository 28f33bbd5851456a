// The setup every family panel's Chromium test shares (t5, realm, chatglm, ...): a describe() that is
// skipped with a warning when there is no Chromium (a failure under LM_REQUIRE_WEBGPU=1), checks that
// the bundled model was built, and serves dist/ while its tests run; one case per backend (WebGPU on
// SwiftShader, and WebGPU disabled: the cpu fallback); and a page opened on that backend once the
// model is loaded, which skips the WebGPU case when the browser offers no adapter (again a failure
// under LM_REQUIRE_WEBGPU=1).
import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { webgpuRequired } from '@lm/tensor-gpu/testing';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, type TestContext } from 'vitest';
import { executablePath, haveChromium, launch, NO_WEBGPU_ARGS, WEBGPU_ARGS } from './chromium.js';
import { serveStatic } from './static-server.js';

const here = dirname(fileURLToPath(import.meta.url));
export const dist = join(here, '..', 'dist');
/** Screenshots (gitignored). */
export const artifacts = join(here, '..', 'artifacts');
export const requireWebGPU = webgpuRequired();

/** A bundled model as the built site serves it (copied to dist/ from public/ by the build). */
export function bundledModel(name: string): string {
  return join(dist, 'models', name);
}

export interface BackendCase {
  /** What the page must report in `<html data-backend>`. */
  name: 'webgpu' | 'cpu';
  /** For test titles. */
  label: string;
  args: readonly string[];
}

export const BACKENDS: readonly BackendCase[] = [
  { name: 'webgpu', label: 'WebGPU', args: WEBGPU_ARGS },
  { name: 'cpu', label: 'the cpu fallback', args: NO_WEBGPU_ARGS },
];

export type OpenPage = Awaited<ReturnType<typeof launch>>;

export interface PanelSuite {
  /**
   * A fresh Chromium on `backend` with the site at `?<query>`, once the model is loaded and the page
   * reports that backend; `beforeGoto` runs first (init scripts). Close it in a finally.
   */
  open(ctx: TestContext, backend: BackendCase, query: string, options?: { height?: number; beforeGoto?: (page: Page) => Promise<unknown> }): Promise<OpenPage>;
}

/** describe(title) for the panel of the bundled model `model`; `tag` names the test in warnings. */
export function describePanel(tag: string, title: string, model: string, body: (suite: PanelSuite) => void): void {
  const skip = !haveChromium && !requireWebGPU;
  if (skip) console.warn(`[playground ${tag} test] SKIPPED: no Chromium at ${executablePath} (LM_REQUIRE_WEBGPU=1 makes this a failure)`);
  let server: Server | undefined;
  let url = '';

  const open: PanelSuite['open'] = async (ctx, backend, query, options = {}) => {
    const browser = await launch([...backend.args], options.height);
    const { page, log } = browser;
    try {
      await options.beforeGoto?.(page);
      await page.goto(`${url}?${query}`);
      await page.waitForFunction(() => ['ready', 'error'].includes(document.documentElement.dataset.model ?? '') || document.documentElement.dataset.backend === 'error', undefined, { timeout: 60_000 });
      const shown = await page.evaluate(() => document.documentElement.dataset.backend);
      if (backend.name === 'webgpu' && shown !== 'webgpu' && !requireWebGPU) {
        console.warn(`[playground ${tag} test] SKIPPED: the browser exposes no WebGPU adapter`);
        ctx.skip(); // throws: closed below
      }
      if (shown !== backend.name) throw new Error(`the page runs on ${shown}, not ${backend.name}\n${log.join('\n')}`);
      expect(await page.evaluate(() => document.documentElement.dataset.model), log.join('\n')).toBe('ready');
      return browser;
    } catch (err) {
      await browser.close(); // a failed (or skipped) open leaves no browser behind
      throw err;
    }
  };

  describe.skipIf(skip)(title, () => {
    beforeAll(async () => {
      if (!haveChromium) throw new Error(`LM_REQUIRE_WEBGPU=1 but no Chromium at ${executablePath}`);
      const dir = bundledModel(model);
      if (!existsSync(join(dir, 'config.json'))) throw new Error(`no bundled ${model} model at ${dir}: run the playground build first`);
      mkdirSync(artifacts, { recursive: true });
      ({ url, server } = await serveStatic(dist));
    });
    afterAll(() => {
      server?.close();
    });
    body({ open });
  });
}
