import { describe, expect, it } from 'vitest';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { describeConfigSuite } from '@lm/layers/testing';
import { RealmConfig } from './config.js';

// Hugging Face RealmConfig() defaults, as config.json keys (the reference's own names and values).
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
  "pad_token_id": 1,
  "bos_token_id": 0,
  "eos_token_id": 2,
  "vocab_size": 30522,
  "hidden_size": 768,
  "retriever_proj_size": 128,
  "num_hidden_layers": 12,
  "num_attention_heads": 12,
  "num_candidates": 8,
  "intermediate_size": 3072,
  "hidden_act": "gelu_new",
  "hidden_dropout_prob": 0.1,
  "attention_probs_dropout_prob": 0.1,
  "max_position_embeddings": 512,
  "type_vocab_size": 2,
  "initializer_range": 0.02,
  "layer_norm_eps": 1e-12,
  "span_hidden_size": 256,
  "max_span_width": 10,
  "reader_layer_norm_eps": 0.001,
  "reader_beam_size": 5,
  "reader_seq_len": 320,
  "num_block_records": 13353718,
  "searcher_beam_size": 5000,
  "use_cache": true
};

describeConfigSuite({ describe, it, expect }, {
  ConfigClass: RealmConfig,
  modelType: 'realm',
  defaults: REFERENCE_DEFAULTS,
  families: ['realm'],
  fixtures: findSharedFixtures(import.meta.url),
});
