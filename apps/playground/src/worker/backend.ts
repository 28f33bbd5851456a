// Picks the backend inside the worker. Unlike `init('auto')` of @lm/tensor-gpu, which prefers the cpu
// backend over a software adapter, the playground runs on WebGPU whenever the browser offers any
// adapter (it is the point of the page) and says when that adapter is software. The cpu backend is
// used when asked for (`?backend=cpu`) or when WebGPU is missing, with the reason.
import { init } from '@lm/tensor-gpu';
import type { Backend } from '@lm/tensor-gpu';
import type { BackendInfo, BackendRequest } from './protocol.js';

/** Why WebGPU cannot be used in this worker, or null when an adapter is there. */
async function webgpuUnavailable(): Promise<string | null> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return 'navigator.gpu is undefined: this browser has no WebGPU, or it is disabled';
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return 'navigator.gpu.requestAdapter() returned null: WebGPU is there but offers no adapter (GPU disabled or blocklisted)';
  } catch (err) {
    return `navigator.gpu.requestAdapter() failed: ${(err as Error).message}`;
  }
  return null;
}

async function onCpu(requested: BackendRequest, fallbackReason: string): Promise<{ backend: Backend; info: BackendInfo }> {
  const backend = await init('cpu');
  return { backend, info: { name: 'cpu', adapterInfo: backend.adapterInfo, isSoftware: false, requested, fallbackReason } };
}

export async function chooseBackend(requested: BackendRequest): Promise<{ backend: Backend; info: BackendInfo }> {
  if (requested === 'cpu') return onCpu(requested, 'the cpu backend was asked for (?backend=cpu)');
  const missing = await webgpuUnavailable();
  if (missing) return onCpu(requested, missing);
  try {
    const backend = await init('webgpu');
    return { backend, info: { name: 'webgpu', adapterInfo: backend.adapterInfo, isSoftware: backend.isSoftware, requested } };
  } catch (err) {
    return onCpu(requested, `creating the WebGPU device failed: ${(err as Error).message}`);
  }
}
