import { describe, expect, it } from 'vitest';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { describeConfigSuite } from '@lm/layers/testing';
import { T5Config } from './config.js';

// Hugging Face T5Config() defaults, as config.json keys (the reference's own names and values).
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
  "is_encoder_decoder": true,
  "tie_word_embeddings": true,
  "pad_token_id": 0,
  "eos_token_id": 1,
  "bos_token_id": null,
  "vocab_size": 32128,
  "d_model": 512,
  "d_kv": 64,
  "d_ff": 2048,
  "num_layers": 6,
  "num_decoder_layers": 6,
  "num_heads": 8,
  "relative_attention_num_buckets": 32,
  "relative_attention_max_distance": 128,
  "dropout_rate": 0.1,
  "classifier_dropout": 0.0,
  "layer_norm_epsilon": 1e-06,
  "initializer_factor": 1.0,
  "feed_forward_proj": "relu",
  "use_cache": true,
  "dense_act_fn": "relu",
  "is_gated_act": false
};

describeConfigSuite({ describe, it, expect }, {
  ConfigClass: T5Config,
  modelType: 't5',
  defaults: REFERENCE_DEFAULTS,
  families: ['hf-t5'],
  fixtures: findSharedFixtures(import.meta.url),
});
