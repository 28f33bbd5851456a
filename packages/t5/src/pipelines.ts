// The text-to-text pipelines: text in, generated text out, with T5's task prefixes. Mirrors Hugging Face
// transformers `pipelines/text2text_generation.py` (`Text2TextGenerationPipeline`, and its
// `SummarizationPipeline` / `TranslationPipeline` tasks): the task's prefix ("summarize: ",
// "translate English to German: ", or config.task_specific_params[task].prefix as T5 checkpoints ship it)
// is put before each input, the batch is padded on the right with an attention mask, the model generates,
// and each sequence is decoded without special tokens. The task's generation defaults from
// task_specific_params (num_beams, max_length, ...) apply unless the call sets them.

import { tensor } from '@lm/tensor-gpu';
import type { Tokenizer } from '@lm/layers';
import type { T5ForConditionalGeneration, T5GenerateOptions } from './modeling.js';

/** `text2text-generation` (input as is), `summarization`, or `translation_<src>_to_<tgt>` (e.g. translation_en_to_de). */
export type Text2TextTask = 'text2text-generation' | 'summarization' | `translation_${string}_to_${string}`;

export interface Text2TextOutput {
  generatedText: string;
  /** The generated ids (without the decoder start token). */
  generatedTokenIds: number[];
}

const LANGUAGES: Readonly<Record<string, string>> = { en: 'English', de: 'German', fr: 'French', ro: 'Romanian', es: 'Spanish', it: 'Italian', zh: 'Chinese', ja: 'Japanese' };

/** task_specific_params keys -> generate options (lengths count the decoder start token, new tokens do not). */
const GENERATION_PARAMS: Readonly<Record<string, [keyof T5GenerateOptions, (v: number) => unknown]>> = {
  num_beams: ['numBeams', (v) => v],
  length_penalty: ['lengthPenalty', (v) => v],
  early_stopping: ['earlyStopping', (v) => v],
  no_repeat_ngram_size: ['noRepeatNgramSize', (v) => v],
  repetition_penalty: ['repetitionPenalty', (v) => v],
  min_length: ['minNewTokens', (v) => Math.max(0, v - 1)],
  max_length: ['maxNewTokens', (v) => Math.max(1, v - 1)],
};

export class Text2TextGenerationPipeline {
  readonly task: Text2TextTask;
  /** Put before every input. */
  readonly prefix: string;
  /** Generation defaults of the task (from config.task_specific_params). */
  readonly defaults: T5GenerateOptions;

  constructor(
    readonly model: T5ForConditionalGeneration,
    readonly tokenizer: Tokenizer,
    options: { task?: Text2TextTask; prefix?: string } = {},
  ) {
    this.task = options.task ?? 'text2text-generation';
    const params = ((model.config.extra.task_specific_params ?? {}) as Record<string, Record<string, unknown> | undefined>)[this.task] ?? {};
    const translation = /^translation_([a-z]+)_to_([a-z]+)$/.exec(this.task);
    if (this.task !== 'text2text-generation' && this.task !== 'summarization' && !translation) {
      throw new TypeError(`Text2TextGenerationPipeline: task "${this.task}" is not text2text-generation, summarization or translation_<src>_to_<tgt>`);
    }
    let prefix = '';
    if (this.task === 'summarization') prefix = 'summarize: ';
    if (translation) {
      const [src, tgt] = [translation[1], translation[2]].map((l) => LANGUAGES[l] ?? l);
      prefix = `translate ${src} to ${tgt}: `;
    }
    this.prefix = options.prefix ?? (typeof params.prefix === 'string' ? params.prefix : prefix);
    const defaults: Record<string, unknown> = {};
    for (const [key, [option, convert]] of Object.entries(GENERATION_PARAMS)) if (params[key] !== undefined) defaults[option] = convert(params[key] as number);
    this.defaults = defaults as T5GenerateOptions;
  }

  /** The encoder batch: prefixed inputs, right-padded with the pad id, and their 1/0 mask. */
  private batch(texts: readonly string[]) {
    const pad = this.tokenizer.specialTokenIds.pad ?? this.model.config.padTokenId ?? 0;
    const rows = texts.map((t) => this.tokenizer.encode(this.prefix + t).inputIds);
    const width = Math.max(...rows.map((r) => r.length));
    const backend = this.model.shared.weight.backend;
    const ids = tensor(rows.map((r) => [...r, ...new Array<number>(width - r.length).fill(pad)]), { dtype: 'int32', backend });
    const mask = tensor(rows.map((r) => r.map(() => 1).concat(new Array<number>(width - r.length).fill(0))), { dtype: 'int32', backend });
    return { ids, mask };
  }

  /** Generates for each input; `numReturnSequences` (beam search) gives that many outputs per input, in order. */
  async call(inputs: string | readonly string[], options: T5GenerateOptions = {}): Promise<Text2TextOutput[]> {
    const texts = typeof inputs === 'string' ? [inputs] : inputs;
    if (texts.length === 0) throw new TypeError('Text2TextGenerationPipeline: no inputs');
    const { ids, mask } = this.batch(texts);
    try {
      const out = await this.model.generate(ids, { ...this.defaults, ...options, attentionMask: mask });
      return out.sequences.map((seq) => {
        const generated = seq.slice(1);
        return { generatedText: this.tokenizer.decode(generated, { skipSpecialTokens: true }).trim(), generatedTokenIds: generated };
      });
    } finally {
      ids.dispose();
      mask.dispose();
    }
  }

  /** One input, streamed: yields the text decoded so far after each new token. */
  async *stream(input: string, options: T5GenerateOptions = {}): AsyncGenerator<{ token: number; text: string }> {
    const { ids, mask } = this.batch([input]);
    const tokens: number[] = [];
    try {
      for await (const ev of this.model.stream(ids, { ...this.defaults, ...options, attentionMask: mask })) {
        tokens.push(ev.token);
        yield { token: ev.token, text: this.tokenizer.decode(tokens, { skipSpecialTokens: true }).trim() };
      }
    } finally {
      ids.dispose();
      mask.dispose();
    }
  }
}
