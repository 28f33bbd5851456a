// `pnpm bench`: T5 benchmarks on the built package, one JSON line per measurement, on a t5-small-shaped
// T5ForConditionalGeneration (d_model 512, 6+6 layers, 8 heads, d_kv 64, d_ff 2048, vocab 32128, relu,
// random weights):
//   encoder-forward     T5EncoderModel-style encoder pass over 128 tokens (batch 1): latency, peak live memory
//   greedy-generation   32 new tokens from a 128-token input: ms per generated token (the first step, which
//                       runs the encoder and projects the cross keys/values, reported apart), peak memory, and
//                       how many times the encoder and the cross-attention key projections ran (1 and 6)
// Backends: cpu always; webgpu when an adapter exists (with --quick on a software adapter).
// Side by side in the same run: PyTorch CPU (bench/pytorch_t5.py, the same shape and arithmetic in plain
// torch, 2 threads, OMP_WAIT_POLICY=PASSIVE; Debian's python3-torch, LM_BENCH_PYTHON to pick another
// python), then a `cpu-vs-pytorch` line: the ratio of ms per generated token against the 1.5x target;
// then onnxruntime-node on graphs exported from that torch model (see onnxruntime() below).
// Usage: node --expose-gc bench/run.mjs [--backend cpu|webgpu|all] [--quick] [--no-pytorch]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '@lm/tensor-gpu';
import { T5Config, T5ForConditionalGeneration } from '../dist/index.js';

const args = process.argv.slice(2);
const which = args.includes('--backend') ? args[args.indexOf('--backend') + 1] : 'all';
const quick = args.includes('--quick');
const SEQ = 128;
const NEW_TOKENS = quick ? 8 : 32;
const T5_SMALL = { vocabSize: 32128, dModel: 512, dKv: 64, dFf: 2048, numLayers: 6, numDecoderLayers: 6, numHeads: 8, feedForwardProj: 'relu', dropoutRate: 0, decoderStartTokenId: 0 };

const results = [];
const emit = (o) => (results.push(o), console.log(JSON.stringify(o)));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The high-water mark of live storage bytes, by watching the backend's allocations. */
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

function randomIds(backend, vocab, seed) {
  const host = new Int32Array(SEQ);
  let s = seed;
  for (let i = 0; i < SEQ; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    host[i] = 3 + (s % (vocab - 100));
  }
  host[SEQ - 1] = 1;
  return lm.fromHost(host, [1, SEQ], 'int32', backend);
}

async function bench(backend) {
  const peak = trackPeak(backend);
  lm.manualSeed(0);
  const model = new T5ForConditionalGeneration(new T5Config(T5_SMALL), { backend }).eval();
  const base = { model: 't5-small-shaped', backend: backend.name, adapter: backend.adapterInfo, parameters: model.numParameters(), weightBytes: model.getMemoryFootprint() };
  const ids = randomIds(backend, T5_SMALL.vocabSize, 1);

  // Encoder forward.
  const times = [];
  const reps = quick ? 1 : 5;
  peak.reset();
  for (let r = 0; r <= reps; r++) {
    const t0 = performance.now();
    const out = lm.noGrad(() => model.encoder.forward({ inputIds: ids }));
    await out.lastHiddenState.data();
    out.lastHiddenState.dispose();
    if (r > 0) times.push(performance.now() - t0);
  }
  emit({ bench: 'encoder-forward', ...base, batch: 1, seq: SEQ, ms: +median(times).toFixed(2), times: times.map((t) => +t.toFixed(1)), peakBytes: peak.peak });

  // Greedy generation: time each streamed token.
  let encoderCalls = 0;
  let crossKeyProjections = 0;
  const encoderForward = model.encoder.forward.bind(model.encoder);
  model.encoder.forward = (o) => (encoderCalls++, encoderForward(o));
  for (const block of model.decoder.block.items) {
    const k = block.crossAttention.EncDecAttention.k;
    const f = k.forward.bind(k);
    k.forward = (x, a) => (crossKeyProjections++, f(x, a));
  }
  await model.generate(ids, { maxNewTokens: 2, eosTokenId: [] }); // warm-up
  encoderCalls = 0;
  crossKeyProjections = 0;
  peak.reset();
  const stamps = [];
  const t0 = performance.now();
  for await (const ev of model.stream(ids, { maxNewTokens: NEW_TOKENS, eosTokenId: [] })) stamps.push({ token: ev.token, at: performance.now() });
  const first = stamps[0].at - t0;
  const rest = stamps.slice(1).map((s, i) => s.at - stamps[i].at);
  emit({
    bench: 'greedy-generation',
    ...base,
    inputTokens: SEQ,
    newTokens: stamps.length,
    firstTokenMs: +first.toFixed(1),
    msPerToken: +median(rest).toFixed(2),
    meanMsPerToken: +(rest.reduce((a, b) => a + b, 0) / rest.length).toFixed(2),
    peakBytes: peak.peak,
    encoderCalls,
    crossKeyProjections,
  });
  ids.dispose();
  model.dispose();
}

const backends = [];
if (which === 'cpu' || which === 'all') backends.push(await lm.init('cpu'));
if (which === 'webgpu' || which === 'all') {
  try {
    backends.push(await lm.createWebGPUBackend());
  } catch (e) {
    emit({ bench: 'all', backend: 'webgpu', skipped: `no WebGPU adapter: ${e.message.split('\n')[0]}` });
  }
}
for (const backend of backends) await bench(backend);

const python = process.env.LM_BENCH_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const script = fileURLToPath(new URL('./pytorch_t5.py', import.meta.url));
const torchEnv = { ...process.env, OMP_NUM_THREADS: '2', OMP_WAIT_POLICY: 'PASSIVE' };

/** bench/pytorch_t5.py's JSON lines, or why there are none. */
function pytorch() {
  const run = spawnSync(python, [script, ...(quick ? ['--quick'] : [])], { env: torchEnv, encoding: 'utf8', timeout: 600_000 });
  if (run.status !== 0) {
    const why = run.error ? run.error.message : (run.stderr.trim().split('\n').pop() ?? `exit ${run.status}`);
    return emit({ bench: 'pytorch-cpu', skipped: `${python} ${script} failed (${why}); install Debian's python3-torch or set LM_BENCH_PYTHON` });
  }
  for (const line of run.stdout.trim().split('\n')) emit(JSON.parse(line));
}

/**
 * onnxruntime-node on the same model: pytorch_t5.py --export-onnx writes three graphs (encoder; the cross
 * keys/values of every decoder layer, once; one greedy decoder step with the self-attention KV cache as
 * graph inputs and outputs, argmax included), then the same two workloads run here with 2 intra-op
 * threads. First the graphs must reproduce torch's greedy tokens (check.json), else no timing is printed.
 */
async function onnxruntime() {
  let ort;
  try {
    ort = await import('onnxruntime-node');
  } catch (e) {
    return emit({ bench: 'onnxruntime-node', skipped: `onnxruntime-node not installed: ${e.message}` });
  }
  const dir = mkdtempSync(join(tmpdir(), 'lm-t5-onnx-'));
  try {
    const exported = spawnSync(python, [script, '--export-onnx', dir], { env: torchEnv, encoding: 'utf8', timeout: 600_000 });
    if (exported.status !== 0) {
      const why = exported.error ? exported.error.message : (exported.stderr.trim().split('\n').pop() ?? `exit ${exported.status}`);
      return emit({ bench: 'onnxruntime-node', skipped: `exporting the ONNX graphs failed (${why})` });
    }
    const options = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' };
    const [encoder, cross, step] = await Promise.all(['encoder', 'cross', 'decoder-step'].map((g) => ort.InferenceSession.create(join(dir, `${g}.onnx`), options)));
    const kvNames = Array.from({ length: T5_SMALL.numDecoderLayers }, (_, i) => [`k_${i}`, `v_${i}`]).flat();
    const empty = new ort.Tensor('float32', new Float32Array(0), [1, T5_SMALL.numHeads, 0, T5_SMALL.dKv]);
    /** Encoder once, cross keys/values once, then one decoder-step run per token feeding its present back as past. */
    const greedy = async (ids, newTokens, stamps = []) => {
      const { hidden } = await encoder.run({ ids });
      const crossKv = await cross.run({ hidden });
      const feeds = { token: new ort.Tensor('int64', BigInt64Array.of(0n), [1, 1]) };
      for (const n of kvNames) Object.assign(feeds, { [`cross_${n}`]: crossKv[`cross_${n}`], [`past_${n}`]: empty });
      const tokens = [];
      for (let t = 0; t < newTokens; t++) {
        const out = await step.run(feeds);
        tokens.push(Number(out.next.data[0]));
        feeds.token = out.next;
        for (const n of kvNames) feeds[`past_${n}`] = out[`present_${n}`];
        stamps.push(performance.now());
      }
      return tokens;
    };
    const check = JSON.parse(readFileSync(join(dir, 'check.json'), 'utf8'));
    const toIds = (xs) => new ort.Tensor('int64', BigInt64Array.from(xs, BigInt), [1, xs.length]);
    const got = await greedy(toIds(check.ids), check.tokens.length);
    const base = { model: 't5-small-shaped', backend: `onnxruntime-node-${ort.env.versions?.common ?? ''}`, threads: 2 };
    if (got.join(',') !== check.tokens.join(',')) return emit({ bench: 'onnxruntime-node', ...base, skipped: `the exported graphs give tokens ${got} where torch gives ${check.tokens}` });
    const ids = toIds(check.ids);
    const times = [];
    for (let r = 0; r <= (quick ? 1 : 5); r++) {
      const t0 = performance.now();
      await encoder.run({ ids });
      if (r > 0) times.push(performance.now() - t0);
    }
    emit({ bench: 'encoder-forward', ...base, batch: 1, seq: SEQ, ms: +median(times).toFixed(2), times: times.map((t) => +t.toFixed(1)) });
    await greedy(ids, 2); // warm-up
    const stamps = [];
    const t0 = performance.now();
    await greedy(ids, NEW_TOKENS, stamps);
    const rest = stamps.slice(1).map((s, i) => s - stamps[i]);
    emit({
      bench: 'greedy-generation',
      ...base,
      inputTokens: SEQ,
      newTokens: stamps.length,
      firstTokenMs: +(stamps[0] - t0).toFixed(1),
      msPerToken: +median(rest).toFixed(2),
      meanMsPerToken: +(rest.reduce((a, b) => a + b, 0) / rest.length).toFixed(2),
      matchesPytorchTokens: true,
    });
    await Promise.all([encoder, cross, step].map((s) => s.release()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!args.includes('--no-pytorch')) {
  pytorch();
  await onnxruntime();
  const gen = (backend) => results.find((r) => r.bench === 'greedy-generation' && r.backend === backend);
  const [ours, torch] = [gen('cpu'), gen('pytorch-cpu')];
  if (ours && torch) {
    const ratio = ours.msPerToken / torch.msPerToken;
    emit({ bench: 'cpu-vs-pytorch', metric: 'greedy msPerToken', cpu: ours.msPerToken, pytorch: torch.msPerToken, ratio: +ratio.toFixed(2), target: 1.5, withinTarget: ratio <= 1.5 });
  }
}
