// Which backends a test run covers: cpu always; webgpu when an adapter exists, and required (failing,
// not skipping) when LM_REQUIRE_WEBGPU=1.

import type { Backend, FusedKernelName, FusedKernels } from '../backend.js';
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

/**
 * The backend seen without some of its fused kernels (all of them by default): ops on it run their
 * composites. Everything else, storage included, is the wrapped backend's; tensors made through the
 * wrapper belong to the wrapper, so ops keep dispatching through it.
 */
export function withoutFusedKernels(backend: Backend, drop?: readonly FusedKernelName[]): Backend {
  const kept = Object.entries(backend.fused).filter(([name]) => drop !== undefined && !drop.includes(name as FusedKernelName));
  const fused: FusedKernels = Object.fromEntries(kept);
  return new Proxy(backend, { get: (target, prop, receiver) => (prop === 'fused' ? fused : Reflect.get(target, prop, receiver)) });
}
