// The two halves of a model family in the playground, both keyed by config.json `model_type`:
//
// - a FamilyRuntime, in the inference worker: builds the model from the files and runs its tasks
//   (registered in runtimes.ts);
// - a FamilyPanel, on the page: the UI for those tasks, which talks to the runtime only through
//   `session.run(task, input)` with plain data (registered in panels.ts).
//
// Adding a family (T5, ChatGLM, REALM, Reformer) is a folder `families/<model_type>/` with
// `runtime.ts`, `panel.ts` and the `tasks.ts` types they share, plus one line in each registry.
import type { Backend } from '@lm/tensor-gpu';
import type { ModelSummary, Progress } from '../worker/protocol.js';

/** The files of a model, each a File named by its base name (config.json, model.safetensors, ...). */
export interface FamilyLoadContext {
  files: File[];
  /** config.json, parsed. */
  config: Record<string, unknown>;
  backend: Backend;
  progress(progress: Progress): void;
}

/** What a task returns: the value posted to the page and the buffers to transfer with it. */
export interface TaskOutput {
  value: unknown;
  transfer?: Transferable[];
}

export interface LoadedModel {
  summary: Omit<ModelSummary, 'modelType' | 'label' | 'loadMs'>;
  /** Tasks by name; `emit` posts intermediate output to the page (streamed tokens, partial results). */
  tasks: Record<string, (input: unknown, emit: (partial: unknown) => void) => Promise<TaskOutput>>;
  dispose(): void;
}

export interface FamilyRuntime {
  modelType: string;
  load(context: FamilyLoadContext): Promise<LoadedModel>;
}

/** The page's handle on the loaded model. */
export interface ModelSession {
  summary: ModelSummary;
  /** Examples for this model (from the bundled model's index entry), possibly none. */
  examples: string[];
  /** Runs a task of the model's runtime; `onPartial` receives what the task emits before its result. */
  run<T>(task: string, input: unknown, onPartial?: (partial: unknown) => void): Promise<T>;
}

export interface FamilyPanel {
  modelType: string;
  /** Renders into `root`; returns a cleanup function called before another model replaces it. */
  mount(root: HTMLElement, session: ModelSession): () => void;
}
