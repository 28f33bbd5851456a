// The playground page: starts the inference worker on the backend the URL asks for (?backend=cpu |
// webgpu, default: WebGPU when the browser has an adapter), loads the bundled model, and mounts the
// panel registered for the model's `model_type`. Models can also be opened from files or dropped on
// the page. Below, the Train panel trains a model in its own worker with lm-train's loop (train/). The
// WebGPU smoke checks run afterwards in the diagnostics section.
//
// For tests the page publishes its state on <html>: data-backend (webgpu | cpu), data-model
// (loading | ready | error), data-smoke (pass | fail | unavailable), and `window.__lm`.
import './style.css';
import { panelFor } from './families/panels.js';
import type { ModelSession } from './families/types.js';
import { readBackendRequest, renderBackend, renderBackendError } from './app/backend-view.js';
import { filesFromDrop, ModelCard, type BundledModel } from './app/model-card.js';
import { clear, h } from './ui/dom.js';
import { InferenceClient } from './worker/client.js';
import type { BackendInfo, ModelSummary } from './worker/protocol.js';

declare global {
  interface Window {
    __lm?: { backend?: BackendInfo; model?: ModelSummary };
  }
}

const byId = (id: string) => document.getElementById(id)!;
const root = document.documentElement;
window.__lm = {};

const client = new InferenceClient();
const panelHost = byId('panel');
let unmount: (() => void) | null = null;

async function showPanel(summary: ModelSummary, examples: string[]): Promise<void> {
  window.__lm!.model = summary;
  unmount?.();
  unmount = null;
  const panel = await panelFor(summary.modelType);
  if (!panel) {
    clear(panelHost, h('section', { class: 'card' }, h('p', { class: 'muted' }, `No panel for model_type "${summary.modelType}" yet.`)));
    return;
  }
  clear(panelHost);
  const session: ModelSession = { summary, examples, run: (task, input, onPartial) => client.run(task, input, onPartial) };
  unmount = panel.mount(panelHost, session);
}

const card = new ModelCard(byId('model'), client, (summary, examples) => void showPanel(summary, examples));

// Drag and drop anywhere on the page.
const overlay = byId('drop-overlay');
let dragDepth = 0;
window.addEventListener('dragenter', (e) => {
  if (!e.dataTransfer?.types.includes('Files')) return;
  dragDepth++;
  overlay.hidden = false;
});
window.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) overlay.hidden = true;
});
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  overlay.hidden = true;
  if (e.dataTransfer) void filesFromDrop(e.dataTransfer).then(({ files, folder }) => card.loadFiles(files, folder));
});

async function start(): Promise<void> {
  try {
    const info = await client.init(readBackendRequest(location.search));
    window.__lm!.backend = info;
    root.dataset.backend = info.name;
    renderBackend(byId('backend'), info);
  } catch (err) {
    root.dataset.backend = 'error';
    renderBackendError(byId('backend'), err as Error);
    return;
  }
  const index = (await fetch(new URL('models/index.json', document.baseURI)).then((r) => (r.ok ? r.json() : { models: [] }))) as { models: BundledModel[] };
  card.setBundled(index.models);
  const wanted = new URLSearchParams(location.search).get('model') ?? 'default';
  const bundled = index.models.find((m) => m.id === wanted);
  if (bundled) await card.loadBundled(bundled);
}

await start();
// The Train panel (its own worker); a trained model opens in the panel above.
const { mountTrainPanel } = await import('./train/panel.js');
mountTrainPanel(byId('train'), readBackendRequest(location.search), (files, label) => card.loadFiles(files, label));
const { runDiagnostics } = await import('./diagnostics/run.js');
await runDiagnostics(byId('checks'), byId('status'));
