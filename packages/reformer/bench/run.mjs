// `pnpm bench`: Reformer long-sequence benchmarks on the built package, one JSON line per measurement.
//   train-step   forward + backward of a 6-layer Reformer LM (hidden 256, 4 heads of 64, LSH layers with
//                num_hashes 2, chunk 64, axial positions, feed-forward 512), batch 1, at sequence lengths
//                2k, 8k, 32k, 64k: wall time and peak live backend memory (`peakMB`: weights + the
//                high-water mark of storage bytes above them; `activationMB`: that mark less the
//                gradients, which are the size of the weights)
//   depth        the same at 8k with 2, 6 and 12 layers, reversible and (for contrast) ordinary autograd
//   full-attn    a MegatronBERT-shaped encoder of the same width (6 layers, hidden 256, 4 heads,
//                intermediate 512, full [seq, seq] attention), forward + backward, at the lengths it can
//                reach; past the memory budget a line says where it runs out and why
//   decode       ms per new token with past_buckets_states after a 2k-token prompt (eval)
// Backends: cpu always; webgpu when an adapter exists (on a software adapter such as SwiftShader the
// long lengths are skipped with the reason).
// Usage: node bench/run.mjs [--backend cpu|webgpu|all] [--lengths 2048,8192] [--only train-step,depth,full-attn,decode] [--depth-seq 8192]
//        [--quick] [--budget-gb N (default min(24, half the machine's memory))]
import { existsSync, readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import * as lm from '@lm/tensor-gpu';
import { ReformerConfig, ReformerModelWithLMHead } from '../dist/index.js';
// The full-attention comparison model (bench only: not a dependency of the package).
import { MegatronBertConfig, MegatronBertModel } from '../../megatron-bert/dist/index.js';

const args = process.argv.slice(2);
const arg = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const which = arg('--backend', 'all');
const quick = args.includes('--quick');
const lengths = arg('--lengths', quick ? '2048' : '2048,8192,32768,65536').split(',').map(Number);
const budgetBytes = Number(arg('--budget-gb', String(Math.min(24, Math.floor(totalmem() / 2 ** 30 / 2))))) * 2 ** 30;
const only = arg('--only', 'train-step,depth,full-attn,decode').split(',');
const depthSeq = Number(arg('--depth-seq', '8192'));

// Every line carries the load average: on a shared machine times are only comparable at similar load.
const loadavg = () => (existsSync('/proc/loadavg') ? readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') : null);
const emit = (o) => console.log(JSON.stringify({ ...o, loadavg: loadavg() }));
const mb = (bytes) => Math.round((bytes / 2 ** 20) * 10) / 10;

/** Tracks the high-water mark of live storage bytes by watching the backend's allocations. */
function trackPeak(backend) {
  const alloc = backend.alloc.bind(backend);
  const state = { peak: 0, base: 0 };
  backend.alloc = (dtype, size) => {
    const s = alloc(dtype, size);
    state.peak = Math.max(state.peak, backend.memory().bytes);
    return s;
  };
  return {
    /** Starts a measurement: the peak is counted from the bytes live now. */
    reset: () => (state.base = state.peak = backend.memory().bytes),
    /** The high-water mark above the bytes live at reset. */
    get peak() {
      return state.peak - state.base;
    },
  };
}

/** An axial factorisation of n (both factors powers of two, as close as possible). */
function axialShape(n) {
  const a = 2 ** Math.floor(Math.log2(n) / 2);
  return [n / a, a];
}

function reformerConfig(seq, layers) {
  return new ReformerConfig({
    vocabSize: 320,
    hiddenSize: 256,
    numAttentionHeads: 4,
    attentionHeadSize: 64,
    feedForwardSize: 512,
    attnLayers: Array.from({ length: layers }, () => 'lsh'),
    numHashes: 2,
    lshAttnChunkLength: 64,
    localAttnChunkLength: 64,
    numBuckets: null, // set from the length, as the reference recommends
    axialPosShape: axialShape(seq),
    axialPosEmbdsDim: [64, 192],
    maxPositionEmbeddings: seq,
    isDecoder: true,
    hiddenDropoutProb: 0.05,
  });
}

function randomIds(backend, seq, vocab, seed) {
  const host = new Int32Array(seq);
  let s = seed;
  for (let i = 0; i < host.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    host[i] = 5 + (s % (vocab - 5));
  }
  return lm.fromHost(host, [1, seq], 'int32', backend);
}

/** One forward + backward (reading the loss back), timed; the peak of live bytes during it. */
async function trainStep(backend, peak, model, ids, forward) {
  peak.reset();
  const t0 = performance.now();
  const loss = lm.scope(() => {
    const l = forward(model, ids);
    l.backward();
    return l;
  });
  const value = (await loss.data())[0];
  const ms = performance.now() - t0;
  loss.dispose();
  const above = peak.peak; // activations and gradients, above the weights and inputs live before
  for (const p of model.parameters()) {
    p.grad?.dispose();
    p.grad = null;
  }
  return { ms: Math.round(ms), aboveMB: mb(above), loss: Math.round(value * 1000) / 1000 };
}

const reformerLoss = (model, ids) => model.forward({ inputIds: ids, labels: ids }).loss;

async function reformerRun(backend, peak, bench, seq, layers, reversible = true) {
  lm.manualSeed(0);
  const model = new ReformerModelWithLMHead(reformerConfig(seq, layers), { backend });
  model.train();
  model.reformer.encoder.reversible = reversible;
  const ids = randomIds(backend, seq, 320, 1);
  const weightBytes = model.getMemoryFootprint();
  try {
    const r = await trainStep(backend, peak, model, ids, reformerLoss);
    // Gradients are the size of the weights: what is left is activation memory.
    emit({ bench, model: `reformer-${layers}l-lsh`, reversible, backend: backend.name, adapter: backend.adapterInfo, seq, layers, ms: r.ms, loss: r.loss, peakMB: mb(weightBytes + r.aboveMB * 2 ** 20), weightMB: mb(weightBytes), activationMB: mb(r.aboveMB * 2 ** 20 - weightBytes) });
  } finally {
    ids.dispose();
    model.dispose();
  }
}

async function fullAttentionRun(backend, peak, seq) {
  // Scores and probabilities are [heads, seq, seq] float32 per layer; measured at 2k, the peak is about
  // 7 such matrices per layer (scores, mask, probabilities, dropout, and their gradients).
  const attnBytes = 4 * 4 * seq * seq;
  if (attnBytes * 6 * 7 > budgetBytes) {
    emit({ bench: 'full-attn', model: 'megatron-bert-6l-256', backend: backend.name, seq, skipped: `out of memory: 6 layers x [4, ${seq}, ${seq}] float32 attention matrices need ~${Math.round((attnBytes * 6 * 7) / 2 ** 30)} GiB for forward + backward (budget ${Math.round(budgetBytes / 2 ** 30)} GiB, --budget-gb)` });
    return;
  }
  lm.manualSeed(0);
  const config = new MegatronBertConfig({ vocabSize: 320, hiddenSize: 256, numHiddenLayers: 6, numAttentionHeads: 4, intermediateSize: 512, maxPositionEmbeddings: seq, hiddenDropoutProb: 0.05 });
  const model = new MegatronBertModel(config, { backend, addPoolingLayer: false });
  model.train();
  const ids = randomIds(backend, seq, 320, 1);
  const weightBytes = model.getMemoryFootprint();
  try {
    const r = await trainStep(backend, peak, model, ids, (m, x) => m.forward({ inputIds: x }).lastHiddenState.square().mean());
    emit({ bench: 'full-attn', model: 'megatron-bert-6l-256', backend: backend.name, adapter: backend.adapterInfo, seq, layers: 6, ms: r.ms, peakMB: mb(weightBytes + r.aboveMB * 2 ** 20), weightMB: mb(weightBytes), activationMB: mb(r.aboveMB * 2 ** 20 - weightBytes) });
  } finally {
    ids.dispose();
    model.dispose();
  }
}

async function decodeRun(backend, peak, prompt = 2048, steps = quick ? 8 : 32) {
  lm.manualSeed(0);
  const seq = 4096;
  const model = new ReformerModelWithLMHead(reformerConfig(seq, 6), { backend });
  model.eval();
  const ids = randomIds(backend, prompt, 320, 3);
  peak.reset();
  const t0 = performance.now();
  let out = lm.noGrad(() => model.forward({ inputIds: ids, useCache: true }));
  let next = lm.noGrad(() => out.logits.select(1, prompt - 1).argmax(-1).reshape(1, 1));
  await next.data();
  const prefillMs = performance.now() - t0;
  out.logits.dispose();
  let cache = out.pastBucketsStates;
  const times = [];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    const o = lm.noGrad(() => model.forward({ inputIds: next, pastBucketsStates: cache, useCache: true }));
    const n = lm.noGrad(() => o.logits.select(1, 0).argmax(-1).reshape(1, 1));
    await n.data();
    times.push(performance.now() - t);
    for (const layer of cache) for (const x of layer) x?.dispose();
    o.logits.dispose();
    next.dispose();
    next = n;
    cache = o.pastBucketsStates;
  }
  const sorted = [...times].sort((a, b) => a - b);
  emit({ bench: 'decode', model: 'reformer-6l-lsh', backend: backend.name, adapter: backend.adapterInfo, prompt, newTokens: steps, prefillMs: Math.round(prefillMs), msPerToken: Math.round(sorted[Math.floor(sorted.length / 2)] * 10) / 10, peakMB: mb(peak.peak) });
  for (const layer of cache) for (const x of layer) x?.dispose();
  next.dispose();
  ids.dispose();
  model.dispose();
}

const backends = [];
if (which === 'cpu' || which === 'all') backends.push(lm.cpu());
if (which === 'webgpu' || which === 'all') {
  try {
    backends.push(await lm.createWebGPUBackend());
  } catch (e) {
    emit({ bench: 'all', backend: 'webgpu', skipped: `no WebGPU adapter: ${e.message.split('\n')[0]}` });
  }
}

for (const backend of backends) {
  const peak = trackPeak(backend);
  const software = /swiftshader/i.test(backend.adapterInfo ?? '');
  const maxSeq = software ? 8192 : Infinity;
  const skip = (bench, seq) => emit({ bench, backend: backend.name, adapter: backend.adapterInfo, seq, skipped: `software adapter: lengths above ${maxSeq} take minutes per step; measured on cpu and hardware WebGPU` });
  if (only.includes('train-step')) for (const seq of lengths) (seq > maxSeq ? skip('train-step', seq) : await reformerRun(backend, peak, 'train-step', seq, 6));
  if (only.includes('depth')) {
    for (const layers of [2, 6, 12]) await reformerRun(backend, peak, 'depth', depthSeq, layers, true);
    for (const layers of [2, 6]) await reformerRun(backend, peak, 'depth', depthSeq, layers, false);
  }
  if (only.includes('full-attn')) for (const seq of lengths) (seq > maxSeq ? skip('full-attn', seq) : await fullAttentionRun(backend, peak, seq));
  if (only.includes('decode')) await decodeRun(backend, peak);
}
