// The T5 tasks: what the panel sends to the worker and what comes back (plain data).

/** greedy: argmax every step; beam: beam search (not streamed: the best beam is known at the end); sample: temperature / top-k / top-p. */
export type DecodingMode = 'greedy' | 'beam' | 'sample';

export interface GenerateInput {
  text: string;
  mode: DecodingMode;
  maxNewTokens: number;
  /** Beam search only. */
  numBeams: number;
  /** Sampling only. */
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

/** Emitted once per new token while generating (greedy and sampling). */
export interface GeneratePartial {
  token: number;
  text: string;
}

export interface GenerateResult {
  /** The encoder input: ids (with the appended eos) and their token strings. */
  inputIds: number[];
  inputTokens: string[];
  /** The generated ids, without the decoder start token (eos included when generated). */
  tokens: number[];
  outputTokens: string[];
  /** The generated ids decoded, sentinels kept, pad and eos left out. */
  text: string;
  ms: number;
  /** Median time per generated token after the first (encoder + first step excluded). */
  msPerToken: number;
}

export interface CrossAttentionInput {
  inputIds: number[];
  /** The generated ids: row i of the map is the step that produced tokens[i]. */
  tokens: number[];
}

export interface CrossAttentionResult {
  /** Columns: the encoder tokens. */
  encoderTokens: string[];
  /** Rows: the generated tokens (the decoder reads the start token and the tokens before each). */
  decoderTokens: string[];
  layers: number;
  heads: number;
  /** Cross-attention probabilities [layers, heads, decoderTokens, encoderTokens], row-major. */
  data: Float32Array;
  ms: number;
}
