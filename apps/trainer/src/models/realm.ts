// The REALM family for the trainer (Guu et al. 2020, "REALM: Retrieval-Augmented Language Model
// Pre-Training"; the reference is Hugging Face transformers `models/realm/modeling_realm.py` +
// `retrieval_realm.py`, 4.37), over a document collection given as block records
// (`objectives.<name>.blockRecordsPath`, a JSON array of block texts, RealmRetriever's format). Three objectives:
//
// - `openqa`: fine-tunes `RealmForOpenQA` on question/answer pairs as its forward computes the losses
//   in training mode: the question's projection against every block of the index (`block_emb`), the
//   top searcher_beam_size blocks, the (question, block) pairs of the retriever with the answer's spans
//   in them, retrieved_logits = block_emb[top] . question (the gradient reaches the embedder through
//   the question only), then the reader on the first reader_beam_size pairs: retriever loss (marginal
//   log-likelihood of the blocks that hold the answer) + reader loss (of the correct spans). The
//   export is a folder `RealmForOpenQA.fromPretrained` / `RealmOpenQA.fromPretrained` opens, with its
//   index (block_emb of the final embedder) and block_records.json.
// - `ict`: the inverse cloze task, ORQA's warm-up of the retriever (RealmForOpenQA's embedder) that
//   open-QA fine-tuning starts from: a sentence of a block must find the rest of its block among the
//   batch's blocks, both sides through the embedder with gradients. Exported as `openqa` exports.
// - `knowledge-mlm`: REALM's pre-training objective on `RealmKnowledgeAugEncoder`: a sentence is
//   masked as BERT does, an embedder retrieves the top num_candidates blocks for it, the encoder reads
//   each (masked sentence, block) pair, and the loss is the masked tokens' log-likelihood marginalised
//   over the candidates under softmax(relevance) (`mlm_mask` = the masked positions), so the embedder
//   learns from which blocks help. Exported as `embedder/` and `encoder/` folders.
//
// The index is refreshed during training as the reference's asynchronous re-embedding does, but
// synchronously: every `refreshEvery` training batches (and before the first) the whole collection is
// re-embedded with the current embedder, in evaluation mode, without gradients. Retrieval is then
// exact top-k on the backend, inside the objective's synchronous compute: every (question, block) pair
// of the collection is tokenised on the host when the batch is collated and the retrieved rows are
// gathered on the backend (docs/decisions/0019-realm-training.md says why, and what it costs).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Embedding, Tokenizer } from '@lm/layers';
import {
  RealmConfig,
  RealmEmbedder,
  RealmForOpenQA,
  RealmKnowledgeAugEncoder,
  RealmPreTrainedModel,
  RealmRetriever,
  RealmTokenizer,
  parseBlockRecords,
  type RealmConfigFields,
} from '@lm/realm';
import { arange, concat, crossEntropy, fromHost, full, isGradEnabled, keep, matmulTopk, noGrad, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { ConfigError, DataError } from '../core/errors.js';
import type { FamilyObjective, ModelFamily, ObjectiveContext, ResolvedModelConfig, TrainableModel } from '../core/family.js';
import { IGNORE_INDEX, type Objective, type ObjectiveMetrics, type ObjectiveOutput, type TokenizedDocument } from '../core/objective.js';
import type { Rng } from '../core/rng.js';
import { loadWordPieceTokenizer } from '../data/tokenizer.js';
import { maskTokens, replacementIds, type MaskingOptions } from '../objectives/masking.js';
import { readPretrainedConfig, writeTokenizerFiles } from './files.js';

const FIELDS = Object.keys(RealmConfig.fields) as (keyof RealmConfigFields)[];

// ---- the collection --------------------------------------------------------------------------------

/** What both objectives read from `objectives.<name>`. */
interface CollectionSettings {
  /** The block records (JSON array of block texts). */
  blockRecordsPath: string;
  /** Re-embed the collection every N training batches (and before the first). */
  refreshEvery: number;
}

function collectionSettings(objective: string, settings: Record<string, unknown>): CollectionSettings {
  const known = ['blockRecordsPath', 'refreshEvery'];
  for (const key of Object.keys(settings)) if (!known.includes(key)) throw new ConfigError(`objectives.${objective}.${key}: unknown field (known: ${known.join(', ')})`);
  const { blockRecordsPath, refreshEvery = 10 } = settings;
  if (typeof blockRecordsPath !== 'string' || blockRecordsPath === '') {
    throw new ConfigError(`objectives.${objective}.blockRecordsPath: the document collection is required (a block_records.json: a JSON array of block texts)`);
  }
  if (!Number.isInteger(refreshEvery) || (refreshEvery as number) < 1) {
    throw new ConfigError(`objectives.${objective}.refreshEvery: expected an integer >= 1 (training batches between re-embeddings of the collection), got ${JSON.stringify(refreshEvery)}`);
  }
  return { blockRecordsPath, refreshEvery: refreshEvery as number };
}

function parseRecords(text: string, path: string): string[] {
  let records: string[];
  try {
    records = parseBlockRecords(text, path);
  } catch (e) {
    throw new DataError(`objectives: ${(e as Error).message}`);
  }
  if (records.length === 0) throw new DataError(`objectives: ${path} holds no block records (the document collection is empty)`);
  return records;
}

/** The ids of the `k` blocks with the largest inner product with each projection [Q, proj], best first (ties to the lower id): the engine's fused search, as `RealmBlockIndex.search`; a search, so no gradient. */
function topIds(projection: Tensor, blockEmb: Tensor, k: number): Tensor {
  const { values, indices } = matmulTopk(projection.detach(), blockEmb, k); // [Q, k]
  values.dispose();
  return indices;
}

function readRecords(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new DataError(`objectives: the block records ${path} cannot be read`);
  }
  return parseRecords(text, path);
}

/**
 * The records read for a run's settings. The loop builds the objective, then the model, handing both
 * the same `objectives.<name>` settings object: the collection is read and parsed once for the two.
 */
const collections = new WeakMap<Record<string, unknown>, { path: string; records: string[] }>();

/** The collection's settings and its block records (read once per settings object). */
function collection(objective: string, settings: Record<string, unknown>): CollectionSettings & { records: string[] } {
  const checked = collectionSettings(objective, settings);
  const cached = collections.get(settings);
  if (cached?.path === checked.blockRecordsPath) return { ...checked, records: cached.records };
  const records = readRecords(checked.blockRecordsPath);
  collections.set(settings, { path: checked.blockRecordsPath, records });
  return { ...checked, records };
}

function realmTokenizer(tokenizer: Tokenizer): RealmTokenizer {
  if (!(tokenizer instanceof RealmTokenizer)) throw new ConfigError('data.tokenizer: the realm family trains with RealmTokenizer (its loader reads a WordPiece vocab.txt or tokenizer.json)');
  return tokenizer;
}

/** The blocks as the embedder reads them ([CLS] block [SEP], truncated to maxLength), padded per chunk when embedded. */
interface BlockInputs {
  encoded: { inputIds: number[]; attentionMask: number[]; tokenTypeIds: number[] }[];
}

function blockInputs(records: readonly string[], tokenizer: RealmTokenizer, maxLength: number): BlockInputs {
  const encoded = records.map((text) => {
    const e = tokenizer.encodeBatch([text], { truncation: true, maxLength });
    return { inputIds: e.inputIds[0], attentionMask: e.attentionMask![0], tokenTypeIds: e.tokenTypeIds![0] };
  });
  return { encoded };
}

/** Rows per embedder forward when the collection is (re-)embedded. */
const EMBED_CHUNK = 64;

/**
 * block_emb [numBlocks, retrieverProjSize] of the embedder, synchronously: evaluation mode (no dropout),
 * no gradients, chunks of EMBED_CHUNK blocks padded to their longest. The result is kept (outside scopes).
 */
function embedBlocks(embedder: RealmEmbedder, blocks: BlockInputs, backend: Backend): Tensor {
  const wasTraining = embedder.training;
  embedder.eval();
  try {
    return keep(
      scope(() =>
        noGrad(() => {
          const parts: Tensor[] = [];
          for (let start = 0; start < blocks.encoded.length; start += EMBED_CHUNK) {
            const chunk = blocks.encoded.slice(start, start + EMBED_CHUNK);
            const width = Math.max(...chunk.map((e) => e.inputIds.length));
            const pad = (field: 'inputIds' | 'attentionMask' | 'tokenTypeIds') => {
              const out = new Int32Array(chunk.length * width);
              chunk.forEach((e, r) => out.set(e[field], r * width));
              return fromHost(out, [chunk.length, width], 'int32', backend);
            };
            parts.push(embedder.forward({ inputIds: pad('inputIds'), attentionMask: pad('attentionMask'), tokenTypeIds: pad('tokenTypeIds') }).projectedScore); // [chunk, proj]
          }
          return parts.length === 1 ? parts[0] : concat(parts, 0); // [numBlocks, proj]
        }),
      ),
    );
  } finally {
    embedder.train(wasTraining);
  }
}

/**
 * Re-embeds the collection when due: before the first batch this process computes, then every
 * `refreshEvery` training batches (evaluation batches never trigger a refresh once there is an index).
 */
class IndexRefresher {
  private trainBatches = 0;
  private indexed = new WeakSet<object>();

  constructor(private readonly refreshEvery: number) {}

  /** Calls `reembed` when the index is due, then counts the batch when it is a training one. */
  beforeBatch(model: object, training: boolean, reembed: () => void): void {
    const due = !this.indexed.has(model) || (training && this.trainBatches % this.refreshEvery === 0);
    if (due) {
      reembed();
      this.indexed.add(model);
    }
    if (training) this.trainBatches++;
  }
}

/** Batches that train: the model in training mode with gradients recorded (evaluation runs under noGrad). */
const isTrainingBatch = (module: { training: boolean }): boolean => module.training && isGradEnabled();

/**
 * `truncate_sequences(..., 'longest_first')` + `build_inputs_with_special_tokens`: [CLS] a [SEP] b [SEP]
 * in at most maxLength tokens, one token at a time off the longer side (the second on ties), as the
 * slow tokenizer pairs the question with a block.
 */
function pairIds(a: readonly number[], b: readonly number[], maxLength: number, cls: number, sep: number): { ids: number[]; firstLength: number } {
  let la = a.length;
  let lb = b.length;
  while (la + lb + 3 > maxLength && la + lb > 0) {
    if (la > lb) la--;
    else lb--;
  }
  return { ids: [cls, ...a.slice(0, la), sep, ...b.slice(0, lb), sep], firstLength: la };
}

/** Special ids the objectives frame pairs with. */
function specialIds(tokenizer: RealmTokenizer): { cls: number; sep: number; pad: number; mask: number } {
  const { clsTokenId: cls, sepTokenId: sep, padTokenId: pad, maskTokenId: mask } = tokenizer;
  if (cls === null || sep === null || pad === null || mask === null) throw new DataError('data.tokenizer: REALM needs [CLS], [SEP], [PAD] and [MASK] in the vocabulary');
  return { cls, sep, pad, mask };
}

// ---- open-QA fine-tuning -----------------------------------------------------------------------------

/** A question and its answer, token ids without special tokens. */
interface QAExample {
  question: number[];
  answer: number[];
}

/** One question paired with every block of the collection, as the retriever would pair it with any of them. */
interface QARow {
  /** [CLS] question [SEP] */
  question: Int32Array;
  /** [numBlocks, seq] each. */
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  /** 1 on the block's own tokens (not special, segment 1): where answer spans may lie. */
  blockMask: Int32Array;
  seq: number;
  /** [numBlocks, maxAnswers] gold spans (-1 = none), at least one column. */
  startPos: Int32Array;
  endPos: Int32Array;
  maxAnswers: number;
  /** [numBlocks] 1 where the block holds the answer. */
  hasAnswers: Int32Array;
}

interface QABatch {
  rows: QARow[];
  tokens: number;
}

/** The trainer's RealmForOpenQA: the module, and the collection its index embeds. */
type OpenQATrainable = TrainableModel & { readonly module: RealmForOpenQA; readonly blockRecords: readonly string[] };

export class OpenQAObjective implements Objective<QAExample, QABatch, OpenQATrainable> {
  readonly name = 'openqa';
  private readonly retriever: RealmRetriever;
  private readonly blockIds: number[][];
  private readonly blocks: BlockInputs;
  private readonly refresher: IndexRefresher;
  private readonly special: { cls: number; sep: number; pad: number };

  constructor(
    tokenizer: RealmTokenizer,
    readonly records: readonly string[],
    private readonly options: { seqLength: number; refreshEvery: number; backend: Backend },
  ) {
    this.retriever = new RealmRetriever(records, tokenizer);
    this.special = specialIds(tokenizer);
    this.blockIds = records.map((text) => tokenizer.encode(text, null, { addSpecialTokens: false }).inputIds);
    this.blocks = blockInputs(records, tokenizer, options.seqLength);
    this.refresher = new IndexRefresher(options.refreshEvery);
  }

  /** A document is a question (its first sentence) and its answer (the rest). */
  async *examples(documents: AsyncIterable<TokenizedDocument>): AsyncGenerator<QAExample> {
    for await (const doc of documents) {
      if (doc.sentences.length < 2) throw new DataError(`data: document ${doc.id} has ${doc.sentences.length} sentence(s); open-QA needs a question (the first sentence) and its answer (the rest)`);
      yield { question: doc.sentences[0], answer: doc.sentences.slice(1).flat() };
    }
  }

  /** The retriever's pairs of the question with every block, and the answer's spans in each. */
  collate(examples: readonly QAExample[]): QABatch {
    const { cls, sep, pad } = this.special;
    let tokens = 0;
    const rows = examples.map(({ question, answer }) => {
      const pairs = this.blockIds.map((block) => pairIds(question, block, this.options.seqLength, cls, sep));
      const n = pairs.length;
      const seq = Math.max(...pairs.map((p) => p.ids.length)); // padded to the longest pair, as the retriever pads
      const inputIds = new Int32Array(n * seq).fill(pad);
      const attentionMask = new Int32Array(n * seq);
      const tokenTypeIds = new Int32Array(n * seq);
      const blockMask = new Int32Array(n * seq);
      pairs.forEach(({ ids, firstLength }, b) => {
        inputIds.set(ids, b * seq);
        attentionMask.fill(1, b * seq, b * seq + ids.length);
        tokenTypeIds.fill(1, b * seq + firstLength + 2, b * seq + ids.length);
        blockMask.fill(1, b * seq + firstLength + 2, b * seq + ids.length - 1);
      });
      const answers = this.retriever.blockHasAnswer(pairs.map((p) => p.ids), [answer]);
      // At least one column: -1 matches no span, as an empty answer list gives no correct span.
      const maxAnswers = Math.max(1, answers.maxAnswers);
      const spans = (rowsOf: number[][]) => {
        const out = new Int32Array(n * maxAnswers).fill(-1);
        rowsOf.forEach((r, b) => out.set(r, b * maxAnswers));
        return out;
      };
      tokens += question.length + 2;
      return {
        question: Int32Array.from([cls, ...question, sep]),
        inputIds,
        attentionMask,
        tokenTypeIds,
        blockMask,
        seq,
        startPos: spans(answers.startPos),
        endPos: spans(answers.endPos),
        maxAnswers,
        hasAnswers: Int32Array.from(answers.hasAnswers, Number),
      };
    });
    return { rows, tokens };
  }

  compute(model: OpenQATrainable, batch: QABatch): ObjectiveOutput {
    const qa = model.module;
    const { backend } = this.options;
    const { readerBeamSize, readerSeqLen } = qa.config;
    if (readerSeqLen !== this.options.seqLength) {
      throw new ConfigError(`data.seqLength: ${this.options.seqLength} must equal model.config.readerSeqLen (${readerSeqLen}): the reader reads (question, block) pairs of that length`);
    }
    const numBlocks = this.records.length;
    const k = qa.searcherBeamSize; // searcher_beam_size in training, reader_beam_size in evaluation
    if (k > numBlocks) throw new ConfigError(`model.config: k = ${k} (${qa.training ? 'searcherBeamSize' : 'readerBeamSize'}) is larger than the collection (${numBlocks} blocks)`);
    this.refresher.beforeBatch(model, isTrainingBatch(qa), () => qa.setBlockEmb(embedBlocks(qa.embedder, this.blocks, backend)));
    const blockEmb = qa.block_emb; // [numBlocks, proj]

    const losses: Tensor[] = [];
    const sums: Record<string, Tensor[]> = { retrieverLoss: [], readerLoss: [], exactMatch: [], recall: [] };
    for (const row of batch.rows) {
      const question = fromHost(row.question, [1, row.question.length], 'int32', backend);
      const projection = qa.embedder.forward({ inputIds: question }).projectedScore; // [1, proj]
      // The top k blocks by inner product with the current index: no gradient flows through the search.
      const ids = topIds(projection, blockEmb, k).reshape(k); // [k], best first
      const retrieved = (data: Int32Array, width: number) => fromHost(data, [numBlocks, width], 'int32', backend).indexSelect(0, ids); // [k, width]
      // retrieved_logits: block_emb[ids] . question, the gradient reaching the embedder through the question.
      const relevance = blockEmb.indexSelect(0, ids).matmul(projection.reshape(-1, 1)).reshape(k); // [k]
      const beam = (t: Tensor) => t.slice(0, 0, readerBeamSize); // [readerBeam, seq]
      const out = qa.reader.forward({
        inputIds: beam(retrieved(row.inputIds, row.seq)),
        attentionMask: beam(retrieved(row.attentionMask, row.seq)),
        tokenTypeIds: beam(retrieved(row.tokenTypeIds, row.seq)),
        relevanceScore: relevance,
        blockMask: retrieved(row.blockMask, row.seq).ne(0),
        startPositions: retrieved(row.startPos, row.maxAnswers),
        endPositions: retrieved(row.endPos, row.maxAnswers),
        hasAnswers: fromHost(row.hasAnswers, [numBlocks], 'int32', backend).indexSelect(0, ids).ne(0),
      });
      losses.push(out.loss!);
      sums.retrieverLoss.push(out.retrieverLoss!);
      sums.readerLoss.push(out.readerLoss!);
      // Exact match: the predicted span (block blockIdx, candidate `candidate`) is a gold occurrence of the answer.
      const [beamRows, numSpans] = out.readerCorrect!.shape;
      const atBlock = arange(0, beamRows, 1, { dtype: 'int32', backend }).eq(out.blockIdx).toFloat().reshape(beamRows, 1);
      const atSpan = arange(0, numSpans, 1, { dtype: 'int32', backend }).eq(out.candidate).toFloat().reshape(1, numSpans);
      sums.exactMatch.push(out.readerCorrect!.toFloat().mul(atBlock).mul(atSpan).sum());
      // Recall@k: a retrieved block holds the answer.
      sums.recall.push(out.retrieverCorrect!.toFloat().max());
    }
    const total = (ts: Tensor[]) => ts.reduce((a, b) => a.add(b));
    const lossSum = total(losses);
    return {
      loss: lossSum.divScalar(batch.rows.length),
      sums: {
        lossSum,
        questions: full([], batch.rows.length, { backend }),
        ...Object.fromEntries(Object.entries(sums).map(([key, ts]) => [key, total(ts)])),
      },
    };
  }

  summarize(s: Record<string, number>): ObjectiveMetrics {
    const n = Math.max(1, s.questions);
    const loss = s.lossSum / n;
    return { loss, perplexity: Math.exp(loss), exactMatch: s.exactMatch / n, recallAtK: s.recall / n, retrieverLoss: s.retrieverLoss / n, readerLoss: s.readerLoss / n };
  }

  describe(m: ObjectiveMetrics): string {
    return `exact match ${(100 * m.exactMatch).toFixed(1)}%, answer in the retrieved blocks ${(100 * m.recallAtK).toFixed(1)}% (retriever loss ${m.retrieverLoss.toFixed(3)}, reader loss ${m.readerLoss.toFixed(3)})`;
  }

  tokens(batch: QABatch): number {
    return batch.tokens;
  }
}

async function createOpenQA(config: RealmConfig, { fromPretrained, backend, settings }: { fromPretrained: string | null; backend: Backend; settings: Record<string, unknown> }, objective = 'openqa'): Promise<OpenQATrainable> {
  const blockRecords = collection(objective, settings).records;
  let model: RealmForOpenQA;
  if (fromPretrained) {
    model = await RealmForOpenQA.fromPretrained<RealmForOpenQA, RealmConfig>(fromPretrained, { backend });
    Object.assign(model.config, pick(config, ['searcherBeamSize', 'readerBeamSize', 'readerSeqLen']));
  } else {
    // block_emb holds the collection: never the reference's default 13M rows.
    model = new RealmForOpenQA(new RealmConfig({ ...pick(config, FIELDS), numBlockRecords: blockRecords.length }, config.extra), { backend });
  }
  model.train();
  return { module: model, blockRecords };
}

/** config.json + model.safetensors with block_emb (the collection embedded by the trained embedder), block_records.json and the tokenizer. */
async function exportOpenQA(model: OpenQATrainable, dir: string, tokenizer: Tokenizer): Promise<string[]> {
  const qa = model.module;
  const t = realmTokenizer(tokenizer);
  qa.setBlockEmb(embedBlocks(qa.embedder, blockInputs(model.blockRecords, t, qa.config.readerSeqLen), qa.block_emb.backend));
  qa.retriever = new RealmRetriever(model.blockRecords, t);
  qa.config.architectures = ['RealmForOpenQA'];
  await qa.savePretrained(dir);
  return ['config.json', 'model.safetensors', ...Object.keys(qa.retriever.files())];
}

function pick<T extends object, K extends keyof T>(from: T, keys: readonly K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, from[k]])) as Pick<T, K>;
}

const openQA: FamilyObjective<RealmConfig, OpenQATrainable> = {
  description: 'open-QA fine-tuning of RealmForOpenQA (retriever + reader loss over the top searcherBeamSize blocks of an index refreshed every N batches)',
  objective(ctx: ObjectiveContext) {
    const { records, refreshEvery } = collection('openqa', ctx.settings);
    return new OpenQAObjective(realmTokenizer(ctx.tokenizer), records, { seqLength: ctx.seqLength, refreshEvery, backend: ctx.backend });
  },
  createModel: (config, options) => createOpenQA(config, options),
  exportTo: exportOpenQA,
  /** The exported pipeline's answers to the prompts (questions). */
  async showcase(model, tokenizer, prompts) {
    const qa = model.module;
    qa.eval();
    const lines: string[] = [];
    for (const prompt of prompts) {
      const ids = tokenizer.encode(prompt).inputIds;
      const out = await noGrad(() => qa.forward({ inputIds: fromHost(Int32Array.from(ids), [1, ids.length], 'int32', qa.block_emb.backend) }));
      lines.push(`${prompt} => ${tokenizer.decode(await out.predictedAnswerIds.data(), { skipSpecialTokens: true })}`);
    }
    return lines;
  },
};

// ---- inverse cloze task --------------------------------------------------------------------------

/** A block of the corpus as its sentences' ids. */
type ClozeExample = number[][];

interface ClozeBatch {
  batchSize: number;
  /** [batch, querySeq]: [CLS] sentence [SEP], padded. */
  query: Int32Array;
  queryMask: Int32Array;
  querySeq: number;
  /** [batch, contextSeq]: [CLS] the block without that sentence (90%) or with it (10%) [SEP], padded. */
  context: Int32Array;
  contextMask: Int32Array;
  contextSeq: number;
  tokens: number;
}

/**
 * The inverse cloze task that warms up ORQA's and REALM's retriever (Lee et al. 2019, "Latent Retrieval
 * for Weakly Supervised Open Domain Question Answering", section 5): a random sentence of a block is the
 * pseudo-question, the rest of the block its evidence (the sentence is left in 10% of the time, so
 * word overlap still counts), and the other blocks of the batch are the negatives: softmax cross-entropy
 * of question . block over the batch. Both sides go through RealmForOpenQA's one embedder, with
 * gradients, so a random embedder learns to tell the blocks apart before open-QA fine-tuning, whose
 * retrieval gives the block side none.
 */
export class InverseClozeObjective implements Objective<ClozeExample, ClozeBatch, OpenQATrainable> {
  readonly name = 'ict';
  private readonly special: { cls: number; sep: number; pad: number };

  constructor(
    tokenizer: RealmTokenizer,
    private readonly options: { seqLength: number; keepProbability: number; backend: Backend },
  ) {
    this.special = specialIds(tokenizer);
  }

  /** Blocks of at least two sentences (one to ask, one to find). */
  async *examples(documents: AsyncIterable<TokenizedDocument>): AsyncGenerator<ClozeExample> {
    for await (const doc of documents) if (doc.sentences.length >= 2) yield doc.sentences;
  }

  collate(examples: readonly ClozeExample[], rowRng: (row: number) => Rng): ClozeBatch {
    const { cls, sep, pad } = this.special;
    const room = this.options.seqLength - 2;
    const rows = examples.map((sentences, r) => {
      const rng = rowRng(r);
      const pick = Math.floor(rng.next() * sentences.length);
      const keep = rng.next() < this.options.keepProbability;
      const rest = sentences.filter((_, i) => keep || i !== pick).flat();
      return { query: [cls, ...sentences[pick].slice(0, room), sep], context: [cls, ...rest.slice(0, room), sep] };
    });
    const padded = (seqs: number[][]) => {
      const width = Math.max(...seqs.map((x) => x.length));
      const ids = new Int32Array(seqs.length * width).fill(pad);
      const mask = new Int32Array(seqs.length * width);
      seqs.forEach((x, r) => {
        ids.set(x, r * width);
        mask.fill(1, r * width, r * width + x.length);
      });
      return { ids, mask, width };
    };
    const q = padded(rows.map((x) => x.query));
    const c = padded(rows.map((x) => x.context));
    const tokens = rows.reduce((n, x) => n + x.query.length + x.context.length, 0);
    return { batchSize: examples.length, query: q.ids, queryMask: q.mask, querySeq: q.width, context: c.ids, contextMask: c.mask, contextSeq: c.width, tokens };
  }

  compute(model: OpenQATrainable, batch: ClozeBatch): ObjectiveOutput {
    const { embedder } = model.module;
    const { backend } = this.options;
    const B = batch.batchSize;
    const embed = (ids: Int32Array, mask: Int32Array, seq: number) =>
      embedder.forward({ inputIds: fromHost(ids, [B, seq], 'int32', backend), attentionMask: fromHost(mask, [B, seq], 'int32', backend) }).projectedScore; // [B, proj]
    const questions = embed(batch.query, batch.queryMask, batch.querySeq);
    const blocks = embed(batch.context, batch.contextMask, batch.contextSeq);
    const logits = questions.matmul(blocks.transpose(0, 1)); // [B, B]: row i's block is column i
    const targets = arange(0, B, 1, { dtype: 'int32', backend });
    const lossSum = crossEntropy(logits, targets, { reduction: 'sum' });
    const correct = logits.argmax(-1).eq(targets).toFloat().sum();
    return { loss: lossSum.divScalar(B), sums: { lossSum, correct, count: full([], B, { backend }) } };
  }

  summarize(s: Record<string, number>): ObjectiveMetrics {
    const loss = s.lossSum / Math.max(1, s.count);
    return { loss, perplexity: Math.exp(loss), blockAccuracy: s.correct / Math.max(1, s.count) };
  }

  describe(m: ObjectiveMetrics): string {
    return `the sentence's own block ranked first among the batch's ${(100 * m.blockAccuracy).toFixed(1)}%`;
  }

  tokens(batch: ClozeBatch): number {
    return batch.tokens;
  }
}

const inverseCloze: FamilyObjective<RealmConfig, OpenQATrainable> = {
  description: "inverse cloze task (ORQA's retriever warm-up) on RealmForOpenQA's embedder: a sentence finds its block among the batch's",
  objective(ctx: ObjectiveContext) {
    const known = ['blockRecordsPath', 'keepProbability'];
    for (const key of Object.keys(ctx.settings)) if (!known.includes(key)) throw new ConfigError(`objectives.ict.${key}: unknown field (known: ${known.join(', ')})`);
    const keepProbability = ctx.settings.keepProbability ?? 0.1;
    if (typeof keepProbability !== 'number' || keepProbability < 0 || keepProbability > 1) throw new ConfigError(`objectives.ict.keepProbability: expected a number in [0, 1], got ${JSON.stringify(keepProbability)}`);
    collectionSettings('ict', { blockRecordsPath: ctx.settings.blockRecordsPath });
    return new InverseClozeObjective(realmTokenizer(ctx.tokenizer), { seqLength: ctx.seqLength, keepProbability, backend: ctx.backend });
  },
  createModel: (config, options) => createOpenQA(config, { ...options, settings: { blockRecordsPath: options.settings.blockRecordsPath } }, 'ict'),
  exportTo: exportOpenQA,
};

// ---- knowledge-augmented masked LM ---------------------------------------------------------------

/**
 * The pre-training pair: an embedder that retrieves (REALM's "neural knowledge retriever") and the
 * knowledge-augmented encoder that reads each (sentence, block) pair; separate BERTs, as in REALM.
 */
export class RealmKnowledgeAugmentedLM extends RealmPreTrainedModel {
  declare embedder: RealmEmbedder;
  declare encoder: RealmKnowledgeAugEncoder;

  constructor(config: RealmConfig, options: { backend?: Backend; embedder?: RealmEmbedder; encoder?: RealmKnowledgeAugEncoder } = {}) {
    super(config);
    this.registerModule('embedder', options.embedder ?? new RealmEmbedder(config, { backend: options.backend }));
    this.registerModule('encoder', options.encoder ?? new RealmKnowledgeAugEncoder(config, { backend: options.backend }));
  }

  getInputEmbeddings(): Embedding {
    return this.encoder.getInputEmbeddings();
  }

  setInputEmbeddings(value: Embedding): void {
    this.encoder.setInputEmbeddings(value);
  }
}

type KnowledgeTrainable = TrainableModel & { readonly module: RealmKnowledgeAugmentedLM; readonly blockRecords: readonly string[]; blockEmb: Tensor | null };

/** A masked sentence: its ids and labels without special tokens. */
interface MaskedSentence {
  inputIds: Int32Array;
  labels: Int32Array;
}

interface KnowledgeBatch {
  batchSize: number;
  /** [batch, querySeq]: [CLS] masked sentence [SEP], padded. */
  query: Int32Array;
  queryMask: Int32Array;
  querySeq: number;
  /** [batch * numBlocks, seq]: [CLS] masked sentence [SEP] block [SEP] for every block, padded. */
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  seq: number;
  /** [batch, seq]: the original token at masked positions, -100 elsewhere (the same for every candidate). */
  labels: Int32Array;
  targets: number;
  tokens: number;
}

export class KnowledgeMLMObjective implements Objective<Int32Array, KnowledgeBatch, KnowledgeTrainable> {
  readonly name = 'knowledge-mlm';
  private readonly blockIds: number[][];
  private readonly blocks: BlockInputs;
  private readonly refresher: IndexRefresher;
  private readonly special: { cls: number; sep: number; pad: number; mask: number };
  private readonly masking: MaskingOptions;

  constructor(
    tokenizer: RealmTokenizer,
    readonly records: readonly string[],
    private readonly options: { seqLength: number; maskProbability: number; refreshEvery: number; backend: Backend },
  ) {
    this.special = specialIds(tokenizer);
    this.blockIds = records.map((text) => tokenizer.encode(text, null, { addSpecialTokens: false }).inputIds);
    this.blocks = blockInputs(records, tokenizer, options.seqLength);
    this.refresher = new IndexRefresher(options.refreshEvery);
    const specials = new Set(Object.values(tokenizer.specialTokenIds).filter((v): v is number => v !== null));
    this.masking = { probability: options.maskProbability, maskTokenId: this.special.mask, specialIds: specials, replacementIds: replacementIds(tokenizer.vocabSize, specials) };
  }

  /** Each sentence of the corpus, cut to leave room for a block beside it. */
  async *examples(documents: AsyncIterable<TokenizedDocument>): AsyncGenerator<Int32Array> {
    const room = Math.max(1, Math.floor((this.options.seqLength - 3) / 2));
    for await (const doc of documents) for (const sentence of doc.sentences) yield Int32Array.from(sentence.slice(0, room));
  }

  collate(examples: readonly Int32Array[], rowRng: (row: number) => Rng): KnowledgeBatch {
    const { cls, sep, pad } = this.special;
    const B = examples.length;
    const masked: MaskedSentence[] = examples.map((ids, r) => maskTokens(ids, rowRng(r), this.masking));
    const pairs = masked.map((m) => this.blockIds.map((block) => pairIds([...m.inputIds], block, this.options.seqLength, cls, sep)));
    const seq = Math.max(...pairs.flat().map((p) => p.ids.length));
    const querySeq = Math.max(...masked.map((m) => m.inputIds.length)) + 2;
    const n = this.blockIds.length;
    const query = new Int32Array(B * querySeq).fill(pad);
    const queryMask = new Int32Array(B * querySeq);
    const inputIds = new Int32Array(B * n * seq).fill(pad);
    const attentionMask = new Int32Array(B * n * seq);
    const tokenTypeIds = new Int32Array(B * n * seq);
    const labels = new Int32Array(B * seq).fill(IGNORE_INDEX);
    let targets = 0;
    let tokens = 0;
    masked.forEach((m, r) => {
      query.set([cls, ...m.inputIds, sep], r * querySeq);
      queryMask.fill(1, r * querySeq, r * querySeq + m.inputIds.length + 2);
      // The sentence always fits whole (examples() cut it to half the room), so its labels sit after [CLS] in every pair.
      m.labels.forEach((label, i) => {
        labels[r * seq + 1 + i] = label;
        if (label !== IGNORE_INDEX) targets++;
      });
      pairs[r].forEach(({ ids, firstLength }, b) => {
        const at = (r * n + b) * seq;
        inputIds.set(ids, at);
        attentionMask.fill(1, at, at + ids.length);
        tokenTypeIds.fill(1, at + firstLength + 2, at + ids.length);
      });
      tokens += m.inputIds.length + 2;
    });
    return { batchSize: B, query, queryMask, querySeq, inputIds, attentionMask, tokenTypeIds, seq, labels, targets, tokens };
  }

  compute(model: KnowledgeTrainable, batch: KnowledgeBatch): ObjectiveOutput {
    const lm = model.module;
    const { backend } = this.options;
    const { batchSize: B, seq } = batch;
    const n = this.records.length;
    const C = lm.config.numCandidates;
    if (C > n) throw new ConfigError(`model.config.numCandidates: ${C} is larger than the collection (${n} blocks)`);
    this.refresher.beforeBatch(model, isTrainingBatch(lm), () => {
      model.blockEmb?.dispose();
      model.blockEmb = embedBlocks(lm.embedder, this.blocks, backend);
    });
    const blockEmb = model.blockEmb!; // [numBlocks, proj]
    const projection = lm.embedder.forward({
      inputIds: fromHost(batch.query, [B, batch.querySeq], 'int32', backend),
      attentionMask: fromHost(batch.queryMask, [B, batch.querySeq], 'int32', backend),
    }).projectedScore; // [B, proj]
    const ids = topIds(projection, blockEmb, C); // [B, C]
    // Row b's candidate c is pair row b * numBlocks + ids[b, c].
    const rows = ids.add(arange(0, B * n, n, { dtype: 'int32', backend }).reshape(B, 1)).reshape(B * C);
    const candidates = (data: Int32Array) => fromHost(data, [B * n, seq], 'int32', backend).indexSelect(0, rows).reshape(B, C, seq); // [B, C, seq]
    const retrievedEmb = blockEmb.indexSelect(0, ids.reshape(B * C)).reshape(B, C, -1); // [B, C, proj]
    const relevance = retrievedEmb.mul(projection.unsqueeze(1)).sum(-1); // [B, C]
    const labels = fromHost(batch.labels, [B, seq], 'int32', backend);
    const mlmMask = labels.ne(IGNORE_INDEX);
    const out = lm.encoder.forward({
      inputIds: candidates(batch.inputIds),
      attentionMask: candidates(batch.attentionMask),
      tokenTypeIds: candidates(batch.tokenTypeIds),
      relevanceScore: relevance,
      labels,
      mlmMask,
    });
    // Accuracy of the marginal prediction: argmax over the vocabulary of sum_c p(c) p(token | c).
    const correct = noGrad(() => {
      const logProbs = out.logits.logSoftmax(-1).reshape(B, C, seq, -1); // [B, C, seq, vocab]
      const marginal = logProbs.add(relevance.detach().logSoftmax(-1).reshape(B, C, 1, 1)).logsumexp(1); // [B, seq, vocab]
      return marginal.argmax(-1).eq(labels).logicalAnd(mlmMask).toFloat().sum();
    });
    const count = full([], batch.targets, { backend });
    return { loss: out.loss!, sums: { lossSum: out.loss!.mulScalar(batch.targets), correct, count } };
  }

  summarize(s: Record<string, number>): ObjectiveMetrics {
    const loss = s.lossSum / Math.max(1, s.count);
    return { loss, perplexity: Math.exp(loss), maskedTokenAccuracy: s.correct / Math.max(1, s.count) };
  }

  describe(m: ObjectiveMetrics): string {
    return `perplexity ${m.perplexity.toFixed(2)}, masked-token accuracy ${(100 * m.maskedTokenAccuracy).toFixed(1)}% (marginal over the retrieved blocks)`;
  }

  tokens(batch: KnowledgeBatch): number {
    return batch.tokens;
  }
}

const knowledgeMLM: FamilyObjective<RealmConfig, KnowledgeTrainable> = {
  description: 'knowledge-augmented masked LM (RealmKnowledgeAugEncoder over the top numCandidates blocks an embedder retrieves; marginal log-likelihood)',
  objective(ctx: ObjectiveContext) {
    const { records, refreshEvery } = collection('knowledge-mlm', ctx.settings);
    return new KnowledgeMLMObjective(realmTokenizer(ctx.tokenizer), records, { seqLength: ctx.seqLength, maskProbability: ctx.maskProbability, refreshEvery, backend: ctx.backend });
  },
  async createModel(config, { fromPretrained, backend, settings }) {
    const blockRecords = collection('knowledge-mlm', settings).records;
    const module = fromPretrained
      ? new RealmKnowledgeAugmentedLM(config, {
          embedder: await RealmEmbedder.fromPretrained<RealmEmbedder, RealmConfig>(join(fromPretrained, 'embedder'), { backend }),
          encoder: await RealmKnowledgeAugEncoder.fromPretrained<RealmKnowledgeAugEncoder, RealmConfig>(join(fromPretrained, 'encoder'), { backend }),
        })
      : new RealmKnowledgeAugmentedLM(config, { backend });
    module.train();
    return { module, blockRecords, blockEmb: null };
  },
  /** `embedder/` (RealmEmbedder) and `encoder/` (RealmKnowledgeAugEncoder) folders, the collection and the tokenizer. */
  async exportTo(model, dir, tokenizer) {
    const { embedder, encoder, config } = model.module;
    embedder.config.architectures = ['RealmEmbedder'];
    encoder.config.architectures = ['RealmKnowledgeAugEncoder'];
    await embedder.savePretrained(join(dir, 'embedder'));
    await encoder.savePretrained(join(dir, 'encoder'));
    await writeTokenizerFiles(join(dir, 'embedder'), tokenizer);
    await writeTokenizerFiles(join(dir, 'encoder'), tokenizer);
    const retriever = new RealmRetriever(model.blockRecords, realmTokenizer(tokenizer));
    await retriever.savePretrained(dir);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'config.json'), `${JSON.stringify(config.toJSON(), null, 2)}\n`);
    return ['config.json', 'embedder/', 'encoder/', ...Object.keys(retriever.files())];
  },
};

// ---- the family ------------------------------------------------------------------------------------

/** RealmTokenizer from a vocab.txt, a tokenizer.json, or a folder with one (checked as every WordPiece loader checks). */
function loadRealmTokenizer(path: string, options: { lowercase: boolean }): Promise<RealmTokenizer> {
  return loadWordPieceTokenizer<RealmTokenizer>(path, options, RealmTokenizer);
}

export const realm: ModelFamily<RealmConfig> = {
  name: 'realm',
  objectives: { openqa: openQA, ict: inverseCloze, 'knowledge-mlm': knowledgeMLM } as Record<string, FamilyObjective<RealmConfig>>,
  loadTokenizer: loadRealmTokenizer,

  async resolveConfig({ fromPretrained, overrides, vocabSize }): Promise<ResolvedModelConfig<RealmConfig>> {
    const issues = Object.keys(overrides)
      .filter((key) => !(FIELDS as string[]).includes(key))
      .map((key) => `model.config.${key}: unknown RealmConfig field (known: ${FIELDS.join(', ')})`);
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    const base = fromPretrained ? await readPretrainedConfig(fromPretrained, (json) => RealmConfig.fromJSON(json)) : new RealmConfig();
    const init: Partial<RealmConfigFields> = pick(base, FIELDS);
    if (!fromPretrained && overrides.vocabSize === undefined) init.vocabSize = vocabSize;
    Object.assign(init, overrides);
    const config = new RealmConfig(init, base.extra);
    for (const k of ['vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize', 'retrieverProjSize', 'spanHiddenSize', 'maxSpanWidth', 'readerBeamSize', 'readerSeqLen', 'searcherBeamSize', 'numCandidates'] as const) {
      const v = config[k];
      if (!Number.isInteger(v) || v < 1) issues.push(`model.config.${k}: expected an integer >= 1, got ${JSON.stringify(v)}`);
    }
    if (config.hiddenSize % config.numAttentionHeads !== 0) issues.push(`model.config.hiddenSize: ${config.hiddenSize} is not a multiple of numAttentionHeads (${config.numAttentionHeads})`);
    if (config.searcherBeamSize < config.readerBeamSize) issues.push(`model.config.searcherBeamSize: ${config.searcherBeamSize} is smaller than readerBeamSize (${config.readerBeamSize}); the reader reads the first readerBeamSize of the retrieved blocks`);
    if (config.vocabSize < vocabSize) issues.push(`model.config.vocabSize: ${config.vocabSize} is smaller than the tokenizer's ${vocabSize} ids`);
    if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
    return { config, maxPositions: config.maxPositionEmbeddings, vocabSize: config.vocabSize };
  },
};
