// What a model family brings to the trainer: its config (resolved and checked before anything is
// allocated), its tokenizer loader, and its objectives, each building the model with the head that
// objective trains, the objective itself (collator, loss, metrics) and the export. A family lives in
// one file under models/ and is one line in models/index.ts; an objective lives in one file under
// objectives/ and is one entry in the families that train with it. The loop knows only these types.

import type { PreTrainedModel, Tokenizer } from '@lm/layers';
import type { Backend } from '@lm/tensor-gpu';
import type { Objective } from './objective.js';

export interface ResolvedModelConfig<C> {
  config: C;
  /** Longest sequence the model takes (checked against data.seqLength). */
  maxPositions: number;
  vocabSize: number;
}

/** A model being trained: the module (parameters, state dict, train/eval) plus what its objective calls. */
export interface TrainableModel {
  /** Everything in its registry is trained and checkpointed (a frozen base model stays outside it). */
  readonly module: PreTrainedModel;
}

/** The settings an objective reads: the data section of the config, the tokenizer and the backend. */
export interface ObjectiveContext {
  tokenizer: Tokenizer;
  backend: Backend;
  seqLength: number;
  maskProbability: number;
  shortSeqProbability: number;
  /** The objective's own section of the config (`objectives.<name>`), unchecked: the objective validates it. */
  settings: Record<string, unknown>;
}

/** One objective as a family trains it. */
export interface FamilyObjective<C, M extends TrainableModel = TrainableModel> {
  /** One line for errors and --help. */
  readonly description: string;
  /** The objective (data collator, loss, evaluation metrics). */
  objective(context: ObjectiveContext): Objective<unknown, unknown, M>;
  /** The model with this objective's head, random or from a Hugging Face-format folder. */
  createModel(config: C, options: { fromPretrained: string | null; backend: Backend; settings: Record<string, unknown> }): Promise<M>;
  /**
   * Writes a Hugging Face-format folder (config.json, weights, tokenizer files) that the family's
   * loaders and the playground read back; returns the file names. Called by the Node adapter (the
   * loop itself never touches a file system).
   */
  exportTo(model: M, dir: string, tokenizer: Tokenizer): Promise<string[]>;
  /** True when the export is a masked LM that answers `output.fillMask` queries ([MASK] in the text). */
  readonly fillsMasks?: boolean;
  /** After training, for `output.prompts`: what a person checks by eye (a greedy continuation), lines to print. */
  showcase?(model: M, tokenizer: Tokenizer, prompts: readonly string[]): Promise<string[]>;
}

export interface ModelFamily<C = unknown> {
  readonly name: string;
  /** The model config from defaults, a pretrained folder's config.json and overrides, validated; allocates nothing. */
  resolveConfig(options: { fromPretrained: string | null; overrides: Record<string, unknown>; vocabSize: number }): Promise<ResolvedModelConfig<C>>;
  /** The tokenizer from `data.tokenizer` (a file or a folder), or from the fromPretrained folder. */
  loadTokenizer(path: string, options: { lowercase: boolean }): Promise<Tokenizer>;
  /** The objectives it trains with, by config name (`objective`). */
  readonly objectives: Readonly<Record<string, FamilyObjective<C>>>;
}
