// ReformerConfig: the configuration of the Reformer (Kitaev, Kaiser, Levskaya 2020, "Reformer: The
// Efficient Transformer", arXiv:2001.04451): LSH and local self-attention, axial position
// embeddings, reversible residual layers, chunked feed-forward. Mirrors Hugging Face transformers
// `models/reformer/configuration_reformer.py` field for field, default for default (the code's
// defaults, where its docstring disagrees: local_attention_probs_dropout_prob 0.05, lsh 0.0).

import { PRETRAINED_CONFIG_FIELDS, PretrainedConfig, readConfigJSON, writeConfigJSON } from '@lm/layers';
import type { FieldTable, JsonObject, PretrainedConfigFields } from '@lm/layers';

export type ReformerAttentionType = 'local' | 'lsh';

export interface ReformerConfigFields extends PretrainedConfigFields {
  attentionHeadSize: number;
  /** One entry per layer, in order. */
  attnLayers: ReformerAttentionType[];
  axialNormStd: number;
  axialPosEmbds: boolean;
  /** Factorisation of the sequence length; product = max sequence length. */
  axialPosShape: number[];
  /** Embedding dims of the axial factors; sum = hiddenSize. */
  axialPosEmbdsDim: number[];
  chunkSizeLmHead: number;
  feedForwardSize: number;
  /** Fixes the LSH random rotations (tests only); null = fresh rotations each call. */
  hashSeed: number | null;
  /** An activation name for `getActivation`. */
  hiddenAct: string;
  hiddenDropoutProb: number;
  hiddenSize: number;
  initializerRange: number;
  layerNormEps: number;
  localNumChunksBefore: number;
  localNumChunksAfter: number;
  localAttentionProbsDropoutProb: number;
  localAttnChunkLength: number;
  lshAttnChunkLength: number;
  lshAttentionProbsDropoutProb: number;
  lshNumChunksBefore: number;
  lshNumChunksAfter: number;
  maxPositionEmbeddings: number;
  numAttentionHeads: number;
  /** An int, a factorisation `[n1, n2]`, or null (computed from the sequence length on the fly). */
  numBuckets: number | number[] | null;
  numHashes: number;
  /** `attnLayers.length` unless config.json says otherwise (as in the reference). */
  numHiddenLayers: number;
  vocabSize: number;
  useCache: boolean;
  classifierDropout: number | null;
}

const FIELDS: FieldTable<ReformerConfigFields> = {
  ...PRETRAINED_CONFIG_FIELDS,
  attentionHeadSize: 'attention_head_size',
  attnLayers: 'attn_layers',
  axialNormStd: 'axial_norm_std',
  axialPosEmbds: 'axial_pos_embds',
  axialPosShape: 'axial_pos_shape',
  axialPosEmbdsDim: 'axial_pos_embds_dim',
  chunkSizeLmHead: 'chunk_size_lm_head',
  feedForwardSize: 'feed_forward_size',
  hashSeed: 'hash_seed',
  hiddenAct: 'hidden_act',
  hiddenDropoutProb: 'hidden_dropout_prob',
  hiddenSize: 'hidden_size',
  initializerRange: 'initializer_range',
  layerNormEps: 'layer_norm_eps',
  localNumChunksBefore: 'local_num_chunks_before',
  localNumChunksAfter: 'local_num_chunks_after',
  localAttentionProbsDropoutProb: 'local_attention_probs_dropout_prob',
  localAttnChunkLength: 'local_attn_chunk_length',
  lshAttnChunkLength: 'lsh_attn_chunk_length',
  lshAttentionProbsDropoutProb: 'lsh_attention_probs_dropout_prob',
  lshNumChunksBefore: 'lsh_num_chunks_before',
  lshNumChunksAfter: 'lsh_num_chunks_after',
  maxPositionEmbeddings: 'max_position_embeddings',
  numAttentionHeads: 'num_attention_heads',
  numBuckets: 'num_buckets',
  numHashes: 'num_hashes',
  numHiddenLayers: 'num_hidden_layers',
  vocabSize: 'vocab_size',
  useCache: 'use_cache',
  classifierDropout: 'classifier_dropout',
};

export class ReformerConfig extends PretrainedConfig implements ReformerConfigFields {
  static readonly modelType = 'reformer';
  /** camelCase field -> reference config.json key. */
  static readonly fields = FIELDS;

  attentionHeadSize: number;
  attnLayers: ReformerAttentionType[];
  axialNormStd: number;
  axialPosEmbds: boolean;
  axialPosShape: number[];
  axialPosEmbdsDim: number[];
  chunkSizeLmHead: number;
  feedForwardSize: number;
  hashSeed: number | null;
  hiddenAct: string;
  hiddenDropoutProb: number;
  hiddenSize: number;
  initializerRange: number;
  layerNormEps: number;
  localNumChunksBefore: number;
  localNumChunksAfter: number;
  localAttentionProbsDropoutProb: number;
  localAttnChunkLength: number;
  lshAttnChunkLength: number;
  lshAttentionProbsDropoutProb: number;
  lshNumChunksBefore: number;
  lshNumChunksAfter: number;
  maxPositionEmbeddings: number;
  numAttentionHeads: number;
  numBuckets: number | number[] | null;
  numHashes: number;
  numHiddenLayers: number;
  vocabSize: number;
  useCache: boolean;
  classifierDropout: number | null;

  constructor(init: Partial<ReformerConfigFields> = {}, extra: JsonObject = {}) {
    super({ padTokenId: 0, eosTokenId: 2, isDecoder: false, tieWordEmbeddings: false, ...init }, extra);
    this.attentionHeadSize = init.attentionHeadSize ?? 64;
    this.attnLayers = [...(init.attnLayers ?? ['local', 'lsh', 'local', 'lsh', 'local', 'lsh'])];
    this.axialNormStd = init.axialNormStd ?? 1.0;
    this.axialPosEmbds = init.axialPosEmbds ?? true;
    this.axialPosShape = [...(init.axialPosShape ?? [64, 64])];
    this.axialPosEmbdsDim = [...(init.axialPosEmbdsDim ?? [64, 192])];
    this.chunkSizeLmHead = init.chunkSizeLmHead ?? 0;
    this.feedForwardSize = init.feedForwardSize ?? 512;
    this.hashSeed = init.hashSeed ?? null;
    this.hiddenAct = init.hiddenAct ?? 'relu';
    this.hiddenDropoutProb = init.hiddenDropoutProb ?? 0.05;
    this.hiddenSize = init.hiddenSize ?? 256;
    this.initializerRange = init.initializerRange ?? 0.02;
    this.layerNormEps = init.layerNormEps ?? 1e-12;
    this.localNumChunksBefore = init.localNumChunksBefore ?? 1;
    this.localNumChunksAfter = init.localNumChunksAfter ?? 0;
    this.localAttentionProbsDropoutProb = init.localAttentionProbsDropoutProb ?? 0.05;
    this.localAttnChunkLength = init.localAttnChunkLength ?? 64;
    this.lshAttnChunkLength = init.lshAttnChunkLength ?? 64;
    this.lshAttentionProbsDropoutProb = init.lshAttentionProbsDropoutProb ?? 0.0;
    this.lshNumChunksBefore = init.lshNumChunksBefore ?? 1;
    this.lshNumChunksAfter = init.lshNumChunksAfter ?? 0;
    this.maxPositionEmbeddings = init.maxPositionEmbeddings ?? 4096;
    this.numAttentionHeads = init.numAttentionHeads ?? 12;
    this.numBuckets = Array.isArray(init.numBuckets) ? [...init.numBuckets] : (init.numBuckets ?? null);
    this.numHashes = init.numHashes ?? 1;
    this.numHiddenLayers = init.numHiddenLayers ?? this.attnLayers.length;
    this.vocabSize = init.vocabSize ?? 320;
    this.useCache = init.useCache ?? true;
    this.classifierDropout = init.classifierDropout ?? null;
  }

  /** From a reference config.json object (snake_case); unknown keys are kept in `extra`. */
  static fromJSON(json: JsonObject): ReformerConfig {
    const { fields, extra } = readConfigJSON(json, FIELDS, ['model_type']);
    return new ReformerConfig(fields, extra);
  }

  /** The reference config.json object: `model_type`, every field, then the kept unknown keys. */
  toJSON(): JsonObject {
    return writeConfigJSON<ReformerConfigFields>(this, FIELDS, this.extra, { model_type: ReformerConfig.modelType });
  }
}
