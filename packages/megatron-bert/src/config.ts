// MegatronBertConfig: the configuration of Megatron-BERT (Shoeybi et al. 2019, "Megatron-LM: Training
// Multi-Billion Parameter Language Models Using Model Parallelism", arXiv:1909.08053), mirroring
// Hugging Face transformers `models/megatron_bert/configuration_megatron_bert.py` field for field,
// default for default. Field names are camelCase; FIELDS maps them to the reference's config.json keys.

import { PRETRAINED_CONFIG_FIELDS, PretrainedConfig, readConfigJSON, writeConfigJSON } from '@lm/layers';
import type { FieldTable, JsonObject, PretrainedConfigFields } from '@lm/layers';

export interface MegatronBertConfigFields extends PretrainedConfigFields {
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  /** An activation name for `getActivation` (`gelu`, `gelu_new`, `relu`, ...). */
  hiddenAct: string;
  hiddenDropoutProb: number;
  attentionProbsDropoutProb: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  initializerRange: number;
  layerNormEps: number;
  positionEmbeddingType: 'absolute' | 'relative_key' | 'relative_key_query';
  useCache: boolean;
}

const FIELDS: FieldTable<MegatronBertConfigFields> = {
  ...PRETRAINED_CONFIG_FIELDS,
  vocabSize: 'vocab_size',
  hiddenSize: 'hidden_size',
  numHiddenLayers: 'num_hidden_layers',
  numAttentionHeads: 'num_attention_heads',
  intermediateSize: 'intermediate_size',
  hiddenAct: 'hidden_act',
  hiddenDropoutProb: 'hidden_dropout_prob',
  attentionProbsDropoutProb: 'attention_probs_dropout_prob',
  maxPositionEmbeddings: 'max_position_embeddings',
  typeVocabSize: 'type_vocab_size',
  initializerRange: 'initializer_range',
  layerNormEps: 'layer_norm_eps',
  positionEmbeddingType: 'position_embedding_type',
  useCache: 'use_cache',
};

export class MegatronBertConfig extends PretrainedConfig implements MegatronBertConfigFields {
  static readonly modelType = 'megatron-bert';
  /** camelCase field -> reference config.json key. */
  static readonly fields = FIELDS;

  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  hiddenAct: string;
  hiddenDropoutProb: number;
  attentionProbsDropoutProb: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  initializerRange: number;
  layerNormEps: number;
  positionEmbeddingType: 'absolute' | 'relative_key' | 'relative_key_query';
  useCache: boolean;

  constructor(init: Partial<MegatronBertConfigFields> = {}, extra: JsonObject = {}) {
    super({ padTokenId: 0, ...init }, extra);
    this.vocabSize = init.vocabSize ?? 29056;
    this.hiddenSize = init.hiddenSize ?? 1024;
    this.numHiddenLayers = init.numHiddenLayers ?? 24;
    this.numAttentionHeads = init.numAttentionHeads ?? 16;
    this.intermediateSize = init.intermediateSize ?? 4096;
    this.hiddenAct = init.hiddenAct ?? 'gelu';
    this.hiddenDropoutProb = init.hiddenDropoutProb ?? 0.1;
    this.attentionProbsDropoutProb = init.attentionProbsDropoutProb ?? 0.1;
    this.maxPositionEmbeddings = init.maxPositionEmbeddings ?? 512;
    this.typeVocabSize = init.typeVocabSize ?? 2;
    this.initializerRange = init.initializerRange ?? 0.02;
    this.layerNormEps = init.layerNormEps ?? 1e-12;
    this.positionEmbeddingType = init.positionEmbeddingType ?? 'absolute';
    this.useCache = init.useCache ?? true;
  }

  /** From a reference config.json object (snake_case); unknown keys are kept in `extra`. */
  static fromJSON(json: JsonObject): MegatronBertConfig {
    const { fields, extra } = readConfigJSON(json, FIELDS, ['model_type']);
    return new MegatronBertConfig(fields, extra);
  }

  /** The reference config.json object: `model_type`, every field, then the kept unknown keys. */
  toJSON(): JsonObject {
    return writeConfigJSON<MegatronBertConfigFields>(this, FIELDS, this.extra, { model_type: MegatronBertConfig.modelType });
  }
}
