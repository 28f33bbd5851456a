// `pnpm bench`: REALM retrieval and indexing benchmarks on the built package, one JSON line per measurement.
//   topk       RealmBlockIndex.search (tiled inner product + top-k on the backend) over random blocks x 128:
//              k = 5 and 100, one query and a batch of 64, float32 and float16 storage (where the backend
//              has float16), ms (median) and the peak device memory beyond the index; side by side, NumPy
//              on the same data (`block_emb @ q`, then `argpartition` and a sort of the k), when python3
//              with numpy is installed.
//   indexing   blocks embedded per second by a BERT-base-shaped RealmEmbedder (12 layers, hidden 768,
//              seq 288, the reference's block length), batch 8.
// Usage: node bench/run.mjs [--backend cpu|webgpu|all] [--sizes 100000,1000000,4000000] [--no-numpy]
//                           [--no-indexing] [--dtypes float32,float16] [--quick]   (--quick: 100k blocks, no indexing)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as lm from '@lm/tensor-gpu';
import { testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { RealmBlockIndex, RealmConfig, RealmEmbedder } from '../dist/index.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const quick = args.includes('--quick');
const which = opt('--backend', 'all');
const sizes = opt('--sizes', quick ? '100000' : '100000,1000000,4000000').split(',').map(Number).filter((n) => n > 0);
const withNumpy = !args.includes('--no-numpy');
const dtypes = opt('--dtypes', 'float32,float16').split(',');
const withIndexing = !args.includes('--no-indexing') && !quick;
const DIM = 128;
const BATCH = 64;
const KS = [5, 100];

const emit = (o) => console.log(JSON.stringify(o));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Deterministic uniform(-0.5, 0.5) floats (xorshift32). */
function randomFloats(n, seed) {
  const out = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) / 4294967296 - 0.5;
  }
  return out;
}

/** Peak live device bytes while `fn` runs (the backend's allocations are watched). */
function watchPeak(backend) {
  const alloc = backend.alloc.bind(backend);
  const state = { peak: 0 };
  backend.alloc = (dtype, size) => {
    const s = alloc(dtype, size);
    state.peak = Math.max(state.peak, backend.memory().bytes);
    return s;
  };
  return state;
}

async function timeSearch(backend, index, queries, k, reps) {
  const run = async () => {
    const t0 = performance.now();
    const { scores, indices } = index.search(queries, k);
    await indices.data(); // the ids reach the host, as a retriever needs them
    const ms = performance.now() - t0;
    scores.dispose();
    indices.dispose();
    return ms;
  };
  await run();
  const times = [];
  for (let i = 0; i < reps; i++) times.push(await run());
  return median(times);
}

function numpyTimes(file, n, queriesFile, reps) {
  const script = `
import json, sys, time
import numpy as np
n, dim, reps = ${n}, ${DIM}, ${reps}
emb32 = np.fromfile(${JSON.stringify(file)}, dtype=np.float32).reshape(n, dim)
qs = np.fromfile(${JSON.stringify(queriesFile)}, dtype=np.float32).reshape(${BATCH}, dim)
def topk(scores, k):
    idx = np.argpartition(-scores, k - 1, axis=-1)[..., :k]
    part = np.take_along_axis(scores, idx, -1)
    order = np.argsort(-part, axis=-1, kind='stable')
    return np.take_along_axis(idx, order, -1)
for dtype in ('float32', 'float16'):
    emb = emb32 if dtype == 'float32' else emb32.astype(np.float16)
    q1 = qs[0].astype(emb.dtype)
    qb = qs.astype(emb.dtype)
    for k in ${JSON.stringify(KS)}:
        for label, fn in (('query', lambda: topk(emb @ q1, k)), ('batch64', lambda: topk(qb @ emb.T, k))):
            if dtype == 'float16' and label == 'batch64' and n > 100000:
                print(json.dumps({'dtype': dtype, 'k': k, 'what': label, 'skipped': 'numpy float16 matmul has no BLAS: minutes per run'}))
                continue
            fn()
            ts = []
            for _ in range(reps if label == 'query' or dtype == 'float32' else 1):
                t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1000)
            ts.sort()
            print(json.dumps({'dtype': dtype, 'k': k, 'what': label, 'ms': ts[len(ts) // 2]}))
`;
  const r = spawnSync('python3', ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || 'python3 failed').trim().split('\n').at(-1) };
  return { rows: r.stdout.trim().split('\n').map((l) => JSON.parse(l)) };
}

async function backends() {
  const out = [];
  if (which === 'cpu' || which === 'all') out.push(await lm.init('cpu'));
  if (which === 'webgpu' || which === 'all') {
    const webgpu = await testWebGPUBackend();
    if (webgpu) out.push(webgpu);
    else emit({ bench: 'all', backend: 'webgpu', skipped: 'no WebGPU adapter' });
  }
  return out;
}

const list = await backends();
const tmp = mkdtempSync(join(tmpdir(), 'realm-bench-'));
try {
  for (const n of sizes) {
    const rows = randomFloats(n * DIM, 12345 + n);
    const queries = randomFloats(BATCH * DIM, 777);
    if (withNumpy) {
      const file = join(tmp, 'emb.f32');
      const qfile = join(tmp, 'q.f32');
      writeFileSync(file, rows);
      writeFileSync(qfile, queries);
      const np = numpyTimes(file, n, qfile, n >= 1_000_000 ? 3 : 7);
      if (np.error) emit({ bench: 'topk', impl: 'numpy', blocks: n, skipped: np.error });
      else for (const r of np.rows) emit({ bench: 'topk', impl: 'numpy', blocks: n, dim: DIM, dtype: r.dtype, k: r.k, queries: r.what === 'query' ? 1 : BATCH, ...(r.skipped ? { skipped: r.skipped } : { ms: +r.ms.toFixed(3) }) });
    }
    for (const backend of list) {
      const software = /swiftshader/i.test(backend.adapterInfo ?? '');
      for (const dtype of dtypes) {
        if (dtype === 'float16' && !backend.supportsFloat16) {
          emit({ bench: 'topk', impl: 'realm', backend: backend.name, blocks: n, dtype, skipped: 'no float16 storage on this backend (WebGPU: shader-f16)' });
          continue;
        }
        const rowBytes = DIM * (dtype === 'float16' ? 2 : 4);
        if (backend.name === 'webgpu' && n * rowBytes > 1.5 * 2 ** 30) {
          emit({ bench: 'topk', impl: 'realm', backend: backend.name, blocks: n, dtype, skipped: 'index larger than 1.5 GiB on this adapter' });
          continue;
        }
        const index = RealmBlockIndex.fromHost(rows, n, DIM, backend, { dtype });
        const q1 = lm.fromHost(queries.subarray(0, DIM), [1, DIM], 'float32', backend);
        const qb = lm.fromHost(queries, [BATCH, DIM], 'float32', backend);
        const peak = watchPeak(backend);
        for (const k of KS) {
          for (const [label, q] of [['query', q1], ['batch64', qb]]) {
            if (software && label === 'batch64' && n > 100_000) {
              emit({ bench: 'topk', impl: 'realm', backend: backend.name, blocks: n, dtype, k, queries: BATCH, skipped: 'software adapter: minutes per run' });
              continue;
            }
            const before = backend.memory().bytes;
            peak.peak = before;
            const ms = await timeSearch(backend, index, q, k, n >= 1_000_000 || software ? 3 : 7);
            emit({
              bench: 'topk',
              impl: 'realm',
              backend: backend.name,
              adapter: backend.adapterInfo,
              blocks: n,
              dim: DIM,
              dtype,
              k,
              queries: label === 'query' ? 1 : BATCH,
              ms: +ms.toFixed(3),
              shards: index.shards.length,
              tileRows: index.tileRows ?? 'auto',
              indexMiB: +(index.bytes / 2 ** 20).toFixed(1),
              peakExtraMiB: +((peak.peak - before) / 2 ** 20).toFixed(1),
            });
          }
        }
        q1.dispose();
        qb.dispose();
        index.dispose();
      }
    }
  }

  if (withIndexing) {
    for (const backend of list) {
      if (/swiftshader/i.test(backend.adapterInfo ?? '')) {
        emit({ bench: 'indexing', backend: backend.name, skipped: 'software adapter: a BERT-base batch takes minutes' });
        continue;
      }
      const config = new RealmConfig({ vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 3072, retrieverProjSize: 128, maxPositionEmbeddings: 512 });
      const embedder = new RealmEmbedder(config, { backend });
      embedder.eval();
      const SEQ = 288;
      const batch = 8;
      const ids = lm.fromHost(Int32Array.from(randomFloats(batch * SEQ, 9), (x) => 1000 + Math.floor((x + 0.5) * 20000)), [batch, SEQ], 'int32', backend);
      const run = async () => {
        const t0 = performance.now();
        const out = lm.noGrad(() => embedder.forward({ inputIds: ids }).projectedScore);
        await out.data();
        out.dispose();
        return performance.now() - t0;
      };
      await run();
      const ms = median([await run(), await run()]);
      emit({ bench: 'indexing', backend: backend.name, adapter: backend.adapterInfo, model: 'bert-base-shaped embedder', seq: SEQ, batch, msPerBatch: +ms.toFixed(1), blocksPerSecond: +((batch * 1000) / ms).toFixed(2) });
      ids.dispose();
      embedder.dispose();
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
