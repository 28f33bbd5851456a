// The page's side of the inference worker: one promise per request, progress through a callback.
import type { BackendInfo, BackendRequest, ModelSource, ModelSummary, Progress, Request, Response } from './protocol.js';

/** An error the worker reported, with the worker's error name (PretrainedLoadError, ...). */
export class WorkerError extends Error {
  constructor(
    override readonly name: string,
    message: string,
  ) {
    super(message);
  }
}

type Pending = { resolve(value: unknown): void; reject(err: Error): void; onProgress?: (p: Progress) => void; onPartial?: (value: unknown) => void };

export class InferenceClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor() {
    this.worker = new Worker(new URL('./inference.worker.ts', import.meta.url), { type: 'module', name: 'lm-inference' });
    this.worker.onmessage = (event: MessageEvent<Response>) => this.receive(event.data);
    this.worker.onerror = (event) => {
      const err = new WorkerError('WorkerError', `the inference worker failed: ${event.message || 'script error (see the console)'}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  init(backend: BackendRequest): Promise<BackendInfo> {
    return this.request({ kind: 'init', backend }) as Promise<BackendInfo>;
  }

  load(source: ModelSource, onProgress: (p: Progress) => void): Promise<ModelSummary> {
    return this.request({ kind: 'load', source }, onProgress) as Promise<ModelSummary>;
  }

  run<T>(task: string, input: unknown, onPartial?: (partial: unknown) => void): Promise<T> {
    return this.request({ kind: 'run', task, input }, undefined, onPartial) as Promise<T>;
  }

  private request(body: DistributiveOmit<Request, 'id'>, onProgress?: (p: Progress) => void, onPartial?: (value: unknown) => void): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress, onPartial });
      this.worker.postMessage({ ...body, id } as Request);
    });
  }

  private receive(message: Response): void {
    const pending = this.pending.get(message.id);
    if (!pending) return;
    if (message.kind === 'progress') {
      pending.onProgress?.(message.progress);
      return;
    }
    if (message.kind === 'partial') {
      pending.onPartial?.(message.value);
      return;
    }
    this.pending.delete(message.id);
    if (message.kind === 'result') pending.resolve(message.value);
    else pending.reject(new WorkerError(message.error.name, message.error.message));
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
