// `pnpm bench`: MegatronBERT benchmarks on the built package, one JSON line per measurement.
//   encoder-forward   MegatronBertModel forward latency and peak live memory: the 345M configuration
//                     (24 layers, hidden 1024, 16 heads, seq 128) at batch 1 and 8, and a BERT-base-shaped
//                     encoder (12 layers, hidden 768, 12 heads, seq 128, batch 1) for comparison with
//                     tfjs-wasm / ONNX Runtime
//   mlm-train-step    MegatronBertForMaskedLM forward + backward + AdamW step, BERT-base sized
// Backends: cpu always; webgpu when an adapter exists (on a software adapter such as SwiftShader only
// batch 1, and a line with the reason when a measurement would take minutes).
// Usage: node bench/run.mjs [--backend cpu|webgpu|all] [--quick]
import * as lm from '@lm/tensor-gpu';
import { AdamW } from '@lm/layers';
import { MegatronBertConfig, MegatronBertForMaskedLM, MegatronBertModel } from '../dist/index.js';

const args = process.argv.slice(2);
const which = args.includes('--backend') ? args[args.indexOf('--backend') + 1] : 'all';
const quick = args.includes('--quick');

const CONFIGS = {
  '345m': { vocabSize: 29056, hiddenSize: 1024, numHiddenLayers: 24, numAttentionHeads: 16, intermediateSize: 4096 },
  'bert-base': { vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 3072 },
};
const SEQ = 128;

const emit = (o) => console.log(JSON.stringify(o));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Tracks the high-water mark of live storage bytes by watching the backend's allocations. */
function trackPeak(backend) {
  const alloc = backend.alloc.bind(backend);
  const state = { peak: 0 };
  backend.alloc = (dtype, size) => {
    const s = alloc(dtype, size);
    state.peak = Math.max(state.peak, backend.memory().bytes);
    return s;
  };
  return {
    reset: () => (state.peak = backend.memory().bytes),
    get peak() {
      return state.peak;
    },
  };
}

/** Median wall time of `fn` (synchronous compute that disposes its outputs; awaits the backend), after a warm-up run. */
async function time(backend, fn, reps) {
  const run = async () => {
    const t0 = performance.now();
    fn();
    await backend.sync();
    const ms = performance.now() - t0;
    return ms;
  };
  await run();
  const times = [];
  for (let i = 0; i < reps; i++) times.push(await run());
  return { ms: median(times), times };
}

function randomIds(backend, batch, vocab, seed) {
  const host = new Int32Array(batch * SEQ);
  let s = seed;
  for (let i = 0; i < host.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    host[i] = 5 + (s % (vocab - 5));
  }
  return lm.fromHost(host, [batch, SEQ], 'int32', backend);
}

async function forwardBench(backend, peak, name, batches) {
  const cfg = CONFIGS[name];
  const config = new MegatronBertConfig({ ...cfg, maxPositionEmbeddings: 512 });
  lm.manualSeed(0);
  const model = new MegatronBertModel(config, { backend }).eval();
  const weightBytes = model.getMemoryFootprint();
  for (const batch of batches) {
    const ids = randomIds(backend, batch, cfg.vocabSize, 1);
    const reps = quick ? 1 : batch > 1 ? 2 : name === 'bert-base' ? 7 : 3;
    peak.reset();
    const { ms, times } = await time(
      backend,
      () => {
        const out = lm.noGrad(() => model.forward({ inputIds: ids }));
        out.lastHiddenState.dispose();
        out.poolerOutput?.dispose();
        return null;
      },
      reps,
    );
    emit({
      bench: 'encoder-forward',
      model: name === '345m' ? 'megatron-bert-345m' : 'bert-base-shaped',
      backend: backend.name,
      adapter: backend.adapterInfo,
      layers: cfg.numHiddenLayers,
      hidden: cfg.hiddenSize,
      batch,
      seq: SEQ,
      median_ms: +ms.toFixed(1),
      min_ms: +Math.min(...times).toFixed(1),
      runs_ms: times.map((t) => +t.toFixed(1)),
      tokens_per_s: Math.round((batch * SEQ * 1000) / ms),
      peak_live_bytes: peak.peak,
      weight_bytes: weightBytes,
    });
    ids.dispose();
  }
  model.dispose();
}

async function trainBench(backend, peak) {
  const cfg = CONFIGS['bert-base'];
  const config = new MegatronBertConfig({ ...cfg, maxPositionEmbeddings: 512, hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1 });
  lm.manualSeed(0);
  const model = new MegatronBertForMaskedLM(config, { backend }).train();
  const optimizer = new AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.01 });
  const batch = 1;
  const ids = randomIds(backend, batch, cfg.vocabSize, 2);
  // 15% of positions carry labels, the rest -100.
  const host = new Int32Array(batch * SEQ).fill(-100);
  for (let i = 0; i < host.length; i += 7) host[i] = 5 + ((i * 31) % (cfg.vocabSize - 5));
  const labels = lm.fromHost(host, [batch, SEQ], 'int32', backend);
  peak.reset();
  const { ms, times } = await time(
    backend,
    () => {
      lm.scope(() => {
        const loss = model.forward({ inputIds: ids, labels }).loss;
        loss.backward();
        optimizer.step();
        optimizer.zeroGrad();
      });
      return null;
    },
    quick ? 1 : 3,
  );
  emit({
    bench: 'mlm-train-step',
    model: 'bert-base-shaped',
    backend: backend.name,
    adapter: backend.adapterInfo,
    optimizer: 'AdamW',
    batch,
    seq: SEQ,
    median_ms: +ms.toFixed(1),
    min_ms: +Math.min(...times).toFixed(1),
    runs_ms: times.map((t) => +t.toFixed(1)),
    peak_live_bytes: peak.peak,
    weight_bytes: model.getMemoryFootprint(),
  });
  ids.dispose();
  labels.dispose();
  model.dispose();
}

/** On a software GPU adapter: time one 345M layer-sized forward to decide whether a full run is reasonable. */
async function projectedSoftwareMs(backend) {
  const config = new MegatronBertConfig({ ...CONFIGS['345m'], numHiddenLayers: 1, vocabSize: 128, maxPositionEmbeddings: 512 });
  const model = new MegatronBertModel(config, { backend }).eval();
  const ids = randomIds(backend, 1, 128, 3);
  const { ms } = await time(backend, () => {
    const out = lm.noGrad(() => model.forward({ inputIds: ids }));
    out.lastHiddenState.dispose();
    out.poolerOutput?.dispose();
    return null;
  }, 1);
  ids.dispose();
  model.dispose();
  return ms * CONFIGS['345m'].numHiddenLayers;
}

async function main() {
  const backends = [];
  if (which === 'cpu' || which === 'all') backends.push(await lm.init('cpu'));
  if (which === 'webgpu' || which === 'all') {
    try {
      backends.push(await lm.createWebGPUBackend());
    } catch (e) {
      emit({ bench: 'all', backend: 'webgpu', skipped: `no WebGPU adapter: ${e.message.split('\n')[0]}` });
    }
  }
  for (const backend of backends) {
    const peak = trackPeak(backend);
    if (backend.isSoftware) {
      const projected = await projectedSoftwareMs(backend);
      if (projected > 120_000) {
        emit({ bench: 'encoder-forward', model: 'megatron-bert-345m', backend: backend.name, adapter: backend.adapterInfo, batch: 1, seq: SEQ, skipped: `software adapter: one forward would take ~${Math.round(projected / 1000)} s (one layer measured x 24)` });
      } else {
        await forwardBench(backend, peak, '345m', [1]);
      }
      emit({ bench: 'mlm-train-step', model: 'bert-base-shaped', backend: backend.name, adapter: backend.adapterInfo, skipped: 'software adapter: a BERT-base training step takes minutes; measured on cpu and hardware WebGPU only' });
      continue;
    }
    await forwardBench(backend, peak, '345m', quick ? [1] : [1, 8]);
    await forwardBench(backend, peak, 'bert-base', [1]);
    await trainBench(backend, peak);
  }
}

await main();
process.exit(0);
