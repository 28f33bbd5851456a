// MegatronT5Config: the configuration of Megatron-core's T5Model (NVIDIA Megatron-LM,
// `megatron/core/models/T5/t5_model.py`): the `TransformerConfig` fields T5Model reads
// (`megatron/core/transformer/transformer_config.py`, with its ModelParallelConfig parents), under
// their Megatron names, plus T5Model's own constructor arguments (vocab_size, max_sequence_length,
// position_embedding_type, rotary_percent, ...) and `encoder_num_layers` (the encoder's
// TransformerConfig.num_layers; `num_layers` is the decoder's). Defaults are the reference's;
// like the reference, `ffnHiddenSize`, `kvChannels` and `numQueryGroups` left null are derived
// (4 * hidden, hidden / heads, heads) once hidden size and heads are set.

import { readConfigJSON, writeConfigJSON } from '@lm/layers';
import type { FieldTable, JsonObject } from '@lm/layers';

export interface MegatronT5ConfigFields {
  // T5Model constructor arguments (vocab_size and max_sequence_length are required there; 0 = unset)
  vocabSize: number;
  maxSequenceLength: number;
  preProcess: boolean;
  postProcess: boolean;
  parallelOutput: boolean;
  shareEmbeddingsAndOutputWeights: boolean;
  positionEmbeddingType: 'learned_absolute' | 'rope';
  rotaryPercent: number;
  seqLenInterpolationFactor: number | null;
  /** Encoder depth (encoder_config.num_layers); null = numLayers. */
  encoderNumLayers: number | null;
  // TransformerConfig: architecture
  /** Decoder depth. */
  numLayers: number;
  hiddenSize: number;
  numAttentionHeads: number;
  numQueryGroups: number | null;
  ffnHiddenSize: number | null;
  kvChannels: number | null;
  hiddenDropout: number;
  attentionDropout: number;
  fp32ResidualConnection: boolean;
  applyResidualConnectionPostLayernorm: boolean;
  layernormEpsilon: number;
  layernormZeroCenteredGamma: boolean;
  addBiasLinear: boolean;
  addQkvBias: boolean;
  gatedLinearUnit: boolean;
  /** The activation's name (the reference holds the callable; `gelu` = torch `F.gelu`, exact erf). */
  activationFunc: string;
  gluLinearOffset: number;
  rotaryInterleaved: boolean;
  windowSize: [number, number] | null;
  normalization: 'LayerNorm' | 'RMSNorm';
  qkLayernorm: boolean;
  softmaxScale: number | null;
  softmaxType: 'vanilla' | 'off-by-one' | 'learnable';
  rotaryBase: number;
  initMethodStd: number;
  // TransformerConfig: mixed precision and fusions
  applyQueryKeyLayerScaling: boolean;
  attentionSoftmaxInFp32: boolean;
  biasActivationFusion: boolean;
  maskedSoftmaxFusion: boolean;
  biasDropoutFusion: boolean;
  applyRopeFusion: boolean;
  crossEntropyLossFusion: boolean;
  transformerImpl: 'local' | 'transformer_engine';
  // ModelParallelConfig
  tensorModelParallelSize: number;
  pipelineModelParallelSize: number;
  contextParallelSize: number;
  sequenceParallel: boolean;
  fp16: boolean;
  bf16: boolean;
}

const FIELDS: FieldTable<MegatronT5ConfigFields> = {
  vocabSize: 'vocab_size',
  maxSequenceLength: 'max_sequence_length',
  preProcess: 'pre_process',
  postProcess: 'post_process',
  parallelOutput: 'parallel_output',
  shareEmbeddingsAndOutputWeights: 'share_embeddings_and_output_weights',
  positionEmbeddingType: 'position_embedding_type',
  rotaryPercent: 'rotary_percent',
  seqLenInterpolationFactor: 'seq_len_interpolation_factor',
  encoderNumLayers: 'encoder_num_layers',
  numLayers: 'num_layers',
  hiddenSize: 'hidden_size',
  numAttentionHeads: 'num_attention_heads',
  numQueryGroups: 'num_query_groups',
  ffnHiddenSize: 'ffn_hidden_size',
  kvChannels: 'kv_channels',
  hiddenDropout: 'hidden_dropout',
  attentionDropout: 'attention_dropout',
  fp32ResidualConnection: 'fp32_residual_connection',
  applyResidualConnectionPostLayernorm: 'apply_residual_connection_post_layernorm',
  layernormEpsilon: 'layernorm_epsilon',
  layernormZeroCenteredGamma: 'layernorm_zero_centered_gamma',
  addBiasLinear: 'add_bias_linear',
  addQkvBias: 'add_qkv_bias',
  gatedLinearUnit: 'gated_linear_unit',
  activationFunc: 'activation_func',
  gluLinearOffset: 'glu_linear_offset',
  rotaryInterleaved: 'rotary_interleaved',
  windowSize: 'window_size',
  normalization: 'normalization',
  qkLayernorm: 'qk_layernorm',
  softmaxScale: 'softmax_scale',
  softmaxType: 'softmax_type',
  rotaryBase: 'rotary_base',
  initMethodStd: 'init_method_std',
  applyQueryKeyLayerScaling: 'apply_query_key_layer_scaling',
  attentionSoftmaxInFp32: 'attention_softmax_in_fp32',
  biasActivationFusion: 'bias_activation_fusion',
  maskedSoftmaxFusion: 'masked_softmax_fusion',
  biasDropoutFusion: 'bias_dropout_fusion',
  applyRopeFusion: 'apply_rope_fusion',
  crossEntropyLossFusion: 'cross_entropy_loss_fusion',
  transformerImpl: 'transformer_impl',
  tensorModelParallelSize: 'tensor_model_parallel_size',
  pipelineModelParallelSize: 'pipeline_model_parallel_size',
  contextParallelSize: 'context_parallel_size',
  sequenceParallel: 'sequence_parallel',
  fp16: 'fp16',
  bf16: 'bf16',
};

export class MegatronT5Config implements MegatronT5ConfigFields {
  /** camelCase field -> reference config.json key. */
  static readonly fields = FIELDS;

  vocabSize: number;
  maxSequenceLength: number;
  preProcess: boolean;
  postProcess: boolean;
  parallelOutput: boolean;
  shareEmbeddingsAndOutputWeights: boolean;
  positionEmbeddingType: 'learned_absolute' | 'rope';
  rotaryPercent: number;
  seqLenInterpolationFactor: number | null;
  encoderNumLayers: number | null;
  numLayers: number;
  hiddenSize: number;
  numAttentionHeads: number;
  numQueryGroups: number | null;
  ffnHiddenSize: number | null;
  kvChannels: number | null;
  hiddenDropout: number;
  attentionDropout: number;
  fp32ResidualConnection: boolean;
  applyResidualConnectionPostLayernorm: boolean;
  layernormEpsilon: number;
  layernormZeroCenteredGamma: boolean;
  addBiasLinear: boolean;
  addQkvBias: boolean;
  gatedLinearUnit: boolean;
  activationFunc: string;
  gluLinearOffset: number;
  rotaryInterleaved: boolean;
  windowSize: [number, number] | null;
  normalization: 'LayerNorm' | 'RMSNorm';
  qkLayernorm: boolean;
  softmaxScale: number | null;
  softmaxType: 'vanilla' | 'off-by-one' | 'learnable';
  rotaryBase: number;
  initMethodStd: number;
  applyQueryKeyLayerScaling: boolean;
  attentionSoftmaxInFp32: boolean;
  biasActivationFusion: boolean;
  maskedSoftmaxFusion: boolean;
  biasDropoutFusion: boolean;
  applyRopeFusion: boolean;
  crossEntropyLossFusion: boolean;
  transformerImpl: 'local' | 'transformer_engine';
  tensorModelParallelSize: number;
  pipelineModelParallelSize: number;
  contextParallelSize: number;
  sequenceParallel: boolean;
  fp16: boolean;
  bf16: boolean;
  /** config.json keys the field table does not know, written back by toJSON. */
  extra: JsonObject;

  constructor(init: Partial<MegatronT5ConfigFields> = {}, extra: JsonObject = {}) {
    this.vocabSize = init.vocabSize ?? 0;
    this.maxSequenceLength = init.maxSequenceLength ?? 0;
    this.preProcess = init.preProcess ?? true;
    this.postProcess = init.postProcess ?? true;
    this.parallelOutput = init.parallelOutput ?? true;
    this.shareEmbeddingsAndOutputWeights = init.shareEmbeddingsAndOutputWeights ?? true;
    this.positionEmbeddingType = init.positionEmbeddingType ?? 'learned_absolute';
    this.rotaryPercent = init.rotaryPercent ?? 1.0;
    this.seqLenInterpolationFactor = init.seqLenInterpolationFactor ?? null;
    this.encoderNumLayers = init.encoderNumLayers ?? null;
    this.numLayers = init.numLayers ?? 0;
    this.hiddenSize = init.hiddenSize ?? 0;
    this.numAttentionHeads = init.numAttentionHeads ?? 0;
    this.numQueryGroups = init.numQueryGroups ?? null;
    this.ffnHiddenSize = init.ffnHiddenSize ?? null;
    this.kvChannels = init.kvChannels ?? null;
    this.hiddenDropout = init.hiddenDropout ?? 0.1;
    this.attentionDropout = init.attentionDropout ?? 0.1;
    this.fp32ResidualConnection = init.fp32ResidualConnection ?? false;
    this.applyResidualConnectionPostLayernorm = init.applyResidualConnectionPostLayernorm ?? false;
    this.layernormEpsilon = init.layernormEpsilon ?? 1e-5;
    this.layernormZeroCenteredGamma = init.layernormZeroCenteredGamma ?? false;
    this.addBiasLinear = init.addBiasLinear ?? true;
    this.addQkvBias = init.addQkvBias ?? false;
    this.gatedLinearUnit = init.gatedLinearUnit ?? false;
    this.activationFunc = init.activationFunc ?? 'gelu';
    this.gluLinearOffset = init.gluLinearOffset ?? 0.0;
    this.rotaryInterleaved = init.rotaryInterleaved ?? false;
    this.windowSize = init.windowSize ?? null;
    this.normalization = init.normalization ?? 'LayerNorm';
    this.qkLayernorm = init.qkLayernorm ?? false;
    this.softmaxScale = init.softmaxScale ?? null;
    this.softmaxType = init.softmaxType ?? 'vanilla';
    this.rotaryBase = init.rotaryBase ?? 10000;
    this.initMethodStd = init.initMethodStd ?? 0.02;
    this.applyQueryKeyLayerScaling = init.applyQueryKeyLayerScaling ?? false;
    this.attentionSoftmaxInFp32 = init.attentionSoftmaxInFp32 ?? true;
    this.biasActivationFusion = init.biasActivationFusion ?? false;
    this.maskedSoftmaxFusion = init.maskedSoftmaxFusion ?? false;
    this.biasDropoutFusion = init.biasDropoutFusion ?? false;
    this.applyRopeFusion = init.applyRopeFusion ?? false;
    this.crossEntropyLossFusion = init.crossEntropyLossFusion ?? false;
    this.transformerImpl = init.transformerImpl ?? 'transformer_engine';
    this.tensorModelParallelSize = init.tensorModelParallelSize ?? 1;
    this.pipelineModelParallelSize = init.pipelineModelParallelSize ?? 1;
    this.contextParallelSize = init.contextParallelSize ?? 1;
    this.sequenceParallel = init.sequenceParallel ?? false;
    this.fp16 = init.fp16 ?? false;
    this.bf16 = init.bf16 ?? false;
    this.extra = extra;

    // TransformerConfig.__post_init__ derivations, once the sizes they need are known.
    if (this.hiddenSize > 0 && this.numAttentionHeads > 0) {
      this.ffnHiddenSize ??= 4 * this.hiddenSize;
      this.kvChannels ??= Math.floor(this.hiddenSize / this.numAttentionHeads);
      this.numQueryGroups ??= this.numAttentionHeads;
    }
  }

  /** Encoder depth: `encoderNumLayers`, or the decoder's when unset. */
  get encoderLayers(): number {
    return this.encoderNumLayers ?? this.numLayers;
  }

  /** From a config.json object with Megatron's names; unknown keys are kept in `extra`. */
  static fromJSON(json: JsonObject): MegatronT5Config {
    const { fields, extra } = readConfigJSON(json, FIELDS);
    return new MegatronT5Config(fields, extra);
  }

  /** The config.json object: every field under Megatron's name, then the kept unknown keys. */
  toJSON(): JsonObject {
    return writeConfigJSON<MegatronT5ConfigFields>(this, FIELDS, this.extra);
  }
}
