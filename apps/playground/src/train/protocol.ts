// The messages between the Train panel and the training worker (plain data, structured clone). The
// page starts, pauses, resumes and stops a run; the worker streams its state, log lines and metrics
// records (lm-train's metrics.jsonl records) and answers requests for checkpoint files.
import type { BackendInfo, BackendRequest, SerializedError } from '../worker/protocol.js';

export type { BackendInfo, BackendRequest, SerializedError };

/** A file as it travels between page and worker. */
export interface NamedBytes {
  name: string;
  bytes: Uint8Array;
}

export type CorpusChoice = { kind: 'bundled' } | { kind: 'files'; files: File[] };

export interface RunRequest {
  /** Dotted config overrides over lm-train's default run (configs/default.yaml): `training.steps`, ... */
  overrides: [string, unknown][];
  corpus: CorpusChoice;
}

/** A metrics record of lm-train (`{ type: 'train' | 'eval', step, ... }`). */
export type MetricsRecord = { type: string; step: number } & Record<string, number | string | null>;

/** A stored run, as found in the browser's storage (after a reload, or a dropped checkpoint). */
export interface StoredRun {
  /** Steps of the complete checkpoints, oldest first. */
  checkpoints: number[];
  /** Steps the run was configured for. */
  steps: number;
  /** The run's config overrides and corpus file names. */
  overrides: [string, unknown][];
  corpus: string[];
  metrics: MetricsRecord[];
}

export type RunState = 'idle' | 'starting' | 'running' | 'pausing' | 'paused' | 'stopping' | 'stopped' | 'done' | 'error';

export type ToWorker =
  | { kind: 'init'; backend: BackendRequest }
  | { kind: 'start'; run: RunRequest }
  /** Continue the stored run from its newest checkpoint (after pause, stop or a reload). */
  | { kind: 'resume' }
  /** Pause: finish the step, save a checkpoint; resume continues exactly from it. */
  | { kind: 'pause' }
  | { kind: 'stop' }
  /** Files of the newest checkpoint (or `step`) as lm-train writes them, paths relative to the checkpoints folder. */
  | { kind: 'checkpoint-files'; step?: number }
  /** The export (config.json, model.safetensors, tokenizer files) of the finished run. */
  | { kind: 'export-files' }
  /** A checkpoint folder dropped on the page (lm-train's step-NNNNNNNN), files with their relative paths, and the run it belongs to. */
  | { kind: 'import'; files: NamedBytes[]; run: RunRequest }
  /** Forget the stored run (checkpoints, metrics, export). */
  | { kind: 'clear' };

export type FromWorker =
  | { kind: 'backend'; info: BackendInfo }
  /** The families the trainer registers and their objectives. */
  | { kind: 'families'; families: Record<string, string[]> }
  | { kind: 'stored'; run: StoredRun | null }
  | { kind: 'state'; state: RunState; message?: string }
  | { kind: 'log'; line: string }
  | { kind: 'metrics'; record: MetricsRecord }
  | { kind: 'progress'; step: number; total: number; loss: number; tokensPerSecond: number; lr: number; elapsedSeconds: number }
  | { kind: 'memory'; text: string }
  | { kind: 'files'; what: 'checkpoint' | 'export'; files: NamedBytes[] }
  | { kind: 'error'; error: SerializedError };
