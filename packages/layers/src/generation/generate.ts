// The decoding loop shared by every decoder: greedy search, multinomial sampling and beam search
// over a model-agnostic `DecoderStep`, with HF transformers' semantics (generation/utils.py:
// `_sample`, `_beam_search`; logits_process.py; beam_search.py) and a streaming variant.
//
// Each step is one synchronous `scope`: the model step, the logits processors and the token choice
// run inside it, so every temporary is freed when it closes; the new cache is `keep`-ed out of it and
// the previous cache's tensors are disposed once replaced. Only the chosen ids (and, in beam search,
// the top candidates) are read back, which is the one await per step.

import { concat, defaultGenerator, fromHost, Generator, noGrad, rand, scope, Tensor, topk } from '@lm/tensor-gpu';
import { BeamSearchScorer, type EarlyStopping } from './beam-search.js';
import { defaultCacheOps, disposeReplaced, keepCache, type CacheOps } from './cache.js';
import { GenerationError } from './errors.js';
import {
  badWords,
  composeProcessors,
  endsWith,
  forcedEos,
  minNewTokens,
  noRepeatNgram,
  repetitionPenalty,
  temperature,
  topK,
  topP,
  type LogitsProcessor,
  type ProcessorContext,
} from './logits-process.js';

export interface DecoderStepOutput<Cache> {
  /** Logits for the last position, [batch, vocab] ([batch, len, vocab] is accepted: its last position is used). */
  logits: Tensor;
  /**
   * The cache after this step. The loop owns its tensors from here on and disposes each once no later
   * cache holds it, so a tensor the model keeps for itself goes in as an alias (`alias(t)`).
   */
  cache: Cache;
}

/**
 * Runs the model on new ids (int32 [rows, newLen]) given the cache from the previous step (null on
 * the first call, which receives the whole input). Synchronous, like all compute.
 *
 * Everything batch-shaped that later calls read must live in the cache: beam search runs the first
 * call on [batch, len] and then reorders the cache to [batch * numBeams] rows (and again after every
 * step to follow the chosen beams), so an encoder-decoder keeps its cross-attention keys/values (or
 * encoder states and masks) in the cache, not in the closure.
 */
export type DecoderStep<Cache> = (inputIds: Tensor, cache: Cache | null) => DecoderStepOutput<Cache>;

/**
 * A DecoderStep for a model without a cache (or while its cache is not written yet): the cache is the
 * ids so far ({ ids: int32 [rows, len] }), and every step reruns `forward` on the whole sequence.
 * `forward` returns logits [rows, len, vocab] (the last position is used) or [rows, vocab].
 */
export function stepWithoutCache(forward: (inputIds: Tensor) => Tensor): DecoderStep<{ ids: Tensor }> {
  return (inputIds, cache) => {
    const ids = cache ? concat([cache.ids, inputIds], 1) : inputIds.contiguous(); // [rows, len]
    return { logits: forward(ids), cache: { ids } };
  };
}

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerateOptions<Cache = unknown> {
  /** Tokens to generate at most (default 20, HF's max_length default counted as new tokens). */
  maxNewTokens?: number;
  /** eos is suppressed until this many tokens have been generated (HF min_new_tokens). */
  minNewTokens?: number;
  /** Sample from the processed distribution instead of taking its argmax. */
  doSample?: boolean;
  /** Sampling only: logits / temperature (default 1). */
  temperature?: number;
  /** Sampling only: keep the k most likely tokens (default 50 as in HF; 0 disables). */
  topK?: number;
  /** Sampling only: nucleus filtering (default 1, disabled). */
  topP?: number;
  /** HF repetition_penalty (default 1, disabled). */
  repetitionPenalty?: number;
  /** Ban repeating any n-gram of this size (default 0, disabled). */
  noRepeatNgramSize?: number;
  /** Token sequences that must not be generated. */
  badWordsIds?: number[][];
  /** Force this eos as the last token when maxNewTokens is reached. */
  forcedEosTokenId?: number | number[];
  /** Beam search when > 1 (default 1). */
  numBeams?: number;
  /** Beam search: hypotheses score sum_logprobs / generatedLen ** lengthPenalty (default 1). */
  lengthPenalty?: number;
  /** Beam search: true, false (HF's heuristic, the default) or 'never'. */
  earlyStopping?: EarlyStopping;
  /** Beam search: hypotheses returned per batch item, best first (default 1). */
  numReturnSequences?: number;
  /** A row ends when it generates one of these (the eos is part of the output). */
  eosTokenId?: number | number[];
  /** Fills rows that ended before the others (default: the first eos). */
  padTokenId?: number;
  /** Greedy/sampling: a row also ends when its ids end with one of these sequences ([id] is a stop token). */
  stopSequences?: number[][];
  /** Seed for a fresh generator (sampling). */
  seed?: number;
  /** Generator to draw from (advanced by the draws); default: `seed`'s, else the global one. */
  generator?: Generator;
  /** Extra processors, applied after the built-in ones. */
  logitsProcessors?: LogitsProcessor[];
  /** Greedy/sampling: return the processed scores of every step. */
  outputScores?: boolean;
  /** How to find and reorder the cache's tensors (default: a tree of tensors, batch axis 0). */
  cacheOps?: CacheOps<Cache>;
}

export interface GenerateOutput {
  /**
   * Per row (per batch item x numReturnSequences in beam search): the input ids followed by the
   * generated tokens, rows that ended early padded with padTokenId to a common length.
   */
  sequences: number[][];
  /** Greedy/sampling: why each row ended. */
  finishReasons?: FinishReason[];
  /** Beam search: each returned hypothesis's length-penalized score. */
  sequenceScores?: number[];
  /** With outputScores: per step, the processed scores [batch * vocab] (row-major). */
  scores?: Float32Array[];
}

export interface StreamEvent {
  /** The token generated for row `batchIndex` at step `step`. */
  token: number;
  batchIndex: number;
  step: number;
  /** Whether this is the row's last token. */
  done: boolean;
  finishReason?: FinishReason;
}

interface Plan<Cache> {
  maxNewTokens: number;
  doSample: boolean;
  eos: number[];
  pad: number | undefined;
  stopSequences: number[][];
  processor: LogitsProcessor;
  generator: Generator;
  outputScores: boolean;
  numBeams: number;
  ops: CacheOps<Cache>;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

/**
 * The processors `generate` applies, in HF's order: repetition penalty, no-repeat n-gram, bad
 * words, min new tokens, forced eos, then (sampling only) temperature, top-k, top-p, then
 * `options.logitsProcessors`.
 */
export function buildLogitsProcessor(options: Omit<GenerateOptions, 'cacheOps'>): LogitsProcessor {
  const list: LogitsProcessor[] = [];
  const eos = options.eosTokenId;
  if (options.repetitionPenalty !== undefined && options.repetitionPenalty !== 1) list.push(repetitionPenalty(options.repetitionPenalty));
  if (options.noRepeatNgramSize) list.push(noRepeatNgram(options.noRepeatNgramSize));
  if (options.badWordsIds?.length) list.push(badWords(options.badWordsIds));
  if (options.minNewTokens && eos !== undefined) list.push(minNewTokens(options.minNewTokens, eos));
  if (options.forcedEosTokenId !== undefined) list.push(forcedEos(options.maxNewTokens ?? 20, options.forcedEosTokenId));
  if (options.doSample) {
    if (options.temperature !== undefined && options.temperature !== 1) list.push(temperature(options.temperature));
    const k = options.topK ?? 50;
    if (k !== 0) list.push(topK(k));
    if (options.topP !== undefined && options.topP < 1) list.push(topP(options.topP));
  }
  list.push(...(options.logitsProcessors ?? []));
  return composeProcessors(...list);
}

function plan<Cache>(inputIds: Tensor, options: GenerateOptions<Cache>): Plan<Cache> {
  if (!(inputIds instanceof Tensor) || inputIds.rank !== 2 || inputIds.dtype !== 'int32' || inputIds.shape[1] < 1) {
    throw new GenerationError(`generate: inputIds must be int32 [batch, len >= 1], got ${inputIds instanceof Tensor ? `${inputIds.dtype} [${inputIds.shape.join(',')}]` : typeof inputIds}`);
  }
  const maxNewTokens = options.maxNewTokens ?? 20;
  if (!isInt(maxNewTokens) || maxNewTokens < 0) throw new GenerationError(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  const eosOpt = options.eosTokenId;
  const eos = eosOpt === undefined ? [] : typeof eosOpt === 'number' ? [eosOpt] : [...eosOpt];
  if (eos.some((id) => !isInt(id) || id < 0)) throw new GenerationError(`generate: eosTokenId must be token ids, got ${JSON.stringify(eosOpt)}`);
  const pad = options.padTokenId ?? eos[0];
  if (pad !== undefined && (!isInt(pad) || pad < 0)) throw new GenerationError(`generate: padTokenId must be a token id, got ${pad}`);
  const stopSequences = options.stopSequences ?? [];
  if (stopSequences.some((s) => s.length === 0 || s.some((id) => !isInt(id)))) {
    throw new GenerationError(`generate: stopSequences must be non-empty lists of token ids, got ${JSON.stringify(stopSequences)}`);
  }
  const numBeams = options.numBeams ?? 1;
  if (!isInt(numBeams) || numBeams < 1) throw new GenerationError(`generate: numBeams must be a positive integer, got ${numBeams}`);
  if (options.lengthPenalty !== undefined && !Number.isFinite(options.lengthPenalty)) throw new GenerationError(`generate: lengthPenalty must be a finite number, got ${options.lengthPenalty}`);
  if (options.earlyStopping !== undefined && ![true, false, 'never'].includes(options.earlyStopping)) {
    throw new GenerationError(`generate: earlyStopping must be true, false or 'never', got ${JSON.stringify(options.earlyStopping)}`);
  }
  if (numBeams > 1 && options.doSample) throw new GenerationError('generate: beam sampling (numBeams > 1 with doSample) is not supported');
  if (numBeams > 1 && stopSequences.length) throw new GenerationError('generate: stopSequences are not supported with beam search (use eosTokenId)');
  if (numBeams === 1 && (options.numReturnSequences ?? 1) !== 1) {
    throw new GenerationError('generate: numReturnSequences > 1 needs beam search (for sampling, repeat the rows of inputIds)');
  }
  if (stopSequences.length && pad === undefined && inputIds.shape[0] > 1) {
    throw new GenerationError('generate: stopSequences with a batch need padTokenId (or eosTokenId) to pad rows that stop early');
  }
  let generator = options.generator;
  if (!generator && options.seed !== undefined) {
    generator = new Generator();
    generator.manualSeed(options.seed);
  }
  return {
    maxNewTokens,
    doSample: options.doSample ?? false,
    eos,
    pad,
    stopSequences,
    processor: buildLogitsProcessor({ ...options, maxNewTokens }),
    generator: generator ?? defaultGenerator,
    outputScores: options.outputScores ?? false,
    numBeams,
    ops: options.cacheOps ?? (defaultCacheOps as CacheOps<Cache>),
  };
}

/**
 * One multinomial draw per row of scores [rows, vocab] (int32 [rows]): the argmax of p_i / E_i with
 * E_i ~ Exp(1), which picks i with probability p_i (the exponential race; tokens with p = 0 never
 * win). Deterministic for a generator state, and needs no cumulative sum, whose rounding could let a
 * filtered token through.
 */
export function sampleTokens(scores: Tensor, generator: Generator = defaultGenerator): Tensor {
  const probs = scores.softmax(-1);
  const u = rand(scores.shape, { backend: scores.backend, generator });
  // E = -log(u), kept finite and positive: u is clamped away from 0, E away from 0 (log near 1 may round to 0).
  const e = u.clamp(2 ** -30).log().neg().clamp(1e-20);
  return probs.div(e).argmax(-1);
}

/** The step's logits as float32 [rows, vocab]. */
function lastLogits(logits: Tensor, rows: number): Tensor {
  if (!(logits instanceof Tensor)) throw new GenerationError('generate: the step must return { logits: Tensor, cache }');
  let l = logits;
  if (l.rank === 3) l = l.select(1, l.shape[1] - 1);
  if (l.rank !== 2 || l.shape[0] !== rows) {
    throw new GenerationError(`generate: the step returned logits [${logits.shape.join(',')}], expected [${rows}, vocab] (or [${rows}, len, vocab])`);
  }
  return l.dtype === 'float32' ? l : l.toFloat();
}

/**
 * Runs the step inside a scope: `body` turns its logits into what the caller reads back. The new
 * cache leaves the scope alive; if anything throws, it is freed and the previous cache is untouched.
 */
function runStep<Cache, R>(step: DecoderStep<Cache>, input: Tensor, prev: Cache | null, ops: CacheOps<Cache>, body: (logits: Tensor) => R): { result: R; cache: Cache } {
  return noGrad(() =>
    scope(() => {
      const out = step(input, prev);
      if (!out || typeof out !== 'object') throw new GenerationError('generate: the step must return { logits, cache }');
      keepCache(out.cache, ops);
      try {
        return { result: body(out.logits), cache: out.cache };
      } catch (e) {
        disposeReplaced(out.cache, prev, ops);
        throw e;
      }
    }),
  );
}

async function hostRows(inputIds: Tensor): Promise<number[][]> {
  const [batch, len] = inputIds.shape;
  const flat = await inputIds.data();
  return Array.from({ length: batch }, (_, b) => Array.from(flat.subarray(b * len, (b + 1) * len)));
}

interface StepRecord {
  step: number;
  /** This step's token per row (padTokenId for rows that had already ended). */
  tokens: number[];
  /** Rows that were still running before this step. */
  active: boolean[];
  /** Rows that ended with this step's token, and why. */
  finished: (FinishReason | null)[];
  scores: Float32Array | null;
}

/** Greedy search / sampling: yields each step's tokens once they are read back; `rows` grow in place. */
async function* decode<Cache>(step: DecoderStep<Cache>, inputIds: Tensor, rows: number[][], p: Plan<Cache>): AsyncGenerator<StepRecord, void, undefined> {
  const backend = inputIds.backend;
  const batch = rows.length;
  const running = new Array<boolean>(batch).fill(true);
  let cache: Cache | null = null;
  let input = inputIds;
  let pending: Tensor[] = [];
  try {
    for (let t = 0; t < p.maxNewTokens; t++) {
      const ctx: ProcessorContext = { inputIds: rows, newTokens: t };
      const prev: Cache | null = cache;
      const { result, cache: next }: { result: { token: Tensor; scores: Tensor | null }; cache: Cache } = runStep(step, input, prev, p.ops, (logits) => {
        const scores = p.processor(lastLogits(logits, batch), ctx);
        const token = p.doSample ? sampleTokens(scores, p.generator) : scores.argmax(-1);
        return { token, scores: p.outputScores ? scores : null };
      });
      disposeReplaced(prev, next, p.ops);
      cache = next;
      if (input !== inputIds) input.dispose();
      input = inputIds;
      pending = result.scores ? [result.token, result.scores] : [result.token];
      const [ids, scores] = await Promise.all([result.token.data(), result.scores?.data() ?? null]);
      for (const x of pending) x.dispose();
      pending = [];

      const active = [...running];
      const finished: (FinishReason | null)[] = new Array<FinishReason | null>(batch).fill(null);
      const tokens = rows.map((row, b) => {
        if (!running[b]) {
          row.push(p.pad!);
          return p.pad!;
        }
        const tok = ids[b];
        row.push(tok);
        if (p.eos.includes(tok)) finished[b] = 'eos';
        else if (p.stopSequences.some((s) => endsWith(row, s))) finished[b] = 'stop';
        else if (t === p.maxNewTokens - 1) finished[b] = 'length';
        if (finished[b]) running[b] = false;
        return tok;
      });
      yield { step: t, tokens, active, finished, scores: scores as Float32Array | null };
      if (!running.some(Boolean)) break;
      if (running.some((r) => !r) && p.pad === undefined) throw new GenerationError('generate: a row ended before the others; padTokenId (or eosTokenId) is needed to pad it');
      input = fromHost(Int32Array.from(tokens), [batch, 1], 'int32', backend);
    }
  } finally {
    for (const x of pending) x.dispose();
    if (input !== inputIds) input.dispose();
    disposeReplaced(cache, null, p.ops);
  }
}

async function beamSearch<Cache>(step: DecoderStep<Cache>, inputIds: Tensor, prompt: number[][], p: Plan<Cache>, options: GenerateOptions<Cache>): Promise<GenerateOutput> {
  const backend = inputIds.backend;
  const B = prompt.length;
  const K = p.numBeams;
  const scorer = new BeamSearchScorer({
    batchSize: B,
    numBeams: K,
    lengthPenalty: options.lengthPenalty ?? 1,
    earlyStopping: options.earlyStopping ?? false,
    numReturnSequences: options.numReturnSequences ?? 1,
    maxNewTokens: p.maxNewTokens,
    eosTokenIds: p.eos,
    padTokenId: p.pad,
  });
  // Row b * K + k is beam k of batch item b; only beam 0 starts live, so the first step's top
  // candidates are distinct tokens (HF: beam_scores[:, 1:] = -1e9).
  let rows = prompt.flatMap((r) => Array.from({ length: K }, () => [...r]));
  let beamScores: Float32Array = Float32Array.from({ length: B * K }, (_, i) => (i % K === 0 ? 0 : -1e9));
  // Candidates kept per batch item: enough that numBeams of them are not eos.
  const keepPerItem = Math.max(2, 1 + p.eos.length) * K;
  let cache: Cache | null = null;
  let input = inputIds;
  let pending: Tensor[] = [];
  let generated = 0;
  try {
    for (let t = 0; t < p.maxNewTokens; t++) {
      const ctx: ProcessorContext = { inputIds: rows, newTokens: t };
      const prev: Cache | null = cache;
      const scoresNow = beamScores;
      let n = 0;
      let vocab = 0;
      const { result, cache: next }: { result: { values: Tensor; indices: Tensor }; cache: Cache } = runStep(step, input, prev, p.ops, (logits) => {
        let l = lastLogits(logits, t === 0 ? B : B * K);
        // The first call ran on the batch rows: expand each to its K beams.
        if (t === 0) l = l.indexSelect(0, fromHost(Int32Array.from({ length: B * K }, (_, i) => Math.floor(i / K)), [B * K], 'int32', backend));
        vocab = l.shape[1];
        n = Math.min(keepPerItem, K * vocab);
        const processed = p.processor(l.logSoftmax(-1), ctx);
        const total = processed.add(fromHost(scoresNow, [B * K, 1], 'float32', backend)); // [B*K, vocab]
        return topk(total.reshape(B, K * vocab), n, 1); // [B, n] each, best first
      });
      disposeReplaced(prev, next, p.ops);
      cache = next;
      if (input !== inputIds) input.dispose();
      input = inputIds;
      pending = [result.values, result.indices];
      const [vals, idx] = await Promise.all([result.values.data(), result.indices.data()]);
      for (const x of pending) x.dispose();
      pending = [];

      const tokens = Int32Array.from(idx, (i) => i % vocab);
      const beams = Int32Array.from(idx, (i) => Math.floor(i / vocab));
      const out = scorer.process(rows, vals, tokens, beams, n, t + 1);
      rows = Array.from(out.sourceRows, (r, i) => [...rows[r], out.tokens[i]]);
      beamScores = out.scores;
      generated = t + 1;
      if (scorer.isDone || t === p.maxNewTokens - 1) break;

      // Follow the chosen beams; after the first step the cache still holds batch rows (row r of the expansion is item r / K).
      const source = t === 0 ? out.sourceRows.map((r) => Math.floor(r / K)) : out.sourceRows;
      const old: Cache = cache;
      cache = noGrad(() => scope(() => keepCache(p.ops.reorder(old, fromHost(source, [B * K], 'int32', backend)), p.ops)));
      disposeReplaced(old, cache, p.ops);
      input = fromHost(out.tokens, [B * K, 1], 'int32', backend);
    }
  } finally {
    for (const x of pending) x.dispose();
    if (input !== inputIds) input.dispose();
    disposeReplaced(cache, null, p.ops);
  }
  const best = generated === 0 ? prompt.flatMap((tokens) => Array.from({ length: scorer.options.numReturnSequences }, () => ({ tokens: [...tokens], score: 0 }))) : scorer.finalize(rows, beamScores, generated);
  return { sequences: padRows(best.map((h) => h.tokens), p.pad), sequenceScores: best.map((h) => h.score) };
}

function padRows(rows: number[][], pad: number | undefined): number[][] {
  const len = Math.max(...rows.map((r) => r.length));
  if (rows.some((r) => r.length !== len) && pad === undefined) throw new GenerationError('generate: hypotheses of different lengths need padTokenId (or eosTokenId) to pad them');
  return rows.map((r) => [...r, ...new Array<number>(len - r.length).fill(pad!)]);
}

/**
 * Generates up to `maxNewTokens` tokens after `inputIds` (int32 [batch, len]): greedy search by
 * default, multinomial sampling with `doSample`, beam search with `numBeams > 1`. The caller keeps
 * ownership of `inputIds`; every tensor the loop creates is freed before it returns (or throws).
 */
export async function generate<Cache>(step: DecoderStep<Cache>, inputIds: Tensor, options: GenerateOptions<Cache> = {}): Promise<GenerateOutput> {
  const p = plan(inputIds, options);
  const rows = await hostRows(inputIds);
  if (p.numBeams > 1) return beamSearch(step, inputIds, rows, p, options);
  const finishReasons: FinishReason[] = rows.map(() => 'length');
  const scores: Float32Array[] = [];
  for await (const rec of decode(step, inputIds, rows, p)) {
    rec.finished.forEach((f, b) => {
      if (f) finishReasons[b] = f;
    });
    if (rec.scores) scores.push(rec.scores);
  }
  return { sequences: rows, finishReasons, ...(p.outputScores ? { scores } : {}) };
}

/**
 * Greedy search or sampling as a stream: yields each row's token as soon as the step's ids are read
 * back (rows that have ended yield nothing more). Breaking out of the loop (`return()`) frees the
 * cache. Options are checked here, before the first token.
 */
export function stream<Cache>(step: DecoderStep<Cache>, inputIds: Tensor, options: GenerateOptions<Cache> = {}): AsyncIterable<StreamEvent> {
  const p = plan(inputIds, options);
  if (p.numBeams > 1) throw new GenerationError('stream: beam search cannot stream (its best sequence is known only at the end); use generate');
  return (async function* () {
    const rows = await hostRows(inputIds);
    for await (const rec of decode(step, inputIds, rows, p)) {
      for (let b = 0; b < rows.length; b++) {
        if (!rec.active[b]) continue;
        const reason = rec.finished[b];
        yield { token: rec.tokens[b], batchIndex: b, step: rec.step, done: reason !== null, ...(reason ? { finishReason: reason } : {}) };
      }
    }
  })();
}
