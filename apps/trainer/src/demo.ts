// The default run of lm-train, until training lands: create tensors on the best available backend,
// run a matmul and a softmax, and report which backend and adapter did the work.

import { autoFallbackReason, init, manualSeed, randn, tensor } from '@lm/tensor-gpu';

export type BackendChoice = 'auto' | 'cpu' | 'webgpu';

export interface DemoResult {
  backend: string;
  adapterInfo: string;
  /** Why `init('auto')` settled on the cpu backend, when it did. */
  fallbackReason: string | null;
  /** softmax(randn([4, 8]) @ w, -1): [4, 3], each row sums to 1. */
  probs: number[][];
}

export async function runDemo(options: { backend?: BackendChoice; seed?: number } = {}): Promise<DemoResult> {
  const choice = options.backend ?? 'auto';
  const backend = await init(choice);
  manualSeed(options.seed ?? 0);
  const x = randn([4, 8]); // [batch, features]
  const w = tensor(Array.from({ length: 8 }, (_, i) => [1, 0.5 * i, -0.25 * i])); // [features, classes]
  const logits = x.matmul(w); // [batch, classes]
  const probs = logits.softmax(-1);
  const rows = (await probs.toArray()) as number[][];
  for (const t of [x, w, logits, probs]) t.dispose();
  return {
    backend: backend.name,
    adapterInfo: backend.adapterInfo,
    fallbackReason: choice === 'auto' && backend.name === 'cpu' ? autoFallbackReason() : null,
    probs: rows,
  };
}

export function formatDemo(result: DemoResult): string {
  const lines = [
    `backend: ${result.backend}`,
    `adapter: ${result.adapterInfo}`,
    ...(result.fallbackReason ? [`(auto chose cpu: ${result.fallbackReason}; --backend webgpu forces WebGPU)`] : []),
    'softmax(randn([4, 8]) @ w[8, 3], -1):',
    ...result.probs.map((row) => `  [${row.map((v) => v.toFixed(6)).join(', ')}]  sum=${row.reduce((a, b) => a + b, 0).toFixed(6)}`),
  ];
  return lines.join('\n');
}
