import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
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

describe('T5Config defaults', () => {
  it('equal the reference', () => {
    const json = new T5Config().toJSON();
    expect(json.model_type).toBe('t5');
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
const FAMILIES = ["hf-t5"];
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
if (!fixtures) console.warn('[T5Config] fixture round trips SKIPPED: no shared/fixtures found above this package');

describe.skipIf(!fixtures)('T5Config round trip of every shared fixture config.json', () => {
  it('finds fixtures', () => expect(cases.length).toBeGreaterThan(0));

  for (const { name, path } of cases) {
    it(name, () => {
      const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      const config = T5Config.fromJSON(json);
      const back = config.toJSON();
      for (const [key, value] of Object.entries(json)) expect([key, back[key]]).toEqual([key, value]);
      expect(T5Config.fromJSON(back).toJSON()).toEqual(back);
      // Every key the reference wrote is a typed field, read into its camelCase name.
      const fields = T5Config.fields as Record<string, string>;
      const typed = new Set(Object.values(fields));
      const untyped = Object.keys(json).filter((k) => !typed.has(k) && k !== 'model_type');
      expect(untyped).toEqual([]);
      for (const [field, key] of Object.entries(fields)) {
        if (key in json) expect([key, (config as unknown as Record<string, unknown>)[field]]).toEqual([key, json[key]]);
      }
    });
  }
});
