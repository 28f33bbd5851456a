import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
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

describe('ChatGLMConfig defaults', () => {
  it('equal the reference', () => {
    const json = new ChatGLMConfig().toJSON();
    expect(json.model_type).toBe('chatglm');
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
const FAMILIES = ["chatglm"];
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
if (!fixtures) console.warn('[ChatGLMConfig] fixture round trips SKIPPED: no shared/fixtures found above this package');

describe.skipIf(!fixtures)('ChatGLMConfig round trip of every shared fixture config.json', () => {
  it('finds fixtures', () => expect(cases.length).toBeGreaterThan(0));

  for (const { name, path } of cases) {
    it(name, () => {
      const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      const config = ChatGLMConfig.fromJSON(json);
      const back = config.toJSON();
      for (const [key, value] of Object.entries(json)) expect([key, back[key]]).toEqual([key, value]);
      expect(ChatGLMConfig.fromJSON(back).toJSON()).toEqual(back);
      // Every key the reference wrote is a typed field, read into its camelCase name.
      const fields = ChatGLMConfig.fields as Record<string, string>;
      const typed = new Set(Object.values(fields));
      const untyped = Object.keys(json).filter((k) => !typed.has(k) && k !== 'model_type');
      expect(untyped).toEqual([]);
      for (const [field, key] of Object.entries(fields)) {
        if (key in json) expect([key, (config as unknown as Record<string, unknown>)[field]]).toEqual([key, json[key]]);
      }
    });
  }
});
