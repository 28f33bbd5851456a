// The contract between the conformance runner (tooling/conformance) and the model packages: a family
// registers one runner per reference class name; the runner reads a case folder (see
// ../shared/fixtures/README.md), hands the case to the class's runner, and compares what comes back
// with expected.safetensors.

import type { Backend, Tensor } from '@lm/tensor-gpu';
import type { JsonObject } from '../pretrained-config.js';

export interface ConformanceCase {
  /** The case folder (config.json, model.safetensors, case.json, ... inside). */
  dir: string;
  /** case.json as read. */
  spec: JsonObject & {
    class: string;
    inputs?: Record<string, unknown>;
    tensor_inputs?: string[];
    kwargs?: Record<string, unknown>;
    init_kwargs?: Record<string, unknown>;
    outputs: string[];
  };
  /** config.json as read (empty when the case has none). */
  config: JsonObject;
  /** Inputs stored in inputs.safetensors (named in case.json `tensor_inputs`), on `backend`. */
  tensorInputs: Map<string, Tensor>;
  backend: Backend;
}

/**
 * Runs one case and returns every output it produced under the reference's names (`logits`,
 * `hidden_states.0`, `step1.past_key_values.0.1`, `grad.bert.embeddings.word_embeddings.weight`).
 * The runner reads and disposes the returned tensors. Throwing fails the case with the message.
 */
export type ConformanceClassRunner = (c: ConformanceCase) => Promise<Map<string, Tensor>>;

/** What a model package exports for the runner: its reference class names and how to run each. */
export interface ConformanceFamily {
  /** Human-readable family name (`megatron-bert`). */
  family: string;
  classes: Record<string, ConformanceClassRunner>;
}
