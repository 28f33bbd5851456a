// ChatGLMConfig: the configuration of ChatGLM-6B (GLM: Du et al. 2022, "GLM: General Language Model
// Pretraining with Autoregressive Blank Infilling", arXiv:2103.10360; THUDM's ChatGLM-6B release),
// mirroring `configuration_chatglm.py` of THUDM/chatglm-6b field for field, default for default.

import { PRETRAINED_CONFIG_FIELDS, PretrainedConfig, readConfigJSON, writeConfigJSON } from '@lm/layers';
import type { FieldTable, JsonObject, PretrainedConfigFields } from '@lm/layers';

export interface ChatGLMConfigFields extends PretrainedConfigFields {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numAttentionHeads: number;
  layernormEpsilon: number;
  useCache: boolean;
  maskTokenId: number;
  gmaskTokenId: number;
  maxSequenceLength: number;
  innerHiddenSize: number;
  /** 2D positions (position and block position, each on half the rotary dims). */
  positionEncoding2d: boolean;
  /** 0 = float weights; 4 or 8 = the reference's int4/int8 weight quantisation. */
  quantizationBit: number;
  /** P-tuning v2 prefix length; null = no prefix encoder. */
  preSeqLen: number | null;
  /** Prefix encoder with a two-layer MLP projection instead of a plain embedding. */
  prefixProjection: boolean;
}

const FIELDS: FieldTable<ChatGLMConfigFields> = {
  ...PRETRAINED_CONFIG_FIELDS,
  vocabSize: 'vocab_size',
  hiddenSize: 'hidden_size',
  numLayers: 'num_layers',
  numAttentionHeads: 'num_attention_heads',
  layernormEpsilon: 'layernorm_epsilon',
  useCache: 'use_cache',
  maskTokenId: 'mask_token_id',
  gmaskTokenId: 'gmask_token_id',
  maxSequenceLength: 'max_sequence_length',
  innerHiddenSize: 'inner_hidden_size',
  positionEncoding2d: 'position_encoding_2d',
  quantizationBit: 'quantization_bit',
  preSeqLen: 'pre_seq_len',
  prefixProjection: 'prefix_projection',
};

export class ChatGLMConfig extends PretrainedConfig implements ChatGLMConfigFields {
  static readonly modelType = 'chatglm';
  /** camelCase field -> reference config.json key. */
  static readonly fields = FIELDS;

  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numAttentionHeads: number;
  layernormEpsilon: number;
  useCache: boolean;
  maskTokenId: number;
  gmaskTokenId: number;
  maxSequenceLength: number;
  innerHiddenSize: number;
  positionEncoding2d: boolean;
  quantizationBit: number;
  preSeqLen: number | null;
  prefixProjection: boolean;

  constructor(init: Partial<ChatGLMConfigFields> = {}, extra: JsonObject = {}) {
    super({ bosTokenId: 130004, eosTokenId: 130005, padTokenId: 3, ...init }, extra);
    this.vocabSize = init.vocabSize ?? 130528;
    this.hiddenSize = init.hiddenSize ?? 4096;
    this.numLayers = init.numLayers ?? 28;
    this.numAttentionHeads = init.numAttentionHeads ?? 32;
    this.layernormEpsilon = init.layernormEpsilon ?? 1e-5;
    this.useCache = init.useCache ?? true;
    this.maskTokenId = init.maskTokenId ?? 130000;
    this.gmaskTokenId = init.gmaskTokenId ?? 130001;
    this.maxSequenceLength = init.maxSequenceLength ?? 2048;
    this.innerHiddenSize = init.innerHiddenSize ?? 16384;
    this.positionEncoding2d = init.positionEncoding2d ?? true;
    this.quantizationBit = init.quantizationBit ?? 0;
    this.preSeqLen = init.preSeqLen ?? null;
    this.prefixProjection = init.prefixProjection ?? false;
  }

  /** From a reference config.json object (snake_case); unknown keys are kept in `extra`. */
  static fromJSON(json: JsonObject): ChatGLMConfig {
    const { fields, extra } = readConfigJSON(json, FIELDS, ['model_type']);
    return new ChatGLMConfig(fields, extra);
  }

  /** The reference config.json object: `model_type`, every field, then the kept unknown keys. */
  toJSON(): JsonObject {
    return writeConfigJSON<ChatGLMConfigFields>(this, FIELDS, this.extra, { model_type: ChatGLMConfig.modelType });
  }
}
