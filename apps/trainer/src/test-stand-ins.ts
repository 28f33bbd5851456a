// Stand-ins for the families that do not exist yet, for the tests of the objectives they will train
// with: a word-level tokenizer with T5's special tokens (pad 0, eos 1, unk 2, sentinels counted down
// from the top of the vocabulary) and a tiny encoder-decoder, registered as the family `tiny-t5` the
// way @lm/t5 will register itself, so a test trains span corruption through `train()` end to end.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Embedding, Linear, PreTrainedModel, PretrainedConfig, type SpecialTokenIds, type Tokenizer } from '@lm/layers';
import type { Backend, Tensor } from '@lm/tensor-gpu';
import type { FamilyObjective, ModelFamily, TrainableModel } from './core/family.js';
import { SpanCorruptionObjective, type Seq2SeqModel } from './objectives/span-corruption.js';

/** Whitespace-split words; `<pad>` 0, `</s>` 1, `<unk>` 2, the words, then `<extra_id_{n-1}>` ... `<extra_id_0>` last. */
export class WordTokenizer implements Tokenizer {
  readonly ids = new Map<string, number>();
  readonly tokens: string[];

  constructor(words: readonly string[], numSentinels = 8) {
    const sentinels = Array.from({ length: numSentinels }, (_, k) => `<extra_id_${numSentinels - 1 - k}>`);
    this.tokens = ['<pad>', '</s>', '<unk>', ...words, ...sentinels];
    this.tokens.forEach((t, i) => this.ids.set(t, i));
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  encode(text: string, pair: string | null = null, options: { addSpecialTokens?: boolean } = {}): { inputIds: number[] } {
    const words = [text, pair ?? ''].join(' ').split(/\s+/).filter(Boolean);
    const ids = words.map((w) => this.ids.get(w) ?? 2);
    return { inputIds: options.addSpecialTokens === false ? ids : [...ids, 1] };
  }

  decode(ids: Iterable<number> | ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    const special = new Set(this.allSpecialIds);
    return Array.from(ids as ArrayLike<number>)
      .filter((id) => !(options.skipSpecialTokens && special.has(id)))
      .map((id) => this.tokens[id])
      .join(' ');
  }

  get specialTokenIds(): SpecialTokenIds {
    return { pad: 0, eos: 1, unk: 2, bos: null, cls: null, sep: null, mask: null };
  }

  get allSpecialIds(): number[] {
    return [0, 1, 2, ...this.tokens.map((t, i) => (t.startsWith('<extra_id_') ? i : -1)).filter((i) => i >= 0)];
  }

  save(): Record<string, string> {
    return { 'vocab.txt': `${this.tokens.join('\n')}\n` };
  }
}

class TinySeq2SeqConfig extends PretrainedConfig {
  static readonly modelType = 'tiny-seq2seq';
  vocabSize = 32;
  hiddenSize = 16;

  toJSON(): Record<string, unknown> {
    return { model_type: TinySeq2SeqConfig.modelType, vocab_size: this.vocabSize, hidden_size: this.hiddenSize };
  }
}

/** Encoder: mean of the input embeddings; decoder: each target position's embedding plus that summary, then the LM head. */
class TinySeq2Seq extends PreTrainedModel<TinySeq2SeqConfig> implements Seq2SeqModel {
  declare shared: Embedding;
  declare encoder: Linear;
  declare lm_head: Linear;

  constructor(config: TinySeq2SeqConfig, options: { backend?: Backend } = {}) {
    super(config);
    this.registerModule('shared', new Embedding(config.vocabSize, config.hiddenSize, options));
    this.registerModule('encoder', new Linear(config.hiddenSize, config.hiddenSize, options));
    this.registerModule('lm_head', new Linear(config.hiddenSize, config.vocabSize, options));
  }

  forward(inputs: { inputIds: Tensor; attentionMask: Tensor; decoderInputIds: Tensor }): { logits: Tensor } {
    const summary = this.encoder.forward(this.shared.forward(inputs.inputIds).mean(1, true)); // [batch, 1, hidden]
    const hidden = this.shared.forward(inputs.decoderInputIds).add(summary).tanh(); // [batch, targets, hidden]
    return { logits: this.lm_head.forward(hidden) }; // [batch, targets, vocab]
  }

  getInputEmbeddings(): Embedding {
    return this.shared;
  }

  setInputEmbeddings(embeddings: Embedding): void {
    this.shared = embeddings;
  }
}

type TinyTrainable = TrainableModel & Seq2SeqModel & { readonly module: TinySeq2Seq };

const spanCorruption: FamilyObjective<TinySeq2SeqConfig, TinyTrainable> = {
  description: 'T5 span corruption (stand-in encoder-decoder)',
  objective: (ctx) =>
    new SpanCorruptionObjective(ctx.tokenizer, {
      inputLength: ctx.seqLength,
      noiseDensity: Number(ctx.settings.noiseDensity ?? 0.15),
      meanNoiseSpanLength: Number(ctx.settings.meanNoiseSpanLength ?? 3),
      sentinelId: (k) => ctx.tokenizer.vocabSize - 1 - k,
      numSentinels: 8,
      decoderStartTokenId: 0,
      backend: ctx.backend,
    }),
  async createModel(config, { backend }): Promise<TinyTrainable> {
    const model = new TinySeq2Seq(config, { backend });
    return { module: model, forward: (inputs) => model.forward(inputs) };
  },
  async exportTo(model, dir, tokenizer) {
    await model.module.savePretrained(dir);
    const files = tokenizer.save();
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    return ['config.json', 'model.safetensors', ...Object.keys(files)];
  },
};

/** The `tiny-t5` family: what @lm/t5 registers, in miniature (its tokenizer is a WordTokenizer over `words`). */
export function tinyT5Family(words: readonly string[]): ModelFamily<TinySeq2SeqConfig> {
  return {
    name: 'tiny-t5',
    loadTokenizer: async () => new WordTokenizer(words),
    async resolveConfig({ vocabSize }) {
      const config = new TinySeq2SeqConfig();
      config.vocabSize = vocabSize;
      return { config, maxPositions: 1024, vocabSize };
    },
    objectives: { 'span-corruption': spanCorruption },
  };
}
