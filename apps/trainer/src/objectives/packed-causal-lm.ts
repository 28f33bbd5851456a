// Causal language modelling on packed blocks, as Hugging Face's `run_clm.py` (`group_texts`) and the
// Reformer paper's long-sequence runs train: the corpus is one stream (each document's sentences joined
// by the tokenizer's newline, when it has one, documents separated by eos), cut into blocks of exactly
// seqLength tokens; the tail shorter than a block is dropped. Every example is full length, with no
// padding: what a Reformer in training mode requires, and how long-context models see text that runs
// across document boundaries. Collation, loss and metrics are the causal-LM objective's.

import type { Tokenizer } from '@lm/layers';
import type { ObjectiveMetrics, TokenizedDocument } from '../core/objective.js';
import { CausalLMObjective, type CausalLMOptions } from './causal-lm.js';

export class PackedCausalLMObjective extends CausalLMObjective {
  /** The ids between two sentences of a document: the tokenizer's newline, or nothing (WordPiece drops it). */
  readonly sentenceSeparator: number[];

  constructor(tokenizer: Tokenizer, options: CausalLMOptions) {
    super(tokenizer, { ...options, name: options.name ?? 'packed-causal-lm' });
    const unk = tokenizer.specialTokenIds.unk;
    this.sentenceSeparator = tokenizer.encode('\n', null, { addSpecialTokens: false }).inputIds.filter((id) => id !== unk);
  }

  override async *examples(documents: AsyncIterable<TokenizedDocument>): AsyncGenerator<Int32Array> {
    const L = this.options.seqLength;
    let stream: number[] = [];
    for await (const doc of documents) {
      if (this.bos !== null) stream.push(this.bos);
      doc.sentences.forEach((sentence, i) => {
        if (i > 0) stream.push(...this.sentenceSeparator);
        stream.push(...sentence);
      });
      if (this.eos !== null) stream.push(this.eos);
      let start = 0;
      for (; start + L <= stream.length; start += L) yield Int32Array.from(stream.slice(start, start + L));
      stream = stream.slice(start);
    }
  }

  /** The causal-LM metrics and bits per token (loss / ln 2): bits per character with a character tokenizer. */
  override summarize(s: Record<string, number>): ObjectiveMetrics {
    const m = super.summarize(s);
    return { ...m, bitsPerToken: m.loss / Math.LN2 };
  }

  override describe(m: ObjectiveMetrics): string {
    return `${super.describe(m)}, ${m.bitsPerToken.toFixed(3)} bits per token`;
  }
}
