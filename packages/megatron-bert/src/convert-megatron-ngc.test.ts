// The Megatron-LM converter against original checkpoints: every case folder under
// `shared/fixtures/io/megatron-ngc` (an NGC-style zip of a real Megatron-LM BERT `torch.save` file, of some
// `checkpoint_version`, with the output of Hugging Face's `convert_megatron_bert_checkpoint.py`). Every
// tensor must come out bit for bit, with the reference's names, shapes and dtype, and the config with
// the reference's model fields; the same through the folder writer a user calls.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint, serializeTorchCheckpoint } from '@lm/dist-ckpt';
import { findSharedFixtures } from '@lm/tensor-gpu/testing';
import { MegatronBertConfig } from './config.js';
import { convertMegatronCheckpoint, convertMegatronCheckpointToDirectory, type ConvertedTensor } from './convert-megatron.js';

const fixtures = findSharedFixtures(import.meta.url);
const ngcDir = fixtures ? join(fixtures, 'io', 'megatron-ngc') : null;
if (process.env.CI && !(ngcDir && existsSync(ngcDir))) throw new Error(`shared/fixtures/io/megatron-ngc not found (CI must have it; or set LM_FIXTURES)`);
const cases = ngcDir && existsSync(ngcDir) ? readdirSync(ngcDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort() : [];
if (process.env.CI && cases.length === 0) throw new Error(`no case folders in ${ngcDir}`);

const work = mkdtempSync(join(tmpdir(), 'megatron-ngc-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface CaseSpec {
  class: string;
  checkpoint_version: number;
  inputs: { checkpoint: string; member: string; config_file: string | null };
  outputs: string[];
  atol: number;
  rtol: number;
  source: { dtype: string; has_args: boolean };
}

const DTYPES: Record<string, string> = { float16: 'F16', float32: 'F32', bfloat16: 'BF16' };

/** Bit-exact comparison of float32 values (so -0 vs 0 and NaN payloads count too). */
function expectSameBits(got: Float32Array, want: Float32Array, name: string): void {
  expect(got.length, name).toBe(want.length);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  let first = -1;
  for (let i = 0; i < w.length && first < 0; i++) if (g[i] !== w[i]) first = i;
  expect(first < 0 ? 'equal' : `differs at ${first}: ${got[first]} vs ${want[first]}`, name).toBe('equal');
}

describe.skipIf(cases.length === 0)('convertMegatronCheckpoint on original Megatron-LM checkpoints (io/megatron-ngc)', () => {
  it.each(cases)('%s: every tensor and the config, exactly as the reference converter', async (name) => {
    const dir = join(ngcDir!, name);
    const spec = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as CaseSpec;
    expect(spec.class).toBe('convertMegatronCheckpoint');
    expect([spec.atol, spec.rtol]).toEqual([0, 0]);
    const config = spec.inputs.config_file ? MegatronBertConfig.fromJSON(JSON.parse(readFileSync(join(dir, spec.inputs.config_file), 'utf8'))) : undefined;

    const converted = await convertMegatronCheckpoint(join(dir, spec.inputs.checkpoint), { config });
    expect(converted.checkpointVersion).toBe(spec.checkpoint_version);

    const expected = await openCheckpoint(join(dir, 'expected.safetensors'));
    expect([...converted.stateDict.keys()].sort()).toEqual(expected.tensors.map((t) => t.name).sort());
    expect([...converted.stateDict.keys()].sort()).toEqual([...spec.outputs].sort());
    for (const { name: tensor } of expected.tensors) {
      const want = await expected.readTensor(tensor, { as: 'float32' });
      const got = converted.stateDict.get(tensor) as ConvertedTensor;
      expect(got.shape, tensor).toEqual(want.shape);
      expect(got.dtype, tensor).toBe(DTYPES[spec.source.dtype]);
      expectSameBits(got.data, want.data, tensor);
    }
    await expected.close();

    // config.json: every model field the reference wrote (its transformers_version names the snapshot).
    const { transformers_version: _version, ...wantConfig } = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const gotConfig = converted.config.toJSON();
    for (const [key, value] of Object.entries(wantConfig)) expect(gotConfig[key], `config.json ${key}`).toEqual(value);
    expect('tokenizer_type' in gotConfig, 'tokenizer_type comes only from args').toBe(spec.source.has_args);
  });

  it.each(cases)('%s: convertMegatronCheckpointToDirectory writes a folder with the same weights', async (name) => {
    const dir = join(ngcDir!, name);
    const spec = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as CaseSpec;
    const config = spec.inputs.config_file ? MegatronBertConfig.fromJSON(JSON.parse(readFileSync(join(dir, spec.inputs.config_file), 'utf8'))) : undefined;
    const out = join(work, name);
    await convertMegatronCheckpointToDirectory(join(dir, spec.inputs.checkpoint), out, { config });
    const written = await openCheckpoint(out);
    const expected = await openCheckpoint(join(dir, 'expected.safetensors'));
    // The tied decoder is written once, under the word embeddings' name.
    expect(written.tensors.map((t) => t.name).sort()).toEqual(expected.tensors.map((t) => t.name).filter((n) => n !== 'cls.predictions.decoder.weight').sort());
    for (const { name: tensor, dtype } of written.tensors) {
      expect(dtype, tensor).toBe(DTYPES[spec.source.dtype]);
      expectSameBits((await written.readTensor(tensor, { as: 'float32' })).data, (await expected.readTensor(tensor, { as: 'float32' })).data, tensor);
    }
    await Promise.all([written.close(), expected.close()]);
    const savedConfig = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    const want = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    for (const key of ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size', 'max_position_embeddings']) {
      expect(savedConfig[key], key).toBe(want[key]);
    }
  });
});

describe('convertMegatronCheckpoint errors', () => {
  it('names what is missing when the file is not a Megatron-LM BERT checkpoint', async () => {
    const w = { dtype: 'F32' as const, shape: [2], data: new Float32Array([1, 2]) };
    const plain = await serializeTorchCheckpoint(new Map([['encoder.weight', w]]), { archiveName: 'model_optim_rng' });
    await expect(convertMegatronCheckpoint(plain)).rejects.toThrow(/^checkpoint: no 'model' in the checkpoint \(is this a Megatron-LM BERT checkpoint\?\)$/);
    const noHead = await serializeTorchCheckpoint(new Map([['model', new Map([['language_model', new Map([['embedding', new Map()]])]])]]), { archiveName: 'model_optim_rng' });
    await expect(convertMegatronCheckpoint(noHead)).rejects.toThrow(/no 'model\.lm_head' in the checkpoint/);
  });

  it.skipIf(cases.length === 0)('says to pass a config when a checkpoint without args is not the 345M model', async () => {
    const zip = join(ngcDir!, 'v0_ngc_no_args', 'input.zip');
    await expect(convertMegatronCheckpoint(zip)).rejects.toThrow(
      /input\.zip!release\/mp_rank_00\/model_optim_rng\.pt: position embeddings \[64, 32\] do not match MegatronBertConfig\(\) defaults, the 345M model \(the checkpoint stores no args: pass the model's config as \{ config \}, the reference's --config_file\) \(max_position_embeddings 512, hidden_size 1024\)$/,
    );
  });
});
