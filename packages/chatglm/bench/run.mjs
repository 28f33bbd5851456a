// `pnpm bench`: ChatGLM-6B-shaped models (hidden 4096, 32 heads, inner 16384, vocab 130528) with random
// weights, one JSON line per measurement:
//   build     time to allocate and fill the model, weight bytes (backend storage) and process RSS
//   prefill   forward of a prompt (auto masks / 2-D positions), tokens/s
//   decode    cached greedy steps (the chat path: chatglmDecoderStep), median ms/token, peak live bytes,
//             and the process's peak RSS (each configuration runs in its own child process)
// float32 (bits 0), int8 and int4 weights (QuantizedLinear on quantizedMatmul). The quantized models are
// built with their word embeddings and lm_head as one 16-bit table (embeddingsDtype 'float16', as
// fromPretrained of THUDM's checkpoints builds them: no float32 table is ever held); --embeddings float32
// keeps them float32 (2 x 2.1 GB on the cpu).
// PyTorch CPU float32 runs side by side on the same shapes (bench/torch_chatglm.py, 2 threads,
// OMP_WAIT_POLICY=PASSIVE; Debian's python3-torch: $LM_PYTHON, else /usr/bin/python3); --no-torch skips it.
// Usage: node --expose-gc bench/run.mjs [--layers 2,6,28] [--bits 4,8,0] [--prompt 16] [--tokens 8]
//        [--backend cpu|webgpu] [--embeddings float16|float32] [--no-torch]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as lm from '@lm/tensor-gpu';
import { initInPlace, withoutInit } from '@lm/layers';
import { ChatGLMConfig, ChatGLMForConditionalGeneration, QuantizedLinear, chatglmCacheOps, chatglmDecoderStep } from '../dist/index.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const layersList = opt('layers', '2,6,28').split(',').map(Number);
const bitsList = opt('bits', '4,8,0').split(',').map(Number);
const promptLen = Number(opt('prompt', '16'));
const tokens = Number(opt('tokens', '8'));
const backendName = opt('backend', 'cpu');
const embeddings = opt('embeddings', 'float16');
const one = opt('one', null); // "layers,bits": run this configuration in this process (the parent spawns these)

const emit = (o) => console.log(JSON.stringify(o));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const gb = (bytes) => Math.round((bytes / 2 ** 30) * 1000) / 1000;

/** xorshift32 words: random int8 / int4 codes for quantized weights (every nibble value, -8..7, appears). */
function randomWords(n, seed) {
  const out = new Int32Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x;
  }
  return out;
}

function buildModel(layers, bits, embeddingsDtype, backend) {
  const config = new ChatGLMConfig({ numLayers: layers, quantizationBit: bits, maxSequenceLength: 2048 });
  const model = withoutInit(() => new ChatGLMForConditionalGeneration(config, { backend, embeddingsDtype })).eval();
  let seed = 7;
  lm.noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (m instanceof QuantizedLinear) {
        m.setBuffer('weight', lm.fromHost(randomWords(m.weight.size, seed++), m.weight.shape, 'int32', backend), { disposeOld: true });
        // Scales that keep activations in range: |q| * scale * sqrt(in) ~ 1.
        const scale = (bits === 4 ? 1 / 4 : 1 / 64) / Math.sqrt(m.inFeatures);
        m.setBuffer('weight_scale', lm.full([m.outFeatures], scale, { backend }), { disposeOld: true });
      }
    }
    if (embeddingsDtype === 'float16') {
      // The shared 16-bit table, filled in place with the float16 pair (0.01, 0.01).
      const half = lm.numberToFloat16Bits(0.01);
      const word = lm.full([1], (half << 16) | half, { dtype: 'int32', backend });
      model.transformer.word_embeddings.weight.copy_(word);
      word.dispose();
    }
    for (const [name, p] of model.namedParameters()) {
      if (name.endsWith('layernorm.weight')) initInPlace(p, { kind: 'constant', value: 1 });
      else if (name.endsWith('.bias')) initInPlace(p, { kind: 'constant', value: 0 });
      // Float weights (embeddings, lm_head; every linear at bits 0) are constant (float16-exact, so the
      // tied tables can be held in 16 bits): drawing 10^9 normal values costs minutes here and timing
      // does not depend on the values.
      else initInPlace(p, { kind: 'constant', value: lm.roundToFloat16(0.01) });
    }
  });
  return model;
}

async function run(layers, bits, backend) {
  globalThis.gc?.();
  const tag = { family: 'chatglm', layers, hidden: 4096, weights: bits === 0 ? 'float32' : `int${bits}`, embeddings: bits === 0 ? 'float32' : embeddings, backend: backend.name };
  const t0 = performance.now();
  const model = buildModel(layers, bits, tag.embeddings, backend);
  await backend.sync();
  globalThis.gc?.();
  emit({ ...tag, bench: 'build', ms: Math.round(performance.now() - t0), weightBytesGB: gb(backend.memory().bytes), rssGB: gb(process.memoryUsage().rss), peakRssGB: peakRss(), quantizedBytesGB: gb(quantizedBytes(model)), loadavg: load() });

  const prompt = Int32Array.from({ length: promptLen }, (_, i) => (i === promptLen - 2 ? 130001 : i === promptLen - 1 ? 130004 : 5 + ((i * 7919) % 120000)));
  const ids = lm.fromHost(prompt, [1, promptLen], 'int32', backend);
  const step = chatglmDecoderStep(model);
  let peak = backend.memory().bytes;
  const t1 = performance.now();
  let out = lm.noGrad(() => lm.scope(() => step(ids, null)));
  let next = await argmaxLast(out.logits);
  const prefillMs = performance.now() - t1;
  emit({ ...tag, bench: 'prefill', promptTokens: promptLen, ms: Math.round(prefillMs), tokensPerSecond: Math.round((promptLen / prefillMs) * 1000 * 1000) / 1000, loadavg: load() });

  const times = [];
  let cache = out.cache;
  out.logits.dispose();
  for (let i = 0; i < tokens; i++) {
    const tok = lm.fromHost(Int32Array.of(next), [1, 1], 'int32', backend);
    const t = performance.now();
    out = lm.noGrad(() => lm.scope(() => step(tok, cache)));
    next = await argmaxLast(out.logits);
    times.push(performance.now() - t);
    peak = Math.max(peak, backend.memory().bytes);
    for (const x of chatglmCacheOps.tensors(cache)) x.dispose();
    cache = out.cache;
    out.logits.dispose();
    tok.dispose();
  }
  emit({ ...tag, bench: 'decode', tokens, msPerToken: Math.round(median(times)), tokensPerSecond: Math.round((1000 / median(times)) * 1000) / 1000, peakLiveGB: gb(peak), rssGB: gb(process.memoryUsage().rss), peakRssGB: peakRss(), loadavg: load() });
  for (const x of chatglmCacheOps.tensors(cache)) x.dispose();
  ids.dispose();
  model.dispose();
}

function quantizedBytes(model) {
  let n = 0;
  for (const [, m] of model.namedModules()) if (m instanceof QuantizedLinear) n += m.weight.size * 4 + m.weight_scale.size * 4 + (m.bias?.size ?? 0) * 4;
  return n;
}

async function argmaxLast(logits) {
  const q = logits.shape[1];
  const id = lm.noGrad(() => lm.argmax(logits.narrow(1, q - 1, 1).reshape(1, -1), -1));
  const [v] = await id.data();
  id.dispose();
  return v;
}

const load = () => loadavg().map((v) => Math.round(v * 100) / 100);
const peakRss = () => gb(process.resourceUsage().maxRSS * 1024);

if (one) {
  const [layers, bits] = one.split(',').map(Number);
  const backend = backendName === 'webgpu' ? await lm.createWebGPUBackend() : lm.cpu();
  await run(layers, bits, backend);
  process.exit(0);
}

// Parent: one child process per configuration (a clean heap and a peak RSS of its own), PyTorch beside.
const self = fileURLToPath(import.meta.url);
const python = process.env.LM_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const withTorch = !args.includes('--no-torch') && spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
if (!args.includes('--no-torch') && !withTorch) emit({ family: 'chatglm', backend: 'pytorch-cpu', skipped: `${python} cannot import torch (Debian: apt-get install python3-torch, or set LM_PYTHON)` });
let failed = false;
const child = (cmd, argv, env = process.env) => {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', env });
  if (r.status !== 0) {
    emit({ family: 'chatglm', failed: `${cmd} ${argv.join(' ')} exited with ${r.status ?? r.signal}` });
    failed = true;
  }
};
for (const layers of layersList) {
  for (const bits of bitsList) {
    if (bits === 0 && layers > 6) {
      emit({ family: 'chatglm', layers, weights: 'float32', skipped: 'float32 weights of this depth do not fit this machine (24 GiB): 0.8 GB per layer plus 4.3 GB of embeddings and lm_head' });
      continue;
    }
    const passOn = args.filter((a, i) => !['--one', '--layers', '--bits'].includes(a) && !['--one', '--layers', '--bits'].includes(args[i - 1]));
    child(process.execPath, ['--expose-gc', self, '--one', `${layers},${bits}`, ...passOn]);
  }
  if (withTorch && bitsList.includes(0)) {
    if (layers > 6) emit({ family: 'chatglm', layers, weights: 'float32', backend: 'pytorch-cpu', skipped: 'float32 weights of this depth do not fit this machine (24 GiB)' });
    else child(python, [fileURLToPath(new URL('./torch_chatglm.py', import.meta.url)), '--layers', String(layers), '--prompt', String(promptLen), '--tokens', String(tokens), '--threads', '2'], { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' });
  }
}
process.exit(failed ? 1 : 0);
