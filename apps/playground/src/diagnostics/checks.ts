/** One check the page runs on load; each lives in its own file and is listed in main.ts. */
export interface CheckResult {
  /** `unavailable`: WebGPU itself is missing (no navigator.gpu or no adapter), not a wrong answer. */
  status: 'pass' | 'fail' | 'unavailable';
  /** Adapter / backend description. */
  adapter: string;
  /** What was computed and what came back. */
  detail: string;
}

export interface Check {
  name: string;
  run(): Promise<CheckResult>;
}

export class WebGPUUnavailableError extends Error {
  override name = 'WebGPUUnavailableError';
}

export function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown adapter';
  return [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unknown adapter';
}
