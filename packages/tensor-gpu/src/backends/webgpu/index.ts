// The WebGPU backend: `createWebGPUBackend()` finds an adapter by itself (hardware first, then
// SwiftShader in Node), requests a device with the adapter's large limits and returns a WebGPUBackend.

import { BackendError } from '../../errors.js';
import { describeAdapter, findAdapter, isSoftwareAdapter, requestDevice, type DeviceOptions } from './device.js';
import type { MatmulKernel } from './kernels/matmul.js';
import { WebGPUBackend, type AttentionKernel } from './webgpu-backend.js';

export { WebGPUBackend, type AttentionKernel } from './webgpu-backend.js';
export type { MatmulKernel } from './kernels/matmul.js';

export interface WebGPUBackendOptions {
  /** Use this adapter instead of discovering one. */
  adapter?: GPUAdapter;
  powerPreference?: GPUPowerPreference;
  /** Throw instead of running on a software adapter (SwiftShader). */
  requireHardware?: boolean;
  /** Force a matmul kernel family (tests use this to exercise 'tiled' on SwiftShader). */
  matmulKernel?: MatmulKernel | 'auto';
  /** Force an attention kernel family (tests use this to exercise 'flash' on SwiftShader). */
  attentionKernel?: AttentionKernel | 'auto';
  /**
   * Reduce rows with subgroup operations where the adapter offers the `subgroups` feature (default true;
   * `LM_WEBGPU_SUBGROUPS=off` in Node turns them off for every backend the process creates). 'linear'
   * (tests) places each subgroup's partial result by lid / subgroup_size even where WGSL's `subgroup_id`
   * builtin exists.
   */
  subgroups?: boolean | 'linear';
  /** Request lower limits than the adapter offers (tests use this to hit limit errors cheaply). */
  limits?: DeviceOptions['limits'];
}

export async function createWebGPUBackend(options: WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
  const adapter = options.adapter ?? (await findAdapter(options.powerPreference));
  const isSoftware = isSoftwareAdapter(adapter);
  const adapterInfo = describeAdapter(adapter);
  if (options.requireHardware && isSoftware) {
    throw new BackendError(`webgpu: only a software adapter is available (${adapterInfo}) and requireHardware is set`);
  }
  const matmulKernel = options.matmulKernel ?? kernelFromEnv('LM_WEBGPU_MATMUL', ['auto', 'regblock', 'tiled'] as const);
  const attentionKernel = options.attentionKernel ?? kernelFromEnv('LM_WEBGPU_ATTENTION', ['auto', 'rowwise', 'flash'] as const);
  const subgroups = options.subgroups ?? kernelFromEnv('LM_WEBGPU_SUBGROUPS', ['on', 'off'] as const) !== 'off';
  const device = await requestDevice(adapter, { limits: options.limits });
  return new WebGPUBackend(device, { adapterInfo, isSoftware, matmulKernel, attentionKernel, subgroups });
}

/**
 * A kernel choice forced by an environment variable (Node), e.g. LM_WEBGPU_MATMUL=tiled
 * LM_WEBGPU_ATTENTION=flash to run the conformance fixtures through the hardware kernels on SwiftShader,
 * or LM_WEBGPU_SUBGROUPS=off through the shared-memory reductions.
 */
function kernelFromEnv<T extends string>(name: string, allowed: readonly T[]): T | undefined {
  const value = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
  if (value === undefined || value === '') return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new BackendError(`webgpu: ${name}='${value}' is not one of ${allowed.join(', ')}`);
  }
  return value as T;
}

export async function probeWebGPU(): Promise<{ available: boolean; isSoftware: boolean; adapterInfo: string; reason?: string }> {
  try {
    const adapter = await findAdapter();
    return { available: true, isSoftware: isSoftwareAdapter(adapter), adapterInfo: describeAdapter(adapter) };
  } catch (e) {
    return { available: false, isSoftware: false, adapterInfo: '', reason: (e as Error).message };
  }
}
