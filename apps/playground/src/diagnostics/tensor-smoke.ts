// The same stack the models use: @lm/tensor-gpu on WebGPU, a matmul and a softmax, read back.
import { init, manualSeed, probeWebGPU, randn, tensor } from '@lm/tensor-gpu';
import { WebGPUUnavailableError } from './checks.js';
import type { Check } from './checks.js';

export const tensorSmoke: Check = {
  name: '@lm/tensor-gpu: softmax(randn([4, 8]) @ w[8, 3])',
  async run() {
    const probe = await probeWebGPU();
    if (!probe.available) throw new WebGPUUnavailableError(probe.reason ?? 'no WebGPU adapter');
    const backend = await init('webgpu');
    manualSeed(0);
    const x = randn([4, 8]);
    const w = tensor(Array.from({ length: 8 }, (_, i) => [1, 0.5 * i, -0.25 * i]));
    const probs = x.matmul(w).softmax(-1);
    const rows = (await probs.toArray()) as number[][];
    probs.dispose();
    x.dispose();
    w.dispose();
    const sums = rows.map((r) => r.reduce((a, b) => a + b, 0));
    const ok = rows.length === 4 && rows.every((r) => r.length === 3) && sums.every((s) => Math.abs(s - 1) < 1e-5);
    return {
      status: ok ? 'pass' : 'fail',
      adapter: backend.adapterInfo,
      detail: `row sums ${sums.map((s) => s.toFixed(6)).join(', ')}; probs ${JSON.stringify(rows.map((r) => r.map((v) => +v.toFixed(4))))}`,
    };
  },
};
