// Embedding: rows of a [numEmbeddings, embeddingDim] table; the padding row gets no gradient.

import { embedding, noGrad, zeros, type Backend, type Tensor } from '@lm/tensor-gpu';
import { initTensor, isInitSkipped } from '../init.js';
import { Module } from '../module.js';

export interface EmbeddingOptions {
  paddingIdx?: number | null;
  backend?: Backend;
}

export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly paddingIdx: number | null;
  declare weight: Tensor;

  constructor(numEmbeddings: number, embeddingDim: number, options: EmbeddingOptions = {}) {
    super();
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    const pad = options.paddingIdx ?? null;
    if (pad !== null && (pad >= numEmbeddings || pad < -numEmbeddings)) {
      throw new RangeError(`Embedding: paddingIdx ${pad} is out of range for ${numEmbeddings} embeddings`);
    }
    this.paddingIdx = pad === null ? null : pad < 0 ? pad + numEmbeddings : pad;
    // torch's default: N(0, 1) with the padding row zeroed.
    const w = initTensor([numEmbeddings, embeddingDim], { kind: 'normal', std: 1 }, options.backend);
    if (this.paddingIdx !== null && !isInitSkipped()) {
      const row = w.narrow(0, this.paddingIdx, 1);
      const zero = zeros([1, embeddingDim], { backend: w.backend });
      noGrad(() => row.copy_(zero));
      row.dispose();
      zero.dispose();
    }
    this.registerParameter('weight', w);
  }

  /** int32 ids of any shape -> [...ids.shape, embeddingDim]. */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids, { paddingIdx: this.paddingIdx });
  }
}
