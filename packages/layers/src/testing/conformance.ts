// The contract between the conformance runner (tooling/conformance) and the model packages: a family
// registers one runner per reference class name; the runner reads a case folder (see
// ../shared/fixtures/README.md), hands the case to the class's runner, and compares what comes back
// with expected.safetensors (and, for the JSON expectations tokenizer cases carry, with case.json).

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

/** An output as host values (token ids, masks): its shape and its values in row-major order. */
export interface HostOutput {
  shape: readonly number[];
  data: ArrayLike<number>;
}

/** One output compared with expected.safetensors: a tensor (the runner reads and disposes it) or host values. */
export type ConformanceOutput = Tensor | HostOutput;

/**
 * What a class runner returns. Models return the outputs alone. Cases whose expectations are also
 * stored as JSON in case.json (tokenizers: `expected_ids`, `decode_expected`, with strings, token
 * lists and nested id lists) return them too, under `values`: one entry per case.json field named
 * `expected_*` or `*_expected`, in that field's layout; the runner compares each with the field
 * exactly (numbers that are not integers within atol/rtol).
 */
export type ConformanceOutputs = Map<string, ConformanceOutput> | { outputs: Map<string, ConformanceOutput>; values: Record<string, unknown> };

/**
 * Runs one case and returns every output it produced under the reference's names (`logits`,
 * `hidden_states.0`, `step1.past_key_values.0.1`, `grad.bert.embeddings.word_embeddings.weight`,
 * `0.input_ids`). The runner reads and disposes the returned tensors. Throwing fails the case with
 * the message.
 */
export type ConformanceClassRunner = (c: ConformanceCase) => Promise<ConformanceOutputs>;

/** What a package exports for the runner: its reference class names (models, tokenizers) and how to run each. */
export interface ConformanceFamily {
  /** Human-readable family name (`megatron-bert`). */
  family: string;
  classes: Record<string, ConformanceClassRunner>;
}

/** The case.json fields that hold expected values as JSON (`expected_ids`, `decode_expected`). */
export function isExpectationField(key: string): boolean {
  return key.startsWith('expected_') || key.endsWith('_expected');
}
