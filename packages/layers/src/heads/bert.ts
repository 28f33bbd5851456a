// BERT's masked-LM head, which every BERT-derived encoder carries unchanged (Hugging Face copies it into
// each model file: "Copied from transformers.models.bert.modeling_bert.BertLMPredictionHead"): the
// transform (dense + activation + LayerNorm), then the vocabulary projection `decoder` whose `bias` is
// one tensor registered under two names. Families subclass these under their reference's class names
// (MegatronBertLMPredictionHead, RealmLMPredictionHead, ...), so the state-dict names stay the reference's.

import { full, type FusedBiasActivation, type Tensor } from '@lm/tensor-gpu';
import type { Activation } from '../activations.js';
import { linearAct, resolveActivation, type ActivationSpec } from '../attention/feed-forward.js';
import { Module, type ModuleOptions } from '../module.js';
import { LayerNorm } from '../nn/norm.js';
import { Linear } from '../nn/linear.js';

/** The config fields the head reads (the reference's `hidden_size`, `hidden_act`, `layer_norm_eps`, `vocab_size`). */
export interface BertHeadConfig {
  hiddenSize: number;
  hiddenAct: ActivationSpec;
  layerNormEps: number;
  vocabSize: number;
}

/** dense + activation + LayerNorm, before the vocabulary projection. */
export class BertPredictionHeadTransform extends Module {
  declare dense: Linear;
  readonly transformActFn: { fn: Activation; fused: FusedBiasActivation | null };
  declare LayerNorm: LayerNorm;

  constructor(config: BertHeadConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('dense', new Linear(config.hiddenSize, config.hiddenSize, options));
    this.transformActFn = resolveActivation(config.hiddenAct);
    this.registerModule('LayerNorm', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps, backend: options.backend }));
  }

  forward(hiddenStates: Tensor): Tensor {
    return this.LayerNorm.forward(linearAct(this.dense, hiddenStates, this.transformActFn));
  }
}

/** transform, then the vocabulary projection: `decoder` (its weight tied to the word embeddings where the model ties) + `bias`. */
export class BertLMPredictionHead extends Module {
  declare transform: BertPredictionHeadTransform;
  declare decoder: Linear;
  /** [vocab]; also registered as `decoder.bias` (the same tensor), as the reference links them. */
  declare bias: Tensor;

  constructor(config: BertHeadConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('transform', new BertPredictionHeadTransform(config, options));
    // The output weights may be the input embeddings (tied by the model); the bias is output-only.
    this.registerModule('decoder', new Linear(config.hiddenSize, config.vocabSize, { bias: false, backend: options.backend }));
    this.registerParameter('bias', full([config.vocabSize], 0, { backend: options.backend }));
    // One tensor under both names, as the reference's `self.decoder.bias = self.bias`.
    this.decoder.bias = this.bias;
  }

  forward(hiddenStates: Tensor): Tensor {
    return this.decoder.forward(this.transform.forward(hiddenStates)); // [batch, seq, vocab]
  }
}

/** The masked-LM head alone (`cls.predictions`). */
export class BertOnlyMLMHead extends Module {
  declare predictions: BertLMPredictionHead;

  constructor(config: BertHeadConfig, options: ModuleOptions = {}) {
    super();
    this.registerModule('predictions', new BertLMPredictionHead(config, options));
  }

  forward(sequenceOutput: Tensor): Tensor {
    return this.predictions.forward(sequenceOutput);
  }
}
