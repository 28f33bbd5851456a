// Decoding inputs as the reference builds them (THUDM/chatglm-6b `modeling_chatglm.py`,
// ChatGLMForConditionalGeneration.prepare_inputs_for_generation and
// _update_model_kwargs_for_generation), and the greedy loop transformers' generate() runs with them.
//
// Two paths, as in the reference:
// - given masks (a tokenizer's bool attention_mask [batch, 1, seq, seq], true = masked, and its
//   position_ids): after each step the mask grows by a masked column and a new row (the last row,
//   its own column attended), and the position ids by their last column with the block position + 1;
//   a cached step feeds the last row / column.
// - auto (neither given): the prefill derives both from the ids; a cached step has no mask (it
//   attends to every cached key) and position ids [mask position, total length - context length]
//   (2-D) or [mask position] (1-D, even for [gMASK] rows, unlike the prefill: a reference quirk).

import { argmax, concat, fromHost, full, noGrad, type Tensor } from '@lm/tensor-gpu';
import { ChatGLMInputError, type ChatGLMForConditionalGeneration, type ChatGLMModelInputs, type LayerPast } from './modeling.js';
import type { ChatGLMConfig } from './config.js';

/** What carries from one decoding step to the next. */
export interface ChatGLMGenerationState {
  pastKeyValues: LayerPast[] | null;
  /** The given bool mask, grown every step (null on the auto path). */
  attentionMask: Tensor | null;
  /** The given position ids, grown every step (null on the auto path). */
  positionIds: Tensor | null;
}

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

/**
 * `prepare_inputs_for_generation`: the forward inputs of the next step for the rows `seqs` (prompt and
 * tokens so far, host ids). Every tensor returned is new and the caller's.
 */
export function prepareInputsForGeneration(model: ChatGLMForConditionalGeneration, seqs: readonly (readonly number[])[], state: ChatGLMGenerationState): ChatGLMModelInputs {
  const config = model.config;
  const backend = model.lm_head.weight.backend;
  const batch = seqs.length;
  const seqLength = seqs[0].length;
  const special = seqs.map((row, i) => rowSpecialPositions(row, config, `input_ids row ${i}`));
  if (!state.pastKeyValues) {
    const inputIds = fromHost(Int32Array.from(seqs.flat()), [batch, seqLength], 'int32', backend);
    return { inputIds, attentionMask: state.attentionMask?.clone() ?? null, positionIds: state.positionIds?.clone() ?? null, pastKeyValues: null };
  }
  const inputIds = fromHost(Int32Array.from(seqs.map((row) => row[row.length - 1])), [batch, 1], 'int32', backend); // [batch, 1]
  const attentionMask = state.attentionMask ? state.attentionMask.narrow(2, state.attentionMask.shape[2] - 1, 1).contiguous() : null; // [batch, 1, 1, k]
  let positionIds: Tensor;
  if (state.positionIds) {
    positionIds = state.positionIds.narrow(state.positionIds.rank - 1, state.positionIds.shape[state.positionIds.rank - 1] - 1, 1).contiguous();
  } else if (config.positionEncoding2d) {
    const values = special.flatMap((s) => [s.maskPosition, seqLength - s.contextLength]);
    positionIds = fromHost(Int32Array.from(values), [batch, 2, 1], 'int32', backend); // [batch, 2, 1]
  } else {
    positionIds = fromHost(Int32Array.from(special.map((s) => s.maskPosition)), [batch, 1], 'int32', backend); // [batch, 1]
  }
  return { inputIds, attentionMask, positionIds, pastKeyValues: state.pastKeyValues };
}

/**
 * `_update_model_kwargs_for_generation`: the state after a step whose outputs carried `pastKeyValues`.
 * The old mask, position ids and cache are disposed (the new cache holds the old keys and values).
 */
export function updateModelKwargsForGeneration(state: ChatGLMGenerationState, pastKeyValues: LayerPast[]): ChatGLMGenerationState {
  const next: ChatGLMGenerationState = { pastKeyValues, attentionMask: null, positionIds: null };
  noGrad(() => {
    if (state.attentionMask) {
      const m = state.attentionMask;
      const [batch, , q, k] = m.shape;
      const backend = m.backend;
      const widened = concat([m, full([batch, 1, q, 1], 1, { dtype: 'bool', backend })], 3); // [batch, 1, q, k + 1]
      const lastRow = widened.narrow(2, q - 1, 1).narrow(3, 0, k); // [batch, 1, 1, k]
      const newRow = concat([lastRow, full([batch, 1, 1, 1], 0, { dtype: 'bool', backend })], 3); // [batch, 1, 1, k + 1]
      next.attentionMask = concat([widened, newRow], 2); // [batch, 1, q + 1, k + 1]
      [widened, lastRow, newRow, m].forEach((t) => t.dispose());
    }
    if (state.positionIds) {
      const p = state.positionIds;
      const last = p.narrow(p.rank - 1, p.shape[p.rank - 1] - 1, 1); // [batch, 2, 1] or [batch, 1]
      let grown: Tensor;
      if (p.rank === 3) {
        const position = last.narrow(1, 0, 1);
        const block = last.narrow(1, 1, 1).add(1);
        const column = concat([position, block], 1); // [batch, 2, 1]
        grown = concat([p, column], 2);
        [position, block, column].forEach((t) => t.dispose());
      } else {
        grown = concat([p, last], 1);
      }
      next.positionIds = grown;
      [last, p].forEach((t) => t.dispose());
    }
  });
  if (state.pastKeyValues) for (const [k, v] of state.pastKeyValues) [k, v].forEach((t) => t.dispose());
  return next;
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

/** Greedy decoding for `maxNewTokens` steps, no stopping and no logits processing (the fixtures' generate()). */
export async function greedySearch(model: ChatGLMForConditionalGeneration, options: GreedySearchOptions): Promise<GreedySearchResult> {
  const { inputIds, maxNewTokens } = options;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new ChatGLMInputError(`greedySearch: maxNewTokens must be a positive integer, got ${maxNewTokens}`);
  const [batch, seq] = inputIds.shape;
  const limit = model.config.maxSequenceLength;
  if (seq + maxNewTokens > limit) {
    throw new ChatGLMInputError(`greedySearch: the prompt (${seq} tokens) plus maxNewTokens ${maxNewTokens} exceeds max_sequence_length ${limit}`);
  }
  const hostIds = await inputIds.data();
  const seqs = Array.from({ length: batch }, (_, b) => Array.from(hostIds.subarray(b * seq, (b + 1) * seq)));
  let state: ChatGLMGenerationState = { pastKeyValues: null, attentionMask: options.attentionMask?.clone() ?? null, positionIds: options.positionIds?.clone() ?? null };
  const stepLogits: Tensor[] = [];
  const generated: number[][] = seqs.map(() => []);
  for (let step = 0; step < maxNewTokens; step++) {
    const inputs = prepareInputsForGeneration(model, seqs, state);
    const outputs = noGrad(() => model.forward({ ...inputs, useCache: true }));
    for (const t of [inputs.inputIds, inputs.attentionMask, inputs.positionIds]) t?.dispose();
    const q = outputs.logits.shape[1];
    const next = noGrad(() => argmax(outputs.logits.narrow(1, q - 1, 1).reshape(batch, -1), -1)); // [batch]
    const ids = Array.from(await next.data());
    next.dispose();
    if (options.keepStepLogits) stepLogits.push(outputs.logits);
    else outputs.logits.dispose();
    ids.forEach((id, b) => {
      seqs[b].push(id);
      generated[b].push(id);
    });
    state = updateModelKwargsForGeneration(state, outputs.pastKeyValues!);
  }
  state.attentionMask?.dispose();
  state.positionIds?.dispose();
  const result: GreedySearchResult = { sequences: seqs, generated, pastKeyValues: state.pastKeyValues! };
  if (options.keepStepLogits) result.stepLogits = stepLogits;
  return result;
}
