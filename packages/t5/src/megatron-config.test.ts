import { describe, expect, it } from 'vitest';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { describeConfigSuite } from '@lm/layers/testing';
import { MegatronT5Config } from './megatron-config.js';

// Megatron-core T5 defaults (TransformerConfig / T5Model arguments), as config.json keys.
const REFERENCE_DEFAULTS = {
  "vocab_size": 0,
  "max_sequence_length": 0,
  "pre_process": true,
  "post_process": true,
  "parallel_output": true,
  "share_embeddings_and_output_weights": true,
  "position_embedding_type": "learned_absolute",
  "rotary_percent": 1.0,
  "seq_len_interpolation_factor": null,
  "encoder_num_layers": null,
  "num_layers": 0,
  "hidden_size": 0,
  "num_attention_heads": 0,
  "num_query_groups": null,
  "ffn_hidden_size": null,
  "kv_channels": null,
  "hidden_dropout": 0.1,
  "attention_dropout": 0.1,
  "fp32_residual_connection": false,
  "apply_residual_connection_post_layernorm": false,
  "layernorm_epsilon": 1e-05,
  "layernorm_zero_centered_gamma": false,
  "add_bias_linear": true,
  "add_qkv_bias": false,
  "gated_linear_unit": false,
  "activation_func": "gelu",
  "glu_linear_offset": 0.0,
  "rotary_interleaved": false,
  "window_size": null,
  "normalization": "LayerNorm",
  "qk_layernorm": false,
  "softmax_scale": null,
  "softmax_type": "vanilla",
  "rotary_base": 10000,
  "init_method_std": 0.02,
  "apply_query_key_layer_scaling": false,
  "attention_softmax_in_fp32": true,
  "bias_activation_fusion": false,
  "masked_softmax_fusion": false,
  "bias_dropout_fusion": false,
  "apply_rope_fusion": false,
  "cross_entropy_loss_fusion": false,
  "transformer_impl": "transformer_engine",
  "tensor_model_parallel_size": 1,
  "pipeline_model_parallel_size": 1,
  "context_parallel_size": 1,
  "sequence_parallel": false,
  "fp16": false,
  "bf16": false
};

describeConfigSuite({ describe, it, expect }, {
  ConfigClass: MegatronT5Config,
  modelType: undefined,
  defaults: REFERENCE_DEFAULTS,
  families: ['megatron-t5'],
  fixtures: findSharedFixtures(import.meta.url),
  // Function-level cases name the Megatron function they exercise; it is not a config field.
  untypedKeys: ['function'],
});
