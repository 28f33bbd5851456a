// Is a WebGPU adapter usable here? Loads the webgpu backend module only when asked.

export interface WebGPUProbe {
  available: boolean;
  isSoftware: boolean;
  adapterInfo: string;
  reason?: string;
}

export async function probeWebGPU(): Promise<WebGPUProbe> {
  const webgpu = await import('./backends/webgpu/index.js');
  return webgpu.probeWebGPU();
}
