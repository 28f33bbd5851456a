import { describe, expect, it } from 'vitest';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { describeConfigSuite } from '@lm/layers/testing';
import { MegatronBertConfig } from './config.js';

// Hugging Face MegatronBertConfig() defaults, as config.json keys (the reference's own names and values).
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
  "pad_token_id": 0,
  "bos_token_id": null,
  "eos_token_id": null,
  "vocab_size": 29056,
  "hidden_size": 1024,
  "num_hidden_layers": 24,
  "num_attention_heads": 16,
  "intermediate_size": 4096,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "attention_probs_dropout_prob": 0.1,
  "max_position_embeddings": 512,
  "type_vocab_size": 2,
  "initializer_range": 0.02,
  "layer_norm_eps": 1e-12,
  "position_embedding_type": "absolute",
  "use_cache": true
};

describeConfigSuite({ describe, it, expect }, {
  ConfigClass: MegatronBertConfig,
  modelType: 'megatron-bert',
  defaults: REFERENCE_DEFAULTS,
  families: ['megatron-bert'],
  fixtures: findSharedFixtures(import.meta.url),
});
