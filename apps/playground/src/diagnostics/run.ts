// Runs every WebGPU smoke check (raw WGSL, then @lm/tensor-gpu on the page's own thread), shows each
// result with its adapter, and publishes the outcome for the browser test:
// `document.documentElement.dataset.smoke` = pass | fail | unavailable, and `window.__lmSmoke` with the
// per-check results. Adding a check is one file exporting a `Check` and one list entry.
import { WebGPUUnavailableError } from './checks.js';
import type { Check, CheckResult } from './checks.js';
import { tensorSmoke } from './tensor-smoke.js';
import { wgslSmoke } from './wgsl-smoke.js';

const CHECKS: Check[] = [wgslSmoke, tensorSmoke];

declare global {
  interface Window {
    __lmSmoke?: { status: CheckResult['status']; checks: (CheckResult & { name: string })[] };
  }
}

async function runCheck(check: Check): Promise<CheckResult> {
  try {
    return await check.run();
  } catch (err) {
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return { status: err instanceof WebGPUUnavailableError ? 'unavailable' : 'fail', adapter: 'n/a', detail: message };
  }
}

function render(name: string, result: CheckResult): HTMLElement {
  const section = document.createElement('section');
  const title = document.createElement('h3');
  title.textContent = `${name}: `;
  const status = document.createElement('span');
  status.className = result.status;
  status.textContent = result.status.toUpperCase();
  title.append(status);
  const pre = document.createElement('pre');
  pre.textContent = `adapter: ${result.adapter}\n${result.detail}`;
  section.append(title, pre);
  return section;
}

export async function runDiagnostics(container: HTMLElement, statusEl: HTMLElement): Promise<void> {
  const results: (CheckResult & { name: string })[] = [];
  for (const check of CHECKS) {
    const result = await runCheck(check);
    results.push({ name: check.name, ...result });
    container.append(render(check.name, result));
  }
  const overall: CheckResult['status'] = results.some((r) => r.status === 'fail')
    ? 'fail'
    : results.some((r) => r.status === 'unavailable')
      ? 'unavailable'
      : 'pass';
  statusEl.textContent = overall.toUpperCase();
  statusEl.className = overall;
  window.__lmSmoke = { status: overall, checks: results };
  document.documentElement.dataset.smoke = overall;
}
