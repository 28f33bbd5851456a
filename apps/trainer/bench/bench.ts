// lm-train benchmarks: one JSON line per measurement.
//   default-run   training steps of the embedded default config (model, data, batch) on each backend
//   bert-base     one MLM training step (forward, backward, AdamW) of a BERT-base-sized MegatronBERT
//                 (hidden 768, 12 layers, 12 heads, vocab 30522), seq 128
// with tokens/s, ms per step, and peak memory (process RSS and the backend's live bytes). On a WebGPU
// adapter with shader-f16 each is measured again in float16 mixed precision (as training.float16).
//
//   pnpm --filter trainer bench            (builds first; LM_BENCH_BERT_BATCH sets the bert-base batch, default 2)

import { AdamW, BertTokenizer, DynamicLossScaler, Float16MainParams, type Tokenizer } from '@lm/layers';
import { MegatronBertConfig, MegatronBertForPreTraining } from '@lm/megatron-bert';
import { init, manualSeed, memory, probeWebGPU, scope, type Backend } from '@lm/tensor-gpu';
import { DEFAULT_CONFIG_PATH } from '../src/default-config.js';
import { loadConfig } from '../src/config.js';
import { CorpusData } from '../src/core/data.js';
import { corpusSource } from '../src/data/sources.js';
import { loadWordPieceTokenizer } from '../src/data/tokenizer.js';
import { MaskedLMObjective, type MaskedLMBatch as Batch } from '../src/objectives/mlm-nsp.js';

let peakRss = 0;
let peakBackend = 0;
function sample(): void {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const m = memory();
  peakBackend = Math.max(peakBackend, ...Object.values(m.backends).map((b) => b.bytes));
}

function emit(record: Record<string, unknown>): void {
  console.log(JSON.stringify({ ...record, peakRssMB: Math.round(peakRss / 2 ** 20), peakBackendMB: Math.round(peakBackend / 2 ** 20) }));
}

function syntheticBatch(batchSize: number, seqLength: number, vocab: number): Batch {
  const n = batchSize * seqLength;
  const inputIds = new Int32Array(n).map((_, i) => 5 + ((i * 7919) % (vocab - 5)));
  const labels = new Int32Array(n).map((v, i) => (i % 7 === 3 ? inputIds[i] : -100));
  return {
    batchSize,
    seqLength,
    inputIds,
    tokenTypeIds: new Int32Array(n),
    attentionMask: new Int32Array(n).fill(1),
    labels,
    nextSentenceLabel: new Int32Array(batchSize),
    tokens: n,
    maskedTokens: labels.filter((l) => l !== -100).length,
  };
}

/** Training steps as lm-train takes them (float16: main weights, loss scaling, one overflow read per step). */
async function timeSteps(model: MegatronBertForPreTraining, backend: Backend, tokenizer: Tokenizer, batches: () => Promise<Batch>, steps: number, warmup: number, float16 = false) {
  const objective = new MaskedLMObjective(tokenizer, { nextSentencePrediction: true, seqLength: 128, maskProbability: 0.15, shortSeqProbability: 0.1, backend });
  const main = float16 ? new Float16MainParams(model.parameters()) : null;
  if (main) main.bindModel(model.cast('float16').parameters());
  const scaler = new DynamicLossScaler();
  const optimizer = new AdamW(main ? main.params : model.parameters(), { lr: 1e-4 });
  const fwd = { forward: (x: Parameters<MegatronBertForPreTraining['forward']>[0]) => model.forward(x) };
  let tokens = 0;
  let seconds = 0;
  for (let s = 0; s < warmup + steps; s++) {
    const batch = await batches();
    const t0 = performance.now();
    const loss = scope(() => {
      const out = objective.compute(fwd, batch);
      (main ? out.loss.mulScalar(scaler.scale) : out.loss).backward();
      if (!main) {
        optimizer.step();
        optimizer.zeroGrad();
      }
      return out.loss;
    });
    if (main) {
      const foundInf = main.unscaleGrads(scaler.scale);
      const overflow = (await foundInf.item()) !== 0;
      foundInf.dispose();
      if (!overflow) {
        scope(() => optimizer.step());
        main.copyToModel();
      }
      optimizer.zeroGrad();
      scaler.update(overflow);
    }
    await loss.item();
    loss.dispose();
    sample();
    if (s >= warmup) {
      seconds += (performance.now() - t0) / 1000;
      tokens += batch.tokens;
    }
  }
  optimizer.dispose();
  main?.dispose();
  return { ...(float16 ? { dtype: 'float16' } : {}), tokensPerSecond: Math.round(tokens / seconds), msPerStep: Math.round((1000 * seconds) / steps) };
}

async function defaultRun(backend: Backend, steps = 10, warmup = 2, float16 = false): Promise<void> {
  const cfg = loadConfig({ file: DEFAULT_CONFIG_PATH });
  const tokenizer = await loadWordPieceTokenizer(cfg.data.tokenizer!, { lowercase: true });
  const objective = new MaskedLMObjective(tokenizer, { nextSentencePrediction: true, seqLength: cfg.data.seqLength, maskProbability: cfg.data.maskProbability, shortSeqProbability: cfg.data.shortSeqProbability, backend });
  const source = await corpusSource(cfg.data.paths, cfg.data.format, cfg.data.jsonlField);
  const data = new CorpusData(source, objective, {
    encode: (text) => tokenizer.encode(text, null, { addSpecialTokens: false }).inputIds,
    validationFraction: cfg.data.validationFraction,
    shuffleBuffer: cfg.data.shuffleBuffer,
    seed: cfg.seed,
  });
  const stream = data.trainBatches(cfg.training.batchSize);
  manualSeed(cfg.seed);
  const model = new MegatronBertForPreTraining(new MegatronBertConfig({ ...(cfg.model.config as object), vocabSize: tokenizer.vocabSize }), { backend });
  const r = await timeSteps(model, backend, tokenizer, () => stream.next(), steps, warmup, float16);
  await stream.close();
  model.dispose();
  emit({ bench: 'default-run', backend: backend.name, adapter: backend.adapterInfo, batch: cfg.training.batchSize, seq: cfg.data.seqLength, params: model.numParameters(), ...r });
}

async function bertBase(backend: Backend, batchSize: number, steps = 1, warmup = 1, float16 = false): Promise<void> {
  manualSeed(0);
  const config = new MegatronBertConfig({ vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 3072, maxPositionEmbeddings: 512 });
  const model = new MegatronBertForPreTraining(config, { backend });
  const batch = syntheticBatch(batchSize, 128, config.vocabSize);
  const r = await timeSteps(model, backend, SPECIAL_ONLY, async () => batch, steps, warmup, float16);
  emit({ bench: 'bert-base-mlm-step', backend: backend.name, adapter: backend.adapterInfo, batch: batchSize, seq: 128, params: model.numParameters(), warmupSteps: warmup, ...r });
  model.dispose();
}

/** The synthetic batches need no vocabulary; the objective only reads the special ids. */
const SPECIAL_ONLY = BertTokenizer.fromVocab('[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n');

const bertBatch = Number(process.env.LM_BENCH_BERT_BATCH ?? 2);
const cpu = await init('cpu');
await defaultRun(cpu);
await bertBase(cpu, bertBatch);

const probe = await probeWebGPU();
if (!probe.available) {
  console.log(JSON.stringify({ bench: 'webgpu', skipped: true, reason: `no WebGPU adapter: ${probe.reason ?? 'unavailable'}` }));
} else {
  const gpu = await init('webgpu');
  peakBackend = 0;
  // SwiftShader is far slower than the cpu backend: a couple of steps tell the rate, and the BERT-base
  // step is a single batch-1 step including pipeline compilation (warmupSteps 0), about two minutes.
  if (probe.isSoftware) {
    await defaultRun(gpu, 2, 1);
    peakBackend = 0;
    await bertBase(gpu, 1, 1, 0);
  } else {
    await defaultRun(gpu);
    peakBackend = 0;
    await bertBase(gpu, bertBatch);
    if (gpu.supportsFloat16) {
      peakBackend = 0;
      await defaultRun(gpu, 10, 2, true);
      peakBackend = 0;
      await bertBase(gpu, bertBatch, 1, 1, true);
    }
  }
  gpu.destroy?.();
}
process.exit(0);
