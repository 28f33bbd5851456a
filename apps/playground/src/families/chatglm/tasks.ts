// The ChatGLM tasks: what the chat panel sends to the worker and what comes back (plain data).

/** One turn of the conversation: [query, response], as the reference's `history`. */
export type ChatTurn = [string, string];

export interface ChatInput {
  query: string;
  /** The earlier turns; the prompt is the reference's `[Round N]\n问：...\n答：...`. */
  history: ChatTurn[];
  /** Total length, prompt included (the reference's max_length), capped at max_sequence_length. */
  maxLength: number;
  /** false: greedy decoding; true: sampling with topP / temperature (the reference's defaults 0.7 / 0.95). */
  doSample: boolean;
  topP: number;
  temperature: number;
  seed: number;
}

/** Emitted after every new token: the processed response so far and its token ids. */
export interface ChatPartial {
  response: string;
  tokens: number[];
}

export interface ChatResult {
  response: string;
  history: ChatTurn[];
  /** The framed prompt's ids (ending in [gMASK] <sop>) and the response's ids (before <eop>). */
  promptIds: number[];
  tokens: number[];
  ms: number;
  /** Decoded tokens per second after the first (the first token includes the prompt's forward pass). */
  tokensPerSecond: number;
  firstTokenMs: number;
  /** Bytes the backend holds after the turn (the model's weights plus anything cached). */
  backendBytes: number;
}
