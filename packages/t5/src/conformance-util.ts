// The T5 runners' one addition to @lm/layers/testing's model-case helpers: which case.json inputs are
// float even when every value in them happens to be an integer (head masks, embeddings).

import type { Backend, Tensor } from '@lm/tensor-gpu';
import { caseInputTensor, type NestedNumbers } from '@lm/layers/testing';

const FLOAT_INPUTS = new Set(['head_mask', 'decoder_head_mask', 'cross_attn_head_mask', 'inputs_embeds', 'decoder_inputs_embeds']);

export type Nested = NestedNumbers;

/** A case.json input as a tensor: int32 ids, masks and labels; float32 for float inputs. */
export function inputTensor(name: string, value: Nested, backend: Backend): Tensor {
  return caseInputTensor(value, backend, { float: FLOAT_INPUTS.has(name) });
}
