import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
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

describe('ReformerConfig defaults', () => {
  it('equal the reference', () => {
    const json = new ReformerConfig().toJSON();
    expect(json.model_type).toBe('reformer');
    for (const [key, value] of Object.entries(REFERENCE_DEFAULTS)) expect([key, json[key]]).toEqual([key, value]);
    // Every typed field has a reference default listed above.
    const written = Object.keys(json).filter((k) => k !== 'model_type');
    expect(written.sort()).toEqual(Object.keys(REFERENCE_DEFAULTS).sort());
  });
});

/** `shared/fixtures` beside the repository (or LM_FIXTURES), found by walking up from this package. */
function findFixtures(): string | null {
  if (process.env.LM_FIXTURES) return resolve(process.env.LM_FIXTURES);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'shared', 'fixtures');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

const fixtures = findFixtures();
const FAMILIES = ["reformer"];
const cases = fixtures
  ? FAMILIES.flatMap((family) =>
      existsSync(join(fixtures, family))
        ? readdirSync(join(fixtures, family))
            .filter((name) => existsSync(join(fixtures, family, name, 'config.json')))
            .map((name) => ({ name: `${family}/${name}`, path: join(fixtures, family, name, 'config.json') }))
        : [],
    )
  : [];
if (!fixtures && process.env.CI) throw new Error('shared/fixtures not found above this package (CI needs it)');
if (!fixtures) console.warn('[ReformerConfig] fixture round trips SKIPPED: no shared/fixtures found above this package');

describe.skipIf(!fixtures)('ReformerConfig round trip of every shared fixture config.json', () => {
  it('finds fixtures', () => expect(cases.length).toBeGreaterThan(0));

  for (const { name, path } of cases) {
    it(name, () => {
      const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      const config = ReformerConfig.fromJSON(json);
      const back = config.toJSON();
      for (const [key, value] of Object.entries(json)) expect([key, back[key]]).toEqual([key, value]);
      expect(ReformerConfig.fromJSON(back).toJSON()).toEqual(back);
      // Every key the reference wrote is a typed field, read into its camelCase name.
      const fields = ReformerConfig.fields as Record<string, string>;
      const typed = new Set(Object.values(fields));
      const untyped = Object.keys(json).filter((k) => !typed.has(k) && k !== 'model_type');
      expect(untyped).toEqual([]);
      for (const [field, key] of Object.entries(fields)) {
        if (key in json) expect([key, (config as unknown as Record<string, unknown>)[field]]).toEqual([key, json[key]]);
      }
    });
  }
});
