// The inference worker (a module worker, built by Vite): owns the backend and the loaded model, so
// every forward pass runs off the page's main thread. Requests are handled one at a time, in order;
// see protocol.ts for the messages.
import type { Backend } from '@lm/tensor-gpu';
import { runtimeFor } from '../families/runtimes.js';
import type { LoadedModel } from '../families/types.js';
import { chooseBackend } from './backend.js';
import { ModelFilesError } from '../families/files.js';
import { fetchBundled } from './fetch-files.js';
import { serializeError } from './protocol.js';
import type { BackendInfo, ModelSource, ModelSummary, Progress, Request, Response } from './protocol.js';

let backend: Backend | null = null;
let backendInfo: BackendInfo | null = null;
let model: LoadedModel | null = null;

function post(message: Response, transfer: Transferable[] = []): void {
  self.postMessage(message, { transfer });
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;

async function load(source: ModelSource, progress: (p: Progress) => void): Promise<ModelSummary> {
  if (!backend) throw new Error('load: the worker has no backend yet (init first)');
  const t0 = performance.now();
  let files: File[];
  let label: string;
  if (source.kind === 'bundled') {
    files = await fetchBundled(source.url, source.files, progress);
    label = `bundled: ${source.id}`;
  } else {
    files = source.files;
    const bytes = files.reduce((n, f) => n + f.size, 0);
    progress({ stage: 'read', message: `${files.length} files, ${mib(bytes)}`, loaded: bytes, total: bytes });
    label = files.map((f) => f.name).join(', ');
  }
  progress({ stage: 'config', message: 'reading config.json' });
  const configFile = files.find((f) => f.name === 'config.json');
  if (!configFile) {
    throw new ModelFilesError(`no config.json among the files (${files.map((f) => f.name).join(', ') || 'none'}): pick the whole model folder, or config.json with the weights and vocab.txt / tokenizer.json`);
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await configFile.text()) as Record<string, unknown>;
  } catch (err) {
    throw new ModelFilesError(`config.json is not valid JSON: ${(err as Error).message}`);
  }
  const runtime = await runtimeFor(config.model_type);
  const loaded = await runtime.load({ files, config, backend, progress });
  model?.dispose();
  model = loaded;
  const summary: ModelSummary = { modelType: runtime.modelType, label, loadMs: performance.now() - t0, ...loaded.summary };
  progress({ stage: 'ready', message: `loaded in ${summary.loadMs.toFixed(0)} ms` });
  return summary;
}

async function handle(request: Request): Promise<void> {
  const progress = (p: Progress) => post({ id: request.id, kind: 'progress', progress: p });
  try {
    switch (request.kind) {
      case 'init': {
        if (!backendInfo) ({ backend, info: backendInfo } = await chooseBackend(request.backend));
        post({ id: request.id, kind: 'result', value: backendInfo });
        return;
      }
      case 'load': {
        post({ id: request.id, kind: 'result', value: await load(request.source, progress) });
        return;
      }
      case 'run': {
        if (!model) throw new Error(`run ${request.task}: no model is loaded`);
        const task = model.tasks[request.task];
        if (!task) throw new Error(`run: this model has no task "${request.task}" (it has ${Object.keys(model.tasks).join(', ')})`);
        const { value, transfer } = await task(request.input, (partial) => post({ id: request.id, kind: 'partial', value: partial }));
        post({ id: request.id, kind: 'result', value }, transfer);
        return;
      }
    }
  } catch (err) {
    post({ id: request.id, kind: 'error', error: serializeError(err) });
  }
}

let queue = Promise.resolve();
self.onmessage = (event: MessageEvent<Request>) => {
  queue = queue.then(() => handle(event.data));
};
