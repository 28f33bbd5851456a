// The Megatron-LM converter against the parity fixtures: a fixture's Hugging Face weights are written
// back in the original Megatron layout (fused, version-ordered query_key_value; Megatron names; padded
// vocab) as a torch.save `model_optim_rng.pt`, zipped like the NGC download, converted, and the
// converted model must reproduce the fixture's reference outputs.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint, pyFloat, serializeTorchCheckpoint, type TorchSaveValue } from '@lm/dist-ckpt';
import { noGrad, tensor } from '@lm/tensor-gpu';
import { findSharedFixtures, testCpuBackend } from '@lm/tensor-gpu/testing';
import { MegatronBertConfig } from './config.js';
import { convertMegatronCheckpoint, convertMegatronCheckpointToDirectory, MEGATRON_CHECKPOINT_ENTRY } from './convert-megatron.js';
import { MegatronBertForPreTraining } from './modeling.js';

const fixtures = findSharedFixtures(import.meta.url);
const caseDir = fixtures ? join(fixtures, 'megatron-bert', 'pretraining_mlm_nsp') : null;
const work = mkdtempSync(join(tmpdir(), 'megatron-convert-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

type F32 = { dtype: 'F32'; shape: number[]; data: Float32Array };

/**
 * The fused [3 * hidden, ...] projection as Megatron stores it: version 0 = [3, heads, headDim] (q, k, v
 * blocks); 1.0 = [heads, headDim, 3]; >= 2.0 = [heads, 3, headDim] (rows; columns unchanged).
 */
function fuseQkv(parts: F32[], version: number, heads: number): F32 {
  const [q] = parts;
  const rowLength = q.shape.length > 1 ? q.shape[1] : 1;
  const hidden = q.shape[0];
  const headDim = hidden / heads;
  const out = new Float32Array(3 * hidden * rowLength);
  for (let s = 0; s < 3; s++) {
    for (let h = 0; h < heads; h++) {
      for (let d = 0; d < headDim; d++) {
        const row = version === 1 ? (h * headDim + d) * 3 + s : version >= 2 ? (h * 3 + s) * headDim + d : (s * heads + h) * headDim + d;
        const src = (h * headDim + d) * rowLength;
        out.set(parts[s].data.subarray(src, src + rowLength), row * rowLength);
      }
    }
  }
  return { dtype: 'F32', shape: [3 * hidden, ...q.shape.slice(1)], data: out };
}

/** A Hugging Face MegatronBERT state dict in Megatron-LM's checkpoint layout (`{ model: ..., checkpoint_version }`). */
function toMegatron(hf: Map<string, F32>, config: MegatronBertConfig, version: number, padRows: number): TorchSaveValue {
  const get = (name: string) => {
    const t = hf.get(name);
    if (!t) throw new Error(`fixture has no ${name}`);
    return t;
  };
  const word = get('bert.embeddings.word_embeddings.weight');
  const padded = new Float32Array((word.shape[0] + padRows) * word.shape[1]).fill(0.5);
  padded.set(word.data);
  const transformer = new Map<string, TorchSaveValue>();
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const hfLayer = `bert.encoder.layer.${i}`;
    const layer = `layers.${i}`;
    for (const wb of ['weight', 'bias']) {
      transformer.set(`${layer}.input_layernorm.${wb}`, get(`${hfLayer}.attention.ln.${wb}`));
      const qkv = ['query', 'key', 'value'].map((p) => get(`${hfLayer}.attention.self.${p}.${wb}`));
      transformer.set(`${layer}.attention.query_key_value.${wb}`, fuseQkv(qkv, version, config.numAttentionHeads));
      transformer.set(`${layer}.attention.dense.${wb}`, get(`${hfLayer}.attention.output.dense.${wb}`));
      transformer.set(`${layer}.post_attention_layernorm.${wb}`, get(`${hfLayer}.ln.${wb}`));
      transformer.set(`${layer}.mlp.dense_h_to_4h.${wb}`, get(`${hfLayer}.intermediate.dense.${wb}`));
      transformer.set(`${layer}.mlp.dense_4h_to_h.${wb}`, get(`${hfLayer}.output.dense.${wb}`));
    }
  }
  transformer.set('final_layernorm.weight', get('bert.encoder.ln.weight'));
  transformer.set('final_layernorm.bias', get('bert.encoder.ln.bias'));
  return new Map<string, TorchSaveValue>([
    [
      'model',
      new Map<string, TorchSaveValue>([
        [
          'language_model',
          new Map<string, TorchSaveValue>([
            [
              'embedding',
              new Map<string, TorchSaveValue>([
                ['word_embeddings', new Map([['weight', { dtype: 'F32', shape: [word.shape[0] + padRows, word.shape[1]], data: padded }]])],
                ['position_embeddings', new Map([['weight', get('bert.embeddings.position_embeddings.weight')]])],
                ['tokentype_embeddings', new Map([['weight', get('bert.embeddings.token_type_embeddings.weight')]])],
              ]),
            ],
            ['transformer', transformer],
            ['pooler', new Map([['dense.weight', get('bert.pooler.dense.weight')], ['dense.bias', get('bert.pooler.dense.bias')]])],
          ]),
        ],
        [
          'lm_head',
          new Map([
            ['dense.weight', get('cls.predictions.transform.dense.weight')],
            ['dense.bias', get('cls.predictions.transform.dense.bias')],
            ['layernorm.weight', get('cls.predictions.transform.LayerNorm.weight')],
            ['layernorm.bias', get('cls.predictions.transform.LayerNorm.bias')],
            ['bias', get('cls.predictions.bias')],
          ]),
        ],
        ['binary_head', new Map([['weight', get('cls.seq_relationship.weight')], ['bias', get('cls.seq_relationship.bias')]])],
      ]),
    ],
    ['checkpoint_version', pyFloat(version)],
  ]);
}

// ---- a minimal STORED zip writer (the NGC download's outer container) ----------------------------------

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function storedZip(files: [string, Uint8Array][]): Uint8Array {
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const n = enc.encode(name);
    const crc = crc32(data);
    const local = new Uint8Array(30 + n.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, n.length, true);
    local.set(n, 30);
    const central = new Uint8Array(46 + n.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, n.length, true);
    cv.setUint32(42, offset, true);
    central.set(n, 46);
    locals.push(local, data);
    centrals.push(central);
    offset += local.length + data.length;
  }
  const cdSize = centrals.reduce((s, c) => s + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const parts = [...locals, ...centrals, eocd];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---- the tests ------------------------------------------------------------------------------------------

describe.skipIf(!caseDir)('convertMegatronCheckpoint', async () => {
  const backend = testCpuBackend();
  const config = caseDir ? MegatronBertConfig.fromJSON(JSON.parse(readFileSync(join(caseDir, 'config.json'), 'utf8'))) : new MegatronBertConfig();
  const hf = new Map<string, F32>();
  if (caseDir) {
    const ckpt = await openCheckpoint(join(caseDir, 'model.safetensors'));
    for (const { name } of ckpt.tensors) {
      const t = await ckpt.readTensor(name, { as: 'float32' });
      hf.set(name, { dtype: 'F32', shape: t.shape, data: t.data });
    }
    await ckpt.close();
  }

  /** The converted model's outputs on the fixture inputs vs the reference's expected outputs. */
  async function expectReferenceOutputs(dir: string): Promise<void> {
    const spec = JSON.parse(readFileSync(join(caseDir!, 'case.json'), 'utf8')) as { inputs: Record<string, number[][]> };
    const model = await MegatronBertForPreTraining.fromPretrained(dir, { backend });
    const ids = (name: string) => tensor(spec.inputs[name], { dtype: 'int32', backend });
    const out = noGrad(() =>
      model.forward({ inputIds: ids('input_ids'), attentionMask: ids('attention_mask'), tokenTypeIds: ids('token_type_ids'), labels: ids('labels'), nextSentenceLabel: ids('next_sentence_label') }),
    );
    const expected = await openCheckpoint(join(caseDir!, 'expected.safetensors'));
    for (const [name, t] of [['prediction_logits', out.predictionLogits], ['seq_relationship_logits', out.seqRelationshipLogits], ['loss', out.loss!]] as const) {
      const want = (await expected.readTensor(name, { as: 'float32' })).data;
      const got = await t.data();
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i])));
      expect(worst, name).toBeLessThan(1e-4);
    }
    await expected.close();
    model.dispose();
  }

  for (const version of [0, 1, 3]) {
    it(`converts an NGC-style zip (checkpoint_version ${version}) to weights that reproduce the reference`, async () => {
      const pt = await serializeTorchCheckpoint(toMegatron(hf, config, version, 5), { archiveName: 'model_optim_rng' });
      const zipPath = join(work, `megatron_bert_v${version}.zip`);
      writeFileSync(zipPath, storedZip([['latest_checkpointed_iteration.txt', new TextEncoder().encode('release')], [MEGATRON_CHECKPOINT_ENTRY, pt]]));
      const outDir = join(work, `hf-v${version}`);
      const converted = await convertMegatronCheckpointToDirectory(zipPath, outDir, { config });
      expect(converted.vocabSize).toBe(99);
      await expectReferenceOutputs(outDir);
    });
  }

  it('converts the bare model_optim_rng.pt, names and shapes as the reference converter writes them', async () => {
    const pt = await serializeTorchCheckpoint(toMegatron(hf, config, 2, 0), { archiveName: 'model_optim_rng' });
    const { stateDict, checkpointVersion } = await convertMegatronCheckpoint(pt, { config });
    expect(checkpointVersion).toBe(2);
    // Every tensor of the reference's MegatronBertForPreTraining state dict, and nothing else.
    expect([...stateDict.keys()].sort()).toEqual([...hf.keys()].filter((k) => k !== 'cls.predictions.decoder.bias').sort());
    for (const [name, t] of stateDict) {
      const want = hf.get(name)!;
      expect(t.shape, name).toEqual(want.shape);
      expect(Array.from(t.data), name).toEqual(Array.from(want.data));
    }
  });
});
