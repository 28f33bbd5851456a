// The Train panel: pick a family, objective, model size and corpus, press Train, and watch the run of
// lm-train's loop in the training worker: loss and validation curves, tokens/s, learning rate, step,
// ETA, backend memory; pause, resume and stop; the run's checkpoints live in the browser's storage
// (a reload offers to resume), download as a .tar that `lm-train --resume` reads, and a checkpoint of
// lm-train dropped here resumes in the page. At the end the model opens in the inference panel.
//
// For tests the panel publishes its state on <html data-train="idle|running|paused|...">, and on
// `window.__lm.train` (records, state, stored run, last error).
import { droppedFiles } from '../app/model-card.js';
import { clear, h } from '../ui/dom.js';
import { drawCurves } from './chart.js';
import { TrainClient } from './client.js';
import type { BackendInfo, BackendRequest, FromWorker, MetricsRecord, NamedBytes, RunRequest, RunState, StoredRun } from './protocol.js';
import { readTar, writeTar } from './tar.js';

export interface TrainPanelState {
  state: RunState;
  /** The worker has said what the browser's storage holds. */
  storedKnown: boolean;
  records: MetricsRecord[];
  stored: StoredRun | null;
  error: string | null;
  backend: BackendInfo | null;
  log: string[];
}

declare global {
  interface Window {
    __lmTrain?: TrainPanelState;
  }
}

/** Model sizes: the default is `pnpm start`'s model (configs/default.yaml); the others override it. */
const PRESETS: Record<string, { label: string; config: Record<string, number> | null }> = {
  default: { label: 'default: 2 layers, hidden 64 (lm-train\u2019s pnpm start, 0.12M)', config: null },
  tiny: { label: 'tiny: 1 layer, hidden 32', config: { hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64 } },
  small: { label: 'small: 4 layers, hidden 128', config: { hiddenSize: 128, numHiddenLayers: 4, numAttentionHeads: 4, intermediateSize: 512 } },
  custom: { label: 'custom (model.config as JSON)', config: null },
};

const ACTIVE: RunState[] = ['starting', 'running', 'pausing', 'stopping'];

function download(name: string, bytes: Uint8Array, type = 'application/x-tar'): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '–';
  if (s < 60) return `${s.toFixed(0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function mountTrainPanel(root: HTMLElement, backend: BackendRequest, openModel: (files: File[], label: string) => Promise<void>): void {
  const st: TrainPanelState = { state: 'idle', storedKnown: false, records: [], stored: null, error: null, backend: null, log: [] };
  window.__lmTrain = st;
  const html = document.documentElement;
  html.dataset.train = 'idle';

  const field = (label: string, input: HTMLElement) => h('label', { class: 'train-field' }, h('span', null, label), input);
  const family = h('select', { 'data-testid': 'train-family' });
  const objective = h('select', { 'data-testid': 'train-objective' });
  const preset = h('select', { 'data-testid': 'train-size' }, ...Object.entries(PRESETS).map(([k, p]) => h('option', { value: k }, p.label)));
  const custom = h('textarea', { 'data-testid': 'train-custom', rows: 3, hidden: true, placeholder: '{"hiddenSize": 96, "numHiddenLayers": 3, "numAttentionHeads": 4, "intermediateSize": 384}' });
  const steps = h('input', { type: 'number', min: '1', value: '2400', 'data-testid': 'train-steps' });
  const batch = h('input', { type: 'number', min: '1', value: '32', 'data-testid': 'train-batch' });
  const lr = h('input', { type: 'text', value: '3e-3', 'data-testid': 'train-lr' });
  const evalEvery = h('input', { type: 'number', min: '0', value: '200', 'data-testid': 'train-eval-every' });
  const ckptEvery = h('input', { type: 'number', min: '0', value: '100', 'data-testid': 'train-ckpt-every' });
  const seed = h('input', { type: 'number', value: '42', 'data-testid': 'train-seed' });
  const corpusInput = h('input', { type: 'file', multiple: true, accept: '.txt,.text,.jsonl,.ndjson', 'data-testid': 'train-corpus-input' });
  const corpusLabel = h('span', { class: 'muted', 'data-testid': 'train-corpus' }, 'bundled corpus (lm-train\u2019s data/corpus: 566 documents)');
  let corpusFiles: File[] | null = null;
  const setCorpus = (files: File[] | null) => {
    corpusFiles = files && files.length ? files : null;
    clear(corpusLabel, corpusFiles ? `${corpusFiles.length} file(s): ${corpusFiles.map((f) => f.name).join(', ')}` : 'bundled corpus (lm-train\u2019s data/corpus: 566 documents)');
  };
  corpusInput.addEventListener('change', () => setCorpus(Array.from(corpusInput.files ?? [])));
  const bundledButton = h('button', { type: 'button', onclick: () => setCorpus(null) }, 'use the bundled corpus');
  const ckptInput = h('input', { type: 'file', multiple: true, accept: '.tar,.json,.safetensors', 'data-testid': 'train-checkpoint-input' });

  const train = h('button', { class: 'primary', 'data-testid': 'train-start' }, 'Train');
  const pause = h('button', { 'data-testid': 'train-pause' }, 'Pause');
  const resume = h('button', { 'data-testid': 'train-resume' }, 'Resume');
  const stop = h('button', { 'data-testid': 'train-stop' }, 'Stop');
  const dlCkpt = h('button', { 'data-testid': 'train-download-checkpoint' }, 'Download checkpoint (.tar)');
  const dlExport = h('button', { 'data-testid': 'train-download-export' }, 'Download export (.tar)');
  const open = h('button', { 'data-testid': 'train-open' }, 'Open in the inference panel');
  const forget = h('button', { 'data-testid': 'train-forget' }, 'Forget the stored run');

  const backendLine = h('div', { class: 'muted', 'data-testid': 'train-backend' }, 'starting the training worker…');
  const stats = h('div', { class: 'train-stats', 'data-testid': 'train-stats' });
  const storedLine = h('div', { class: 'muted', 'data-testid': 'train-stored' });
  const error = h('div', { class: 'error', 'data-testid': 'train-error', hidden: true });
  const canvas = h('canvas', { class: 'train-chart', 'data-testid': 'train-chart' });
  const logBox = h('pre', { class: 'train-log', 'data-testid': 'train-log' });
  const dropZone = h(
    'div',
    { class: 'train-drop', 'data-testid': 'train-drop' },
    'Drop corpus files (.txt, .jsonl) or an lm-train checkpoint (a step-NNNNNNNN folder or its .tar) here',
  );

  clear(
    root,
    h('h2', null, 'Train'),
    h('p', { class: 'muted' }, 'lm-train\u2019s loop, objectives, data pipeline and checkpoints, in a worker of this page.'),
    backendLine,
    h('div', { class: 'train-form' }, field('family', family), field('objective', objective), field('model size', preset), field('steps', steps), field('batch', batch), field('peak lr', lr), field('eval every', evalEvery), field('checkpoint every', ckptEvery), field('seed', seed)),
    custom,
    h('div', { class: 'row' }, h('span', null, 'corpus: '), corpusLabel, corpusInput, bundledButton),
    dropZone,
    h('div', { class: 'row' }, train, pause, resume, stop, open, dlCkpt, dlExport, forget, h('label', { class: 'muted' }, 'resume an lm-train checkpoint (.tar): ', ckptInput)),
    error,
    stats,
    canvas,
    storedLine,
    logBox,
  );

  const showError = (message: string | null) => {
    st.error = message;
    error.hidden = !message;
    clear(error, message ?? '');
  };

  const overrides = (): [string, unknown][] => {
    const out: [string, unknown][] = [
      ['model.family', family.value],
      ['objective', objective.value],
      ['training.steps', Number(steps.value)],
      ['training.batchSize', Number(batch.value)],
      ['training.lr', Number(lr.value)],
      ['eval.everySteps', Number(evalEvery.value)],
      ['checkpointing.everySteps', Number(ckptEvery.value)],
      ['seed', Number(seed.value)],
      ['backend', backend],
    ];
    const p = PRESETS[preset.value];
    if (preset.value === 'custom') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(custom.value || '{}');
      } catch (e) {
        throw new Error(`model.config: not valid JSON (${(e as Error).message})`);
      }
      for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) out.push([`model.config.${k}`, v]);
    } else if (p.config) {
      for (const [k, v] of Object.entries(p.config)) out.push([`model.config.${k}`, v]);
    }
    return out;
  };
  const runRequest = (): RunRequest => ({ overrides: overrides(), corpus: corpusFiles ? { kind: 'files', files: corpusFiles } : { kind: 'bundled' } });

  let total = 0;
  const render = () => {
    const active = ACTIVE.includes(st.state);
    const canResume = !active && !!st.stored?.checkpoints.length && st.state !== 'done' && (st.stored.checkpoints.at(-1) ?? 0) < st.stored.steps;
    train.disabled = active;
    pause.disabled = st.state !== 'running' && st.state !== 'starting';
    stop.disabled = st.state !== 'running' && st.state !== 'starting';
    resume.disabled = !canResume;
    dlCkpt.disabled = active || !st.stored?.checkpoints.length;
    dlExport.disabled = active || st.state !== 'done';
    open.disabled = active || st.state !== 'done';
    forget.disabled = active || !st.stored;
    html.dataset.train = st.state;
    const s = st.stored;
    clear(
      storedLine,
      s
        ? `stored in this browser: a run of ${s.steps} steps on ${s.corpus.join(', ')}; checkpoints at step ${s.checkpoints.join(', ') || 'none yet'}${canResume ? ' \u2014 press Resume to continue it' : ''}`
        : 'no run stored in this browser',
    );
    drawCurves(canvas, st.records, total || s?.steps || Number(steps.value));
  };

  const client = new TrainClient((m: FromWorker) => {
    switch (m.kind) {
      case 'backend':
        st.backend = m.info;
        clear(
          backendLine,
          m.info.name === 'webgpu' ? `training on WebGPU (${m.info.adapterInfo}${m.info.isSoftware ? ', a software adapter' : ''})` : `training on the CPU fallback (${m.info.adapterInfo}): ${m.info.fallbackReason ?? ''}`,
        );
        break;
      case 'families':
        clear(family, ...Object.keys(m.families).map((f) => h('option', { value: f }, f)));
        {
          const fill = () => clear(objective, ...(m.families[family.value] ?? []).map((o) => h('option', { value: o }, o)));
          family.onchange = fill;
          fill();
        }
        break;
      case 'stored':
        st.stored = m.run;
        st.storedKnown = true;
        if (m.run && st.records.length === 0) st.records = m.run.metrics;
        break;
      case 'state':
        st.state = m.state;
        if (m.state === 'starting') showError(null);
        if (m.state === 'error') showError(m.message ?? 'the run failed');
        if (m.message) st.log.push(`${m.state}: ${m.message}`);
        break;
      case 'log':
        st.log.push(m.line);
        break;
      case 'metrics':
        st.records.push(m.record);
        break;
      case 'progress': {
        total = m.total;
        const first = st.records.find((r) => r.type === 'train');
        const done = m.step - (first ? first.step - 1 : 0);
        const eta = done > 0 ? ((m.total - m.step) * m.elapsedSeconds) / done : NaN;
        clear(
          stats,
          ...[
            ['step', `${m.step} / ${m.total}`],
            ['loss', m.loss.toFixed(4)],
            ['tokens/s', Math.round(m.tokensPerSecond).toLocaleString('en')],
            ['learning rate', m.lr.toExponential(2)],
            ['elapsed', fmtSeconds(m.elapsedSeconds)],
            ['ETA', fmtSeconds(eta)],
          ].map(([k, v]) => h('span', { class: 'stat', 'data-testid': `train-stat-${k.replace(/[^a-z]/gi, '')}` }, h('b', null, k), ' ', v)),
        );
        break;
      }
      case 'memory':
        stats.append(h('span', { class: 'stat', 'data-testid': 'train-memory' }, h('b', null, 'backend memory'), ' ', m.text));
        break;
      case 'error':
        showError(`${m.error.name === 'Error' ? '' : `${m.error.name}: `}${m.error.message}`);
        break;
      case 'files':
        break;
    }
    if (st.log.length > 200) st.log.splice(0, st.log.length - 200);
    logBox.textContent = st.log.slice(-12).join('\n');
    render();
  });

  const begin = () => {
    try {
      const run = runRequest();
      st.records = [];
      showError(null);
      client.send({ kind: 'start', run });
    } catch (e) {
      showError((e as Error).message);
    }
  };
  train.onclick = begin;
  pause.onclick = () => client.send({ kind: 'pause' });
  stop.onclick = () => client.send({ kind: 'stop' });
  resume.onclick = () => {
    showError(null);
    client.send({ kind: 'resume' });
  };
  forget.onclick = () => {
    st.records = [];
    client.send({ kind: 'clear' });
  };
  preset.onchange = () => (custom.hidden = preset.value !== 'custom');
  const fail = (e: unknown) => showError((e as Error).message);
  dlCkpt.onclick = () =>
    void client
      .files('checkpoint')
      .then((files) => download(`${files[0].name.split('/')[0]}.tar`, writeTar(files)))
      .catch(fail);
  dlExport.onclick = () =>
    void client
      .files('export')
      .then((files) => download('export.tar', writeTar(files.map((f) => ({ name: `export/${f.name}`, bytes: f.bytes })))))
      .catch(fail);
  open.onclick = () =>
    void client
      .files('export')
      .then((files) => openModel(files.map((f) => new File([f.bytes as BlobPart], f.name)), 'trained in this page'))
      .catch(fail);

  const importCheckpoint = async (files: NamedBytes[]) => {
    try {
      const run = runRequest();
      st.records = [];
      showError(null);
      client.send({ kind: 'import', files, run });
    } catch (e) {
      showError((e as Error).message);
    }
  };
  const fromFiles = async (list: { file: File; path: string }[]) => {
    const tars = list.filter((f) => f.file.name.endsWith('.tar'));
    if (tars.length) {
      const files = readTar(new Uint8Array(await tars[0].file.arrayBuffer()), tars[0].file.name);
      return importCheckpoint(files);
    }
    if (list.some((f) => /(^|\/)step-\d{8,}\//.test(f.path))) {
      const files = await Promise.all(list.map(async (f) => ({ name: f.path.replace(/^.*?(step-\d{8,}\/)/, '$1'), bytes: new Uint8Array(await f.file.arrayBuffer()) })));
      return importCheckpoint(files);
    }
    setCorpus(list.map((f) => f.file));
  };
  ckptInput.addEventListener('change', () => void fromFiles(Array.from(ckptInput.files ?? []).map((file) => ({ file, path: file.name }))).catch(fail));
  dropZone.addEventListener('dragover', (e) => {
    e.preventDefault();
    dropZone.classList.add('over');
  });
  dropZone.addEventListener('dragleave', () => dropZone.classList.remove('over'));
  dropZone.addEventListener('drop', (e) => {
    // Not the page's model drop: this zone takes corpora and checkpoints.
    e.preventDefault();
    e.stopPropagation();
    dropZone.classList.remove('over');
    if (e.dataTransfer) void droppedFiles(e.dataTransfer).then(({ files }) => fromFiles(files)).catch(fail);
  });

  render();
  client.send({ kind: 'init', backend });
}
