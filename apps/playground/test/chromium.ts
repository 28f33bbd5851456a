// Headless Chromium for the browser tests (playwright-core driving the system's /usr/bin/chromium, or
// $LM_CHROMIUM): the flags of WEBGPU.md, and a browser with a fresh profile whose console is collected.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';

export const executablePath = process.env.LM_CHROMIUM ?? '/usr/bin/chromium';
export const haveChromium = existsSync(executablePath);

const QUIET = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
/** Headless WebGPU on SwiftShader (WEBGPU.md). */
export const WEBGPU_ARGS = [...QUIET, '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader'];
/** No WebGPU: without --enable-unsafe-webgpu headless Linux Chromium offers no adapter; no GPU process either. */
export const NO_WEBGPU_ARGS = [...QUIET, '--disable-gpu'];

export function watch(page: Page, log: string[]): void {
  page.on('console', (msg) => log.push(`[${msg.type()}] ${msg.text()}`));
  page.on('pageerror', (err) => log.push(`[pageerror] ${err.message}`));
}

/** A browser with a fresh profile; its console is collected for failure messages. */
export async function launch(args: string[], height = 900): Promise<{ context: BrowserContext; page: Page; log: string[]; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'lm-playground-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args, viewport: { width: 1100, height }, acceptDownloads: true });
  const log: string[] = [];
  const page = await context.newPage();
  watch(page, log);
  return {
    context,
    page,
    log,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
