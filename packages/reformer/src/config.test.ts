import { describe, expect, it } from 'vitest';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { describeConfigSuite } from '@lm/layers/testing';
import { ReformerConfig } from './config.js';

// Hugging Face ReformerConfig() defaults, as config.json keys (the reference's own names and values).
const REFERENCE_DEFAULTS = {
  "architectures": null,
  "torch_dtype": null,
  "is_decoder": false,
  "add_cross_attention": false,
  "chunk_size_feed_forward": 0,
  "output_hidden_states": false,
  "output_attentions": false,
  "id2label": {
    "0": "LABEL_0",
    "1": "LABEL_1"
  },
  "label2id": {
    "LABEL_0": 0,
    "LABEL_1": 1
  },
  "num_labels": 2,
  "problem_type": null,
  "decoder_start_token_id": null,
  "is_encoder_decoder": false,
  "tie_word_embeddings": false,
  "pad_token_id": 0,
  "bos_token_id": null,
  "eos_token_id": 2,
  "attention_head_size": 64,
  "attn_layers": [
    "local",
    "lsh",
    "local",
    "lsh",
    "local",
    "lsh"
  ],
  "axial_norm_std": 1.0,
  "axial_pos_embds": true,
  "axial_pos_shape": [
    64,
    64
  ],
  "axial_pos_embds_dim": [
    64,
    192
  ],
  "chunk_size_lm_head": 0,
  "feed_forward_size": 512,
  "hash_seed": null,
  "hidden_act": "relu",
  "hidden_dropout_prob": 0.05,
  "hidden_size": 256,
  "initializer_range": 0.02,
  "layer_norm_eps": 1e-12,
  "local_num_chunks_before": 1,
  "local_num_chunks_after": 0,
  "local_attention_probs_dropout_prob": 0.05,
  "local_attn_chunk_length": 64,
  "lsh_attn_chunk_length": 64,
  "lsh_attention_probs_dropout_prob": 0.0,
  "lsh_num_chunks_before": 1,
  "lsh_num_chunks_after": 0,
  "max_position_embeddings": 4096,
  "num_attention_heads": 12,
  "num_buckets": null,
  "num_hashes": 1,
  "num_hidden_layers": 6,
  "vocab_size": 320,
  "use_cache": true,
  "classifier_dropout": null
};

describeConfigSuite({ describe, it, expect }, {
  ConfigClass: ReformerConfig,
  modelType: 'reformer',
  defaults: REFERENCE_DEFAULTS,
  families: ['reformer'],
  fixtures: findSharedFixtures(import.meta.url),
});
