// The MegatronBERT tasks: what the panel sends to the worker and what comes back (plain data).
import type { FillMaskCandidate } from '@lm/megatron-bert';

export type { FillMaskCandidate };

export interface TokenInfo {
  id: number;
  /** The vocabulary entry ([CLS], hello, ##s, ...). */
  token: string;
  typeId: number;
  special: boolean;
}

export interface FillMaskInput {
  text: string;
  topK: number;
}

export interface FillMaskResult {
  /** One entry per [MASK], in the order they appear; candidates best first (`fillMask` of @lm/megatron-bert). */
  masks: { position: number; candidates: FillMaskCandidate[] }[];
  tokens: TokenInfo[];
  ms: number;
}

export interface InspectInput {
  text: string;
}

export interface InspectResult {
  tokens: TokenInfo[];
  /** Self-attention probabilities, [layers, heads, seq(query), seq(key)] row-major. */
  attentions: { layers: number; heads: number; seq: number; data: Float32Array };
  /** ‖word embedding‖ per token. */
  wordNorms: number[];
  /** ‖position embedding‖ per position (absolute position embeddings only). */
  positionNorms: number[] | null;
  /** ‖hidden state‖ per token after the embeddings (row 0) and after each layer: [layers + 1][seq]. */
  hiddenNorms: number[][];
  /** The first `previewDims` components of each token's word embedding: [seq][previewDims]. */
  embeddingPreview: number[][];
  hiddenSize: number;
  ms: number;
}

export interface NeighboursInput {
  tokenId: number;
  k: number;
}

export interface NeighboursResult {
  token: string;
  /** The vocabulary entries nearest by cosine similarity of the word embeddings, the token itself left out. */
  neighbours: { id: number; token: string; cosine: number }[];
}
