// Causal (left-to-right) language modelling: predict every token from the ones before it, as GPT-2
// (Radford et al. 2019) and Hugging Face's `run_clm.py` train, here for decoder-only models (a
// MegatronBERT with isDecoder, Reformer, ChatGLM). The loss is the mean next-token cross-entropy over
// the real (non-padding) targets; evaluation reports it with its perplexity and next-token accuracy.
//
// Examples: one per document, framed as bos + tokens + eos (the tokenizer's bos/eos, or BERT's
// [CLS]/[SEP] when it has none), cut into seqLength windows when longer. run_clm.py packs the corpus
// into full blocks instead; with documents shorter than a block (this corpus's), one document per
// example keeps every example starting at the beginning of a text, which is where generation starts.
// The collator pads on the right and shifts labels on the host: labels[t] = ids[t + 1], -100 on
// padding and on the last position, so the loss needs no device-side slicing.

import { generate, stepWithoutCache, type GenerateOptions, type Tokenizer } from '@lm/layers';
import { fromHost, full, noGrad, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { ConfigError } from '../core/errors.js';
import { IGNORE_INDEX, type Objective, type ObjectiveMetrics, type ObjectiveOutput, type TokenizedDocument } from '../core/objective.js';
import { tokenCrossEntropy, tokenMetrics } from './token-loss.js';

/** What a continuation may add to greedy decoding: `@lm/layers` generate's sampling and repetition controls. */
export type ContinueOptions = Pick<GenerateOptions, 'doSample' | 'temperature' | 'topK' | 'topP' | 'repetitionPenalty' | 'noRepeatNgramSize' | 'seed'>;

/** The forward contract: int32 [batch, seq] ids and mask -> [batch, seq, vocab] next-token logits. */
export interface CausalLMModel {
  forward(inputs: { inputIds: Tensor; attentionMask: Tensor }): { logits: Tensor };
}

/** A padded batch on the host: [batchSize, seqLength] row-major. */
export interface CausalLMBatch {
  batchSize: number;
  seqLength: number;
  inputIds: Int32Array;
  attentionMask: Int32Array;
  /** inputIds shifted left by one; -100 where there is no next token. */
  labels: Int32Array;
  /** Non-padding tokens. */
  tokens: number;
  /** Positions with a label. */
  targets: number;
}

export interface CausalLMOptions {
  seqLength: number;
  /** The name it is registered under (default 'causal-lm'). */
  name?: string;
  backend?: Backend;
}

export class CausalLMObjective implements Objective<Int32Array, CausalLMBatch, CausalLMModel> {
  readonly name: string;
  /** The first and last token of every document (null: none). */
  readonly bos: number | null;
  readonly eos: number | null;
  private readonly pad: number;

  constructor(
    tokenizer: Tokenizer,
    readonly options: CausalLMOptions,
  ) {
    this.name = options.name ?? 'causal-lm';
    const ids = tokenizer.specialTokenIds;
    this.bos = ids.bos ?? ids.cls;
    this.eos = ids.eos ?? ids.sep;
    const pad = ids.pad ?? this.eos;
    if (pad === null) throw new ConfigError(`objective: ${this.name} pads with the tokenizer's pad (or eos / [SEP]) token, and data.tokenizer has none`);
    this.pad = pad;
    if (options.seqLength < 2) throw new ConfigError(`data.seqLength: ${this.name} needs at least 2 tokens per example, got ${options.seqLength}`);
  }

  async *examples(documents: AsyncIterable<TokenizedDocument>): AsyncGenerator<Int32Array> {
    const L = this.options.seqLength;
    for await (const doc of documents) {
      const ids = [...(this.bos !== null ? [this.bos] : []), ...doc.sentences.flat(), ...(this.eos !== null ? [this.eos] : [])];
      // Windows of L tokens; the last one may be shorter but keeps at least one prediction.
      for (let start = 0; start + 1 < ids.length; start += L) yield Int32Array.from(ids.slice(start, start + L));
    }
  }

  collate(examples: readonly Int32Array[]): CausalLMBatch {
    const L = this.options.seqLength;
    const B = examples.length;
    const inputIds = new Int32Array(B * L).fill(this.pad);
    const attentionMask = new Int32Array(B * L);
    const labels = new Int32Array(B * L).fill(IGNORE_INDEX);
    let tokens = 0;
    let targets = 0;
    examples.forEach((ids, r) => {
      inputIds.set(ids, r * L);
      attentionMask.fill(1, r * L, r * L + ids.length);
      labels.set(ids.subarray(1), r * L); // labels[t] = ids[t + 1]
      tokens += ids.length;
      targets += ids.length - 1;
    });
    return { batchSize: B, seqLength: L, inputIds, attentionMask, labels, tokens, targets };
  }

  compute(model: CausalLMModel, batch: CausalLMBatch): ObjectiveOutput {
    const shape = [batch.batchSize, batch.seqLength];
    const backend = this.options.backend;
    const out = model.forward({ inputIds: fromHost(batch.inputIds, shape, 'int32', backend), attentionMask: fromHost(batch.attentionMask, shape, 'int32', backend) });
    return tokenCrossEntropy(out.logits, fromHost(batch.labels, [batch.batchSize * batch.seqLength], 'int32', backend), batch.targets);
  }

  summarize(s: Record<string, number>): ObjectiveMetrics {
    return tokenMetrics(s, 'nextTokenAccuracy');
  }

  describe(m: ObjectiveMetrics): string {
    return `perplexity ${m.perplexity.toFixed(2)}, next-token accuracy ${(100 * m.nextTokenAccuracy).toFixed(1)}%`;
  }

  tokens(batch: CausalLMBatch): number {
    return batch.tokens;
  }

  /**
   * Continuations of the prompts (bos + prompt, up to `maxNewTokens` or eos) with @lm/layers'
   * `generate`: greedy by default; `options` adds sampling or logits processors. The model runs
   * without a cache (prompts here are a few tokens).
   */
  async continueGreedy(model: CausalLMModel, tokenizer: Tokenizer, prompts: readonly string[], maxNewTokens = 8, options: ContinueOptions = {}): Promise<string[]> {
    const lines: string[] = [];
    for (const prompt of prompts) {
      const ids = [...(this.bos !== null ? [this.bos] : []), ...tokenizer.encode(prompt, null, { addSpecialTokens: false }).inputIds];
      const input = fromHost(Int32Array.from(ids), [1, ids.length], 'int32', this.options.backend);
      // Each step's temporaries (the mask, the hidden states) are freed by its scope; generate owns the logits.
      const step = stepWithoutCache((x) => noGrad(() => scope(() => model.forward({ inputIds: x, attentionMask: full(x.shape, 1, { dtype: 'int32', backend: x.backend }) }).logits)));
      const out = await generate(step, input, { maxNewTokens, ...(this.eos !== null ? { eosTokenId: this.eos } : {}), ...options });
      input.dispose();
      const generated = out.sequences[0].slice(ids.length);
      lines.push(`${prompt} -> ${tokenizer.decode(generated, { skipSpecialTokens: true })}`);
    }
    return lines;
  }
}
