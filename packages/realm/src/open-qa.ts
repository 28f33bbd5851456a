// Question answering over your own documents with REALM:
// - `splitIntoBlocks`: documents -> evidence blocks as REALM's block records are (chunks of at most
//   288 wordpieces, here cut at sentence ends where possible, words otherwise).
// - `RealmDocumentIndex`: the block records plus their embeddings (a RealmBlockIndex on the backend),
//   built with the embedder in batches with progress, grown incrementally, saved as safetensors
//   (`block_emb`) + JSON (`block_records.json`) and loaded back.
// - `RealmOpenQA`: question text -> answer text, the retrieved blocks with their scores, and the answer
//   span, through RealmForOpenQA.

import { openSafetensorsBytes, serializeSafetensors } from '@lm/dist-ckpt';
import { concat, fromHost, noGrad, scope, tensor, type Backend, type Tensor } from '@lm/tensor-gpu';
import { RealmBlockIndex, type BlockIndexOptions } from './block-index.js';
import { RealmError } from './errors.js';
import { RealmForOpenQA, type RealmEmbedder } from './modeling.js';
import { BLOCK_RECORDS_FILE, parseBlockRecords, RealmRetriever } from './retrieval.js';
import type { RealmTokenizer } from './tokenizer.js';

/** REALM's evidence blocks hold at most 288 wordpieces. */
export const REALM_BLOCK_TOKENS = 288;
export const BLOCK_EMB_FILE = 'block_emb.safetensors';

/** A document: its text, or its text and a title (the title starts each of its blocks). */
export type RealmDocument = string | { title?: string; text: string };

export interface SplitOptions {
  /** Wordpieces per block, [CLS] and [SEP] included; default 288. */
  maxBlockTokens?: number;
}

/**
 * Splits documents into evidence blocks of at most maxBlockTokens wordpieces with [CLS] and [SEP]:
 * whole sentences while they fit, a long sentence by words, a long word by its own pieces.
 */
export function splitIntoBlocks(documents: readonly RealmDocument[], tokenizer: RealmTokenizer, options: SplitOptions = {}): string[] {
  const maxTokens = options.maxBlockTokens ?? REALM_BLOCK_TOKENS;
  if (!Array.isArray(documents) || documents.length === 0) throw new RealmError('splitIntoBlocks: the document collection is empty');
  if (!Number.isInteger(maxTokens) || maxTokens < 8) throw new RealmError(`splitIntoBlocks: maxBlockTokens must be an integer >= 8, got ${maxTokens}`);
  const blocks: string[] = [];
  documents.forEach((doc, d) => {
    const { title, text } = typeof doc === 'string' ? { title: undefined, text: doc } : doc;
    if (typeof text !== 'string') throw new RealmError(`splitIntoBlocks: document ${d} has no text`);
    const head = title ? `${title.trim()}. ` : '';
    const budget = maxTokens - 2 - (head ? tokenizer.tokenize(head).length : 0);
    if (budget < 4) throw new RealmError(`splitIntoBlocks: the title of document ${d} leaves no room in a ${maxTokens}-token block`);
    // Units that fit the budget: sentences, or the words of a sentence that does not.
    const units: { text: string; n: number }[] = [];
    for (const sentence of text.split(/(?<=[.!?])\s+/).map((s) => s.trim()).filter(Boolean)) {
      const n = tokenizer.tokenize(sentence).length;
      if (n <= budget) units.push({ text: sentence, n });
      else for (const word of sentence.split(/\s+/)) units.push({ text: word, n: Math.min(budget, tokenizer.tokenize(word).length) });
    }
    let current: string[] = [];
    let used = 0;
    for (const unit of units) {
      if (used + unit.n > budget && current.length) {
        blocks.push(head + current.join(' '));
        current = [];
        used = 0;
      }
      current.push(unit.text);
      used += unit.n;
    }
    if (current.length) blocks.push(head + current.join(' '));
  });
  return blocks;
}

export interface IndexProgress {
  /** Blocks embedded so far. */
  done: number;
  total: number;
}

export interface BuildIndexOptions extends SplitOptions, BlockIndexOptions {
  /** Blocks embedded per forward; default 16. */
  batchSize?: number;
  /** Called after every batch. */
  onProgress?: (progress: IndexProgress) => void;
}

/** A one-line text progress bar: `[#####.....] 50/100 blocks`. */
export function progressBar({ done, total }: IndexProgress, width = 30): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} blocks`;
}

/** The smallest group of embedded rows appended to an index at once. */
const MIN_APPEND_ROWS = 256;

/**
 * Embeds texts with the embedder ([CLS] text [SEP], truncated to maxLength), batch by batch, appending
 * the rows to index, or writing them from row `at` on when given.
 */
async function embedInto(index: RealmBlockIndex, embedder: RealmEmbedder, tokenizer: RealmTokenizer, texts: readonly string[], options: BuildIndexOptions, at: number | null = null): Promise<void> {
  const batchSize = options.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RealmError(`RealmDocumentIndex: batchSize must be a positive integer, got ${batchSize}`);
  const maxLength = Math.min(options.maxBlockTokens ?? REALM_BLOCK_TOKENS, embedder.config.maxPositionEmbeddings);
  const backend = index.backend;
  // Appended rows are gathered and added in groups at least as large as the index, so each append's
  // copy of the last shard is paid O(log n) times overall, not once per batch.
  let pending: Tensor[] = [];
  let pendingRows = 0;
  const flush = () => {
    if (pending.length === 0) return;
    const rows = pending.length === 1 ? pending[0] : noGrad(() => concat(pending, 0));
    index.add(rows);
    if (rows !== pending[0]) rows.dispose();
    for (const t of pending) t.dispose();
    pending = [];
    pendingRows = 0;
  };
  try {
    for (let start = 0; start < texts.length; start += batchSize) {
    const batch = texts.slice(start, start + batchSize);
    const encoded = tokenizer.encodeBatch(batch, { padding: true, truncation: true, maxLength });
    const rows = noGrad(() =>
      scope(() =>
        embedder.forward({
          inputIds: tensor(encoded.inputIds, { dtype: 'int32', backend }),
          attentionMask: tensor(encoded.attentionMask!, { dtype: 'int32', backend }),
          tokenTypeIds: tensor(encoded.tokenTypeIds!, { dtype: 'int32', backend }),
        }).projectedScore,
      ),
    ); // [batch, proj]
    if (at === null) {
      pending.push(rows);
      pendingRows += rows.shape[0];
      if (pendingRows >= Math.max(MIN_APPEND_ROWS, index.numBlocks)) flush();
    } else {
      index.write(at + start, rows);
      rows.dispose();
    }
    await backend.sync(); // wait for the device, so progress is real and the page stays responsive
    options.onProgress?.({ done: Math.min(start + batchSize, texts.length), total: texts.length });
    }
    flush();
  } finally {
    for (const t of pending) t.dispose();
  }
}

/** Block records and their embeddings: the retrieval side of REALM over your own documents. */
export class RealmDocumentIndex {
  readonly records: string[];
  readonly index: RealmBlockIndex;

  constructor(records: readonly string[], index: RealmBlockIndex) {
    if (records.length !== index.numBlocks) {
      throw new RealmError(`RealmDocumentIndex: ${records.length} block records but the index has ${index.numBlocks} rows`);
    }
    this.records = [...records];
    this.index = index;
  }

  /** Splits documents into blocks and embeds them with the embedder (its backend). */
  static async build(embedder: RealmEmbedder, tokenizer: RealmTokenizer, documents: readonly RealmDocument[], options: BuildIndexOptions = {}): Promise<RealmDocumentIndex> {
    const blocks = splitIntoBlocks(documents, tokenizer, options);
    const backend = embedder.getInputEmbeddings().weight.backend;
    const index = new RealmBlockIndex(embedder.config.retrieverProjSize, backend, options);
    try {
      await embedInto(index, embedder, tokenizer, blocks, options);
    } catch (e) {
      index.dispose();
      throw e;
    }
    return new RealmDocumentIndex(blocks, index);
  }

  get numBlocks(): number {
    return this.records.length;
  }

  /** Adds documents: their blocks are embedded and appended (earlier block ids stay valid). */
  async addDocuments(embedder: RealmEmbedder, tokenizer: RealmTokenizer, documents: readonly RealmDocument[], options: BuildIndexOptions = {}): Promise<string[]> {
    if (embedder.config.retrieverProjSize !== this.index.dim) {
      throw new RealmError(`RealmDocumentIndex.addDocuments: the embedder projects to ${embedder.config.retrieverProjSize} but the index is ${this.index.dim} wide`);
    }
    const blocks = splitIntoBlocks(documents, tokenizer, options);
    const before = this.index.numBlocks;
    await embedInto(this.index, embedder, tokenizer, blocks, options);
    if (this.index.numBlocks !== before + blocks.length) throw new RealmError('RealmDocumentIndex.addDocuments: the index did not grow by the new blocks');
    this.records.push(...blocks);
    return blocks;
  }

  /**
   * Re-embeds every block with the (trained) embedder, in place: the reference refreshes its index
   * asynchronously during training; call this every N steps (see `refreshEvery`).
   */
  async refresh(embedder: RealmEmbedder, tokenizer: RealmTokenizer, options: Omit<BuildIndexOptions, keyof SplitOptions | keyof BlockIndexOptions> = {}): Promise<void> {
    if (embedder.config.retrieverProjSize !== this.index.dim) {
      throw new RealmError(`RealmDocumentIndex.refresh: the embedder projects to ${embedder.config.retrieverProjSize} but the index is ${this.index.dim} wide`);
    }
    await embedInto(this.index, embedder, tokenizer, this.records, options, 0);
  }

  /** The files: block_emb.safetensors (`block_emb` F32 [numBlocks, dim]) and block_records.json. */
  async files(): Promise<Record<string, Uint8Array | string>> {
    const rows = await this.index.toHost();
    const bytes = await serializeSafetensors({ block_emb: { dtype: 'F32', shape: [this.index.numBlocks, this.index.dim], data: rows } }, { metadata: { format: 'pt' } });
    return { [BLOCK_EMB_FILE]: bytes, [BLOCK_RECORDS_FILE]: `${JSON.stringify(this.records)}\n` };
  }

  /** Writes the files into dir (Node). */
  async save(dir: string): Promise<void> {
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    const path = await import(/* @vite-ignore */ 'node:path');
    await fs.mkdir(dir, { recursive: true });
    for (const [name, data] of Object.entries(await this.files())) await fs.writeFile(path.join(dir, name), data);
  }

  /** Reads an index from its files' contents (the safetensors bytes and the records JSON). */
  static async fromFiles(blockEmb: Uint8Array, recordsJson: string, backend: Backend, options: BlockIndexOptions = {}): Promise<RealmDocumentIndex> {
    const file = await openSafetensorsBytes(blockEmb, BLOCK_EMB_FILE);
    try {
      const info = file.tensors.find((t) => t.name === 'block_emb');
      if (!info) throw new RealmError(`RealmDocumentIndex: ${BLOCK_EMB_FILE} holds no 'block_emb' tensor`);
      if (info.shape.length !== 2) throw new RealmError(`RealmDocumentIndex: block_emb must be [numBlocks, dim], got [${info.shape.join(',')}]`);
      const { data } = await file.readTensor('block_emb', { as: 'float32' });
      const index = RealmBlockIndex.fromHost(data as Float32Array, info.shape[0], info.shape[1], backend, options);
      return new RealmDocumentIndex(parseBlockRecords(recordsJson), index);
    } finally {
      await file.close();
    }
  }

  /** Loads block_emb.safetensors and block_records.json from dir (Node). */
  static async load(dir: string, backend: Backend, options: BlockIndexOptions = {}): Promise<RealmDocumentIndex> {
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    const path = await import(/* @vite-ignore */ 'node:path');
    const [bytes, records] = await Promise.all([fs.readFile(path.join(dir, BLOCK_EMB_FILE)), fs.readFile(path.join(dir, BLOCK_RECORDS_FILE), 'utf8')]);
    return RealmDocumentIndex.fromFiles(new Uint8Array(bytes), records, backend, options);
  }

  dispose(): void {
    this.index.dispose();
  }
}

/**
 * A training-loop hook that refreshes the index every `every` steps: `await refresh(step)` after each
 * optimizer step re-embeds the blocks when step is a multiple of every (and resolves at once otherwise).
 */
export function refreshEvery(every: number, docs: RealmDocumentIndex, embedder: RealmEmbedder, tokenizer: RealmTokenizer, options: Omit<BuildIndexOptions, keyof SplitOptions | keyof BlockIndexOptions> = {}): (step: number) => Promise<boolean> {
  if (!Number.isInteger(every) || every < 1) throw new RealmError(`refreshEvery: every must be a positive integer, got ${every}`);
  return async (step) => {
    if (step <= 0 || step % every !== 0) return false;
    const wasTraining = embedder.training;
    embedder.eval();
    try {
      await docs.refresh(embedder, tokenizer, options);
    } finally {
      if (wasTraining) embedder.train();
    }
    return true;
  };
}

/** One retrieved block with its relevance score. */
export interface RetrievedBlock {
  /** Its id in the index (row of block_emb, entry of the block records). */
  id: number;
  text: string;
  /** question . block */
  score: number;
}

export interface OpenQAAnswer {
  question: string;
  /** The answer, decoded from the predicted span's wordpieces. */
  answer: string;
  /** The retrieved blocks, best first. */
  blocks: RetrievedBlock[];
  /** Where the answer is: the block (index into `blocks`), token positions in the reader's input, and
   *  the character range of the answer in the block's text when it can be found there (else null). */
  span: { block: number; blockId: number; startToken: number; endToken: number; charStart: number | null; charEnd: number | null };
}

/** Question answering over an index with RealmForOpenQA: `await qa.ask('who ...?')`. */
export class RealmOpenQA {
  readonly model: RealmForOpenQA;
  readonly tokenizer: RealmTokenizer;

  constructor(model: RealmForOpenQA, tokenizer: RealmTokenizer) {
    this.model = model;
    this.tokenizer = tokenizer;
  }

  /**
   * Loads a model saved by `RealmForOpenQA.savePretrained` (config, weights with block_emb, block_records.json,
   * tokenizer files) from dir (Node) on backend.
   */
  static async fromPretrained(dir: string, options: { backend?: Backend; tokenizerConfig?: Record<string, unknown> } = {}): Promise<RealmOpenQA> {
    const retriever = await RealmRetriever.fromPretrained(dir, { tokenizerConfig: options.tokenizerConfig });
    const model = await RealmForOpenQA.fromPretrained(dir, { backend: options.backend, modelOptions: { retriever } });
    return new RealmOpenQA(model, retriever.tokenizer);
  }

  /**
   * Uses a document index: the model searches its rows and the retriever reads its records. The caller
   * keeps the index alive while it is used; `model.savePretrained` then writes its rows as block_emb.
   */
  useIndex(docs: RealmDocumentIndex): void {
    if (docs.numBlocks === 0) throw new RealmError('RealmOpenQA.useIndex: the document index is empty');
    this.model.setIndex(docs.index);
    this.model.retriever = new RealmRetriever(docs.records, this.tokenizer);
  }

  async ask(question: string): Promise<OpenQAAnswer> {
    if (typeof question !== 'string' || question.trim() === '') throw new RealmError('RealmOpenQA.ask: the question is empty');
    const retriever = this.model.retriever;
    if (!retriever) throw new RealmError('RealmOpenQA.ask: no documents; call useIndex(index) or load a model with its retriever');
    const backend = this.model.getInputEmbeddings().weight.backend;
    const encoded = this.tokenizer.encode(question, null, { truncation: true, maxLength: this.model.config.maxPositionEmbeddings });
    const ids = fromHost(Int32Array.from(encoded.inputIds), [1, encoded.inputIds.length], 'int32', backend);
    const out = await noGrad(() => this.model.forward({ inputIds: ids }));
    try {
      // The forward read the ids and the reader's choice back already; only the scores are new.
      const { blockIds, blockIdx: block, startPos: startToken, endPos: endToken, answerIds } = out.host;
      const scores = Array.from(await out.retriever.retrievedLogits.data(), Number);
      const answer = this.tokenizer.decode(answerIds, { skipSpecialTokens: true });
      const blocks = blockIds.map((id, i) => ({ id, text: retriever.blockRecords[id], score: scores[i] }));
      const text = blocks[block].text;
      const at = answer ? text.toLowerCase().indexOf(answer.toLowerCase()) : -1;
      return {
        question,
        answer,
        blocks,
        span: { block, blockId: blockIds[block], startToken, endToken, charStart: at >= 0 ? at : null, charEnd: at >= 0 ? at + answer.length : null },
      };
    } finally {
      ids.dispose();
      disposeDeep(out);
    }
  }
}

/** Frees every tensor of a nested output object. */
function disposeDeep(value: unknown): void {
  if (value && typeof value === 'object') {
    if ('dispose' in value && typeof (value as { dispose: unknown }).dispose === 'function' && 'shape' in value) (value as { dispose(): void }).dispose();
    else for (const v of Object.values(value)) disposeDeep(v);
  }
}
