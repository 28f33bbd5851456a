import { describe, expect, it } from 'vitest';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { describeConfigSuite } from '@lm/layers/testing';
import { ChatGLMConfig } from './config.js';

// Hugging Face ChatGLMConfig() defaults, as config.json keys (the reference's own names and values).
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
  "tie_word_embeddings": true,
  "vocab_size": 130528,
  "hidden_size": 4096,
  "num_layers": 28,
  "num_attention_heads": 32,
  "layernorm_epsilon": 1e-05,
  "use_cache": true,
  "bos_token_id": 130004,
  "eos_token_id": 130005,
  "mask_token_id": 130000,
  "gmask_token_id": 130001,
  "pad_token_id": 3,
  "max_sequence_length": 2048,
  "inner_hidden_size": 16384,
  "position_encoding_2d": true,
  "quantization_bit": 0,
  "pre_seq_len": null,
  "prefix_projection": false
};

describeConfigSuite({ describe, it, expect }, {
  ConfigClass: ChatGLMConfig,
  modelType: 'chatglm',
  defaults: REFERENCE_DEFAULTS,
  families: ['chatglm'],
  fixtures: findSharedFixtures(import.meta.url),
});
