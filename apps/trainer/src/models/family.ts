// A model family as the trainer sees it: how to resolve and check a config before anything is
// allocated, how to build the model, and how to export it. One entry per @lm model package.

import type { PreTrainedModel } from '@lm/layers';
import type { Backend } from '@lm/tensor-gpu';
import type { PretrainingModel } from '../objectives/mlm-nsp.js';

export interface ResolvedModelConfig<C> {
  config: C;
  maxPositions: number;
  vocabSize: number;
  typeVocabSize: number;
}

export interface TrainableModel extends PretrainingModel {
  /** The module: parameters, state dict, train()/eval(), loadWeights. */
  readonly module: PreTrainedModel;
  /** Writes a Hugging Face-format folder (config.json, weights, tokenizer files). */
  exportTo(dir: string, tokenizer: { vocabText: string; lowercase: boolean }): Promise<void>;
}

export interface ModelFamily<C = unknown> {
  readonly name: string;
  /** Objectives this family can be trained with (config `objective`). */
  readonly objectives: readonly string[];
  /** The model config from defaults, a pretrained folder's config.json and overrides, validated; allocates nothing. */
  resolveConfig(options: { fromPretrained: string | null; overrides: Record<string, unknown>; vocabSize: number }): Promise<ResolvedModelConfig<C>>;
  create(config: C, options: { fromPretrained: string | null; backend: Backend }): Promise<TrainableModel>;
}
