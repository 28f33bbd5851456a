// ChatGLM as a DecoderStep for @lm/layers' decoding loop (greedy, sampling, beam search, streaming),
// feeding each step the inputs the reference's prepare_inputs_for_generation builds and carrying what
// its _update_model_kwargs_for_generation carries (THUDM/chatglm-6b `modeling_chatglm.py`), and the
// greedy search transformers' generate() runs with them (the fixtures' generate), on that loop.
//
// Two paths, as in the reference:
// - given masks (a tokenizer's bool attention_mask [batch, 1, seq, seq], true = masked, and its
//   position_ids): after each step the mask grows by a masked column and a new row (the last row,
//   its own column attended), and the position ids by their last column with the block position + 1;
//   a cached step feeds the last row / column.
// - auto (neither given): the prefill derives both from the ids; a cached step has no mask (it
//   attends to every cached key) and position ids [mask position, total length - context length]
//   (2-D) or [mask position] (1-D, even for [gMASK] rows, unlike the prefill: a reference quirk).

import { concat, full, keep, stack, type Tensor } from '@lm/tensor-gpu';
import { generate, type CacheOps, type DecoderStep } from '@lm/layers';
import { ChatGLMInputError, type ChatGLMForConditionalGeneration, type LayerPast } from './modeling.js';
import type { ChatGLMConfig } from './config.js';

/** Host positions of the special tokens in one row, as the reference finds them with `list.index`. */
export function rowSpecialPositions(row: readonly number[], config: ChatGLMConfig, where = 'input_ids'): { maskPosition: number; useGmask: boolean; contextLength: number } {
  const useGmask = row.includes(config.gmaskTokenId);
  const maskToken = useGmask ? config.gmaskTokenId : config.maskTokenId;
  const maskPosition = row.indexOf(maskToken);
  if (maskPosition < 0) throw new ChatGLMInputError(`ChatGLM: ${where} has neither [gMASK] (id ${config.gmaskTokenId}) nor [MASK] (id ${config.maskTokenId})`);
  const contextLength = row.indexOf(config.bosTokenId ?? -1);
  if (contextLength < 0) throw new ChatGLMInputError(`ChatGLM: ${where} has no <bos> (id ${config.bosTokenId})`);
  return { maskPosition, useGmask, contextLength };
}

/** The given mask after a step: a masked column for the new key, and a new row (the last row, its own column attended). */
function growAttentionMask(m: Tensor): Tensor {
  const [batch, , q, k] = m.shape;
  const backend = m.backend;
  const widened = concat([m, full([batch, 1, q, 1], 1, { dtype: 'bool', backend })], 3); // [batch, 1, q, k + 1]
  const lastRow = widened.narrow(2, q - 1, 1).narrow(3, 0, k); // [batch, 1, 1, k]
  const newRow = concat([lastRow, full([batch, 1, 1, 1], 0, { dtype: 'bool', backend })], 3); // [batch, 1, 1, k + 1]
  const grown = concat([widened, newRow], 2); // [batch, 1, q + 1, k + 1]
  [widened, lastRow, newRow].forEach((t) => t.dispose());
  return grown;
}

/** The given position ids after a step: their last column again, with the block position + 1 (2-D). */
function growPositionIds(p: Tensor): Tensor {
  const last = p.narrow(p.rank - 1, p.shape[p.rank - 1] - 1, 1); // [batch, 2, 1] or [batch, 1]
  if (p.rank !== 3) {
    const grown = concat([p, last], 1); // [batch, seq + 1]
    last.dispose();
    return grown;
  }
  const position = last.narrow(1, 0, 1);
  const block = last.narrow(1, 1, 1).add(1);
  const column = concat([position, block], 1); // [batch, 2, 1]
  const grown = concat([p, column], 2); // [batch, 2, seq + 1]
  [last, position, block, column].forEach((t) => t.dispose());
  return grown;
}

/** The last column of position ids ([batch, 2, 1] or [batch, 1]): what a cached step feeds. */
const lastColumn = (p: Tensor): Tensor => p.narrow(p.rank - 1, p.shape[p.rank - 1] - 1, 1).contiguous();

/**
 * The decoding cache: the layers' keys/values ([k, rows, heads, headDim]), each row's [mask position,
 * context length] (the auto path), and on the given-mask path the mask and position ids already grown
 * for the next step.
 */
export interface ChatGLMCache {
  past: LayerPast[];
  /** int32 [rows, 2] */
  special: Tensor;
  /** bool [rows, 1, q, k], true = masked. */
  attentionMask?: Tensor;
  /** int32 [rows, 2, len] or [rows, len]. */
  positionIds?: Tensor;
}

/** CacheOps for ChatGLMCache: keys/values have their rows on axis 1, everything else on axis 0. */
export const chatglmCacheOps: CacheOps<ChatGLMCache> = {
  tensors: (cache) => [...cache.past.flat(), cache.special, ...(cache.attentionMask ? [cache.attentionMask] : []), ...(cache.positionIds ? [cache.positionIds] : [])],
  reorder: (cache, indices) => ({
    past: cache.past.map(([k, v]) => [k.indexSelect(1, indices), v.indexSelect(1, indices)] as const),
    special: cache.special.indexSelect(0, indices),
    ...(cache.attentionMask ? { attentionMask: cache.attentionMask.indexSelect(0, indices) } : {}),
    ...(cache.positionIds ? { positionIds: cache.positionIds.indexSelect(0, indices) } : {}),
  }),
};

/**
 * The model as a DecoderStep for @lm/layers' generate / stream, with the reference's two paths: the
 * auto path (masks and position ids derived from the ids), or, with `given`, a tokenizer's mask and
 * position ids for the prompt, grown after every step as `_update_model_kwargs_for_generation` does
 * and fed by their last row / column (`prepare_inputs_for_generation`).
 */
export function chatglmDecoderStep(model: ChatGLMForConditionalGeneration, given: { attentionMask?: Tensor | null; positionIds?: Tensor | null } = {}): DecoderStep<ChatGLMCache> {
  /** What the next step needs of the mask and position ids given to this one. */
  const grown = (attentionMask: Tensor | null, positionIds: Tensor | null) => ({
    ...(attentionMask ? { attentionMask: growAttentionMask(attentionMask) } : {}),
    ...(positionIds ? { positionIds: growPositionIds(positionIds) } : {}),
  });
  return (inputIds, cache) => {
    if (!cache) {
      const s = model.transformer.specialPositions(inputIds);
      const special = stack([s.maskPositions, s.contextLengths], 1); // [rows, 2]
      const attentionMask = given.attentionMask ?? null;
      const positionIds = given.positionIds ?? null;
      const out = model.forward({ inputIds, attentionMask, positionIds, useCache: true });
      return { logits: out.logits, cache: { past: out.pastKeyValues!, special, ...grown(attentionMask, positionIds) } };
    }
    const rows = inputIds.shape[0];
    const attentionMask = cache.attentionMask ? cache.attentionMask.narrow(2, cache.attentionMask.shape[2] - 1, 1).contiguous() : null; // [rows, 1, 1, k]
    let positionIds: Tensor;
    if (cache.positionIds) {
      positionIds = lastColumn(cache.positionIds);
    } else {
      const total = cache.past[0][0].shape[0] - (model.config.preSeqLen ?? 0) + 1; // ids so far, the new one included
      const maskPosition = cache.special.narrow(1, 0, 1); // [rows, 1]
      positionIds = model.config.positionEncoding2d
        ? concat([maskPosition, cache.special.narrow(1, 1, 1).neg().add(total)], 1).reshape(rows, 2, 1) // [rows, 2, 1]
        : maskPosition; // [rows, 1]
    }
    const out = model.forward({ inputIds, attentionMask, positionIds, pastKeyValues: cache.past, useCache: true });
    return { logits: out.logits, cache: { past: out.pastKeyValues!, special: cache.special.clone(), ...grown(cache.attentionMask ?? null, cache.positionIds ?? null) } };
  };
}

export interface GreedySearchOptions {
  /** int32 [batch, seq] */
  inputIds: Tensor;
  /** bool [batch, 1, seq, seq], true = masked (a tokenizer's padded batch); with positionIds. */
  attentionMask?: Tensor | null;
  positionIds?: Tensor | null;
  maxNewTokens: number;
  /** Keep every step's logits (step 0: all positions; later steps: [batch, 1, vocab]). */
  keepStepLogits?: boolean;
}

export interface GreedySearchResult {
  /** Prompt + generated ids per row. */
  sequences: number[][];
  /** Generated ids per row. */
  generated: number[][];
  /** The final cache (the caller's to dispose). */
  pastKeyValues: LayerPast[];
  stepLogits?: Tensor[];
}

/**
 * Greedy decoding for `maxNewTokens` steps, no stopping and no logits processing (the fixtures'
 * generate()): @lm/layers' loop over `chatglmDecoderStep`, keeping what the fixtures compare (every
 * step's logits, the final cache).
 */
export async function greedySearch(model: ChatGLMForConditionalGeneration, options: GreedySearchOptions): Promise<GreedySearchResult> {
  const { inputIds, maxNewTokens } = options;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new ChatGLMInputError(`greedySearch: maxNewTokens must be a positive integer, got ${maxNewTokens}`);
  const [batch, seq] = inputIds.shape;
  const limit = model.config.maxSequenceLength;
  if (seq + maxNewTokens > limit) {
    throw new ChatGLMInputError(`greedySearch: the prompt (${seq} tokens) plus maxNewTokens ${maxNewTokens} exceeds max_sequence_length ${limit}`);
  }
  const hostIds = await inputIds.data();
  for (let b = 0; b < batch; b++) rowSpecialPositions(Array.from(hostIds.subarray(b * seq, (b + 1) * seq)), model.config, `input_ids row ${b}`);
  const step = chatglmDecoderStep(model, { attentionMask: options.attentionMask, positionIds: options.positionIds });
  const stepLogits: Tensor[] = [];
  let pastKeyValues: LayerPast[] = [];
  let calls = 0;
  // The loop owns (and frees) its caches and logits; the fixtures' outputs are kept out of its scope.
  const recording: DecoderStep<ChatGLMCache> = (ids, cache) => {
    const out = step(ids, cache);
    if (options.keepStepLogits) stepLogits.push(keep(out.logits.clone()));
    if (++calls === maxNewTokens) pastKeyValues = out.cache.past.map(([k, v]) => [keep(k.clone()), keep(v.clone())] as const);
    return out;
  };
  try {
    const { sequences } = await generate(recording, inputIds, { maxNewTokens, doSample: false, cacheOps: chatglmCacheOps });
    const result: GreedySearchResult = { sequences, generated: sequences.map((row) => row.slice(seq)), pastKeyValues };
    if (options.keepStepLogits) result.stepLogits = stepLogits;
    return result;
  } catch (e) {
    for (const t of [...stepLogits, ...pastKeyValues.flat()]) t.dispose();
    throw e;
  }
}
