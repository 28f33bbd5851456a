// The T5 families for the trainer, both trained with T5's span corruption: `t5` builds
// `T5ForConditionalGeneration` (Hugging Face) from T5Config overrides or a Hugging Face-format folder and
// exports one (config.json, model.safetensors, vocab.txt, tokenizer_config.json) that
// `T5ForConditionalGeneration.fromPretrained` loads; `megatron-t5` (the config switch `model.family`)
// builds Megatron-core's `MegatronT5Model` from MegatronT5Config overrides (Megatron's fields, camelCase)
// and exports its named_parameters() folder for `MegatronT5Model.fromPretrained`. The Megatron variant
// optimises Megatron's own loss: the per-token `lm_loss` (vocab_parallel_cross_entropy of the logits)
// averaged under the dataset's `loss_mask` (pretrain_t5.py's loss_func).
//
// Tokenizer, `t5`: T5's own, `T5Tokenizer` (SentencePiece `spiece.model`, pad 0 also the decoder start,
// </s> 1 appended, `extra_ids` sentinels counting down above the pieces) when data.tokenizer is a folder
// holding spiece.model (data/t5/tokenizer, made by data/t5/make-tokenizer.mjs); otherwise, and always for
// `megatron-t5`, Megatron's T5 setup: a WordPiece vocabulary plus extra sentinel ids
// (`--vocab-extra-ids`, 100 by default), pad [PAD] (also the decoder start) and eos [SEP]. Where the
// sentinels go differs by family: `t5` counts them down from the top as Hugging Face's T5 vocabulary
// does (`<extra_id_0>` is the last id, sentinel k is `last - k`); `megatron-t5` appends them in order
// as Megatron's `_BertWordPieceTokenizer` does (`<extra_id_0>` right after the WordPiece vocabulary,
// sentinel k is `base + k`). vocab.txt lists them in id order, so a saved folder keeps its order.

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { JsonObject, PreTrainedModel } from '@lm/layers';
import { ExtraIdsTokenizer, MegatronT5Config, T5Tokenizer, MegatronT5Model, T5Config, T5ForConditionalGeneration, vocabParallelCrossEntropy, type SentinelOrder, type MegatronT5ConfigFields, type T5ConfigFields } from '@lm/t5';
import { tensor } from '@lm/tensor-gpu';
import { ConfigError, DataError } from '../core/errors.js';
import type { FamilyObjective, ModelFamily, ObjectiveContext, ResolvedModelConfig, TrainableModel } from '../core/family.js';
import { SpanCorruptionObjective, type Seq2SeqModel } from '../objectives/span-corruption.js';
import { readPretrainedConfig, writeTokenizerFiles } from './files.js';

const FIELDS = Object.keys(T5Config.fields) as (keyof T5ConfigFields)[];

/**
 * The tokenizer from a vocab.txt (or a folder holding one): `ExtraIdsTokenizer.fromVocab` of @lm/t5
 * (trailing `<extra_id_*>` lines are the sentinels in the order listed, else 100 are added in `options.order`).
 */
export async function loadExtraIdsTokenizer(path: string, options: { lowercase: boolean; order?: SentinelOrder }): Promise<ExtraIdsTokenizer> {
  let file = path;
  try {
    if ((await stat(path)).isDirectory()) file = join(path, 'vocab.txt');
  } catch {
    throw new DataError(`data.tokenizer: ${path} does not exist`);
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new DataError(`data.tokenizer: ${file} cannot be read (the T5 family reads a WordPiece vocab.txt)`);
  }
  try {
    return ExtraIdsTokenizer.fromVocab(text, options);
  } catch (e) {
    throw new DataError(`data.tokenizer: ${file}: ${(e as Error).message}`);
  }
}

/**
 * The `t5` family's tokenizer: `T5Tokenizer.fromPretrained` when `path` is a folder with spiece.model
 * (its tokenizer_config.json's extra_ids give the sentinels) or a `.model` file itself (100 extra_ids,
 * T5's default), else the WordPiece vocab.txt + extra ids. T5Tokenizer does not lowercase
 * (data.lowercase is for WordPiece); its model's normalizer applies.
 */
export async function loadT5Tokenizer(path: string, options: { lowercase: boolean }): Promise<T5Tokenizer | ExtraIdsTokenizer> {
  const exists = (p: string) => stat(p).then(
    (s) => s,
    () => null,
  );
  const info = await exists(path);
  const model = info?.isDirectory() ? join(path, 'spiece.model') : path;
  const isSentencePiece = info?.isDirectory() ? (await exists(model)) !== null : path.endsWith('.model');
  if (!isSentencePiece) return loadExtraIdsTokenizer(path, options);
  try {
    return await T5Tokenizer.fromPretrained(info?.isDirectory() ? path : { 'spiece.model': await readFile(path) });
  } catch (e) {
    throw new DataError(`data.tokenizer: ${model}: ${(e as Error).message}`);
  }
}

/** Every `model.config` key must be a field of the config class: all unknown ones named at once. */
function checkFieldNames(overrides: Record<string, unknown>, fields: readonly string[], className: string): void {
  const issues = Object.keys(overrides)
    .filter((key) => !fields.includes(key))
    .map((key) => `model.config.${key}: unknown ${className} field (known: ${fields.join(', ')})`);
  if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
}

const readConfig = (dir: string): Promise<T5Config> => readPretrainedConfig(dir, (json) => T5Config.fromJSON(json));

type T5Trainable = TrainableModel & Seq2SeqModel & { readonly module: T5ForConditionalGeneration };

const SPAN_SETTINGS = ['noiseDensity', 'meanNoiseSpanLength', 'shiftBlocks', 'minBlockLength'];

/** The span-corruption objective over the family tokenizer's sentinels; `padding`: the model takes padded blocks (minBlockLength). */
function spanCorruptionObjective(ctx: ObjectiveContext, padding = true): SpanCorruptionObjective {
  const known = padding ? SPAN_SETTINGS : SPAN_SETTINGS.filter((k) => k !== 'minBlockLength');
  for (const key of Object.keys(ctx.settings)) if (!known.includes(key)) throw new ConfigError(`objectives.span-corruption.${key}: unknown field (known: ${known.join(', ')})`);
  const tokenizer = ctx.tokenizer;
  if (!(tokenizer instanceof ExtraIdsTokenizer) && !(tokenizer instanceof T5Tokenizer)) {
    throw new ConfigError('objective: span-corruption with the T5 families needs their tokenizer (T5Tokenizer, or WordPiece + extra ids)');
  }
  // <extra_id_0>, <extra_id_1>, ... as either tokenizer numbers them (T5's count down from the top).
  const ids = tokenizer.sentinelIds;
  const sentinelId = (k: number): number => ids[k];
  const numSentinels = ids.length;
  const shiftBlocks = ctx.settings.shiftBlocks ?? false;
  if (typeof shiftBlocks !== 'boolean') throw new ConfigError(`objectives.span-corruption.shiftBlocks: expected true or false, got ${JSON.stringify(shiftBlocks)}`);
  const minBlockLength = ctx.settings.minBlockLength;
  if (minBlockLength !== undefined && typeof minBlockLength !== 'number') throw new ConfigError(`objectives.span-corruption.minBlockLength: expected a whole number, got ${JSON.stringify(minBlockLength)}`);
  return new SpanCorruptionObjective(tokenizer, {
    inputLength: ctx.seqLength,
    shiftBlocks,
    minBlockLength,
    padTokenId: tokenizer.specialTokenIds.pad ?? undefined,
    noiseDensity: Number(ctx.settings.noiseDensity ?? 0.15),
    meanNoiseSpanLength: Number(ctx.settings.meanNoiseSpanLength ?? 3),
    sentinelId,
    numSentinels,
    decoderStartTokenId: tokenizer.specialTokenIds.pad!,
    backend: ctx.backend,
  });
}

const spanCorruption: FamilyObjective<T5Config, T5Trainable> = {
  description: 'T5 span corruption (T5ForConditionalGeneration: sentinels, noise density 0.15, mean span 3)',
  objective: spanCorruptionObjective,
  async createModel(config, { fromPretrained, backend }) {
    const model = fromPretrained
      ? await T5ForConditionalGeneration.fromPretrained<T5ForConditionalGeneration, T5Config>(fromPretrained, { backend })
      : new T5ForConditionalGeneration(config, { backend });
    model.train();
    return { module: model, forward: ({ inputIds, attentionMask, decoderInputIds }) => model.forward({ inputIds, attentionMask, decoderInputIds, useCache: false }) };
  },
  async exportTo(model, dir, tokenizer) {
    model.module.config.architectures = ['T5ForConditionalGeneration'];
    await model.module.savePretrained(dir);
    return ['config.json', 'model.safetensors', ...(await writeTokenizerFiles(dir, tokenizer))];
  },
  /** Greedy fills of the prompts' sentinels: `the capital of <extra_id_0> is paris .` -> `<extra_id_0> france <extra_id_1> ...`. */
  async showcase(model, tokenizer, prompts) {
    const t5 = model.module;
    t5.eval();
    const lines: string[] = [];
    for (const prompt of prompts) {
      const ids = tokenizer.encode(prompt).inputIds;
      const input = tensor([ids], { dtype: 'int32', backend: t5.shared.weight.backend });
      const { eos, pad } = tokenizer.specialTokenIds;
      const out = await t5.generate(input, { maxNewTokens: 12, eosTokenId: eos ?? undefined });
      input.dispose();
      // The sentinels stay (they delimit the fills); the decoder start (pad) and eos go.
      const fill = out.sequences[0].slice(1).filter((id) => id !== eos && id !== pad);
      lines.push(`${prompt} => ${tokenizer.decode(fill, { skipSpecialTokens: false })}`);
    }
    t5.train();
    return lines;
  },
};

export const t5: ModelFamily<T5Config> = {
  name: 't5',
  objectives: { 'span-corruption': spanCorruption },
  loadTokenizer: loadT5Tokenizer,

  async resolveConfig({ fromPretrained, overrides, vocabSize }): Promise<ResolvedModelConfig<T5Config>> {
    const issues: string[] = [];
    checkFieldNames(overrides, FIELDS, 'T5Config');
    const fields = fromPretrained ? await readConfig(fromPretrained) : new T5Config({ decoderStartTokenId: 0 });
    const init: Partial<T5ConfigFields> = {};
    for (const key of FIELDS) (init as Record<string, unknown>)[key] = (fields as unknown as Record<string, unknown>)[key];
    if (!fromPretrained && overrides.vocabSize === undefined) init.vocabSize = vocabSize;
    // The derived activation follows feedForwardProj unless set explicitly.
    if (overrides.feedForwardProj !== undefined && overrides.denseActFn === undefined) delete init.denseActFn;
    if (overrides.feedForwardProj !== undefined && overrides.isGatedAct === undefined) delete init.isGatedAct;
    if (overrides.numLayers !== undefined && overrides.numDecoderLayers === undefined && !fromPretrained) delete init.numDecoderLayers;
    Object.assign(init, overrides);
    let config: T5Config;
    try {
      config = new T5Config(init, fields.extra);
    } catch (e) {
      throw new ConfigError(`model.config.feedForwardProj: ${(e as Error).message}`);
    }
    for (const k of ['vocabSize', 'dModel', 'dKv', 'dFf', 'numLayers', 'numDecoderLayers', 'numHeads', 'relativeAttentionNumBuckets', 'relativeAttentionMaxDistance'] as const) {
      const v = config[k];
      if (!Number.isInteger(v) || v < 1) issues.push(`model.config.${k}: expected an integer >= 1, got ${JSON.stringify(v)}`);
    }
    if (typeof config.dropoutRate !== 'number' || config.dropoutRate < 0 || config.dropoutRate >= 1) issues.push(`model.config.dropoutRate: expected a number in [0, 1), got ${JSON.stringify(config.dropoutRate)}`);
    if (config.vocabSize < vocabSize) issues.push(`model.config.vocabSize: ${config.vocabSize} is smaller than the tokenizer's ${vocabSize} ids (vocabulary + sentinels)`);
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    // Relative positions: no learned position table bounds the length.
    return { config, maxPositions: 1 << 16, vocabSize: config.vocabSize };
  },
};

// ---- Megatron-core T5Model ---------------------------------------------------------------------------------

const MEGATRON_FIELDS = Object.keys(MegatronT5Config.fields) as (keyof MegatronT5ConfigFields)[];

/** MegatronT5Model is a Module with the members the loop uses (parameters, stateDict, train/eval, cast, numParameters). */
type MegatronTrainable = TrainableModel & Seq2SeqModel & { readonly megatron: MegatronT5Model };

const megatronSpanCorruption: FamilyObjective<MegatronT5Config, MegatronTrainable> = {
  description: "T5 span corruption on Megatron-core's T5Model (per-token lm_loss under loss_mask, sentinels after the WordPiece vocabulary)",
  // Megatron's forward here takes no encoder mask (its blocks are never padded): no minBlockLength.
  objective: (ctx) => spanCorruptionObjective(ctx, false),
  async createModel(config, { fromPretrained, backend }) {
    const model = fromPretrained ? await MegatronT5Model.fromPretrained(fromPretrained, { backend }) : new MegatronT5Model(config, { backend });
    model.train();
    return {
      megatron: model,
      module: model as unknown as PreTrainedModel,
      // No padding in span corruption: encoder and cross attention unmasked, the decoder causal (mask null).
      // The per-token lm_loss is what the model's lmLabels path returns (vocab_parallel_cross_entropy of
      // these logits); computed here from the same logits so the objective can also score accuracy.
      forward: ({ inputIds, decoderInputIds, labels }) => {
        const { logits } = model.forward({ encoderInputIds: inputIds, decoderInputIds });
        // In float32 unless fp16_lm_cross_entropy, as T5Model.forward hands the logits to the loss.
        const lossLogits = model.fp16LmCrossEntropy ? logits! : logits!.cast('float32');
        return { logits: logits!, lmLoss: labels ? vocabParallelCrossEntropy(lossLogits, labels) : undefined };
      },
    };
  },
  async exportTo(model, dir, tokenizer) {
    await model.megatron.savePretrained(dir);
    return ['config.json', 'model.safetensors', ...(await writeTokenizerFiles(dir, tokenizer))];
  },
};

export const megatronT5: ModelFamily<MegatronT5Config> = {
  name: 'megatron-t5',
  objectives: { 'span-corruption': megatronSpanCorruption },
  // Megatron's --vocab-extra-ids appends <extra_id_0>, <extra_id_1>, ... in order.
  loadTokenizer: (path, options) => loadExtraIdsTokenizer(path, { ...options, order: 'ascending' }),

  async resolveConfig({ fromPretrained, overrides, vocabSize }): Promise<ResolvedModelConfig<MegatronT5Config>> {
    const issues: string[] = [];
    checkFieldNames(overrides, MEGATRON_FIELDS, 'MegatronT5Config');
    let base: JsonObject = { transformer_impl: 'local' };
    if (fromPretrained) {
      try {
        base = JSON.parse(await readFile(join(fromPretrained, 'config.json'), 'utf8')) as JsonObject;
      } catch (e) {
        throw new ConfigError(`model.fromPretrained: ${join(fromPretrained, 'config.json')}: ${(e as Error).message}`);
      }
    }
    const fields = MegatronT5Config.fromJSON(base);
    const init: Partial<MegatronT5ConfigFields> = {};
    for (const key of MEGATRON_FIELDS) (init as Record<string, unknown>)[key] = (fields as unknown as Record<string, unknown>)[key];
    if (!fromPretrained && overrides.vocabSize === undefined) init.vocabSize = vocabSize;
    // Derived sizes follow the overrides unless set.
    for (const k of ['ffnHiddenSize', 'kvChannels', 'numQueryGroups'] as const) if (!fromPretrained && overrides[k] === undefined) delete init[k];
    Object.assign(init, overrides);
    const config = new MegatronT5Config(init, fields.extra);
    for (const k of ['vocabSize', 'hiddenSize', 'numAttentionHeads', 'numLayers', 'maxSequenceLength'] as const) {
      const v = config[k];
      if (!Number.isInteger(v) || v < 1) issues.push(`model.config.${k}: expected an integer >= 1, got ${JSON.stringify(v)}`);
    }
    if (config.vocabSize < vocabSize) issues.push(`model.config.vocabSize: ${config.vocabSize} is smaller than the tokenizer's ${vocabSize} ids (vocabulary + sentinels)`);
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    const maxPositions = config.positionEmbeddingType === 'learned_absolute' ? config.maxSequenceLength : 1 << 16;
    return { config, maxPositions, vocabSize: config.vocabSize };
  },
};
