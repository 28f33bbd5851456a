// BERT's masked-LM corruption (Devlin et al. 2019, section 3.1 and appendix A.1; the reference is
// google-research/bert create_pretraining_data.py `create_masked_lm_predictions`): of the non-special
// tokens, round(n * p) (at least one) are chosen; each chosen token becomes [MASK] 80% of the time,
// a random non-special token 10%, and stays unchanged 10%. Labels hold the original token where one
// was chosen and -100 (ignored by the loss) everywhere else. Special tokens ([CLS], [SEP], [PAD], ...)
// are never chosen.

import type { Rng } from '../core/rng.js';

import { IGNORE_INDEX } from '../core/objective.js';

export { IGNORE_INDEX };

export interface MaskingOptions {
  /** Fraction of non-special tokens to predict. */
  probability: number;
  maskTokenId: number;
  /** Ids never chosen for prediction, nor drawn as random replacements. */
  specialIds: ReadonlySet<number>;
  /** Token ids a random replacement is drawn from (non-special ids of the vocabulary). */
  replacementIds: Int32Array;
}

export interface MaskedTokens {
  inputIds: Int32Array;
  labels: Int32Array;
}

/** Builds the replacement id list: every id below vocabSize that is not special. */
export function replacementIds(vocabSize: number, specialIds: ReadonlySet<number>): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < vocabSize; i++) if (!specialIds.has(i)) out.push(i);
  return Int32Array.from(out);
}

/** Masks a copy of `ids` (unpadded); `rng` decides everything, so a seeded rng gives the same masks. */
export function maskTokens(ids: Int32Array, rng: Rng, options: MaskingOptions): MaskedTokens {
  const inputIds = Int32Array.from(ids);
  const labels = new Int32Array(ids.length).fill(IGNORE_INDEX);
  const candidates: number[] = [];
  for (let i = 0; i < ids.length; i++) if (!options.specialIds.has(ids[i])) candidates.push(i);
  if (candidates.length === 0) return { inputIds, labels };
  const count = Math.min(candidates.length, Math.max(1, Math.round(candidates.length * options.probability)));
  // Partial Fisher-Yates: the first `count` entries become a uniform sample.
  for (let k = 0; k < count; k++) {
    const j = k + Math.floor(rng.next() * (candidates.length - k));
    [candidates[k], candidates[j]] = [candidates[j], candidates[k]];
    const pos = candidates[k];
    labels[pos] = ids[pos];
    const r = rng.next();
    if (r < 0.8) inputIds[pos] = options.maskTokenId;
    else if (r < 0.9) inputIds[pos] = options.replacementIds[Math.floor(rng.next() * options.replacementIds.length)];
  }
  return { inputIds, labels };
}
