// The messages between the page and the inference worker. Everything here is plain data (structured
// clone): strings, numbers, arrays, typed arrays and File/Blob objects; no tensors, no classes, no
// functions. Each request carries an id; the worker answers it with any number of `progress` (loading)
// or `partial` (a task's intermediate output, e.g. streamed tokens) messages and then exactly one
// `result` or `error`.

/** Which backend the page asks for: `?backend=cpu|webgpu|auto` (default auto). */
export type BackendRequest = 'auto' | 'webgpu' | 'cpu';

/** What the worker runs on, as the page shows it. */
export interface BackendInfo {
  name: 'webgpu' | 'cpu';
  /** WebGPU adapter (vendor, architecture, ...) or the cpu engine ("wasm relaxed-simd, 2 threads"). */
  adapterInfo: string;
  /** A software WebGPU adapter (SwiftShader): correct, but slower than the cpu backend. */
  isSoftware: boolean;
  requested: BackendRequest;
  /** Why this is the cpu backend when it is (no WebGPU, no adapter, forced by the URL, ...). */
  fallbackReason?: string;
}

/** A file of a bundled model, fetched by the worker from the app's own origin. */
export interface BundledFile {
  name: string;
  size: number;
}

export type ModelSource =
  /** A model shipped with the app under `public/models/<id>/` (`url` is absolute). */
  | { kind: 'bundled'; id: string; url: string; files: BundledFile[] }
  /** Files a person picked or dropped: File objects, named by their file name (paths flattened). */
  | { kind: 'files'; files: File[] };

/** What the page knows about a loaded model. */
export interface ModelSummary {
  /** config.json `model_type`: the key into the family and panel registries. */
  modelType: string;
  /** The class the worker built (e.g. MegatronBertForMaskedLM). */
  className: string;
  /** Where it came from (bundled model name, or the file names). */
  label: string;
  numParameters: number;
  /** Selected config fields for display: [label, value]. */
  config: [string, string | number | boolean][];
  vocabSize: number;
  maskToken: string | null;
  loadMs: number;
}

export type LoadStage = 'fetch' | 'read' | 'config' | 'weights' | 'tokenizer' | 'ready';

export interface Progress {
  stage: LoadStage;
  message: string;
  /** Bytes (fetch / read) so far and in all, when known. */
  loaded?: number;
  total?: number;
}

export interface SerializedError {
  name: string;
  message: string;
}

export type Request =
  | { id: number; kind: 'init'; backend: BackendRequest }
  | { id: number; kind: 'load'; source: ModelSource }
  /** A task of the loaded model's family (e.g. 'fillMask'); input and output are the family's types. */
  | { id: number; kind: 'run'; task: string; input: unknown };

export type Response =
  | { id: number; kind: 'progress'; progress: Progress }
  | { id: number; kind: 'partial'; value: unknown }
  | { id: number; kind: 'result'; value: unknown }
  | { id: number; kind: 'error'; error: SerializedError };

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}
