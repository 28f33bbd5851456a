// The MegatronBERT family for the trainer: `MegatronBertForPreTraining` for masked LM (+ NSP),
// `MegatronBertForCausalLM` (isDecoder) for causal LM, built from config overrides or a Hugging
// Face-format folder, and exported back to one (config.json, model.safetensors, vocab.txt,
// tokenizer_config.json) that `fromPretrained`, `lm-train fill-mask` and the playground load.

import { readFile, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { JsonObject, PreTrainedModel, Tokenizer } from '@lm/layers';
import { MegatronBertConfig, MegatronBertForCausalLM, MegatronBertForPreTraining, type MegatronBertConfigFields } from '@lm/megatron-bert';
import { ConfigError } from '../core/errors.js';
import type { FamilyObjective, ModelFamily, ResolvedModelConfig, TrainableModel } from '../core/family.js';
import { loadWordPieceTokenizer } from '../data/tokenizer.js';
import { CausalLMObjective, type CausalLMModel } from '../objectives/causal-lm.js';
import { MaskedLMObjective, type PretrainingModel } from '../objectives/mlm-nsp.js';

const FIELDS = Object.keys(MegatronBertConfig.fields) as (keyof MegatronBertConfigFields)[];

async function readPretrainedConfig(dir: string): Promise<MegatronBertConfig> {
  let text: string;
  try {
    text = await readFile(join(dir, 'config.json'), 'utf8');
  } catch {
    throw new ConfigError(`model.fromPretrained: ${dir} has no config.json (expected a Hugging Face-format folder)`);
  }
  try {
    return MegatronBertConfig.fromJSON(JSON.parse(text) as JsonObject);
  } catch (e) {
    throw new ConfigError(`model.fromPretrained: ${join(dir, 'config.json')}: ${(e as Error).message}`);
  }
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** config.json + weights, then the tokenizer's files (tokenizer_config.json gains the model's max length). */
async function exportFolder(model: PreTrainedModel & { config: MegatronBertConfig }, architecture: string, dir: string, tokenizer: Tokenizer): Promise<string[]> {
  model.config.architectures = [architecture];
  await model.savePretrained(dir);
  const files = tokenizer.save();
  const tokenizerConfig = JSON.parse(files['tokenizer_config.json'] ?? '{}') as Record<string, unknown>;
  files['tokenizer_config.json'] = `${JSON.stringify({ ...tokenizerConfig, model_max_length: model.config.maxPositionEmbeddings }, null, 2)}\n`;
  for (const [name, text] of Object.entries(files)) await writeAtomic(join(dir, name), text);
  return ['config.json', 'model.safetensors', ...Object.keys(files)];
}

type PretrainingTrainable = TrainableModel & PretrainingModel & { readonly module: MegatronBertForPreTraining };
type CausalTrainable = TrainableModel & CausalLMModel & { readonly module: MegatronBertForCausalLM };

function maskedLM(nextSentencePrediction: boolean): FamilyObjective<MegatronBertConfig, PretrainingTrainable> {
  return {
    description: nextSentencePrediction ? 'masked LM + next-sentence prediction (BERT pretraining)' : 'masked LM',
    objective: (ctx) => new MaskedLMObjective(ctx.tokenizer, { nextSentencePrediction, seqLength: ctx.seqLength, maskProbability: ctx.maskProbability, shortSeqProbability: ctx.shortSeqProbability, backend: ctx.backend }),
    async createModel(config, { fromPretrained, backend }) {
      const model = fromPretrained
        ? await MegatronBertForPreTraining.fromPretrained<MegatronBertForPreTraining, MegatronBertConfig>(fromPretrained, { backend, strict: false })
        : new MegatronBertForPreTraining(config, { backend });
      model.train();
      return { module: model, forward: (inputs) => model.forward(inputs) };
    },
    exportTo: (model, dir, tokenizer) => exportFolder(model.module, 'MegatronBertForPreTraining', dir, tokenizer),
  };
}

const causalLM: FamilyObjective<MegatronBertConfig, CausalTrainable> = {
  description: 'causal LM (MegatronBertForCausalLM: a decoder-only MegatronBERT, isDecoder)',
  objective: (ctx) => new CausalLMObjective(ctx.tokenizer, { seqLength: ctx.seqLength, backend: ctx.backend }),
  async createModel(config, { fromPretrained, backend }) {
    const model = fromPretrained
      ? await MegatronBertForCausalLM.fromPretrained<MegatronBertForCausalLM, MegatronBertConfig>(fromPretrained, { backend, strict: false })
      : new MegatronBertForCausalLM(new MegatronBertConfig({ ...config, isDecoder: true }, config.extra), { backend });
    if (!model.config.isDecoder) {
      model.dispose();
      throw new ConfigError(`model.fromPretrained: ${fromPretrained}/config.json has is_decoder false; causal-lm trains a decoder (a MegatronBertForCausalLM export)`);
    }
    model.train();
    return { module: model, forward: (inputs) => model.forward({ ...inputs, useCache: false }) };
  },
  exportTo: (model, dir, tokenizer) => exportFolder(model.module, 'MegatronBertForCausalLM', dir, tokenizer),
  async showcase(model, tokenizer, prompts) {
    return new CausalLMObjective(tokenizer, { seqLength: model.module.config.maxPositionEmbeddings, backend: model.module.getInputEmbeddings().weight.backend }).continueGreedy(model, tokenizer, prompts);
  },
};

export const megatronBert: ModelFamily<MegatronBertConfig> = {
  name: 'megatron-bert',
  objectives: { 'mlm-nsp': maskedLM(true), mlm: maskedLM(false), 'causal-lm': causalLM },
  loadTokenizer: loadWordPieceTokenizer,

  async resolveConfig({ fromPretrained, overrides, vocabSize }): Promise<ResolvedModelConfig<MegatronBertConfig>> {
    const issues: string[] = [];
    for (const key of Object.keys(overrides)) {
      if (!(FIELDS as string[]).includes(key)) issues.push(`model.config.${key}: unknown MegatronBertConfig field (known: ${FIELDS.join(', ')})`);
    }
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    const base = fromPretrained ? (await readPretrainedConfig(fromPretrained)).toJSON() : {};
    const fields = fromPretrained ? MegatronBertConfig.fromJSON(base) : new MegatronBertConfig();
    const init: Partial<MegatronBertConfigFields> = {};
    for (const key of FIELDS) (init as Record<string, unknown>)[key] = (fields as unknown as Record<string, unknown>)[key];
    if (!fromPretrained && overrides.vocabSize === undefined) init.vocabSize = vocabSize;
    Object.assign(init, overrides);
    const config = new MegatronBertConfig(init, fields.extra);
    const positive = ['vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize', 'maxPositionEmbeddings', 'typeVocabSize'] as const;
    for (const k of positive) {
      const v = config[k];
      if (!Number.isInteger(v) || v < 1) issues.push(`model.config.${k}: expected an integer >= 1, got ${JSON.stringify(v)}`);
    }
    for (const k of ['hiddenDropoutProb', 'attentionProbsDropoutProb'] as const) {
      const v = config[k];
      if (typeof v !== 'number' || v < 0 || v >= 1) issues.push(`model.config.${k}: expected a number in [0, 1), got ${JSON.stringify(v)}`);
    }
    if (!issues.length && config.hiddenSize % config.numAttentionHeads !== 0) {
      issues.push(`model.config.hiddenSize: ${config.hiddenSize} is not a multiple of numAttentionHeads (${config.numAttentionHeads})`);
    }
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    return { config, maxPositions: config.maxPositionEmbeddings, vocabSize: config.vocabSize };
  },
};
