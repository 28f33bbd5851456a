// The training worker (a module worker): runs `lm-train`'s loop (apps/trainer: the family table,
// objectives, data pipeline, checkpoint store and export, unchanged) on WebGPU or the cpu fallback.
// Files live in a memory file system that stands in for node:fs (node/memfs.ts) and are copied to
// IndexedDB after every checkpoint (storage.ts), so a reload finds the run and resumes it exactly.
// Pause and stop finish the current step and save a checkpoint; resume continues from it.
import { memory, type Backend } from '@lm/tensor-gpu';
import { BROWSER_PATHS, browserConfig } from '../../../trainer/src/browser/config.js';
import type { CorpusText } from '../../../trainer/src/browser/corpus.js';
import { BrowserMetrics } from '../../../trainer/src/browser/metrics.js';
import { trainInBrowser } from '../../../trainer/src/browser/run.js';
import { fingerprintOverrides, readFingerprint } from '../../../trainer/src/browser/stored.js';
import { familyNames, objectiveNames } from '../../../trainer/src/models/index.js';
import { chooseBackend } from '../worker/backend.js';
import { serializeError } from '../worker/protocol.js';
import { checkFits } from './memory-check.js';
import { filesUnder, promises as fs, putFiles } from './node/memfs.js';
import type { BackendInfo, FromWorker, MetricsRecord, NamedBytes, RunRequest, RunState, StoredRun, ToWorker } from './protocol.js';
import { readStored, writeStored } from './storage.js';
import defaultYaml from '../../../trainer/configs/default.yaml?raw';
import bundledVocab from '../../../trainer/data/vocab.txt?raw';

/** lm-train's bundled corpus (apps/trainer/data/corpus), file name -> text. */
const BUNDLED_CORPUS = Object.entries(import.meta.glob<string>('../../../trainer/data/corpus/*.txt', { query: '?raw', import: 'default', eager: true })).map(
  ([path, text]) => ({ name: path.split('/').pop()!, data: text }),
);

const RUN_FILE = `${BROWSER_PATHS.root}/run.json`;
const CORPUS_DIR = `${BROWSER_PATHS.root}/corpus`;
const encoder = new TextEncoder();

let backend: Backend | null = null;
let backendInfo: BackendInfo | null = null;
let state: RunState = 'idle';
let stopAs: 'pause' | 'stop' | null = null;
/** What IndexedDB holds now (path -> the bytes object written). */
let stored = new Map<string, Uint8Array>();

function post(message: FromWorker, transfer: Transferable[] = []): void {
  self.postMessage(message, { transfer });
}

function setState(next: RunState, message?: string): void {
  state = next;
  post({ kind: 'state', state: next, message });
}

async function persist(): Promise<void> {
  const files = filesUnder(BROWSER_PATHS.root);
  await writeStored(files, stored);
  stored = files;
}

async function readText(path: string): Promise<string | null> {
  try {
    return (await fs.readFile(path, 'utf8')) as string;
  } catch {
    return null;
  }
}

async function storedRun(): Promise<StoredRun | null> {
  const run = await readText(RUN_FILE);
  if (!run) return null;
  const meta = JSON.parse(run) as { overrides: [string, unknown][]; corpus: string[]; steps: number };
  const names = (await fs.readdir(BROWSER_PATHS.checkpoints).catch(() => [])) as string[];
  const checkpoints = [];
  for (const n of names) {
    const m = /^step-(\d+)$/.exec(n);
    if (m && (await readText(`${BROWSER_PATHS.checkpoints}/${n}/latest.json`)) !== null) checkpoints.push(Number(m[1]));
  }
  const metrics = BrowserMetrics.parse((await readText(BROWSER_PATHS.metrics)) ?? '');
  return { ...meta, checkpoints: checkpoints.sort((a, b) => a - b), metrics };
}

async function corpusFiles(corpus: RunRequest['corpus']): Promise<CorpusText[]> {
  if (corpus.kind === 'bundled') return BUNDLED_CORPUS;
  return Promise.all(corpus.files.map(async (f) => ({ name: f.name, data: new Uint8Array(await f.arrayBuffer()) })));
}

/** Writes a new run's settings, corpus and tokenizer under /run (replacing any stored run). */
async function writeRun(run: RunRequest, corpus: CorpusText[]): Promise<void> {
  await fs.rm(BROWSER_PATHS.root, { recursive: true, force: true });
  await fs.mkdir(CORPUS_DIR, { recursive: true });
  for (const f of corpus) await fs.writeFile(`${CORPUS_DIR}/${f.name}`, typeof f.data === 'string' ? encoder.encode(f.data) : f.data);
  await fs.writeFile(BROWSER_PATHS.tokenizer, bundledVocab);
  const steps = Number(run.overrides.find(([k]) => k === 'training.steps')?.[1] ?? browserConfig(defaultYaml, run.overrides).training.steps);
  await fs.writeFile(RUN_FILE, JSON.stringify({ overrides: run.overrides, corpus: corpus.map((f) => f.name), steps }));
}

/** Trains the run stored under /run, from scratch or from its newest checkpoint. */
async function go(resume: boolean): Promise<void> {
  if (!backend) throw new Error('train: the worker has no backend yet (init first)');
  const meta = JSON.parse((await readText(RUN_FILE))!) as { overrides: [string, unknown][]; corpus: string[] };
  const config = browserConfig(defaultYaml, meta.overrides);
  const corpus = await Promise.all(meta.corpus.map(async (name) => ({ name, data: (await fs.readFile(`${CORPUS_DIR}/${name}`)) as Uint8Array })));
  const metrics = new BrowserMetrics(BROWSER_PATHS.metrics, resume ? BrowserMetrics.parse((await readText(BROWSER_PATHS.metrics)) ?? '') : [], (record) =>
    post({ kind: 'metrics', record: record as MetricsRecord }),
  );
  stopAs = null;
  setState('starting');
  let elapsed = 0;
  const t0 = performance.now();
  const result = await trainInBrowser({
    config,
    corpus,
    resume,
    backend,
    metrics,
    print: (line) => post({ kind: 'log', line }),
    progress: (total, start) => {
      setState('running');
      return {
        update: (step, v) => {
          elapsed = (performance.now() - t0) / 1000;
          post({ kind: 'progress', step, total, loss: v.loss, tokensPerSecond: v.tokensPerSecond, lr: v.lr, elapsedSeconds: elapsed });
          if (step === start + 1 || step % 20 === 0) post({ kind: 'memory', text: memoryText() });
        },
        log: (line) => post({ kind: 'log', line }),
        stop: () => undefined,
      };
    },
    shouldStop: () => stopAs !== null,
    // A macrotask between batches: pause and stop messages get through on every backend.
    pauseBetweenBatches: () => new Promise((resolve) => setTimeout(resolve, 0)),
    afterCheckpoint: async () => {
      await metrics.flush();
      await persist();
      post({ kind: 'stored', run: await storedRun() });
    },
    checkFits: ({ modelConfig, config: c, backend: b }) => checkFits(modelConfig, c, b),
  });
  await metrics.flush();
  await persist();
  post({ kind: 'memory', text: memoryText() });
  // What is stored first, then the state: a page that sees 'done' or 'paused' knows the checkpoints.
  post({ kind: 'stored', run: await storedRun() });
  if (result.interrupted) setState(stopAs === 'pause' ? 'paused' : 'stopped', `step ${result.step}: checkpoint saved`);
  else setState('done', `step ${result.step}${result.eval ? `: held-out ${describeEval(result.eval)}` : ''}`);
}

function describeEval(e: Record<string, number>): string {
  return Object.entries(e)
    .filter(([k]) => /accuracy|perplexity/i.test(k))
    .map(([k, v]) => `${k} ${/accuracy/i.test(k) ? `${(v * 100).toFixed(1)}%` : v.toFixed(3)}`)
    .join(', ');
}

function memoryText(): string {
  const m = memory();
  const bytes = Object.values(m.backends).reduce((a, b) => a + b.bytes, 0);
  return `${m.tensors} tensors, ${(bytes / 2 ** 20).toFixed(1)} MiB on ${backendInfo?.name ?? '?'}`;
}

/** The files under `dir`, named relative to `base` (a checkpoint keeps its step-NNNNNNNN folder). */
async function filesOf(dir: string, base: string, what: 'checkpoint' | 'export'): Promise<void> {
  const files: NamedBytes[] = [...filesUnder(dir)].map(([path, bytes]) => ({ name: path.slice(base.length + 1), bytes: bytes.slice() }));
  if (files.length === 0) throw new Error(`${what}: nothing stored yet (${dir} is empty)`);
  post({ kind: 'files', what, files }, files.map((f) => f.bytes.buffer));
}

/** A dropped lm-train checkpoint: its run's settings come from its fingerprint; a bad one leaves the stored run as it was. */
async function importCheckpoint(files: NamedBytes[], run: RunRequest): Promise<void> {
  const steps = new Set(files.map((f) => /^(step-\d{8,})\//.exec(f.name)?.[1]).filter(Boolean));
  if (steps.size !== 1) {
    throw new Error(`checkpoint: drop one lm-train checkpoint folder (step-NNNNNNNN with latest.json, ckpt-<id>/metadata.json and its .safetensors); got ${files.map((f) => f.name).join(', ') || 'no files'}`);
  }
  const backup = filesUnder(BROWSER_PATHS.root);
  try {
    const corpus = await corpusFiles(run.corpus);
    await writeRun(run, corpus);
    await putFiles(files.map((f) => [`${BROWSER_PATHS.checkpoints}/${f.name}`, f.bytes]));
    const [step] = [...steps];
    const fingerprint = await readFingerprint(`${BROWSER_PATHS.checkpoints}/${step}`);
    const family = browserConfig(defaultYaml, run.overrides).model.family;
    if (fingerprint.model.family !== family) throw new Error(`checkpoint ${step}: written for model family "${fingerprint.model.family}", this run trains "${family}"`);
    await writeRun({ ...run, overrides: [...run.overrides, ...fingerprintOverrides(fingerprint)] }, corpus);
    await putFiles(files.map((f) => [`${BROWSER_PATHS.checkpoints}/${f.name}`, f.bytes]));
    await go(true);
  } catch (err) {
    // Nothing lost: the stored run comes back as it was (IndexedDB was not touched before the first new checkpoint).
    await fs.rm(BROWSER_PATHS.root, { recursive: true, force: true });
    await putFiles(backup);
    throw err;
  }
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.kind) {
    case 'init': {
      if (!backendInfo) ({ backend, info: backendInfo } = await chooseBackend(message.backend));
      post({ kind: 'backend', info: backendInfo });
      post({ kind: 'families', families: Object.fromEntries(familyNames().map((f) => [f, objectiveNames(f)])) });
      stored = await readStored();
      await putFiles(stored);
      post({ kind: 'stored', run: await storedRun() });
      return;
    }
    case 'start': {
      const corpus = await corpusFiles(message.run.corpus);
      // Checked before the stored run is replaced: a bad corpus or config leaves it as it was.
      browserConfig(defaultYaml, message.run.overrides);
      const backup = filesUnder(BROWSER_PATHS.root);
      await writeRun(message.run, corpus);
      try {
        await go(false);
      } catch (err) {
        if (state === 'starting') {
          await fs.rm(BROWSER_PATHS.root, { recursive: true, force: true });
          await putFiles(backup);
        }
        throw err;
      }
      return;
    }
    case 'resume':
      return go(true);
    case 'checkpoint-files': {
      const run = await storedRun();
      const step = message.step ?? run?.checkpoints.at(-1);
      if (step === undefined) throw new Error('checkpoint: no checkpoint stored yet');
      return filesOf(`${BROWSER_PATHS.checkpoints}/step-${String(step).padStart(8, '0')}`, BROWSER_PATHS.checkpoints, 'checkpoint');
    }
    case 'export-files':
      return filesOf(BROWSER_PATHS.export, BROWSER_PATHS.export, 'export');
    case 'import':
      return importCheckpoint(message.files, message.run);
    case 'clear': {
      await fs.rm(BROWSER_PATHS.root, { recursive: true, force: true });
      await persist();
      post({ kind: 'stored', run: null });
      return;
    }
    case 'pause':
    case 'stop':
      return;
  }
}

let queue = Promise.resolve();
self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  // Pause and stop act on the running step at once; everything else waits its turn.
  if (message.kind === 'pause' || message.kind === 'stop') {
    if (state === 'running' || state === 'starting') {
      stopAs = message.kind;
      setState(message.kind === 'pause' ? 'pausing' : 'stopping');
    }
    return;
  }
  queue = queue.then(() =>
    handle(message).catch((err: unknown) => {
      if (state === 'starting' || state === 'running' || state === 'pausing' || state === 'stopping') setState('error', (err as Error).message);
      post({ kind: 'error', error: serializeError(err) });
    }),
  );
};
