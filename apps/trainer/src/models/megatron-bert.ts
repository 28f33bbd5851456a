// The MegatronBERT family for the trainer: `MegatronBertForPreTraining` for masked LM (+ NSP),
// `MegatronBertForCausalLM` (isDecoder) for causal LM, built from config overrides or a Hugging
// Face-format folder, and exported back to one (config.json, model.safetensors, vocab.txt,
// tokenizer_config.json) that `fromPretrained`, `lm-train fill-mask` and the playground load.

import type { PreTrainedModel, Tokenizer } from '@lm/layers';
import { MegatronBertConfig, MegatronBertForCausalLM, MegatronBertForPreTraining, type MegatronBertConfigFields } from '@lm/megatron-bert';
import type { Backend } from '@lm/tensor-gpu';
import { ConfigError } from '../core/errors.js';
import type { FamilyObjective, ModelFamily, ResolvedModelConfig, TrainableModel } from '../core/family.js';
import { loadWordPieceTokenizer } from '../data/tokenizer.js';
import { CausalLMObjective, type CausalLMModel } from '../objectives/causal-lm.js';
import { MaskedLMObjective, type PretrainingModel } from '../objectives/mlm-nsp.js';
import { PrefixLMObjective, PrefixTunedModel, prefixSettings, type PrefixableDecoder } from '../objectives/prefix-lm.js';
import { readPretrainedConfig, writeTokenizerFiles } from './files.js';

const FIELDS = Object.keys(MegatronBertConfig.fields) as (keyof MegatronBertConfigFields)[];

const readConfig = (dir: string): Promise<MegatronBertConfig> => readPretrainedConfig(dir, (json) => MegatronBertConfig.fromJSON(json));

/**
 * config.json + weights, then the tokenizer's files; with `maxLength`, tokenizer_config.json gains
 * it as model_max_length. Returns the file names.
 */
async function writeExport(model: PreTrainedModel, dir: string, tokenizer: Tokenizer, maxLength: number | null): Promise<string[]> {
  await model.savePretrained(dir);
  return ['config.json', 'model.safetensors', ...(await writeTokenizerFiles(dir, tokenizer, maxLength))];
}

/** A whole MegatronBERT under `architecture`, its tokenizer knowing the model's max length. */
async function exportFolder(model: PreTrainedModel & { config: MegatronBertConfig }, architecture: string, dir: string, tokenizer: Tokenizer): Promise<string[]> {
  model.config.architectures = [architecture];
  return writeExport(model, dir, tokenizer, model.config.maxPositionEmbeddings);
}

/** The objectives without settings of their own refuse any under `objectives.<name>`, naming them. */
function noSettings(objective: string, settings: Record<string, unknown>): void {
  const keys = Object.keys(settings);
  if (keys.length) throw new ConfigError(`objectives.${objective}.${keys[0]}: unknown field (${objective} takes no settings of its own)`);
}

type PretrainingTrainable = TrainableModel & PretrainingModel & { readonly module: MegatronBertForPreTraining };
type CausalTrainable = TrainableModel & CausalLMModel & { readonly module: MegatronBertForCausalLM };
type PrefixTrainable = TrainableModel & CausalLMModel & { readonly module: PrefixTunedModel<MegatronBertConfig> };

function maskedLM(nextSentencePrediction: boolean): FamilyObjective<MegatronBertConfig, PretrainingTrainable> {
  return {
    description: nextSentencePrediction ? 'masked LM + next-sentence prediction (BERT pretraining)' : 'masked LM',
    fillsMasks: true,
    objective: (ctx) => {
      noSettings(nextSentencePrediction ? 'mlm-nsp' : 'mlm', ctx.settings);
      const { seqLength, maskProbability, shortSeqProbability, backend } = ctx;
      return new MaskedLMObjective(ctx.tokenizer, { nextSentencePrediction, seqLength, maskProbability, shortSeqProbability, backend });
    },
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

/** `output.prompts` of a causal-lm or prefix-lm run: greedy continuations from the trained (or prefixed) decoder. */
function greedyShowcase(model: TrainableModel & CausalLMModel & { readonly module: { config: MegatronBertConfig } }, tokenizer: Tokenizer, prompts: readonly string[]): Promise<string[]> {
  // The objective gives the framing (bos/eos) and the generation loop; its name and seqLength play no part.
  const backend = model.module.getInputEmbeddings().weight.backend;
  return new CausalLMObjective(tokenizer, { seqLength: model.module.config.maxPositionEmbeddings, backend }).continueGreedy(model, tokenizer, prompts);
}

const causalLM: FamilyObjective<MegatronBertConfig, CausalTrainable> = {
  description: 'causal LM (MegatronBertForCausalLM: a decoder-only MegatronBERT, isDecoder)',
  objective: (ctx) => {
    noSettings('causal-lm', ctx.settings);
    return new CausalLMObjective(ctx.tokenizer, { seqLength: ctx.seqLength, backend: ctx.backend });
  },
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
  showcase: greedyShowcase,
};

/** A decoder MegatronBERT from `model.fromPretrained`, or a refusal naming the field. */
async function loadDecoder(fromPretrained: string | null, objective: string, backend: Backend): Promise<MegatronBertForCausalLM> {
  if (!fromPretrained) throw new ConfigError(`model.fromPretrained: ${objective} tunes a prefix for a trained decoder and keeps it frozen; set it to a MegatronBertForCausalLM export (e.g. a causal-lm run's output.export)`);
  const model = await MegatronBertForCausalLM.fromPretrained<MegatronBertForCausalLM, MegatronBertConfig>(fromPretrained, { backend });
  if (!model.config.isDecoder) {
    model.dispose();
    throw new ConfigError(`model.fromPretrained: ${fromPretrained}/config.json has is_decoder false; ${objective} needs a decoder (a MegatronBertForCausalLM export)`);
  }
  return model;
}

const prefixLM: FamilyObjective<MegatronBertConfig, PrefixTrainable> = {
  description: 'prefix LM: P-tuning v2 of a frozen MegatronBertForCausalLM (only the prefix encoder is trained)',
  objective: (ctx) => {
    // Checked here, before anything is trained or cleared (the hidden-size default is filled in createModel).
    prefixSettings(ctx.settings, 1);
    return new PrefixLMObjective(ctx.tokenizer, { seqLength: ctx.seqLength, backend: ctx.backend });
  },
  async createModel(_config, { fromPretrained, backend, settings }) {
    const base = await loadDecoder(fromPretrained, 'prefix-lm', backend);
    const c = base.config;
    const prefix = prefixSettings(settings, c.hiddenSize);
    if (prefix.preSeqLen + 2 > c.maxPositionEmbeddings) {
      base.dispose();
      throw new ConfigError(`objectives.prefix-lm.preSeqLen: ${prefix.preSeqLen} leaves no positions of the model's ${c.maxPositionEmbeddings} for the text (the prefix shifts positions, as in P-tuning v2)`);
    }
    // The export's config.json: the base model's, plus ChatGLM's P-tuning fields.
    const config = new MegatronBertConfig({ ...c, architectures: ['MegatronBertForCausalLM'] }, { ...c.extra, pre_seq_len: prefix.preSeqLen, prefix_projection: prefix.prefixProjection });
    const shape = { numLayers: c.numHiddenLayers, numHeads: c.numAttentionHeads, headDim: c.hiddenSize / c.numAttentionHeads };
    const model = new PrefixTunedModel(config, base as unknown as PrefixableDecoder, shape, prefix, { backend });
    model.train();
    return { module: model, forward: (inputs) => model.forward(inputs) };
  },
  // config.json (with pre_seq_len) and model.safetensors holding prefix_encoder.* only; the base model stays where fromPretrained read it.
  exportTo: (model, dir, tokenizer) => writeExport(model.module, dir, tokenizer, null),
  showcase: greedyShowcase,
};

export const megatronBert: ModelFamily<MegatronBertConfig> = {
  name: 'megatron-bert',
  objectives: { 'mlm-nsp': maskedLM(true), mlm: maskedLM(false), 'causal-lm': causalLM, 'prefix-lm': prefixLM },
  loadTokenizer: loadWordPieceTokenizer,

  async resolveConfig({ fromPretrained, overrides, vocabSize }): Promise<ResolvedModelConfig<MegatronBertConfig>> {
    const issues: string[] = [];
    for (const key of Object.keys(overrides)) {
      if (!(FIELDS as string[]).includes(key)) issues.push(`model.config.${key}: unknown MegatronBertConfig field (known: ${FIELDS.join(', ')})`);
    }
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    const base = fromPretrained ? (await readConfig(fromPretrained)).toJSON() : {};
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
