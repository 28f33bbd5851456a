// What the loop asks of its surroundings, as interfaces: where checkpoints go, where metrics go, how
// progress is shown. The Node adapters (checkpoint.ts, metrics.ts, progress.ts) implement them over
// files and the terminal; a browser worker implements them over IndexedDB and postMessage.

export interface CheckpointRef {
  step: number;
  /** Where the store keeps it (a folder in Node). */
  path: string;
}

/** Tensors in host memory, as read back from a checkpoint. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export interface CheckpointPayload<S, T> {
  /** Parameter name -> float32 weight; the same tensor under several names (tied) is saved once. */
  model: ReadonlyMap<string, T>;
  /** `<state key>.<parameter name>` -> optimizer state tensor. */
  optimizer: ReadonlyMap<string, T>;
  state: S;
}

export interface LoadedCheckpoint<S> {
  ref: CheckpointRef;
  /** `<state key>.<parameter name>` -> host data. */
  optimizer: Map<string, HostTensor>;
  state: S;
}

export interface CheckpointStore<S, T> {
  /** Writes a complete checkpoint for `step` (never over an existing one). */
  save(step: number, payload: CheckpointPayload<S, T>): Promise<CheckpointRef>;
  /** Fills `model` (name -> tensor) in place and returns the optimizer tensors and the state; checks everything before copying anything. */
  load(ref: CheckpointRef, model: ReadonlyMap<string, T>): Promise<LoadedCheckpoint<S>>;
  /** Removes all but the newest `keepLast`. */
  prune(keepLast: number): Promise<void>;
}

/** One metrics record: `{ type: 'train' | 'eval', step, ...numbers }`. */
export interface MetricsRecord {
  type: 'train' | 'eval' | string;
  step: number;
  [key: string]: number | string | null;
}

export interface MetricsSink {
  /** A new run starts empty; a resumed run keeps the records up to `resumeStep`. */
  start(resumeStep: number | null): void;
  append(record: MetricsRecord): void;
}

export interface ProgressValues {
  loss: number;
  tokensPerSecond: number;
  lr: number;
}

export interface ProgressSink {
  update(step: number, values: ProgressValues): void;
  /** A message for the person watching (an evaluation, a checkpoint), shown without breaking the bar. */
  log(line: string): void;
  stop(): void;
}
