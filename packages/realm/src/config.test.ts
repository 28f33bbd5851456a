import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
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

describe('RealmConfig defaults', () => {
  it('equal the reference', () => {
    const json = new RealmConfig().toJSON();
    expect(json.model_type).toBe('realm');
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
const FAMILIES = ["realm"];
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
if (!fixtures) console.warn('[RealmConfig] fixture round trips SKIPPED: no shared/fixtures found above this package');

describe.skipIf(!fixtures)('RealmConfig round trip of every shared fixture config.json', () => {
  it('finds fixtures', () => expect(cases.length).toBeGreaterThan(0));

  for (const { name, path } of cases) {
    it(name, () => {
      const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      const config = RealmConfig.fromJSON(json);
      const back = config.toJSON();
      for (const [key, value] of Object.entries(json)) expect([key, back[key]]).toEqual([key, value]);
      expect(RealmConfig.fromJSON(back).toJSON()).toEqual(back);
      // Every key the reference wrote is a typed field, read into its camelCase name.
      const fields = RealmConfig.fields as Record<string, string>;
      const typed = new Set(Object.values(fields));
      const untyped = Object.keys(json).filter((k) => !typed.has(k) && k !== 'model_type');
      expect(untyped).toEqual([]);
      for (const [field, key] of Object.entries(fields)) {
        if (key in json) expect([key, (config as unknown as Record<string, unknown>)[field]]).toEqual([key, json[key]]);
      }
    });
  }
});
