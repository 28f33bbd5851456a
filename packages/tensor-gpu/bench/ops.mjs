// Op benchmarks on the built package: one JSON line per measurement.
// Usage: node bench/ops.mjs [--backend cpu|webgpu|all] [--quick] [--only dispatch,memory,...] [--large] [--dist DIR]
//   --only  run only these sections: dispatch, tiny, matmul, memory, rows, linear, attention, embedding
//   --large the memory section also times Adam over 110M floats (BERT-base's parameters; 1.8 GB)
//   --dist  benchmark another build's dist folder (e.g. main's, for a before/after)
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const lm = await import(args.includes('--dist') ? pathToFileURL(resolve(args[args.indexOf('--dist') + 1], 'index.js')).href : '../dist/index.js');
const which = args.includes('--backend') ? args[args.indexOf('--backend') + 1] : 'all';
const quick = args.includes('--quick');
const large = args.includes('--large');
const only = args.includes('--only') ? new Set(args[args.indexOf('--only') + 1].split(',')) : null;
const section = (name) => !only || only.has(name);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Times fn (which returns tensors to dispose) until ~budget ms or reps, after a warm-up. */
async function time(backend, fn, { reps = 5, budgetMs = 3000 } = {}) {
  const warm = fn();
  await backend.sync();
  [warm].flat().forEach((t) => t.dispose());
  const times = [];
  const start = performance.now();
  while (times.length < reps && (times.length < 2 || performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    const out = fn();
    await backend.sync();
    // make sure the work really ran: read one element on backends that defer
    times.push(performance.now() - t0);
    [out].flat().forEach((t) => t.dispose());
  }
  return median(times);
}

function emit(obj) {
  console.log(JSON.stringify(obj));
}

/** us per call of fn (which returns one tensor), the fastest of 7 runs of n calls after a warm-up. */
function usPerOp(fn, n) {
  const once = () => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn().dispose();
    return ((performance.now() - t0) * 1000) / n;
  };
  for (let i = 0; i < 200; i++) fn().dispose();
  // the fastest run: on a shared machine the figure least disturbed by other load
  return Math.min(...Array.from({ length: 7 }, once));
}

/**
 * Per-op dispatch on tiny tensors (the list): validation, allocation, view bookkeeping and,
 * with grads on, the autograd node; the kernels themselves are a few elements.
 */
function tinyOps(backend, base) {
  const n = quick ? 2000 : 10000;
  for (const grad of [false, true]) {
    const mk = (shape) => {
      const t = lm.randn(shape, { backend });
      return grad ? t.requiresGrad_() : t;
    };
    const a = mk([4]);
    const b = mk([4]);
    const x = mk([1, 8]);
    const w = mk([8, 8]);
    const r = mk([2, 8]);
    const rows = [
      ['add[4]', () => a.add(b)],
      ['matmul[1,8]x[8,8]', () => x.matmul(w)],
      ['reshape[2,8]->[16]', () => r.reshape(16)],
      ['softmax[4]', () => a.softmax(-1)],
    ];
    for (const [name, fn] of rows) emit({ op: `tiny-${name}`, ...base, grads: grad, us_per_op: +usPerOp(fn, n).toFixed(2) });
    [a, b, x, w, r].forEach((t) => t.dispose());
  }
}

/**
 * The memory-bound kernels at the BERT-base (hidden 768, 12 heads, seq 128) and MLM-step (vocab 8192,
 * 1024 tokens) shapes: GB/s of float32 read + written (each input read once, each output written
 * once), median of timed runs.
 */
async function memoryBound(backend, base) {
  const randn = (shape) => lm.randn(shape, { backend });
  const numel = (shape) => shape.reduce((p, d) => p * d, 1);
  // wall time, and the process's cpu time (the figure a loaded shared machine disturbs least for a
  // kernel on one thread; with worker threads it sums their time too)
  const line = async (op, shape, floatsMoved, fn) => {
    const walls = [];
    const cpus = [];
    // warm up for 300 ms (at least 3 calls): V8 tiers a new wasm module's functions and the JS around
    // them up after some hundreds of calls, and a short kernel timed from its first calls measures that
    for (let n = 0, w0 = performance.now(); n < 3 || performance.now() - w0 < 300; n++) {
      [fn()].flat().forEach((t) => t.dispose());
      await backend.sync();
    }
    const start = performance.now();
    while (walls.length < 5 || (walls.length < 31 && performance.now() - start < 1500)) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const out = fn();
      await backend.sync();
      walls.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpus.push((c.user + c.system) / 1000);
      [out].flat().forEach((t) => t.dispose());
    }
    const [ms, cms] = [median(walls), median(cpus)];
    const gb = (t) => +((floatsMoved * 4) / t / 1e6).toFixed(2);
    emit({ op, ...base, shape, median_ms: +ms.toFixed(4), gbps: gb(ms), cpu_ms: +cms.toFixed(3), gbps_cpu: gb(Math.max(cms, 1e-3)) });
  };
  for (const shape of [[12, 128, 128], [8, 12, 128, 128]]) {
    const x = randn(shape);
    await line('softmax', shape, 2 * numel(shape), () => x.softmax(-1));
    x.dispose();
  }
  for (const shape of [[1024, 8192]]) {
    const x = randn(shape);
    await line('logSoftmax', shape, 2 * numel(shape), () => lm.logSoftmax(x, -1));
    const t = lm.tensor(Int32Array.from({ length: shape[0] }, (_, i) => (i * 7919) % shape[1]), [shape[0]], { backend });
    await line('crossEntropy', shape, numel(shape), () => lm.crossEntropy(x, t));
    // forward + backward: logits read twice, their gradient written once
    const xg = x.detach().requiresGrad_();
    await line('crossEntropy-forward-backward', shape, 3 * numel(shape), () => {
      const loss = lm.crossEntropy(xg, t);
      loss.backward();
      const gx = xg.grad;
      xg.grad = null;
      return [loss, gx];
    });
    [x, t, xg].forEach((u) => u.dispose());
  }
  for (const shape of [[128, 768], [1024, 768]]) {
    const C = shape[1];
    const x = randn(shape);
    const w = randn([C]);
    const b = randn([C]);
    const g = randn(shape);
    await line('layerNorm', shape, 2 * numel(shape), () => lm.layerNorm(x, C, w, b, 1e-12));
    await line('rmsNorm', shape, 2 * numel(shape), () => lm.rmsNorm(x, w, 1e-6));
    // the fused input-gradient kernel alone: reads x and g, writes dx (weight and bias row sums apart)
    const xg = x.detach().requiresGrad_();
    await line('layerNorm-backward-dx', shape, 3 * numel(shape), () => {
      const y = lm.layerNorm(xg, C, w, b, 1e-12);
      y.backward(g);
      const gx = xg.grad;
      xg.grad = null;
      return [y, gx];
    });
    // residual add (binary elementwise, same shapes)
    await line('add', shape, 3 * numel(shape), () => x.add(g));
    [x, w, b, g, xg].forEach((u) => u.dispose());
  }
  for (const shape of [[128, 3072], [1024, 3072]]) {
    const x = randn(shape);
    const g = randn(shape);
    const bias = randn([shape[1]]);
    await line('gelu', shape, 2 * numel(shape), () => x.gelu());
    await line('biasGelu', shape, 2 * numel(shape), () => lm.biasActivation(x, bias, 'gelu'));
    await line('silu', shape, 2 * numel(shape), () => x.silu());
    for (const act of ['gelu', 'silu']) {
      const xg = x.detach().requiresGrad_();
      // forward + backward: the backward reads g and x and writes dx
      await line(`${act}-forward-backward`, shape, 5 * numel(shape), () => {
        const y = xg[act]();
        y.backward(g);
        const gx = xg.grad;
        xg.grad = null;
        return [y, gx];
      });
      xg.dispose();
    }
    [x, g, bias].forEach((u) => u.dispose());
  }
  // strided copies: a transpose and the attention head split [B, L, H, D] -> [B, H, L, D] made contiguous
  for (const [shape, perm] of [[[1024, 768], [1, 0]], [[8, 128, 12, 64], [0, 2, 1, 3]]]) {
    const x = randn(shape);
    await line(`contiguous-permute(${perm})`, shape, 2 * numel(shape), () => x.permute(...perm).contiguous());
    x.dispose();
  }
  // the Adam step: reads param, grad, m, v and writes param, m, v
  const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true, maximize: false, biasCorrection1: 1 - 0.9 ** 3, biasCorrection2: 1 - 0.999 ** 3 };
  for (const n of large ? [4_000_000, 110_000_000] : [4_000_000]) {
    const [p, g, m, v] = [randn([n]), randn([n]), lm.zeros([n], { backend }), lm.zeros([n], { backend })];
    await line('adamStep', [n], 7 * n, () => (lm.noGrad(() => lm.adamStep_(p, g, m, v, null, h)), []));
    [p, g, m, v].forEach((u) => u.dispose());
  }
}

async function benchBackend(backend) {
  const adapter = backend.adapterInfo;
  const sw = backend.isSoftware;
  const base = { backend: backend.name, adapter };
  const randn = (shape) => lm.randn(shape, { backend });

  // dispatch overhead: small ops where validation, allocation and the backend call dominate (us per op)
  if (section('dispatch')) {
    const a = randn([64]);
    const b = randn([64]);
    const n = quick ? 2000 : 10000;
    const perOp = (fn) => {
      for (let i = 0; i < 200; i++) fn().dispose();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) fn().dispose();
      return ((performance.now() - t0) * 1000) / n;
    };
    const rows = [
      ['add', () => a.add(b)],
      ['gelu', () => a.gelu()],
      ['softmax', () => a.softmax(-1)],
      ['layerNorm', () => lm.layerNorm(a, 64)],
    ];
    for (const [name, fn] of rows) {
      // the fastest of 7 runs: on a shared machine the figure least disturbed by other load
      const samples = Array.from({ length: 7 }, () => perOp(fn));
      emit({ op: `dispatch-${name}`, ...base, shape: [64], min_us: +Math.min(...samples).toFixed(2) });
    }
    await backend.sync();
    [a, b].forEach((t) => t.dispose());
  }

  if (section('tiny')) await tinyOps(backend, base);
  if (section('memory')) await memoryBound(backend, base);

  // matmul
  const cubes = !section('matmul') ? [] : sw ? [256, 512] : quick ? [256, 512, 1024] : [256, 512, 1024, 2048];
  const shapes = cubes.map((n) => [1, n, n, n]);
  if (!sw && section('matmul')) shapes.push([1, 1024, 768, 3072], [1, 1024, 3072, 768], [12, 128, 64, 128], [12, 128, 128, 64], [12, 512, 64, 512], [12, 512, 512, 64]);
  for (const [B, M, K, N] of shapes) {
    const a = randn(B > 1 ? [B, M, K] : [M, K]);
    const b = randn(B > 1 ? [B, K, N] : [K, N]);
    const ms = await time(backend, () => a.matmul(b));
    emit({ op: 'matmul', ...base, batch: B, M, K, N, median_ms: +ms.toFixed(3), gflops: +((2 * B * M * N * K) / ms / 1e6).toFixed(2) });
    a.dispose();
    b.dispose();
  }

  // softmax and layer norm: memory-bound, report GB/s (read + write of float32)
  const rowsShapes = !section('rows') ? [] : sw ? [[512, 768]] : [[4096, 768], [4096, 3072]];
  for (const [R, C] of rowsShapes) {
    const x = randn([R, C]);
    const w = randn([C]);
    const b = randn([C]);
    let ms = await time(backend, () => x.softmax(-1));
    emit({ op: 'softmax', ...base, shape: [R, C], median_ms: +ms.toFixed(3), gbps: +((2 * R * C * 4) / ms / 1e6).toFixed(2) });
    ms = await time(backend, () => lm.layerNorm(x, C, w, b, 1e-12));
    emit({ op: 'layerNorm', ...base, shape: [R, C], median_ms: +ms.toFixed(3), gbps: +((2 * R * C * 4) / ms / 1e6).toFixed(2) });
    // forward + backward (the fused layerNormBackward kernel plus the weight/bias row sums)
    const g = randn([R, C]);
    const xg = x.detach().requiresGrad_();
    const wg = w.detach().requiresGrad_();
    const bg = b.detach().requiresGrad_();
    const step = (f) => () => {
      const y = f();
      y.backward(g);
      const grads = [xg, wg, bg].map((t) => t.grad).filter(Boolean);
      [xg, wg, bg].forEach((t) => (t.grad = null));
      return [y, ...grads];
    };
    ms = await time(backend, step(() => lm.layerNorm(xg, C, wg, bg, 1e-12)));
    emit({ op: 'layerNorm-forward-backward', ...base, shape: [R, C], median_ms: +ms.toFixed(3) });
    ms = await time(backend, step(() => xg.gelu()));
    emit({ op: 'gelu-forward-backward', ...base, shape: [R, C], median_ms: +ms.toFixed(3) });
    [x, w, b, g, xg, wg, bg].forEach((t) => t.dispose());
  }

  // Linear on [batch, seq, in]: x @ W^T forward + backward (batch folded into one GEMM each way)
  if (section('linear')) {
    const [Bt, L, I, O] = sw ? [2, 64, 256, 1024] : [8, 128, 768, 3072];
    const x = randn([Bt, L, I]).requiresGrad_();
    const W = randn([O, I]).requiresGrad_();
    const g = randn([Bt, L, O]);
    const ms = await time(backend, () => {
      const y = x.matmul(W.transpose(0, 1));
      y.backward(g);
      const out = [y, x.grad, W.grad];
      x.grad = null;
      W.grad = null;
      return out;
    });
    emit({ op: 'linear-forward-backward', ...base, batch: Bt, seq: L, in: I, out: O, median_ms: +ms.toFixed(3), gflops: +((6 * Bt * L * I * O) / ms / 1e6).toFixed(2) });
    [x, W, g].forEach((t) => t.dispose());
  }

  // fused attention, batch 1, 12 heads, head dim 64 (BERT-base shapes)
  const seqs = !section('attention') ? [] : sw ? [128, 256] : quick ? [128, 512, 1024] : [128, 256, 512, 1024, 2048, 4096];
  for (const L of seqs) {
    const H = 12;
    const D = 64;
    const q = randn([1, H, L, D]);
    const k = randn([1, H, L, D]);
    const v = randn([1, H, L, D]);
    const ms = await time(backend, () => lm.scaledDotProductAttention(q, k, v, { causal: false }), { reps: 3, budgetMs: 5000 });
    emit({ op: 'attention', ...base, batch: 1, heads: H, seq: L, headDim: D, median_ms: +ms.toFixed(3), gflops: +((4 * H * L * L * D) / ms / 1e6).toFixed(2) });
    [q, k, v].forEach((t) => t.dispose());
  }

  // embedding gather + scatter-add (its backward): vocab 30522, hidden 768, 4096 tokens
  if (section('embedding')) {
    const V = sw ? 4096 : 30522;
    const Hd = 768;
    const T = sw ? 512 : 4096;
    const table = randn([V, Hd]);
    const ids = lm.tensor(Int32Array.from({ length: T }, (_, i) => (i * 7919) % V), [T], { backend });
    let ms = await time(backend, () => lm.embedding(table, ids));
    emit({ op: 'embedding-gather', ...base, vocab: V, hidden: Hd, tokens: T, median_ms: +ms.toFixed(3), gbps: +((2 * T * Hd * 4) / ms / 1e6).toFixed(2) });
    const grad = randn([T, Hd]);
    const wide = ids.reshape(T, 1).expand(T, Hd);
    ms = await time(backend, () => lm.zeros([V, Hd], { backend }).scatterAdd(0, wide, grad));
    emit({ op: 'embedding-scatter-add', ...base, vocab: V, hidden: Hd, tokens: T, median_ms: +ms.toFixed(3), gbps: +((2 * T * Hd * 4) / ms / 1e6).toFixed(2) });
    [table, ids, grad, wide].forEach((t) => t.dispose());
  }
}

if (which === 'cpu' || which === 'all') await benchBackend(lm.cpu());
if (which === 'webgpu' || which === 'all') {
  const probe = await lm.probeWebGPU();
  if (probe.available) {
    const gpu = await lm.init('webgpu');
    await benchBackend(gpu);
    gpu.destroy();
  } else emit({ op: 'skip', backend: 'webgpu', reason: probe.reason });
}
lm.cpu().destroy();
