// T5Config: the configuration of T5 (Raffel et al. 2020, "Exploring the Limits of Transfer Learning
// with a Unified Text-to-Text Transformer", arXiv:1910.10683) and T5 v1.1 (gated-GELU feed-forward),
// mirroring Hugging Face transformers `models/t5/configuration_t5.py` field for field, default for
// default, including how `feed_forward_proj` derives `dense_act_fn` and `is_gated_act`.

import { ConfigError, PRETRAINED_CONFIG_FIELDS, PretrainedConfig, readConfigJSON, writeConfigJSON } from '@lm/layers';
import type { FieldTable, JsonObject, PretrainedConfigFields } from '@lm/layers';

export interface T5ConfigFields extends PretrainedConfigFields {
  vocabSize: number;
  /** Hidden size (the reference's `hidden_size` alias). */
  dModel: number;
  /** Per-head size of q, k, v. */
  dKv: number;
  dFf: number;
  /** Encoder layers (alias `num_hidden_layers`). */
  numLayers: number;
  /** Decoder layers; defaults to `numLayers`. */
  numDecoderLayers: number;
  numHeads: number;
  relativeAttentionNumBuckets: number;
  relativeAttentionMaxDistance: number;
  dropoutRate: number;
  classifierDropout: number;
  layerNormEpsilon: number;
  initializerFactor: number;
  /** `"{act}"` or `"gated-{act}"`: `relu` for T5 v1.0, `gated-gelu` for v1.1. */
  feedForwardProj: string;
  useCache: boolean;
  /** Derived from feedForwardProj (`gated-gelu` -> `gelu_new`) unless config.json sets it. */
  denseActFn: string;
  /** Derived from feedForwardProj unless config.json sets it. */
  isGatedAct: boolean;
}

const FIELDS: FieldTable<T5ConfigFields> = {
  ...PRETRAINED_CONFIG_FIELDS,
  vocabSize: 'vocab_size',
  dModel: 'd_model',
  dKv: 'd_kv',
  dFf: 'd_ff',
  numLayers: 'num_layers',
  numDecoderLayers: 'num_decoder_layers',
  numHeads: 'num_heads',
  relativeAttentionNumBuckets: 'relative_attention_num_buckets',
  relativeAttentionMaxDistance: 'relative_attention_max_distance',
  dropoutRate: 'dropout_rate',
  classifierDropout: 'classifier_dropout',
  layerNormEpsilon: 'layer_norm_epsilon',
  initializerFactor: 'initializer_factor',
  feedForwardProj: 'feed_forward_proj',
  useCache: 'use_cache',
  denseActFn: 'dense_act_fn',
  isGatedAct: 'is_gated_act',
};

export class T5Config extends PretrainedConfig implements T5ConfigFields {
  static readonly modelType = 't5';
  /** camelCase field -> reference config.json key. */
  static readonly fields = FIELDS;

  vocabSize: number;
  dModel: number;
  dKv: number;
  dFf: number;
  numLayers: number;
  numDecoderLayers: number;
  numHeads: number;
  relativeAttentionNumBuckets: number;
  relativeAttentionMaxDistance: number;
  dropoutRate: number;
  classifierDropout: number;
  layerNormEpsilon: number;
  initializerFactor: number;
  feedForwardProj: string;
  useCache: boolean;
  denseActFn: string;
  isGatedAct: boolean;

  constructor(init: Partial<T5ConfigFields> = {}, extra: JsonObject = {}) {
    super({ padTokenId: 0, eosTokenId: 1, isEncoderDecoder: true, ...init }, extra);
    this.vocabSize = init.vocabSize ?? 32128;
    this.dModel = init.dModel ?? 512;
    this.dKv = init.dKv ?? 64;
    this.dFf = init.dFf ?? 2048;
    this.numLayers = init.numLayers ?? 6;
    this.numDecoderLayers = init.numDecoderLayers ?? this.numLayers; // default = symmetry
    this.numHeads = init.numHeads ?? 8;
    this.relativeAttentionNumBuckets = init.relativeAttentionNumBuckets ?? 32;
    this.relativeAttentionMaxDistance = init.relativeAttentionMaxDistance ?? 128;
    this.dropoutRate = init.dropoutRate ?? 0.1;
    this.classifierDropout = init.classifierDropout ?? 0.0;
    this.layerNormEpsilon = init.layerNormEpsilon ?? 1e-6;
    this.initializerFactor = init.initializerFactor ?? 1.0;
    this.feedForwardProj = init.feedForwardProj ?? 'relu';
    this.useCache = init.useCache ?? true;

    const actInfo = this.feedForwardProj.split('-');
    if ((actInfo.length > 1 && actInfo[0] !== 'gated') || actInfo.length > 2) {
      throw new ConfigError(
        `T5Config: feed_forward_proj "${this.feedForwardProj}" is not a valid activation of the dense layer; ` +
          'use "gated-{ACT_FN}" or "{ACT_FN}", e.g. "gated-gelu" or "relu"',
      );
    }
    // For backwards compatibility the reference maps gated-gelu to the tanh GELU.
    const derivedAct = this.feedForwardProj === 'gated-gelu' ? 'gelu_new' : actInfo[actInfo.length - 1];
    this.denseActFn = init.denseActFn ?? derivedAct;
    this.isGatedAct = init.isGatedAct ?? actInfo[0] === 'gated';
  }

  /** The reference's attribute aliases. */
  get hiddenSize(): number {
    return this.dModel;
  }
  get numAttentionHeads(): number {
    return this.numHeads;
  }
  get numHiddenLayers(): number {
    return this.numLayers;
  }

  /** From a reference config.json object (snake_case); unknown keys are kept in `extra`. */
  static fromJSON(json: JsonObject): T5Config {
    const { fields, extra } = readConfigJSON(json, FIELDS, ['model_type']);
    return new T5Config(fields, extra);
  }

  /** The reference config.json object: `model_type`, every field, then the kept unknown keys. */
  toJSON(): JsonObject {
    return writeConfigJSON<T5ConfigFields>(this, FIELDS, this.extra, { model_type: T5Config.modelType });
  }
}
