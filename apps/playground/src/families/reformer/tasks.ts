// The Reformer tasks: what the panel sends to the worker and what comes back (plain data).

export interface GenerateInput {
  prompt: string;
  maxNewTokens: number;
  /** Sample (with topK / temperature) instead of greedy decoding. */
  doSample: boolean;
  temperature: number;
  topK: number;
  seed: number;
}

/** Emitted once per new token while generating. */
export interface GeneratePartial {
  token: number;
  text: string;
}

export interface GenerateResult {
  promptTokens: string[];
  /** The new token ids, in order. */
  tokens: number[];
  /** The decoded continuation. */
  text: string;
  ms: number;
  msPerToken: number;
}

export interface BucketsInput {
  text: string;
}

export interface LayerBuckets {
  layer: number;
  type: 'lsh' | 'local';
  chunkLength: number;
  /** LSH: buckets per round (num_buckets, or the product of its factors). */
  numBuckets: number;
  /** LSH: [heads][rounds][seq] bucket ids; local: null (the chunk of position t is floor(t / chunkLength)). */
  buckets: number[][][] | null;
  /** Chunks each chunk also attends to. */
  chunksBefore: number;
  chunksAfter: number;
}

export interface BucketsResult {
  tokens: string[];
  layers: LayerBuckets[];
  /** True when hash_seed fixes the rotations (the view then shows the buckets the model attends with). */
  seeded: boolean;
  ms: number;
}
