// The model card: what is loaded (class, parameters, config), and the ways to load another one: the
// bundled models, a folder or files from a file picker, or a folder / files dropped on the page.
// Loading shows its progress; a broken or unsupported model shows the loader's error and keeps the
// model that was loaded before.
import { clear, formatBytes, formatCount, h } from '../ui/dom.js';
import type { InferenceClient } from '../worker/client.js';
import type { BundledFile, ModelSource, ModelSummary, Progress } from '../worker/protocol.js';

export interface BundledModel {
  id: string;
  name: string;
  description: string;
  source: string;
  examples: string[];
  files: BundledFile[];
}

/** The files a Hugging Face model folder may hold that the playground reads. */
const RELEVANT = /^(config\.json|.*\.safetensors|.*\.bin|.*\.index\.json|vocab\.txt|vocab\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|ice_text\.model|spiece\.model)$/;

/** Keeps the model files, first occurrence of each name (a dropped folder may nest others). */
export function relevantFiles(files: Iterable<File>): File[] {
  const byName = new Map<string, File>();
  for (const f of files) if (RELEVANT.test(f.name) && !byName.has(f.name)) byName.set(f.name, f);
  return [...byName.values()];
}

/**
 * Every file under the dropped items with its path inside what was dropped (`step-00000100/latest.json`),
 * walking folders (their entries must be taken synchronously, in the drop event).
 */
export async function droppedFiles(data: DataTransfer): Promise<{ files: { file: File; path: string }[]; entries: FileSystemEntry[] }> {
  const entries = Array.from(data.items)
    .map((item) => item.webkitGetAsEntry?.())
    .filter((e): e is FileSystemEntry => !!e);
  if (entries.length === 0) return { files: Array.from(data.files).map((file) => ({ file, path: file.name })), entries };
  const out: { file: File; path: string }[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
      out.push({ file, path: entry.fullPath.replace(/^\//, '') });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child);
      }
    }
  };
  for (const entry of entries) await walk(entry);
  return { files: out, entries };
}

/** Every file under the dropped items, and the folder's name when one folder was dropped. */
export async function filesFromDrop(data: DataTransfer): Promise<{ files: File[]; folder?: string }> {
  const { files, entries } = await droppedFiles(data);
  return { files: files.map((f) => f.file), folder: entries.length === 1 && entries[0].isDirectory ? entries[0].name : undefined };
}

export class ModelCard {
  private bundled: BundledModel[] = [];
  private current: { summary: ModelSummary; examples: string[] } | null = null;
  private readonly status = h('div', { class: 'load-status', 'data-testid': 'model-status' });
  private readonly info = h('div', { class: 'model-info' });
  private readonly controls = h('div', { class: 'row' });
  private loading = 0;

  constructor(
    private readonly el: HTMLElement,
    private readonly client: InferenceClient,
    private readonly onLoaded: (summary: ModelSummary, examples: string[]) => void,
  ) {
    clear(el, h('h2', null, 'Model'), this.info, this.controls, this.status);
    clear(this.info, h('p', { class: 'muted' }, 'No model loaded yet.'));
    this.renderControls();
  }

  setBundled(models: BundledModel[]): void {
    this.bundled = models;
    this.renderControls();
  }

  loadBundled(model: BundledModel): Promise<void> {
    const url = new URL(`models/${model.id}/`, document.baseURI).href;
    return this.load({ kind: 'bundled', id: model.id, url, files: model.files }, model.name, model.examples);
  }

  /** Loads picked or dropped files; `folder` names the model (else the folder picker's, else the file names). */
  loadFiles(all: File[], folder?: string): Promise<void> {
    const files = relevantFiles(all);
    folder ??= (all[0] as File & { webkitRelativePath?: string })?.webkitRelativePath?.split('/')[0];
    if (files.length === 0) {
      this.showError({ name: 'ModelFilesError', message: `none of the ${all.length} files is a model file (config.json, *.safetensors, *.bin, vocab.txt, tokenizer.json)` });
      return Promise.resolve();
    }
    return this.load({ kind: 'files', files }, folder || files.map((f) => f.name).join(', '), []);
  }

  private async load(source: ModelSource, name: string, examples: string[]): Promise<void> {
    const id = ++this.loading;
    document.documentElement.dataset.model = 'loading';
    const bar = h('progress', { max: 1 });
    const text = h('span', null, `loading ${name}…`);
    clear(this.status, h('div', { class: 'progress', 'data-testid': 'model-progress' }, bar, text));
    const onProgress = (p: Progress) => {
      if (id !== this.loading) return;
      if (p.total) bar.value = (p.loaded ?? 0) / p.total;
      else bar.removeAttribute('value');
      const bytes = p.total ? ` (${formatBytes(p.loaded ?? 0)} of ${formatBytes(p.total)})` : '';
      clear(text, `${p.message}${bytes}`);
    };
    try {
      const summary = await this.client.load(source, onProgress);
      if (id !== this.loading) return;
      summary.label = name;
      this.current = { summary, examples };
      clear(this.status);
      this.renderInfo();
      document.documentElement.dataset.model = 'ready';
      this.onLoaded(summary, examples);
    } catch (err) {
      if (id !== this.loading) return;
      this.showError(err as Error);
    }
  }

  private showError(err: { name: string; message: string }): void {
    document.documentElement.dataset.model = 'error';
    clear(
      this.status,
      h(
        'div',
        { class: 'error', 'data-testid': 'model-error' },
        h('strong', null, `Could not load the model: ${err.name}`),
        '\n',
        err.message,
        this.current ? `\n\nStill using ${this.current.summary.label}.` : '',
      ),
    );
  }

  private renderInfo(): void {
    if (!this.current) return;
    const { summary } = this.current;
    clear(
      this.info,
      h('div', { class: 'row' }, h('strong', { 'data-testid': 'model-name' }, summary.label), h('span', { class: 'muted' }, `${summary.modelType} · ${summary.className}`)),
      h(
        'p',
        { class: 'summary muted' },
        `${formatCount(summary.numParameters)} parameters · vocabulary ${summary.vocabSize} · mask token ${summary.maskToken ?? 'none'} · loaded in ${summary.loadMs.toFixed(0)} ms`,
      ),
      h(
        'dl',
        null,
        summary.config.map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, String(v)))),
      ),
    );
  }

  private renderControls(): void {
    const folderInput = h('input', { type: 'file', hidden: true, webkitdirectory: true, multiple: true, 'data-testid': 'open-folder-input' });
    const filesInput = h('input', { type: 'file', hidden: true, multiple: true, accept: '.json,.safetensors,.bin,.txt,.model', 'data-testid': 'open-files-input' });
    const picked = (input: HTMLInputElement) => () => {
      if (input.files?.length) void this.loadFiles(Array.from(input.files));
      input.value = '';
    };
    folderInput.addEventListener('change', picked(folderInput));
    filesInput.addEventListener('change', picked(filesInput));
    clear(
      this.controls,
      this.bundled.map((m) =>
        h('button', { type: 'button', title: `${m.description}\n(${m.source})`, onclick: () => void this.loadBundled(m), 'data-testid': `load-bundled-${m.id}` }, `Bundled: ${m.name}`),
      ),
      h('button', { type: 'button', onclick: () => folderInput.click() }, 'Open folder…'),
      h('button', { type: 'button', onclick: () => filesInput.click() }, 'Open files…'),
      h('span', { class: 'muted' }, 'or drop a Hugging Face model folder (config.json, model.safetensors or pytorch_model.bin, vocab.txt) on the page'),
      folderInput,
      filesInput,
    );
  }
}
