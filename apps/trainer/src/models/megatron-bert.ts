// The MegatronBERT family for the trainer: builds `MegatronBertForPreTraining` (MLM + NSP heads)
// from config overrides or a Hugging Face-format folder, and exports it back to one (config.json,
// model.safetensors, vocab.txt, tokenizer_config.json) that `fromPretrained` and the playground load.

import { readFile, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { JsonObject } from '@lm/layers';
import { MegatronBertConfig, MegatronBertForPreTraining, type MegatronBertConfigFields } from '@lm/megatron-bert';
import type { Backend } from '@lm/tensor-gpu';
import { ConfigError } from '../errors.js';
import type { ModelFamily, ResolvedModelConfig, TrainableModel } from './family.js';

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

export const megatronBert: ModelFamily<MegatronBertConfig> = {
  name: 'megatron-bert',
  objectives: ['mlm-nsp', 'mlm'],

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
    return { config, maxPositions: config.maxPositionEmbeddings, vocabSize: config.vocabSize, typeVocabSize: config.typeVocabSize };
  },

  async create(config, { fromPretrained, backend }: { fromPretrained: string | null; backend: Backend }): Promise<TrainableModel> {
    const model = fromPretrained
      ? await MegatronBertForPreTraining.fromPretrained<MegatronBertForPreTraining, MegatronBertConfig>(fromPretrained, { backend, strict: false })
      : new MegatronBertForPreTraining(config, { backend });
    model.train();
    return {
      module: model,
      forward: (inputs) => model.forward(inputs),
      async exportTo(dir, tokenizer) {
        model.config.architectures = ['MegatronBertForPreTraining'];
        await model.savePretrained(dir);
        await writeAtomic(join(dir, 'vocab.txt'), tokenizer.vocabText.endsWith('\n') ? tokenizer.vocabText : `${tokenizer.vocabText}\n`);
        const tokenizerConfig = {
          tokenizer_class: 'BertTokenizer',
          do_lower_case: tokenizer.lowercase,
          model_max_length: model.config.maxPositionEmbeddings,
        };
        await writeAtomic(join(dir, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfig, null, 2)}\n`);
      },
    };
  },
};
