// Backend selection. `init('auto')` picks a hardware WebGPU adapter when one is usable, else the cpu
// backend: a software adapter (SwiftShader) is right for testing WebGPU but ~100x slower than the cpu
// path, so auto never picks it. Ops use the default backend unless told otherwise.

import type { Backend, BackendName } from './backend.js';
import { BackendError } from './errors.js';
import { createCpuBackend } from './backends/cpu/index.js';

export type BackendChoice = 'auto' | BackendName;

let defaultBackend: Backend | null = null;
let cpuBackend: Backend | null = null;

/** The shared cpu backend (created on first use). */
export function cpu(): Backend {
  if (!cpuBackend) cpuBackend = createCpuBackend();
  return cpuBackend;
}

/** The backend ops use when none is given: the one set by init()/setBackend(), else cpu. */
export function getBackend(): Backend {
  return defaultBackend ?? cpu();
}

export function setBackend(backend: Backend): void {
  defaultBackend = backend;
}

export interface InitOptions {
  /** With 'auto': accept a software WebGPU adapter too (default false). */
  allowSoftwareAdapter?: boolean;
}

/** Creates (or reuses) a backend and makes it the default. */
export async function init(choice: BackendChoice = 'auto', options: InitOptions = {}): Promise<Backend> {
  if (choice === 'cpu') {
    defaultBackend = cpu();
    return defaultBackend;
  }
  if (choice !== 'webgpu' && choice !== 'auto') {
    throw new BackendError(`init: unknown backend '${String(choice)}'; use 'auto', 'cpu' or 'webgpu'`);
  }
  const webgpu = await import('./backends/webgpu/index.js');
  if (choice === 'webgpu') {
    const backend = await webgpu.createWebGPUBackend();
    defaultBackend = backend;
    return backend;
  }
  const probe = await webgpu.probeWebGPU();
  if (probe.available && (!probe.isSoftware || options.allowSoftwareAdapter)) {
    try {
      const backend = await webgpu.createWebGPUBackend();
      defaultBackend = backend;
      return backend;
    } catch {
      // fall through to cpu
    }
  }
  autoReason = probe.available
    ? `WebGPU adapter is software (${probe.adapterInfo}); the cpu backend is faster`
    : `no WebGPU adapter: ${probe.reason ?? 'unavailable'}`;
  const backend = cpu();
  defaultBackend = backend;
  return backend;
}

let autoReason: string | null = null;
/** Why init('auto') chose cpu, if it did. */
export function autoFallbackReason(): string | null {
  return autoReason;
}
