// RealmConfig: the configuration of REALM (Guu et al. 2020, "REALM: Retrieval-Augmented Language
// Model Pre-Training", arXiv:2002.08909), shared by its embedder, scorer, knowledge-augmented
// encoder, reader and open-QA model. Mirrors Hugging Face transformers
// `models/realm/configuration_realm.py` field for field, default for default.

import { PRETRAINED_CONFIG_FIELDS, PretrainedConfig, readConfigJSON, writeConfigJSON } from '@lm/layers';
import type { FieldTable, JsonObject, PretrainedConfigFields } from '@lm/layers';

export interface RealmConfigFields extends PretrainedConfigFields {
  vocabSize: number;
  hiddenSize: number;
  retrieverProjSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numCandidates: number;
  intermediateSize: number;
  /** An activation name for `getActivation`. */
  hiddenAct: string;
  hiddenDropoutProb: number;
  attentionProbsDropoutProb: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  initializerRange: number;
  layerNormEps: number;
  spanHiddenSize: number;
  maxSpanWidth: number;
  readerLayerNormEps: number;
  readerBeamSize: number;
  readerSeqLen: number;
  numBlockRecords: number;
  searcherBeamSize: number;
  /** Not a RealmConfig argument: it reaches config.json through `PretrainedConfig` kwargs; typed because model code reads it. */
  useCache: boolean;
}

const FIELDS: FieldTable<RealmConfigFields> = {
  ...PRETRAINED_CONFIG_FIELDS,
  vocabSize: 'vocab_size',
  hiddenSize: 'hidden_size',
  retrieverProjSize: 'retriever_proj_size',
  numHiddenLayers: 'num_hidden_layers',
  numAttentionHeads: 'num_attention_heads',
  numCandidates: 'num_candidates',
  intermediateSize: 'intermediate_size',
  hiddenAct: 'hidden_act',
  hiddenDropoutProb: 'hidden_dropout_prob',
  attentionProbsDropoutProb: 'attention_probs_dropout_prob',
  maxPositionEmbeddings: 'max_position_embeddings',
  typeVocabSize: 'type_vocab_size',
  initializerRange: 'initializer_range',
  layerNormEps: 'layer_norm_eps',
  spanHiddenSize: 'span_hidden_size',
  maxSpanWidth: 'max_span_width',
  readerLayerNormEps: 'reader_layer_norm_eps',
  readerBeamSize: 'reader_beam_size',
  readerSeqLen: 'reader_seq_len',
  numBlockRecords: 'num_block_records',
  searcherBeamSize: 'searcher_beam_size',
  useCache: 'use_cache',
};

export class RealmConfig extends PretrainedConfig implements RealmConfigFields {
  static readonly modelType = 'realm';
  /** camelCase field -> reference config.json key. */
  static readonly fields = FIELDS;

  vocabSize: number;
  hiddenSize: number;
  retrieverProjSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numCandidates: number;
  intermediateSize: number;
  hiddenAct: string;
  hiddenDropoutProb: number;
  attentionProbsDropoutProb: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  initializerRange: number;
  layerNormEps: number;
  spanHiddenSize: number;
  maxSpanWidth: number;
  readerLayerNormEps: number;
  readerBeamSize: number;
  readerSeqLen: number;
  numBlockRecords: number;
  searcherBeamSize: number;
  useCache: boolean;

  constructor(init: Partial<RealmConfigFields> = {}, extra: JsonObject = {}) {
    super({ padTokenId: 1, bosTokenId: 0, eosTokenId: 2, ...init }, extra);
    this.vocabSize = init.vocabSize ?? 30522;
    this.hiddenSize = init.hiddenSize ?? 768;
    this.retrieverProjSize = init.retrieverProjSize ?? 128;
    this.numHiddenLayers = init.numHiddenLayers ?? 12;
    this.numAttentionHeads = init.numAttentionHeads ?? 12;
    this.numCandidates = init.numCandidates ?? 8;
    this.intermediateSize = init.intermediateSize ?? 3072;
    this.hiddenAct = init.hiddenAct ?? 'gelu_new';
    this.hiddenDropoutProb = init.hiddenDropoutProb ?? 0.1;
    this.attentionProbsDropoutProb = init.attentionProbsDropoutProb ?? 0.1;
    this.maxPositionEmbeddings = init.maxPositionEmbeddings ?? 512;
    this.typeVocabSize = init.typeVocabSize ?? 2;
    this.initializerRange = init.initializerRange ?? 0.02;
    this.layerNormEps = init.layerNormEps ?? 1e-12;
    this.spanHiddenSize = init.spanHiddenSize ?? 256;
    this.maxSpanWidth = init.maxSpanWidth ?? 10;
    this.readerLayerNormEps = init.readerLayerNormEps ?? 1e-3;
    this.readerBeamSize = init.readerBeamSize ?? 5;
    this.readerSeqLen = init.readerSeqLen ?? 320; // 288 + 32
    this.numBlockRecords = init.numBlockRecords ?? 13353718;
    this.searcherBeamSize = init.searcherBeamSize ?? 5000;
    this.useCache = init.useCache ?? true;
  }

  /** From a reference config.json object (snake_case); unknown keys are kept in `extra`. */
  static fromJSON(json: JsonObject): RealmConfig {
    const { fields, extra } = readConfigJSON(json, FIELDS, ['model_type']);
    return new RealmConfig(fields, extra);
  }

  /** The reference config.json object: `model_type`, every field, then the kept unknown keys. */
  toJSON(): JsonObject {
    return writeConfigJSON<RealmConfigFields>(this, FIELDS, this.extra, { model_type: RealmConfig.modelType });
  }
}
