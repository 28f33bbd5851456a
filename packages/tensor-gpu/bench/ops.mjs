// Op benchmarks on the built package: one JSON line per measurement.
// Usage: node bench/ops.mjs [--backend cpu|webgpu|all] [--quick]
import * as lm from '../dist/index.js';

const args = process.argv.slice(2);
const which = args.includes('--backend') ? args[args.indexOf('--backend') + 1] : 'all';
const quick = args.includes('--quick');

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

async function benchBackend(backend) {
  const adapter = backend.adapterInfo;
  const sw = backend.isSoftware;
  const base = { backend: backend.name, adapter };
  const randn = (shape) => lm.randn(shape, { backend });

  // dispatch overhead: small ops where validation, allocation and the backend call dominate (us per op)
  {
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

  // matmul
  const cubes = sw ? [256, 512] : quick ? [256, 512, 1024] : [256, 512, 1024, 2048];
  const shapes = cubes.map((n) => [1, n, n, n]);
  if (!sw) shapes.push([1, 1024, 768, 3072], [1, 1024, 3072, 768], [12, 128, 64, 128], [12, 128, 128, 64], [12, 512, 64, 512], [12, 512, 512, 64]);
  for (const [B, M, K, N] of shapes) {
    const a = randn(B > 1 ? [B, M, K] : [M, K]);
    const b = randn(B > 1 ? [B, K, N] : [K, N]);
    const ms = await time(backend, () => a.matmul(b));
    emit({ op: 'matmul', ...base, batch: B, M, K, N, median_ms: +ms.toFixed(3), gflops: +((2 * B * M * N * K) / ms / 1e6).toFixed(2) });
    a.dispose();
    b.dispose();
  }

  // softmax and layer norm: memory-bound, report GB/s (read + write of float32)
  const rowsShapes = sw ? [[512, 768]] : [[4096, 768], [4096, 3072]];
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
  {
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
  const seqs = sw ? [128, 256] : quick ? [128, 512, 1024] : [128, 256, 512, 1024, 2048, 4096];
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
  {
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
