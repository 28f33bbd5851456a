// Beam bookkeeping on the host, with HF transformers' BeamSearchScorer semantics
// (generation/beam_search.py, the decoder_prompt_len version): each batch item keeps the `numBeams`
// best finished hypotheses, scored sum_logprobs / generatedLen ** lengthPenalty, where generatedLen
// counts the generated tokens including the eos; the device only ranks candidates (topk).

import { GenerationError } from './errors.js';

export type EarlyStopping = boolean | 'never';

interface Hypothesis {
  score: number;
  /** The row's ids: the input ids followed by the generated tokens (with the eos, when it ended on one). */
  tokens: number[];
}

/** HF BeamHypotheses: the n best finished hypotheses of one batch item. */
export class BeamHypotheses {
  readonly beams: Hypothesis[] = [];
  worstScore = 1e9;

  constructor(
    readonly numBeams: number,
    readonly lengthPenalty: number,
    readonly earlyStopping: EarlyStopping,
    /** Tokens a hypothesis may generate at most (HF: max_length - decoder_prompt_len). */
    readonly maxNewTokens: number,
  ) {}

  get length(): number {
    return this.beams.length;
  }

  /** Adds a hypothesis whose summed log-probability is `sumLogprobs` over `generatedLen` generated tokens. */
  add(tokens: number[], sumLogprobs: number, generatedLen: number): void {
    const score = sumLogprobs / generatedLen ** this.lengthPenalty;
    if (this.beams.length < this.numBeams || score > this.worstScore) {
      this.beams.push({ score, tokens });
      if (this.beams.length > this.numBeams) {
        // Drop the worst (the first of equals), as HF's sorted((score, idx)) does.
        const order = this.beams.map((b, i) => [b.score, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        this.beams.splice(order[0][1], 1);
        this.worstScore = order[1][0];
      } else {
        this.worstScore = Math.min(score, this.worstScore);
      }
    }
  }

  /**
   * Whether no open beam can still beat the worst kept hypothesis. `bestSumLogprobs` is the best
   * candidate's running sum, `generatedLen` the tokens generated including this step's.
   */
  isDone(bestSumLogprobs: number, generatedLen: number): boolean {
    if (this.beams.length < this.numBeams) return false;
    if (this.earlyStopping === true) return true;
    if (this.earlyStopping === false) return this.worstScore >= bestSumLogprobs / generatedLen ** this.lengthPenalty;
    // 'never': the best attainable score; with a positive length penalty the longest length gives it.
    const len = this.lengthPenalty > 0 ? this.maxNewTokens : generatedLen;
    return this.worstScore >= bestSumLogprobs / len ** this.lengthPenalty;
  }
}

export interface BeamStep {
  /** Per beam row (batch * numBeams): the next running score, token, and the row it continues. */
  scores: Float32Array;
  tokens: Int32Array;
  sourceRows: Int32Array;
}

export interface BeamScorerOptions {
  batchSize: number;
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: EarlyStopping;
  numReturnSequences: number;
  maxNewTokens: number;
  eosTokenIds: readonly number[];
  padTokenId: number | undefined;
}

/** HF BeamSearchScorer (no beam groups). */
export class BeamSearchScorer {
  readonly hyps: BeamHypotheses[];
  readonly done: boolean[];

  constructor(readonly options: BeamScorerOptions) {
    const { batchSize, numBeams, numReturnSequences } = options;
    if (!Number.isInteger(numBeams) || numBeams < 2) throw new GenerationError(`beam search: numBeams must be an integer >= 2, got ${numBeams}`);
    if (!Number.isInteger(numReturnSequences) || numReturnSequences < 1 || numReturnSequences > numBeams) {
      throw new GenerationError(`beam search: numReturnSequences must be an integer in [1, numBeams=${numBeams}], got ${numReturnSequences}`);
    }
    this.hyps = Array.from({ length: batchSize }, () => new BeamHypotheses(numBeams, options.lengthPenalty, options.earlyStopping, options.maxNewTokens));
    this.done = new Array<boolean>(batchSize).fill(false);
  }

  get isDone(): boolean {
    return this.done.every(Boolean);
  }

  /**
   * One step. `rows` holds each beam row's ids before this step's token; the candidates are, per
   * batch item, the top `n` (sorted, best first) of running score + log-prob over numBeams * vocab:
   * their scores, tokens and beam (0 .. numBeams-1). `generatedLen` counts this step's token.
   */
  process(rows: readonly number[][], candScores: ArrayLike<number>, candTokens: ArrayLike<number>, candBeams: ArrayLike<number>, n: number, generatedLen: number): BeamStep {
    const { numBeams: K, eosTokenIds, padTokenId } = this.options;
    const B = this.hyps.length;
    const out: BeamStep = { scores: new Float32Array(B * K), tokens: new Int32Array(B * K), sourceRows: new Int32Array(B * K) };
    for (let b = 0; b < B; b++) {
      if (this.done[b]) {
        if (padTokenId === undefined) throw new GenerationError('beam search: a batch item finished early; padTokenId (or eosTokenId) is needed to pad it');
        out.tokens.fill(padTokenId, b * K, (b + 1) * K);
        out.sourceRows.fill(b * K, b * K, (b + 1) * K);
        continue;
      }
      let filled = 0;
      for (let rank = 0; rank < n && filled < K; rank++) {
        const c = b * n + rank;
        const token = candTokens[c];
        const row = b * K + candBeams[c];
        if (eosTokenIds.includes(token)) {
          // An eos outside the top numBeams candidates does not finish a hypothesis.
          if (rank >= K) continue;
          this.hyps[b].add([...rows[row], token], candScores[c], generatedLen);
        } else {
          out.scores[b * K + filled] = candScores[c];
          out.tokens[b * K + filled] = token;
          out.sourceRows[b * K + filled] = row;
          filled++;
        }
      }
      if (filled < K) throw new GenerationError(`beam search: fewer than ${K} of the ${n} candidates of batch item ${b} are not eos`);
      let best = -Infinity;
      for (let rank = 0; rank < n; rank++) best = Math.max(best, candScores[b * n + rank]);
      this.done[b] ||= this.hyps[b].isDone(best, generatedLen);
    }
    return out;
  }

  /**
   * Adds the open beams of unfinished batch items (`rows`, their running `scores`, `generatedLen`
   * tokens each) and returns the best `numReturnSequences` hypotheses per batch item, best first.
   */
  finalize(rows: readonly number[][], scores: ArrayLike<number>, generatedLen: number): { tokens: number[]; score: number }[] {
    const { numBeams: K, numReturnSequences } = this.options;
    const out: { tokens: number[]; score: number }[] = [];
    this.hyps.forEach((h, b) => {
      if (!this.done[b]) for (let k = 0; k < K; k++) h.add([...rows[b * K + k]], scores[b * K + k], generatedLen);
      // HF: sorted ascending (stable), then pop() from the end.
      const sorted = h.beams.map((x, i) => [x, i] as const).sort((x, y) => x[0].score - y[0].score || x[1] - y[1]);
      for (let j = 0; j < numReturnSequences; j++) out.push(sorted[sorted.length - 1 - j][0]);
    });
    return out;
  }
}
