// The page's side of the training worker: sends commands, hands every message to the panel, and
// answers the requests for checkpoint and export files with a promise.
import type { FromWorker, NamedBytes, ToWorker } from './protocol.js';

export class TrainClient {
  private readonly worker: Worker;
  private waiting: { what: 'checkpoint' | 'export'; resolve(files: NamedBytes[]): void; reject(err: Error): void } | null = null;

  constructor(private readonly onMessage: (message: FromWorker) => void) {
    this.worker = new Worker(new URL('./train.worker.ts', import.meta.url), { type: 'module', name: 'lm-train' });
    this.worker.onmessage = (event: MessageEvent<FromWorker>) => this.receive(event.data);
    this.worker.onerror = (event) => this.onMessage({ kind: 'error', error: { name: 'WorkerError', message: `the training worker failed: ${event.message || 'script error (see the console)'}` } });
  }

  send(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  /** The files of the newest checkpoint (or the export), with paths relative to its folder's parent. */
  files(what: 'checkpoint' | 'export'): Promise<NamedBytes[]> {
    return new Promise((resolve, reject) => {
      this.waiting = { what, resolve, reject };
      this.send({ kind: what === 'checkpoint' ? 'checkpoint-files' : 'export-files' });
    });
  }

  private receive(message: FromWorker): void {
    if (message.kind === 'files' && this.waiting?.what === message.what) {
      this.waiting.resolve(message.files);
      this.waiting = null;
      return;
    }
    if (message.kind === 'error' && this.waiting) {
      this.waiting.reject(new Error(message.error.message));
      this.waiting = null;
      return;
    }
    this.onMessage(message);
  }
}
