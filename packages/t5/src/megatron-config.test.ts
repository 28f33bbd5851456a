import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MegatronT5Config } from './megatron-config.js';

// Hugging Face MegatronT5Config() defaults, as config.json keys (the reference's own names and values).
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

describe('MegatronT5Config defaults', () => {
  it('equal the reference', () => {
    const json = new MegatronT5Config().toJSON();
    expect(json.model_type).toBeUndefined();
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
const FAMILIES = ["megatron-t5"];
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
if (!fixtures) console.warn('[MegatronT5Config] fixture round trips SKIPPED: no shared/fixtures found above this package');

describe.skipIf(!fixtures)('MegatronT5Config round trip of every shared fixture config.json', () => {
  it('finds fixtures', () => expect(cases.length).toBeGreaterThan(0));

  for (const { name, path } of cases) {
    it(name, () => {
      const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      const config = MegatronT5Config.fromJSON(json);
      const back = config.toJSON();
      for (const [key, value] of Object.entries(json)) expect([key, back[key]]).toEqual([key, value]);
      expect(MegatronT5Config.fromJSON(back).toJSON()).toEqual(back);
      // Every key the reference wrote is a typed field, read into its camelCase name.
      const fields = MegatronT5Config.fields as Record<string, string>;
      const typed = new Set(Object.values(fields));
      const untyped = Object.keys(json).filter((k) => !typed.has(k) && k !== 'model_type');
      expect(untyped).toEqual('function' in json ? ['function'] : []);
      for (const [field, key] of Object.entries(fields)) {
        if (key in json) expect([key, (config as unknown as Record<string, unknown>)[field]]).toEqual([key, json[key]]);
      }
    });
  }
});
