// The memory check before a run: what the model and batch need, against what the backend can hold.
// WebGPU refuses any buffer above the adapter's maxStorageBufferBindingSize, so the largest tensor of
// a step (the logits [batch, seq, vocab], the attention scores [batch, heads, seq, seq], an embedding
// table) must fit it; and the whole (weights, gradients, AdamW's two moments, the activations kept for
// backward) must fit half the device memory the browser reports (navigator.deviceMemory, which
// Chromium caps at 8 GiB). Estimated from a BERT-like config's sizes; the run is refused with the numbers.
import type { Backend } from '@lm/tensor-gpu';
import type { TrainConfig } from '../../../trainer/src/config.js';

const MiB = 2 ** 20;
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

interface Sizes {
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  maxPositionEmbeddings: number;
}

function sizesOf(modelConfig: unknown): Sizes | null {
  const c = modelConfig as Partial<Record<keyof Sizes, unknown>>;
  const keys: (keyof Sizes)[] = ['vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize', 'maxPositionEmbeddings'];
  return keys.every((k) => typeof c[k] === 'number') ? (c as Sizes) : null;
}

export interface MemoryEstimate {
  parameters: number;
  /** Weights, gradients and AdamW's two moments, float32. */
  stateBytes: number;
  /** Activations kept for backward, float32. */
  activationBytes: number;
  largest: { what: string; bytes: number };
}

export function estimate(s: Sizes, batch: number, seq: number): MemoryEstimate {
  const { vocabSize: V, hiddenSize: H, numHiddenLayers: L, numAttentionHeads: A, intermediateSize: I, maxPositionEmbeddings: P } = s;
  // Embeddings (word, position, token type), per layer attention + MLP + 2 LayerNorms, the pooler and the heads.
  const parameters = (V + P + 2) * H + L * (4 * H * H + 2 * H * I + 9 * H + I) + 2 * H * H + V + 4 * H;
  const tokens = batch * seq;
  const activationBytes = 4 * (L * (tokens * (12 * H + 2 * I) + 3 * batch * A * seq * seq) + 3 * tokens * V);
  const candidates = [
    { what: `the logits [${batch}, ${seq}, ${V}]`, bytes: 4 * tokens * V },
    { what: `the attention scores [${batch}, ${A}, ${seq}, ${seq}]`, bytes: 4 * batch * A * seq * seq },
    { what: `the word embeddings [${V}, ${H}]`, bytes: 4 * V * H },
    { what: `the MLP activations [${batch}, ${seq}, ${I}]`, bytes: 4 * tokens * I },
  ];
  const largest = candidates.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  return { parameters, stateBytes: 16 * parameters, activationBytes, largest };
}

/** Throws a one-line refusal with the numbers when the run cannot fit; returns the estimate otherwise. */
export function checkFits(modelConfig: unknown, config: TrainConfig, backend: Backend): MemoryEstimate | null {
  const sizes = sizesOf(modelConfig);
  if (!sizes) return null;
  const e = estimate(sizes, config.training.batchSize, config.data.seqLength);
  const deviceGiB = (navigator as Navigator & { deviceMemory?: number }).deviceMemory ?? 4;
  const budget = (deviceGiB * 2 ** 30) / 2;
  const total = e.stateBytes + e.activationBytes;
  const what = `model.config: ${(e.parameters / 1e6).toFixed(2)}M parameters with batch ${config.training.batchSize} x seq ${config.data.seqLength}`;
  if (e.largest.bytes > backend.maxBindingBytes) {
    throw new RangeError(
      `${what} needs ${e.largest.what} in one buffer, ${mib(e.largest.bytes)}, more than this ${backend.name} adapter's limit (${mib(backend.maxBindingBytes)}); lower training.batchSize, data.seqLength or the model's size`,
    );
  }
  if (total > budget) {
    throw new RangeError(
      `${what} needs about ${mib(total)} (weights, gradients and AdamW ${mib(e.stateBytes)}, activations ${mib(e.activationBytes)}), more than this page can hold (${mib(budget)}: half of the ${deviceGiB} GiB the browser reports); lower training.batchSize, data.seqLength or the model's size`,
    );
  }
  return e;
}
