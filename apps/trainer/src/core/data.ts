// The training data as the loop sees it, for any objective: documents from a corpus (read by an
// adapter: files in Node, fetched text in a browser) -> token ids -> the objective's examples -> a
// seeded shuffle buffer -> the objective's collator -> host batches.
//
// Determinism and resuming: epoch e of the training split is a pure function of (seed, e) - file
// order, example building and shuffling draw from generators seeded by them - and the random choices
// of the k-th example of an epoch (its masks, its corrupted spans) depend only on (seed, e, k). A
// position is therefore (epoch, examples consumed), and resuming replays the epoch's stream to that
// point (reading and tokenising, no model work).
//
// The validation split is the documents whose seeded hash of (file, ordinal) falls below
// validationFraction; its examples are built once with fixed random choices, so evaluations compare.

import { DataError } from './errors.js';
import type { Objective, TokenizedDocument } from './objective.js';
import { Rng, hashUniform, mixSeed } from './rng.js';

/** A document as the corpus adapter reads it: sentences of text, with a stable (file, ordinal) id. */
export interface SourceDocument {
  /** Index of the file in the corpus's name order. */
  file: number;
  /** Ordinal of the document within its file. */
  ordinal: number;
  sentences: string[];
}

/** The corpus adapter: how many files there are, and their documents in a given file order. */
export interface DocumentSource {
  readonly fileCount: number;
  /** Names the corpus in errors (`corpus/ (2 files)`). */
  readonly description: string;
  read(order: readonly number[]): AsyncIterable<SourceDocument>;
}

export interface CorpusDataOptions {
  /** Text -> ids, no special tokens. */
  encode: (text: string) => number[];
  validationFraction: number;
  shuffleBuffer: number;
  seed: number;
}

/** Where the training stream is: examples consumed from epoch `epoch`. */
export interface DataPosition {
  epoch: number;
  index: number;
}

// Seed streams: the numbers are part of what a seed means (changing one changes every run).
const STREAM_SHUFFLE = 1;
const STREAM_EXAMPLES = 2;
const STREAM_ROWS = 3;
const STREAM_FILES = 4;
const STREAM_SPLIT = 5;
const VALIDATION_EPOCH = 0xffff;

/** True when document (file, ordinal) belongs to the held-out split of a run with this seed and validationFraction. */
export function isValidationDocument(seed: number, validationFraction: number, doc: { file: number; ordinal: number }): boolean {
  return hashUniform(seed, STREAM_SPLIT, doc.file, doc.ordinal) < validationFraction;
}

export class CorpusData<Example, Batch> {
  constructor(
    readonly source: DocumentSource,
    readonly objective: Objective<Example, Batch, unknown>,
    readonly options: CorpusDataOptions,
  ) {}

  /** True when a document belongs to the held-out split. */
  isValidation(doc: { file: number; ordinal: number }): boolean {
    return isValidationDocument(this.options.seed, this.options.validationFraction, doc);
  }

  /** The split's non-empty documents as ids, files shuffled per epoch (training) or in name order. */
  private async *documents(split: 'train' | 'validation', epoch: number): AsyncGenerator<TokenizedDocument> {
    const order = Array.from({ length: this.source.fileCount }, (_, i) => i);
    if (split === 'train') new Rng(mixSeed(this.options.seed, STREAM_FILES, epoch)).shuffle(order);
    for await (const doc of this.source.read(order)) {
      if (this.isValidation(doc) !== (split === 'validation')) continue;
      const sentences = doc.sentences.map((s) => this.options.encode(s)).filter((s) => s.length > 0);
      if (sentences.length) yield { id: doc.file * 0x100000 + doc.ordinal, sentences };
    }
  }

  private rawExamples(split: 'train' | 'validation', epoch: number): AsyncGenerator<Example> {
    return this.objective.examples(this.documents(split, epoch), new Rng(mixSeed(this.options.seed, STREAM_EXAMPLES, epoch)));
  }

  /** The epoch's examples after a seeded shuffle buffer (validation: unshuffled). */
  async *examples(split: 'train' | 'validation', epoch: number): AsyncGenerator<Example> {
    if (split === 'validation') {
      yield* this.rawExamples(split, VALIDATION_EPOCH);
      return;
    }
    const rng = new Rng(mixSeed(this.options.seed, STREAM_SHUFFLE, epoch));
    const buffer: Example[] = [];
    for await (const ex of this.rawExamples(split, epoch)) {
      if (buffer.length < this.options.shuffleBuffer) {
        buffer.push(ex);
        continue;
      }
      const j = Math.floor(rng.next() * buffer.length);
      yield buffer[j];
      buffer[j] = ex;
    }
    rng.shuffle(buffer);
    yield* buffer;
  }

  /** The objective's collator; the k-th example of an epoch gets the generator seeded by (seed, epoch, k). */
  collate(examples: readonly Example[], epoch: number, firstIndex: number): Batch {
    return this.objective.collate(examples, (r) => new Rng(mixSeed(this.options.seed, STREAM_ROWS, epoch, firstIndex + r)));
  }

  /** An endless stream of training batches from `start`, crossing epochs; `position` is where the next batch starts. */
  trainBatches(batchSize: number, start: DataPosition = { epoch: 0, index: 0 }): TrainBatches<Example, Batch> {
    return new TrainBatches(this, batchSize, start);
  }

  /** Up to `count` fixed validation batches (the same examples and random choices every time). */
  async validationBatches(count: number, batchSize: number): Promise<Batch[]> {
    const out: Batch[] = [];
    let pending: Example[] = [];
    let index = 0;
    for await (const ex of this.examples('validation', 0)) {
      pending.push(ex);
      if (pending.length === batchSize) {
        out.push(this.collate(pending, VALIDATION_EPOCH, index));
        index += pending.length;
        pending = [];
        if (out.length === count) return out;
      }
    }
    if (pending.length) out.push(this.collate(pending, VALIDATION_EPOCH, index));
    return out;
  }
}

/** The training stream: `next()` gives the next batch; `position` is resumable. */
export class TrainBatches<Example, Batch> {
  private epoch: number;
  private index: number;
  private iterator: AsyncGenerator<Example> | null = null;
  private skip: number;

  constructor(
    private readonly data: CorpusData<Example, Batch>,
    private readonly batchSize: number,
    start: DataPosition,
  ) {
    this.epoch = start.epoch;
    this.index = 0;
    this.skip = start.index;
  }

  /** Where the next batch starts. */
  get position(): DataPosition {
    return { epoch: this.epoch, index: this.index + this.skip };
  }

  private async nextExample(): Promise<{ ex: Example; epoch: number; index: number }> {
    for (;;) {
      this.iterator ??= this.data.examples('train', this.epoch);
      const r = await this.iterator.next();
      if (!r.done) {
        if (this.skip > 0) {
          this.skip--;
          this.index++;
          continue;
        }
        return { ex: r.value, epoch: this.epoch, index: this.index++ };
      }
      if (this.index === 0) {
        throw new DataError(
          `data: the training split has no examples (corpus ${this.data.source.description}: no document outside the validation split gives a ${this.data.objective.name} example; ` +
            `check the files or lower data.validationFraction)`,
        );
      }
      if (this.skip > 0) throw new DataError(`data: cannot resume at example ${this.index + this.skip} of epoch ${this.epoch}: the epoch has only ${this.index}`);
      this.epoch++;
      this.index = 0;
      this.iterator = null;
    }
  }

  async next(): Promise<Batch> {
    const exs: Example[] = [];
    let epoch = this.epoch;
    let first = this.index + this.skip;
    for (let i = 0; i < this.batchSize; i++) {
      const { ex, epoch: e, index } = await this.nextExample();
      if (i === 0) {
        epoch = e;
        first = index;
      }
      exs.push(ex);
    }
    // Random choices are seeded per example; a batch crossing an epoch uses the first example's
    // coordinates for all rows (still deterministic in the position).
    return this.data.collate(exs, epoch, first);
  }

  async close(): Promise<void> {
    await this.iterator?.return(undefined);
    this.iterator = null;
  }
}
