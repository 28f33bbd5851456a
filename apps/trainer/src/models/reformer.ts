// The Reformer family for the trainer: `ReformerModelWithLMHead` (isDecoder) trained with the causal-LM
// objective, built from config overrides or a Hugging Face-format folder, and exported back to one
// (config.json, model.safetensors, the tokenizer's files) that `ReformerModelWithLMHead.fromPretrained`
// and the playground load. Training runs the reversible layers (activations recomputed in backward), so
// long sequences cost memory linear in length and flat in depth.
//
// Reformer's training constraints are checked before anything is allocated: the sequence length must be
// a multiple of the chunk lengths and, with axial positions, fill prod(axial_pos_shape) =
// max_position_embeddings (the reference's training branch); `model.config.maxPositionEmbeddings` is
// therefore the training length (`data.seqLength` must equal it).

import { CharTokenizer, ReformerConfig, ReformerModelWithLMHead, leastCommonMultChunkLength, validateReformerConfig, type ReformerConfigFields } from '@lm/reformer';
import { ConfigError } from '../core/errors.js';
import type { FamilyObjective, ModelFamily, ResolvedModelConfig, TrainableModel } from '../core/family.js';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Tokenizer } from '@lm/layers';
import { DataError } from '../core/errors.js';
import { loadWordPieceTokenizer } from '../data/tokenizer.js';
import { CausalLMObjective, type CausalLMModel } from '../objectives/causal-lm.js';
import { PackedCausalLMObjective } from '../objectives/packed-causal-lm.js';
import { readPretrainedConfig, writeTokenizerFiles } from './files.js';

const FIELDS = Object.keys(ReformerConfig.fields) as (keyof ReformerConfigFields)[];

const readConfig = (dir: string): Promise<ReformerConfig> => readPretrainedConfig(dir, (json) => ReformerConfig.fromJSON(json));

type CausalTrainable = TrainableModel & CausalLMModel & { readonly module: ReformerModelWithLMHead };

const causalLM: FamilyObjective<ReformerConfig, CausalTrainable> = {
  description: 'causal LM (ReformerModelWithLMHead: LSH / local attention, reversible layers, isDecoder)',
  objective: (ctx) => {
    const keys = Object.keys(ctx.settings);
    if (keys.length) throw new ConfigError(`objectives.causal-lm.${keys[0]}: unknown field (causal-lm takes no settings of its own)`);
    return new CausalLMObjective(ctx.tokenizer, { seqLength: ctx.seqLength, backend: ctx.backend });
  },
  async createModel(config, { fromPretrained, backend }) {
    const model = fromPretrained
      ? await ReformerModelWithLMHead.fromPretrained<ReformerModelWithLMHead, ReformerConfig>(fromPretrained, { backend, strict: false })
      : new ReformerModelWithLMHead(config, { backend });
    model.train();
    return { module: model, forward: (inputs) => model.forward({ ...inputs, useCache: false }) };
  },
  async exportTo(model, dir, tokenizer) {
    model.module.config.architectures = ['ReformerModelWithLMHead'];
    await model.module.savePretrained(dir);
    return ['config.json', 'model.safetensors', ...(await writeTokenizerFiles(dir, tokenizer, model.module.config.maxPositionEmbeddings))];
  },
  showcase(model, tokenizer, prompts) {
    const backend = model.module.getInputEmbeddings().weight.backend;
    return new CausalLMObjective(tokenizer, { seqLength: model.module.config.maxPositionEmbeddings, backend }).continueGreedy(model, tokenizer, prompts);
  },
};

/** The packed showcase's sampled continuation (HF generate's names): a little below temperature 1, the 10 likeliest
 * characters, no 16-character string repeated (breaks loops, keeps the corpus's stock phrases), a fixed seed so a run prints the same text again. */
export const PACKED_SAMPLING = { doSample: true, temperature: 0.8, topK: 10, noRepeatNgramSize: 16, seed: 1 } as const;

/**
 * Packed causal LM: the corpus as one stream cut into full blocks of seqLength tokens (long sequences,
 * no padding); the model and export are causal-lm's. Its showcase prints two longer continuations per
 * prompt (character-level text needs more tokens than a word-level one): greedy, and sampled with
 * PACKED_SAMPLING (greedy decoding of a small character model falls into loops such as " .\nthe .").
 */
const packedCausalLM: FamilyObjective<ReformerConfig, CausalTrainable> = {
  ...causalLM,
  description: 'packed causal LM (documents concatenated and cut into full seqLength blocks; bits per token reported)',
  objective: (ctx) => {
    const keys = Object.keys(ctx.settings);
    if (keys.length) throw new ConfigError(`objectives.packed-causal-lm.${keys[0]}: unknown field (packed-causal-lm takes no settings of its own)`);
    return new PackedCausalLMObjective(ctx.tokenizer, { seqLength: ctx.seqLength, backend: ctx.backend });
  },
  async showcase(model, tokenizer, prompts) {
    const backend = model.module.getInputEmbeddings().weight.backend;
    const objective = new PackedCausalLMObjective(tokenizer, { seqLength: model.module.config.maxPositionEmbeddings, backend });
    const greedy = await objective.continueGreedy(model, tokenizer, prompts, 48);
    const sampled = await objective.continueGreedy(model, tokenizer, prompts, 48, PACKED_SAMPLING);
    // Two printed lines per prompt, the continuation's newlines shown as \n.
    const shown = (line: string): string => line.replaceAll('\n', '\\n');
    return prompts.flatMap((_, i) => [`greedy:  ${shown(greedy[i])}`, `sampled: ${shown(sampled[i])}`]);
  },
};

/** A character vocabulary (`vocab.json`, or a folder holding one) loads as @lm/reformer's CharTokenizer; anything else as WordPiece. */
async function loadTokenizer(path: string, options: { lowercase: boolean }): Promise<Tokenizer> {
  const isDir = await stat(path).then((s) => s.isDirectory(), () => false);
  const charVocab = isDir ? await stat(`${path}/vocab.json`).then(() => true, () => false) : basename(path) === 'vocab.json';
  if (!charVocab) return loadWordPieceTokenizer(path, options);
  try {
    return await CharTokenizer.fromPretrained(isDir ? path : dirname(path));
  } catch (e) {
    throw new DataError(`data.tokenizer: ${path}: ${(e as Error).message}`);
  }
}

export const reformer: ModelFamily<ReformerConfig> = {
  name: 'reformer',
  objectives: { 'causal-lm': causalLM, 'packed-causal-lm': packedCausalLM },
  loadTokenizer,

  async resolveConfig({ fromPretrained, overrides, vocabSize }): Promise<ResolvedModelConfig<ReformerConfig>> {
    const issues: string[] = [];
    for (const key of Object.keys(overrides)) {
      if (!(FIELDS as string[]).includes(key)) issues.push(`model.config.${key}: unknown ReformerConfig field (known: ${FIELDS.join(', ')})`);
    }
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    const fields = fromPretrained ? await readConfig(fromPretrained) : new ReformerConfig();
    const init: Partial<ReformerConfigFields> = {};
    for (const key of FIELDS) (init as Record<string, unknown>)[key] = (fields as unknown as Record<string, unknown>)[key];
    if (!fromPretrained && overrides.vocabSize === undefined) init.vocabSize = vocabSize;
    // A causal LM: a decoder, looking back only.
    Object.assign(init, { isDecoder: true, localNumChunksAfter: 0, lshNumChunksAfter: 0 }, overrides);
    // numHiddenLayers follows attnLayers, as in the reference.
    if (overrides.attnLayers !== undefined && overrides.numHiddenLayers === undefined) init.numHiddenLayers = (overrides.attnLayers as unknown[]).length;
    const config = new ReformerConfig(init, fields.extra);
    try {
      validateReformerConfig(config);
    } catch (e) {
      issues.push(`model.config: ${(e as Error).message}`);
    }
    for (const k of ['hiddenDropoutProb', 'lshAttentionProbsDropoutProb', 'localAttentionProbsDropoutProb'] as const) {
      const v = config[k];
      if (typeof v !== 'number' || v < 0 || v >= 1) issues.push(`model.config.${k}: expected a number in [0, 1), got ${JSON.stringify(v)}`);
    }
    if (!config.isDecoder) issues.push('model.config.isDecoder: causal-lm trains a decoder; it must be true');
    if (!issues.length) {
      const lcm = leastCommonMultChunkLength(config);
      if (config.maxPositionEmbeddings % lcm !== 0) {
        issues.push(`model.config.maxPositionEmbeddings: ${config.maxPositionEmbeddings} (the training length) is not a multiple of the chunk lengths' least common multiple ${lcm}`);
      }
    }
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    return { config, maxPositions: config.maxPositionEmbeddings, vocabSize: config.vocabSize };
  },
};
