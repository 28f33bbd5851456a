// Which backends a test run covers: cpu always; webgpu when an adapter exists, and required (failing,
// not skipping) when LM_REQUIRE_WEBGPU=1.

import type { Backend } from '../backend.js';
import { cpu } from '../runtime.js';

export function webgpuRequired(): boolean {
  return typeof process !== 'undefined' && process.env?.LM_REQUIRE_WEBGPU === '1';
}

let webgpuPromise: Promise<Backend | null> | null = null;

/** The webgpu backend for tests, or null (only when not required) if no adapter is usable. */
export function testWebGPUBackend(): Promise<Backend | null> {
  webgpuPromise ??= (async () => {
    try {
      const { createWebGPUBackend } = await import('../backends/webgpu/index.js');
      return await createWebGPUBackend();
    } catch (e) {
      if (webgpuRequired()) throw e;
      return null;
    }
  })();
  return webgpuPromise;
}

export function testCpuBackend(): Backend {
  return cpu();
}
