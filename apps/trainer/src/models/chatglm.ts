// The ChatGLM family for the trainer, as THUDM's ChatGLM-6B `ptuning/main.py` fine-tunes it: prompt /
// response pairs framed `prompt [gMASK] <sop> response <eop>`, labels only on the response (the
// reference's masking: -100 up to the <sop> position, so the first target is <sop> predicted from
// [gMASK], then the response and <eop>), right padding, masks and 2-D positions derived by the model
// from the [gMASK] / <sop> positions. Two objectives: `prefix-lm` (P-tuning v2: a frozen
// ChatGLMForConditionalGeneration from `model.fromPretrained` with a trainable prefix encoder; only
// `transformer.prefix_encoder.*` is checkpointed and exported, as the reference saves it) and
// `causal-lm` (full fine-tuning of every weight, random or from `model.fromPretrained`).
//
// Data: JSON lines whose `text` (data.jsonlField) holds the prompt as its first sentence and the
// response as the rest (`repeat red cat ? red cat .`), since the corpus reader yields documents as
// sentences. Tokenizer: `ChatGLMTokenizer` when data.tokenizer is a folder holding ice_text.model (or
// that file), as THUDM ships it (data/chatglm/tokenizer/ is a small one trained here by
// data/chatglm/make-tokenizer.mjs); otherwise a word-level stand-in (a BertTokenizer over a vocab.txt of
// whole words that also lists [gMASK], <sop> and <eop>).

import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Module, PreTrainedModel, type Tokenizer } from '@lm/layers';
import { ChatGLMConfig, ChatGLMForConditionalGeneration, ChatGLMTokenizer, type ChatGLMConfigFields } from '@lm/chatglm';
import { fromHost, noGrad, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { ConfigError, DataError } from '../core/errors.js';
import type { FamilyObjective, ModelFamily, ResolvedModelConfig, TrainableModel } from '../core/family.js';
import { IGNORE_INDEX, type Objective, type ObjectiveMetrics, type ObjectiveOutput, type TokenizedDocument } from '../core/objective.js';
import { loadWordPieceTokenizer } from '../data/tokenizer.js';
import { tokenCrossEntropy, tokenMetrics } from '../objectives/token-loss.js';
import { readPretrainedConfig, writeTokenizerFiles } from './files.js';

const FIELDS = Object.keys(ChatGLMConfig.fields) as (keyof ChatGLMConfigFields)[];

/** The ids ChatGLM frames a pair with. */
interface Framing {
  gmask: number;
  bos: number;
  eos: number;
  pad: number;
}

/** The special ids of the tokenizer, by ChatGLM's token names; a missing one is refused by name. */
function framingOf(tokenizer: Tokenizer): Framing {
  const t = tokenizer as Tokenizer & { convertTokensToIds(tokens: readonly string[]): number[] };
  const id = (token: string): number => {
    const v = t.convertTokensToIds([token])[0];
    if (v === tokenizer.specialTokenIds.unk || v === null) throw new DataError(`data.tokenizer: ChatGLM needs the token ${token} in the vocabulary`);
    return v;
  };
  const pad = tokenizer.specialTokenIds.pad;
  if (pad === null) throw new DataError('data.tokenizer: ChatGLM pads with the tokenizer\'s pad token, and it has none');
  return { gmask: id('[gMASK]'), bos: id('<sop>'), eos: id('<eop>'), pad };
}

/** One pair: its ids and the index of <sop> (the reference's context_length). */
interface PairExample {
  ids: Int32Array;
  contextLength: number;
}

interface PairBatch {
  batchSize: number;
  seqLength: number;
  inputIds: Int32Array;
  /** Shifted on the host: labels[t] is the target of position t (ids[t + 1]) or -100. */
  labels: Int32Array;
  tokens: number;
  targets: number;
}

/** The model side the objective calls: int32 ids -> [batch, seq, vocab] logits (masks and positions derived from the ids). */
interface ChatGLMLM {
  forward(inputs: { inputIds: Tensor }): { logits: Tensor };
}

/** Supervised prompt -> response, `ptuning/main.py`'s preprocessing and loss. */
export class PromptResponseObjective implements Objective<PairExample, PairBatch, ChatGLMLM> {
  constructor(
    readonly name: string,
    private readonly framing: Framing,
    private readonly options: { seqLength: number; backend: Backend },
  ) {}

  /** `build_inputs_with_special_tokens(prompt, response)`: prompt [gMASK] <sop> response <eop>, cut to data.seqLength. */
  frame(prompt: readonly number[], response: readonly number[]): PairExample {
    const { gmask, bos, eos } = this.framing;
    // Room for the 3 special tokens. The reference cuts prompt and response to their own limits (max_source_length,
    // max_target_length); with one seqLength here the response keeps up to half the room and the prompt the rest.
    const budget = this.options.seqLength - 3;
    const p = prompt.slice(0, Math.max(1, Math.min(prompt.length, budget - Math.min(response.length, budget >> 1))));
    const r = response.slice(0, budget - p.length);
    return { ids: Int32Array.from([...p, gmask, bos, ...r, eos]), contextLength: p.length + 1 };
  }

  async *examples(documents: AsyncIterable<TokenizedDocument>): AsyncGenerator<PairExample> {
    for await (const doc of documents) {
      if (doc.sentences.length < 2) throw new DataError(`data: document ${doc.id} has ${doc.sentences.length} sentence(s); ChatGLM fine-tuning needs a prompt (the first sentence) and a response (the rest)`);
      yield this.frame(doc.sentences[0], doc.sentences.slice(1).flat());
    }
  }

  collate(examples: readonly PairExample[]): PairBatch {
    const L = this.options.seqLength;
    const B = examples.length;
    const inputIds = new Int32Array(B * L).fill(this.framing.pad); // right padding, as ptuning/main.py pads
    const labels = new Int32Array(B * L).fill(IGNORE_INDEX);
    let tokens = 0;
    let targets = 0;
    examples.forEach(({ ids, contextLength }, r) => {
      inputIds.set(ids, r * L);
      // Reference labels: -100 before <sop>, ids from <sop> on; shifted by one, position t predicts labels[t + 1].
      for (let t = contextLength - 1; t + 1 < ids.length; t++) labels[r * L + t] = ids[t + 1];
      tokens += ids.length;
      targets += ids.length - contextLength;
    });
    return { batchSize: B, seqLength: L, inputIds, labels, tokens, targets };
  }

  compute(model: ChatGLMLM, batch: PairBatch): ObjectiveOutput {
    const { batchSize: B, seqLength: L } = batch;
    const out = model.forward({ inputIds: fromHost(batch.inputIds, [B, L], 'int32', this.options.backend) });
    return tokenCrossEntropy(out.logits, fromHost(batch.labels, [B * L], 'int32', this.options.backend), batch.targets);
  }

  summarize(s: Record<string, number>): ObjectiveMetrics {
    return tokenMetrics(s, 'nextTokenAccuracy');
  }

  describe(m: ObjectiveMetrics): string {
    return `perplexity ${m.perplexity.toFixed(2)}, response-token accuracy ${(100 * m.nextTokenAccuracy).toFixed(1)}%`;
  }

  tokens(batch: PairBatch): number {
    return batch.tokens;
  }

  /** Greedy responses (until <eop> or `maxNewTokens`), full recompute per step: prompts here are a few tokens. */
  async respond(model: ChatGLMLM, tokenizer: Tokenizer, prompt: string, maxNewTokens = 16): Promise<string> {
    const ids = Array.from(this.frame(tokenizer.encode(prompt, null, { addSpecialTokens: false }).inputIds, []).ids.slice(0, -1)); // without the closing <eop>
    const start = ids.length;
    while (ids.length - start < maxNewTokens) {
      const next = noGrad(() =>
        scope(() => {
          const logits = model.forward({ inputIds: fromHost(Int32Array.from(ids), [1, ids.length], 'int32', this.options.backend) }).logits; // [1, seq, vocab]
          return logits.select(1, ids.length - 1).argmax(-1).dataSync()[0];
        }),
      );
      if (next === this.framing.eos) break;
      ids.push(next);
    }
    return tokenizer.decode(ids.slice(start), { skipSpecialTokens: true });
  }
}

/** Only the prefix encoder in the registry (`transformer.prefix_encoder.*`, the reference's saved keys); the frozen model is a plain field. */
class PrefixOnly extends Module {
  declare prefix_encoder: Module;

  constructor(prefixEncoder: Module) {
    super();
    this.registerModule('prefix_encoder', prefixEncoder);
  }
}

/** A ChatGLMForConditionalGeneration whose registry is its prefix encoder alone, for P-tuning v2. */
class ChatGLMPrefixTuned extends PreTrainedModel<ChatGLMConfig> implements ChatGLMLM {
  declare transformer: PrefixOnly;

  constructor(readonly model: ChatGLMForConditionalGeneration) {
    super(model.config);
    if (!model.transformer.prefix_encoder) throw new ConfigError('objectives.prefix-lm: the model has no prefix encoder (pre_seq_len unset)');
    // ChatGLMModel freezes the transformer; lm_head, outside it, is frozen too (the prefix alone trains).
    for (const [name, p] of model.namedParameters()) if (!name.startsWith('transformer.prefix_encoder.')) p.requiresGrad_(false);
    this.registerModule('transformer', new PrefixOnly(model.transformer.prefix_encoder));
  }

  forward(inputs: { inputIds: Tensor }): { logits: Tensor } {
    return this.model.forward({ inputIds: inputs.inputIds, useCache: false });
  }

  override train(mode = true): this {
    this.model.train(mode);
    return super.train(mode);
  }

  override dispose(): void {
    this.model.dispose();
  }

  getInputEmbeddings() {
    return this.model.getInputEmbeddings();
  }

  setInputEmbeddings(value: ReturnType<ChatGLMForConditionalGeneration['getInputEmbeddings']>): void {
    this.model.setInputEmbeddings(value);
  }
}

type Trainable = TrainableModel & ChatGLMLM & { readonly module: PreTrainedModel<ChatGLMConfig> };

/** config.json + model.safetensors (the whole model, or the prefix alone) + the tokenizer's files. */
async function exportFolder(model: PreTrainedModel<ChatGLMConfig>, dir: string, tokenizer: Tokenizer): Promise<string[]> {
  model.config.architectures = ['ChatGLMForConditionalGeneration'];
  await model.savePretrained(dir);
  return ['config.json', 'model.safetensors', ...(await writeTokenizerFiles(dir, tokenizer))];
}

/** `objectives.prefix-lm`: preSeqLen (default 8) and prefixProjection (default false), as the reference's arguments. */
function prefixSettings(raw: Record<string, unknown>): { preSeqLen: number; prefixProjection: boolean } {
  const issues = Object.keys(raw)
    .filter((k) => k !== 'preSeqLen' && k !== 'prefixProjection')
    .map((k) => `objectives.prefix-lm.${k}: unknown field (known: preSeqLen, prefixProjection)`);
  const preSeqLen = raw.preSeqLen ?? 8;
  const prefixProjection = raw.prefixProjection ?? false;
  if (!Number.isInteger(preSeqLen) || (preSeqLen as number) < 1) issues.push(`objectives.prefix-lm.preSeqLen: expected an integer >= 1, got ${JSON.stringify(preSeqLen)}`);
  if (typeof prefixProjection !== 'boolean') issues.push(`objectives.prefix-lm.prefixProjection: expected a boolean, got ${JSON.stringify(prefixProjection)}`);
  if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
  return { preSeqLen: preSeqLen as number, prefixProjection: prefixProjection as boolean };
}

function objectiveFor(name: string) {
  return (ctx: { tokenizer: Tokenizer; backend: Backend; seqLength: number; settings: Record<string, unknown> }) => {
    if (name === 'prefix-lm') prefixSettings(ctx.settings);
    else if (Object.keys(ctx.settings).length) throw new ConfigError(`objectives.${name}.${Object.keys(ctx.settings)[0]}: unknown field (${name} takes no settings of its own)`);
    if (ctx.seqLength < 5) throw new ConfigError(`data.seqLength: ChatGLM fine-tuning needs room for a prompt, [gMASK], <sop>, a response and <eop>; got ${ctx.seqLength}`);
    return new PromptResponseObjective(name, framingOf(ctx.tokenizer), { seqLength: ctx.seqLength, backend: ctx.backend });
  };
}

async function showcase(model: Trainable, tokenizer: Tokenizer, prompts: readonly string[]): Promise<string[]> {
  const backend = model.module.getInputEmbeddings().weight.backend;
  const objective = new PromptResponseObjective('showcase', framingOf(tokenizer), { seqLength: model.module.config.maxSequenceLength, backend });
  const lines: string[] = [];
  for (const prompt of prompts) lines.push(`${prompt} -> ${await objective.respond(model, tokenizer, prompt)}`);
  return lines;
}

const causalLM: FamilyObjective<ChatGLMConfig, Trainable> = {
  description: 'full fine-tuning of ChatGLMForConditionalGeneration on prompt/response pairs (loss on the response)',
  objective: objectiveFor('causal-lm'),
  async createModel(config, { fromPretrained, backend }) {
    const model = fromPretrained
      ? await ChatGLMForConditionalGeneration.fromPretrained<ChatGLMForConditionalGeneration, ChatGLMConfig>(fromPretrained, { backend })
      : new ChatGLMForConditionalGeneration(config, { backend });
    model.train();
    return { module: model, forward: (inputs: { inputIds: Tensor }) => model.forward({ inputIds: inputs.inputIds, useCache: false }) };
  },
  exportTo: (model, dir, tokenizer) => exportFolder(model.module, dir, tokenizer),
  showcase,
};

const prefixLM: FamilyObjective<ChatGLMConfig, Trainable> = {
  description: 'P-tuning v2 of a frozen ChatGLMForConditionalGeneration (only transformer.prefix_encoder.* trains and is saved)',
  objective: objectiveFor('prefix-lm'),
  async createModel(_config, { fromPretrained, backend, settings }) {
    if (!fromPretrained) throw new ConfigError('model.fromPretrained: prefix-lm tunes a prefix for a trained ChatGLM and keeps it frozen; set it to a ChatGLMForConditionalGeneration folder (e.g. a causal-lm run\'s output.export)');
    const prefix = prefixSettings(settings);
    // The frozen model with the prefix encoder built in (pre_seq_len set), its weights copied from the
    // loaded base (the trainer's models are small; the prefix's keys are absent from the base checkpoint).
    const loaded = await ChatGLMForConditionalGeneration.fromPretrained<ChatGLMForConditionalGeneration, ChatGLMConfig>(fromPretrained, { backend });
    const base = new ChatGLMForConditionalGeneration(new ChatGLMConfig({ ...fieldsOf(loaded.config), ...prefix }, loaded.config.extra), { backend });
    noGrad(() => base.loadStateDict(loaded.stateDict(), { strict: false }));
    loaded.dispose();
    const model = new ChatGLMPrefixTuned(base);
    model.train();
    return { module: model, forward: (inputs: { inputIds: Tensor }) => model.forward(inputs) };
  },
  // config.json (with pre_seq_len) and model.safetensors holding transformer.prefix_encoder.* only; the base model stays where fromPretrained read it.
  exportTo: (model, dir, tokenizer) => exportFolder(model.module, dir, tokenizer),
  showcase,
};

function fieldsOf(config: ChatGLMConfig): Partial<ChatGLMConfigFields> {
  const init: Partial<ChatGLMConfigFields> = {};
  for (const key of FIELDS) (init as Record<string, unknown>)[key] = (config as unknown as Record<string, unknown>)[key];
  return init;
}

/**
 * ChatGLMTokenizer from a folder holding ice_text.model (with its tokenizer_config.json), or from that
 * file; anything else is the word-level stand-in (vocab.txt / tokenizer.json). ChatGLMTokenizer takes
 * its casing from tokenizer_config.json (do_lower_case), not from data.lowercase.
 */
export async function loadChatGLMTokenizer(path: string, options: { lowercase: boolean }): Promise<Tokenizer> {
  const isDir = await stat(path).then((st) => st.isDirectory(), () => null);
  if (isDir === null) throw new DataError(`data.tokenizer: ${path} does not exist`);
  const dir = isDir ? path : basename(path) === 'ice_text.model' ? dirname(path) : null;
  if (dir !== null && (await stat(join(dir, 'ice_text.model')).then(() => true, () => false))) {
    try {
      return await ChatGLMTokenizer.fromPretrained(dir);
    } catch (e) {
      throw new DataError(`data.tokenizer: ${join(dir, 'ice_text.model')}: ${(e as Error).message}`);
    }
  }
  return loadWordPieceTokenizer(path, options);
}

const readConfig = (dir: string): Promise<ChatGLMConfig> => readPretrainedConfig(dir, (json) => ChatGLMConfig.fromJSON(json), 'a ChatGLM checkpoint folder');

export const chatglm: ModelFamily<ChatGLMConfig> = {
  name: 'chatglm',
  objectives: { 'causal-lm': causalLM, 'prefix-lm': prefixLM } as Record<string, FamilyObjective<ChatGLMConfig>>,
  loadTokenizer: loadChatGLMTokenizer,

  async resolveConfig({ fromPretrained, overrides, vocabSize }): Promise<ResolvedModelConfig<ChatGLMConfig>> {
    const issues = Object.keys(overrides)
      .filter((k) => !(FIELDS as string[]).includes(k))
      .map((k) => `model.config.${k}: unknown ChatGLMConfig field (known: ${FIELDS.join(', ')})`);
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    const base = fromPretrained ? await readConfig(fromPretrained) : new ChatGLMConfig();
    const init = fieldsOf(base);
    if (!fromPretrained && overrides.vocabSize === undefined) init.vocabSize = vocabSize;
    Object.assign(init, overrides);
    const config = new ChatGLMConfig(init, base.extra);
    for (const k of ['vocabSize', 'hiddenSize', 'numLayers', 'numAttentionHeads', 'maxSequenceLength'] as const) {
      const v = config[k];
      if (!Number.isInteger(v) || (v as number) < 1) issues.push(`model.config.${k}: expected an integer >= 1, got ${JSON.stringify(v)}`);
    }
    if (!issues.length && config.hiddenSize % config.numAttentionHeads !== 0) issues.push(`model.config.hiddenSize: ${config.hiddenSize} is not a multiple of numAttentionHeads (${config.numAttentionHeads})`);
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    return { config, maxPositions: config.maxSequenceLength, vocabSize: config.vocabSize };
  },
};
