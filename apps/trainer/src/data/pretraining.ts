// BERT pretraining examples from a streamed corpus: documents -> WordPiece ids -> sentence pairs
// [CLS] A [SEP] B [SEP] with next-sentence labels -> a shuffle buffer -> masked, padded batches.
//
// Pairing follows google-research/bert create_pretraining_data.py `create_instances_from_document`:
// sentences are gathered until a target length (seqLength - 3, or with probability
// shortSeqProbability a random shorter one), split at a random point into A and B; half the time
// (seeded) B is replaced by sentences from another document and the unused sentences are put back;
// the pair is truncated from the longer side, front or back at random. The reference draws the random
// document from the whole corpus in memory; here it comes from a reservoir of recent documents, so the
// corpus is streamed. Label 0: B follows A; 1: B is random (Hugging Face's next_sentence_label).
//
// Determinism and resuming: epoch e of the training split is a pure function of (seed, e) - file
// order, pairing and shuffling draw from generators seeded by them - and the masks of the k-th example
// of an epoch depend only on (seed, e, k). A position is therefore (epoch, examples consumed), and
// resuming replays the epoch's stream to that point (reading and tokenising, no model work).
//
// The validation split is the documents whose seeded hash of (file, ordinal) falls below
// validationFraction; its examples are built once with fixed masks, so evaluations compare.

import { IGNORE_INDEX, maskTokens, replacementIds, type MaskingOptions } from './masking.js';
import { Rng, hashUniform, mixSeed } from './rng.js';
import { DataError, listCorpus, readDocuments, type CorpusFile, type DataFormat, type SourceDocument } from './sources.js';
import type { PretrainingTokenizer } from './tokenizer.js';

export interface PretrainingDataOptions {
  paths: readonly string[];
  format: DataFormat;
  jsonlField: string;
  seqLength: number;
  maskProbability: number;
  shortSeqProbability: number;
  validationFraction: number;
  shuffleBuffer: number;
  seed: number;
  /** false: B always follows A (MLM without NSP); label 0 throughout. */
  nextSentencePrediction: boolean;
}

/** One example before masking and padding. */
export interface Example {
  inputIds: Int32Array;
  tokenTypeIds: Int32Array;
  /** 0: B follows A; 1: B is from another document. */
  nextSentenceLabel: number;
}

/** A padded, masked batch on the host: [batchSize, seqLength] row-major int32 arrays. */
export interface Batch {
  batchSize: number;
  seqLength: number;
  inputIds: Int32Array;
  tokenTypeIds: Int32Array;
  attentionMask: Int32Array;
  /** Original ids at predicted positions, -100 elsewhere. */
  labels: Int32Array;
  /** [batchSize] */
  nextSentenceLabel: Int32Array;
  /** Non-padding tokens. */
  tokens: number;
  /** Positions with a label. */
  maskedTokens: number;
}

/** Where the training stream is: examples consumed from epoch `epoch`. */
export interface DataPosition {
  epoch: number;
  index: number;
}

const RESERVOIR_DOCS = 64;
const STREAM_SHUFFLE = 1;
const STREAM_PAIRS = 2;
const STREAM_MASKS = 3;
const STREAM_FILES = 4;
const STREAM_SPLIT = 5;
const VALIDATION_EPOCH = 0xffff;

type Segment = number[];
interface TokenizedDoc {
  id: number;
  sentences: Segment[];
}

/** Removes tokens from the longer of a and b (front or back at random) until they fit. */
function truncatePair(a: Segment, b: Segment, maxTokens: number, rng: Rng): void {
  while (a.length + b.length > maxTokens) {
    const longer = a.length > b.length ? a : b;
    if (rng.next() < 0.5) longer.shift();
    else longer.pop();
  }
}

export class PretrainingData {
  readonly files: CorpusFile[];
  readonly tokenizer: PretrainingTokenizer;
  readonly options: PretrainingDataOptions;
  private readonly masking: MaskingOptions;

  private constructor(files: CorpusFile[], tokenizer: PretrainingTokenizer, options: PretrainingDataOptions) {
    this.files = files;
    this.tokenizer = tokenizer;
    this.options = options;
    this.masking = {
      probability: options.maskProbability,
      maskTokenId: tokenizer.maskTokenId,
      specialIds: tokenizer.specialIds,
      replacementIds: replacementIds(tokenizer.vocabSize, tokenizer.specialIds),
    };
  }

  /** Lists the corpus and checks what can be checked without reading it all. */
  static async open(tokenizer: PretrainingTokenizer, options: PretrainingDataOptions): Promise<PretrainingData> {
    if (options.seqLength < 8) throw new DataError(`data.seqLength: expected at least 8, got ${options.seqLength}`);
    const files = await listCorpus(options.paths, options.format);
    if (files.every((f) => f.size === 0)) throw new DataError(`data.paths: the corpus is empty (${files.length} file(s), 0 bytes): ${options.paths.join(', ')}`);
    return new PretrainingData(files, tokenizer, options);
  }

  /** True when a document belongs to the held-out split. */
  isValidation(doc: { file: number; ordinal: number }): boolean {
    return hashUniform(this.options.seed, STREAM_SPLIT, doc.file, doc.ordinal) < this.options.validationFraction;
  }

  private tokenizeDoc(doc: SourceDocument): TokenizedDoc {
    return {
      id: doc.file * 0x100000 + doc.ordinal,
      sentences: doc.sentences.map((s) => this.tokenizer.encode(s)).filter((s) => s.length > 0),
    };
  }

  /** Sentence pairs of one split and epoch, in corpus order (before shuffling). */
  private async *pairs(split: 'train' | 'validation', epoch: number): AsyncGenerator<Example> {
    const { seqLength, shortSeqProbability, nextSentencePrediction } = this.options;
    const rng = new Rng(mixSeed(this.options.seed, STREAM_PAIRS, epoch));
    const fileRng = new Rng(mixSeed(this.options.seed, STREAM_FILES, epoch));
    const order = this.files.map((_, i) => i);
    if (split === 'train') fileRng.shuffle(order);
    const maxTokens = seqLength - 3;
    const reservoir: TokenizedDoc[] = [];
    for await (const source of readDocuments(this.files, this.options.jsonlField, order)) {
      if (this.isValidation(source) !== (split === 'validation')) continue;
      const doc = this.tokenizeDoc(source);
      if (doc.sentences.length === 0) continue;
      const target = rng.next() < shortSeqProbability ? rng.int(2, maxTokens) : maxTokens;
      const others = reservoir.filter((d) => d.id !== doc.id);
      let chunk: Segment[] = [];
      let length = 0;
      for (let i = 0; i < doc.sentences.length; i++) {
        chunk.push(doc.sentences[i]);
        length += doc.sentences[i].length;
        if (i !== doc.sentences.length - 1 && length < target) continue;
        const aEnd = chunk.length >= 2 ? rng.int(1, chunk.length - 1) : 1;
        const a: Segment = chunk.slice(0, aEnd).flat();
        let b: Segment = [];
        let isRandom = false;
        const wantRandom = nextSentencePrediction && (chunk.length === 1 || rng.next() < 0.5);
        if (wantRandom && others.length > 0) {
          isRandom = true;
          const targetB = Math.max(1, target - a.length);
          const other = others[rng.int(0, others.length - 1)];
          for (let k = rng.int(0, other.sentences.length - 1); k < other.sentences.length && b.length < targetB; k++) b.push(...other.sentences[k]);
          // The sentences of this document not used for A go back into the stream.
          i -= chunk.length - aEnd;
        } else {
          b = chunk.slice(aEnd).flat();
        }
        chunk = [];
        length = 0;
        truncatePair(a, b, maxTokens, rng);
        if (a.length === 0 || b.length === 0) continue;
        const { clsTokenId: cls, sepTokenId: sep } = this.tokenizer;
        const inputIds = Int32Array.from([cls, ...a, sep, ...b, sep]);
        const tokenTypeIds = new Int32Array(inputIds.length);
        tokenTypeIds.fill(1, a.length + 2);
        yield { inputIds, tokenTypeIds, nextSentenceLabel: isRandom ? 1 : 0 };
      }
      reservoir.push(doc);
      if (reservoir.length > RESERVOIR_DOCS) reservoir.shift();
    }
  }

  /** The epoch's examples after a seeded shuffle buffer (validation: unshuffled). */
  async *examples(split: 'train' | 'validation', epoch: number): AsyncGenerator<Example> {
    if (split === 'validation') {
      yield* this.pairs(split, VALIDATION_EPOCH);
      return;
    }
    const rng = new Rng(mixSeed(this.options.seed, STREAM_SHUFFLE, epoch));
    const buffer: Example[] = [];
    for await (const ex of this.pairs(split, epoch)) {
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

  /** Masks and pads examples into a batch; the k-th example of an epoch gets masks seeded by (seed, epoch, k). */
  collate(examples: readonly Example[], epoch: number, firstIndex: number): Batch {
    const L = this.options.seqLength;
    const B = examples.length;
    const inputIds = new Int32Array(B * L).fill(this.tokenizer.padTokenId);
    const tokenTypeIds = new Int32Array(B * L);
    const attentionMask = new Int32Array(B * L);
    const labels = new Int32Array(B * L).fill(IGNORE_INDEX);
    const nextSentenceLabel = new Int32Array(B);
    let tokens = 0;
    let maskedTokens = 0;
    examples.forEach((ex, r) => {
      const rng = new Rng(mixSeed(this.options.seed, STREAM_MASKS, epoch, firstIndex + r));
      const masked = maskTokens(ex.inputIds, rng, this.masking);
      inputIds.set(masked.inputIds, r * L);
      labels.set(masked.labels, r * L);
      tokenTypeIds.set(ex.tokenTypeIds, r * L);
      attentionMask.fill(1, r * L, r * L + ex.inputIds.length);
      nextSentenceLabel[r] = ex.nextSentenceLabel;
      tokens += ex.inputIds.length;
      for (const l of masked.labels) if (l !== IGNORE_INDEX) maskedTokens++;
    });
    return { batchSize: B, seqLength: L, inputIds, tokenTypeIds, attentionMask, labels, nextSentenceLabel, tokens, maskedTokens };
  }

  /** An endless stream of training batches from `start`, crossing epochs; `position` is where the next batch starts. */
  trainBatches(batchSize: number, start: DataPosition = { epoch: 0, index: 0 }): TrainBatches {
    return new TrainBatches(this, batchSize, start);
  }

  /** Up to `count` fixed validation batches (the same examples and masks every time). */
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
export class TrainBatches {
  private epoch: number;
  private index: number;
  private iterator: AsyncGenerator<Example> | null = null;
  private skip: number;

  constructor(
    private readonly data: PretrainingData,
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
          `data: the training split has no examples (corpus ${this.data.options.paths.join(', ')}: no document with text outside the validation split; ` +
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
    // Masks are seeded per example; a batch crossing an epoch uses the first example's coordinates
    // for all rows (still deterministic in the position).
    return this.data.collate(exs, epoch, first);
  }

  async close(): Promise<void> {
    await this.iterator?.return(undefined);
    this.iterator = null;
  }
}
