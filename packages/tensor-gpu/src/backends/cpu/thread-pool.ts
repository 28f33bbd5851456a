/**
 * Environment helpers for the CPU backend's shared-memory worker threads.
 *
 * Everything here is synchronous. Workers are "inline": their source is a string
 * (see gemm/worker-body.ts) started with `eval: true` in Node and from a Blob URL in
 * browsers, so no worker file path has to survive bundling.
 */

interface NodeProcessLike {
  versions?: { node?: string };
  getBuiltinModule?: (id: string) => unknown;
}

function nodeProcess(): NodeProcessLike | undefined {
  const p = (globalThis as { process?: NodeProcessLike }).process;
  return p && p.versions && p.versions.node ? p : undefined;
}

export const isNode: boolean = nodeProcess() !== undefined;

/** Synchronously loads a Node builtin (`process.getBuiltinModule`, Node >= 20.16). */
export function nodeBuiltin<T>(id: string): T | undefined {
  const p = nodeProcess();
  if (!p || typeof p.getBuiltinModule !== 'function') return undefined;
  try {
    return p.getBuiltinModule(id) as T;
  } catch {
    return undefined;
  }
}

/** Whether `Atomics.wait` may block the current thread (not allowed on a browser main thread). */
export function canBlockHere(): boolean {
  if (isNode) return true;
  const g = globalThis as { WorkerGlobalScope?: unknown };
  return typeof g.WorkerGlobalScope !== 'undefined';
}

/** Whether shared WebAssembly memories can be created (cross-origin isolation in browsers). */
export function sharedMemoryAvailable(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  const g = globalThis as { crossOriginIsolated?: boolean };
  if (!isNode && g.crossOriginIsolated === false) return false;
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return true;
  } catch {
    return false;
  }
}

/** Number of hardware threads available to this process. */
export function hardwareConcurrency(): number {
  const os = nodeBuiltin<{ availableParallelism?: () => number; cpus: () => unknown[] }>('node:os');
  if (os) return Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length);
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return Math.max(1, nav?.hardwareConcurrency ?? 1);
}

export interface InlineWorker {
  postMessage(msg: unknown): void;
  terminate(): void;
}

interface NodeWorkerLike {
  postMessage(msg: unknown): void;
  terminate(): Promise<number>;
  unref(): void;
  on(ev: 'error', fn: (e: unknown) => void): void;
}

/**
 * Starts a worker from JavaScript source text. Returns null when workers cannot be
 * created in this environment. Node workers are unref'd so that idle workers never keep
 * the process alive.
 */
export function spawnInlineWorker(source: string): InlineWorker | null {
  if (isNode) {
    const wt = nodeBuiltin<{ Worker: new (src: string, opts: { eval: true }) => NodeWorkerLike }>(
      'node:worker_threads',
    );
    if (!wt) return null;
    try {
      const w = new wt.Worker(source, { eval: true });
      w.unref();
      // A worker error would otherwise be an uncaught 'error' event on the main thread.
      w.on('error', () => {});
      return {
        postMessage: (m) => w.postMessage(m),
        terminate: () => void w.terminate(),
      };
    } catch {
      return null;
    }
  }
  const g = globalThis as {
    Worker?: new (url: string) => { postMessage(m: unknown): void; terminate(): void };
    Blob?: typeof Blob;
    URL?: typeof URL;
  };
  if (!g.Worker || !g.Blob || !g.URL || typeof g.URL.createObjectURL !== 'function') return null;
  try {
    const url = g.URL.createObjectURL(new g.Blob([source], { type: 'text/javascript' }));
    const w = new g.Worker(url);
    return {
      postMessage: (m) => w.postMessage(m),
      terminate: () => {
        w.terminate();
        g.URL!.revokeObjectURL(url);
      },
    };
  } catch {
    return null;
  }
}
