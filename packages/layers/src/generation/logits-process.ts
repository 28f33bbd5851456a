// Logits processors: pure functions from scores [rows, vocab] to new scores, with HF transformers'
// semantics (generation/logits_process.py). They allocate their outputs and free nothing, so the
// generation loop calls them inside one scope per step. Token-id bookkeeping (which ids a row already
// holds, which n-grams it has seen) is done on the host, where the loop keeps the ids anyway, and
// reaches the device as one bool mask per processor.

import { arange, fromHost, full, sort, where, type Tensor } from '@lm/tensor-gpu';
import { GenerationError } from './errors.js';

export interface ProcessorContext {
  /**
   * Each row's ids so far, [rows][len]: the ids given to generation (prompt, or decoder start ids)
   * followed by the tokens generated. In beam search there is one row per beam.
   */
  readonly inputIds: readonly (readonly number[])[];
  /** Tokens generated so far (the same for every row). */
  readonly newTokens: number;
}

/** Scores [rows, vocab] -> processed scores [rows, vocab]; must not dispose its input. */
export type LogitsProcessor = (scores: Tensor, ctx: ProcessorContext) => Tensor;

/** Applies processors left to right (HF's LogitsProcessorList). */
export function composeProcessors(...processors: LogitsProcessor[]): LogitsProcessor {
  return (scores, ctx) => processors.reduce((s, p) => p(s, ctx), scores);
}

function eosList(op: string, eosTokenId: number | readonly number[]): number[] {
  const ids = typeof eosTokenId === 'number' ? [eosTokenId] : [...eosTokenId];
  if (ids.length === 0 || ids.some((id) => !Number.isInteger(id) || id < 0)) {
    throw new GenerationError(`${op}: eosTokenId must be a non-negative integer or a non-empty list of them, got ${JSON.stringify(eosTokenId)}`);
  }
  return ids;
}

function checkRank(op: string, scores: Tensor): [number, number] {
  if (scores.rank !== 2) throw new GenerationError(`${op}: scores must be [rows, vocab], got [${scores.shape.join(',')}]`);
  return [scores.shape[0], scores.shape[1]];
}

function checkScores(op: string, scores: Tensor, ctx: ProcessorContext): [number, number] {
  const [rows, vocab] = checkRank(op, scores);
  if (ctx.inputIds.length !== rows) throw new GenerationError(`${op}: ${ctx.inputIds.length} rows of input ids for scores [${rows},${vocab}]`);
  return [rows, vocab];
}

/**
 * A bool [rows, vocab] mask, true at the (row, token) pairs `pick(row)` names. Ids outside the
 * vocabulary are an error (HF's gather would fail on them too).
 */
function tokenMask(op: string, scores: Tensor, ctx: ProcessorContext, pick: (row: number) => Iterable<number>): Tensor | null {
  const [rows, vocab] = checkScores(op, scores, ctx);
  const mask = new Uint8Array(rows * vocab);
  let any = false;
  for (let r = 0; r < rows; r++) {
    for (const id of pick(r)) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new GenerationError(`${op}: token id ${id} (row ${r}) is outside the vocabulary [0, ${vocab})`);
      mask[r * vocab + id] = 1;
      any = true;
    }
  }
  return any ? fromHost(mask, [rows, vocab], 'bool', scores.backend) : null;
}

/** A float32 scalar like torch's wrapped numbers, so `scores / s` is a true division (not scores * (1/s)). */
function scalar(scores: Tensor, s: number): Tensor {
  return full([], s, { backend: scores.backend, dtype: scores.dtype });
}

/**
 * HF RepetitionPenaltyLogitsProcessor: for every token already in the row's ids (prompt included),
 * score < 0 ? score * penalty : score / penalty. penalty > 1 discourages repeats.
 */
export function repetitionPenalty(penalty: number): LogitsProcessor {
  if (!(penalty > 0) || !Number.isFinite(penalty)) throw new GenerationError(`repetitionPenalty: penalty must be a positive number, got ${penalty}`);
  return (scores, ctx) => {
    const seen = tokenMask('repetitionPenalty', scores, ctx, (r) => ctx.inputIds[r]);
    if (!seen) return scores;
    const penalized = where(scores.ltScalar(0), scores.mul(scalar(scores, penalty)), scores.div(scalar(scores, penalty)));
    return where(seen, penalized, scores);
  };
}

/**
 * HF NoRepeatNGramLogitsProcessor: bans every token that would complete an n-gram the row already
 * contains (prompt included), by looking up the row's last n-1 ids.
 */
export function noRepeatNgram(ngramSize: number): LogitsProcessor {
  if (!Number.isInteger(ngramSize) || ngramSize <= 0) throw new GenerationError(`noRepeatNgram: ngramSize must be a positive integer, got ${ngramSize}`);
  return (scores, ctx) => {
    const banned = tokenMask('noRepeatNgram', scores, ctx, (r) => bannedNgramTokens(ctx.inputIds[r], ngramSize));
    return banned ? scores.maskedFill(banned, -Infinity) : scores;
  };
}

/** Tokens t such that (ids[-(n-1):], t) is an n-gram already in ids. */
export function bannedNgramTokens(ids: readonly number[], n: number): number[] {
  const len = ids.length;
  if (len + 1 < n) return [];
  const prefix = ids.slice(len + 1 - n).join(',');
  const out: number[] = [];
  for (let i = 0; i + n <= len; i++) {
    if (ids.slice(i, i + n - 1).join(',') === prefix) out.push(ids[i + n - 1]);
  }
  return out;
}

/**
 * HF NoBadWordsLogitsProcessor: a one-token sequence is always banned; a longer one bans its last
 * token whenever the row ends with the rest of it.
 */
export function badWords(badWordsIds: readonly (readonly number[])[]): LogitsProcessor {
  if (badWordsIds.some((seq) => seq.length === 0 || seq.some((id) => !Number.isInteger(id) || id < 0))) {
    throw new GenerationError(`badWords: every sequence must be a non-empty list of token ids, got ${JSON.stringify(badWordsIds)}`);
  }
  return (scores, ctx) => {
    const banned = tokenMask('badWords', scores, ctx, (r) => {
      const ids = ctx.inputIds[r];
      return badWordsIds.filter((seq) => endsWith(ids, seq.slice(0, -1))).map((seq) => seq[seq.length - 1]);
    });
    return banned ? scores.maskedFill(banned, -Infinity) : scores;
  };
}

/** Whether `ids` ends with `tail` (an empty tail always matches). */
export function endsWith(ids: readonly number[], tail: readonly number[]): boolean {
  if (tail.length > ids.length) return false;
  const off = ids.length - tail.length;
  return tail.every((t, i) => ids[off + i] === t);
}

/** HF MinNewTokensLengthLogitsProcessor: eos scores are -inf until `minNewTokens` tokens have been generated. */
export function minNewTokens(minTokens: number, eosTokenId: number | readonly number[]): LogitsProcessor {
  if (!Number.isInteger(minTokens) || minTokens < 0) throw new GenerationError(`minNewTokens: must be a non-negative integer, got ${minTokens}`);
  const eos = eosList('minNewTokens', eosTokenId);
  return (scores, ctx) => {
    if (ctx.newTokens >= minTokens) return scores;
    const mask = tokenMask('minNewTokens', scores, ctx, () => eos);
    return scores.maskedFill(mask!, -Infinity);
  };
}

/**
 * HF ForcedEOSTokenLogitsProcessor: for the last token allowed (`newTokens === maxNewTokens - 1`)
 * every score is -inf except the eos tokens', which are 0.
 */
export function forcedEos(maxNewTokens: number, eosTokenId: number | readonly number[]): LogitsProcessor {
  const eos = eosList('forcedEos', eosTokenId);
  return (scores, ctx) => {
    if (ctx.newTokens !== maxNewTokens - 1) return scores;
    const mask = tokenMask('forcedEos', scores, ctx, () => eos);
    return where(mask!, 0, -Infinity);
  };
}

/** HF TemperatureLogitsWarper: scores / temperature. */
export function temperature(t: number): LogitsProcessor {
  if (!(t > 0) || !Number.isFinite(t)) throw new GenerationError(`temperature: must be a positive number, got ${t}`);
  return (scores) => (t === 1 ? scores : scores.div(scalar(scores, t)));
}

export interface FilterOptions {
  /** The score given to removed tokens (default -Infinity). */
  filterValue?: number;
  /** Tokens kept whatever the filter says (default 1). */
  minTokensToKeep?: number;
}

/**
 * HF TopKLogitsWarper: keeps the k = max(k, minTokensToKeep) highest scores (and any tied with the
 * k-th), setting the rest to filterValue.
 */
export function topK(k: number, options: FilterOptions = {}): LogitsProcessor {
  const filterValue = options.filterValue ?? -Infinity;
  const minKeep = options.minTokensToKeep ?? 1;
  if (!Number.isInteger(k) || k <= 0) throw new GenerationError(`topK: k must be a positive integer, got ${k}`);
  return (scores) => {
    const kk = Math.min(Math.max(k, minKeep), checkRank('topK', scores)[1]);
    const { values } = sort(scores, -1, true);
    const kth = values.narrow(-1, kk - 1, 1); // [rows, 1]
    return scores.maskedFill(scores.lt(kth), filterValue);
  };
}

/**
 * HF TopPLogitsWarper (nucleus): sorts ascending, removes the tokens whose cumulative probability is
 * <= 1 - topP, always keeps the `minTokensToKeep` most likely; ties break by position (stable sort).
 */
export function topP(p: number, options: FilterOptions = {}): LogitsProcessor {
  const filterValue = options.filterValue ?? -Infinity;
  const minKeep = options.minTokensToKeep ?? 1;
  if (!(p >= 0 && p <= 1)) throw new GenerationError(`topP: must be in [0, 1], got ${p}`);
  if (!Number.isInteger(minKeep) || minKeep < 0) throw new GenerationError(`topP: minTokensToKeep must be a non-negative integer, got ${minKeep}`);
  return (scores) => {
    const vocab = checkRank('topP', scores)[1];
    const { values, indices } = sort(scores, -1, false); // ascending, [rows, vocab]
    const cumulative = values.softmax(-1).cumsum(-1);
    // The last `minKeep` sorted positions (the most likely tokens) are never removed.
    const removable = arange(0, vocab, 1, { backend: scores.backend, dtype: 'float32' }).ltScalar(vocab - minKeep); // [vocab]
    const removeSorted = cumulative.leScalar(1 - p).logicalAnd(removable.unsqueeze(0));
    // Back to vocabulary order: indices is a permutation of each row, so scatter-add is a scatter.
    const remove = full(scores.shape, 0, { backend: scores.backend }).scatterAdd(1, indices, removeSorted.toFloat()).gtScalar(0.5);
    return scores.maskedFill(remove, filterValue);
  };
}
