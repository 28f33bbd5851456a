// `pnpm bench:peers`: lm next to PyTorch and onnxruntime-node on the workloads of issue #18 (BERT-base
// encoder forward at batch 1 and 8, an MLM training step with Adam, one decode step with a KV cache),
// one engine after another per workload in ONE run, so a busy machine disturbs them alike.
// One JSON line per (workload, engine) on stdout, medians of --reps runs; a ratio table on stderr.
//
// Usage: node tooling/bench/peers.mjs [--small] [--reps N] [--backend cpu|webgpu] [--only lm,torch,ort] [--filter REGEX]
//   --small    tiny shapes (a smoke run: CI, SwiftShader)
//   --backend  the lm backend (default cpu)
//   --dtype    float32 (default) or float16 (lm only: WebGPU with shader-f16; the peers run float32)
//   --lm-dist DIR  also run another build of @lm/tensor-gpu (its dist folder, e.g. main's) as engine
//                  lm-base-<backend>, right before this one: a before/after in the same run
// PyTorch: Debian's python3-torch (`apt-get install python3-torch`), 2 threads, OMP_WAIT_POLICY=PASSIVE.
// onnxruntime-node: 2 intra-op threads, on the ONNX graph that PyTorch exports from the same network
// (so its row needs python3-torch too). A peer that is missing prints {"skipped": "..."} and the run goes on.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as lm from '@lm/tensor-gpu';
import { buildLm, workloadShapes } from './workloads.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const small = args.includes('--small');
const reps = Number(opt('--reps', small ? 3 : 7));
const backendName = opt('--backend', 'cpu');
const only = opt('--only', 'lm,torch,ort').split(',');
const filter = new RegExp(opt('--filter', '.'));
const dtype = opt('--dtype', 'float32');
const baseDist = opt('--lm-dist', null);
const threads = 2;
const here = fileURLToPath(new URL('.', import.meta.url));
// Debian's interpreter, where python3-torch lives (a pyenv or venv python3 first on PATH does not see it); LM_PYTHON overrides
const python = process.env.LM_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x) => Math.round(x * 100) / 100;
const results = [];
function emit(row) {
  results.push(row);
  console.log(JSON.stringify(row));
}

async function timeSteps(run, sync, n, warm) {
  for (let i = 0; i < warm; i++) {
    run();
    await sync();
  }
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    run();
    await sync();
    ms.push(performance.now() - t0);
  }
  return ms;
}

async function runLm(lm, backend, w, engine = `lm-${backend.name}`) {
  if (w.dtype === 'float16' && !backend.supportsFloat16) {
    emit({ workload: w.name, engine, dtype: w.dtype, skipped: `backend ${backend.adapterInfo} has no float16 (WebGPU needs the shader-f16 feature)` });
    return;
  }
  const job = buildLm(lm, backend, w);
  if (!job) {
    emit({ workload: w.name, engine, dtype: w.dtype, skipped: 'Adam keeps float32 state: a float16 training step is mixed precision, not measured here' });
    return;
  }
  try {
    const ms = await timeSteps(job.step, job.sync, reps, 2);
    emit({ workload: w.name, engine, adapter: backend.adapterInfo, dtype: w.dtype, median_ms: round(median(ms)), reps, ms: ms.map(round) });
  } finally {
    job.dispose();
  }
}

function runTorch(w, onnxPath) {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OMP_WAIT_POLICY: 'PASSIVE', MKL_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: '1' };
  const r = spawnSync(python, [join(here, 'peers_torch.py'), JSON.stringify(w), String(reps), ...(onnxPath ? [onnxPath] : [])], { env, encoding: 'utf8' });
  const line = (r.stdout ?? '').trim().split('\n').pop();
  if (r.status !== 0 || !line) {
    const why = r.error?.message ?? (r.stderr ?? '').trim().split('\n').pop() ?? `exit ${r.status}`;
    emit({ workload: w.name, engine: 'pytorch', skipped: `${python} peers_torch.py failed: ${why} (install Debian's python3-torch)` });
    return false;
  }
  const row = JSON.parse(line);
  results.push(row);
  console.log(line);
  return true;
}

async function runOrt(w, onnxPath) {
  let ort;
  try {
    ort = await import('onnxruntime-node');
  } catch (e) {
    emit({ workload: w.name, engine: 'onnxruntime-node', skipped: `onnxruntime-node not installed: ${e.message}` });
    return;
  }
  const session = await ort.InferenceSession.create(onnxPath, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' });
  const data = Float32Array.from({ length: w.batch * w.seq * w.hidden }, (_, i) => Math.sin(i));
  const x = new ort.Tensor('float32', data, [w.batch, w.seq, w.hidden]);
  const times = [];
  for (let i = 0; i < reps + 2; i++) {
    const t0 = performance.now();
    await session.run({ x });
    if (i >= 2) times.push(performance.now() - t0);
  }
  emit({ workload: w.name, engine: `onnxruntime-node-${ort.env.versions?.common ?? ''}`, threads, median_ms: round(median(times)), reps, ms: times.map(round) });
  await session.release();
}

const backend = backendName === 'cpu' ? lm.cpu() : await lm.init(backendName);
const base = baseDist ? await import(pathToFileURL(resolve(baseDist, 'index.js')).href) : null;
const baseBackend = base ? (backendName === 'cpu' ? base.cpu() : await base.init(backendName)) : null;
const dir = mkdtempSync(join(tmpdir(), 'lm-peers-'));
try {
  for (const w of workloadShapes(small, dtype).filter((x) => filter.test(x.name))) {
    const peers = dtype === 'float32';
    const onnxPath = peers && w.kind === 'bert' && only.includes('ort') ? join(dir, `${w.name}.onnx`) : null;
    if (base && only.includes('lm')) await runLm(base, baseBackend, w, `lm-base-${baseBackend.name}`);
    if (only.includes('lm')) await runLm(lm, backend, w);
    const torchOk = (peers && only.includes('torch')) || onnxPath ? runTorch(w, onnxPath) : false;
    if (onnxPath) {
      if (torchOk) await runOrt(w, onnxPath);
      else emit({ workload: w.name, engine: 'onnxruntime-node', skipped: 'needs the ONNX graph that python3-torch exports' });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// the table of the issue, lm's ratio to each peer
const by = (name, engine) => results.find((r) => r.workload === name && r.engine.startsWith(engine) && r.median_ms !== undefined);
for (const name of new Set(results.map((r) => r.workload))) {
  const own = by(name, `lm-${backend.name}`);
  const cells = ['lm-base', 'pytorch', 'onnxruntime-node'].map((e) => {
    const peer = by(name, e);
    return peer ? `${e} ${peer.median_ms} ms${own ? ` (lm/${e.split('-').slice(0, e.startsWith('lm') ? 2 : 1).join('-')} ${(own.median_ms / peer.median_ms).toFixed(2)}x)` : ''}` : `${e} -`;
  });
  console.error(`${name.padEnd(16)} lm ${own ? `${own.median_ms} ms` : '-'} | ${cells.join(' | ')}`);
}
