// Behaviour the fixtures do not pin down by themselves: quantize(4 | 8) of a float model reproducing
// THUDM's own integers and scales (the int4 fixture's pytorch_model.bin), the quantized model's logits
// against the float model's, P-tuning freezing, state-dict names, and bad input refused with a named
// error before any work. Parity itself runs through the conformance runner (families.json).
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint, writeTorchCheckpoint, type TensorToWrite } from '@lm/dist-ckpt';
import { withoutInit } from '@lm/layers';
import { weightPathProblems } from '@lm/layers/testing';
import { fromHost, memory, noGrad, roundToFloat16, tensor, type Backend, type Tensor } from '@lm/tensor-gpu';
import { compareArrays, findSharedFixtures, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { ChatGLMConfig } from './config.js';
import { ChatGLMForConditionalGeneration, ChatGLMInputError } from './modeling.js';
import { greedySearch } from './generation.js';
import { QuantizedLinear } from './quantization.js';
import { Float16Embedding, Float16Linear } from './float16.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());
const backends: [string, Backend][] = webgpu ? [['cpu', testCpuBackend()], ['webgpu', webgpu]] : [['cpu', testCpuBackend()]];
const fixtures = findSharedFixtures(import.meta.url);
const int4Dir = fixtures ? join(fixtures, 'chatglm-quant', 'model_int4_logits') : '';
const haveInt4 = !!fixtures && existsSync(join(int4Dir, 'pytorch_model.bin'));

const tiny = (fields: Partial<ConstructorParameters<typeof ChatGLMConfig>[0]> = {}) =>
  new ChatGLMConfig({ vocabSize: 40, hiddenSize: 16, numLayers: 2, numAttentionHeads: 2, innerHiddenSize: 32, maxSequenceLength: 32, bosTokenId: 32, eosTokenId: 33, maskTokenId: 30, gmaskTokenId: 31, padTokenId: 3, ...fields });

describe('state-dict names are the reference checkpoint names', () => {
  it('float, quantized and P-tuning models', () => {
    const names = (m: ChatGLMForConditionalGeneration) => [...m.stateDict().keys()];
    const float = new ChatGLMForConditionalGeneration(tiny());
    expect(weightPathProblems(float)).toEqual([]);
    // A fresh model is initialised (torch's defaults), not left at zero.
    const qkv = float.transformer.layers.at(0).attention.query_key_value.weight.dataSync();
    expect(Math.max(...Array.from(qkv, Math.abs))).toBeGreaterThan(0);
    expect(names(float)).toContain('transformer.layers.1.attention.rotary_emb.inv_freq');
    expect(names(float)).toContain('lm_head.weight');
    const int4 = withoutInit(() => new ChatGLMForConditionalGeneration(tiny({ quantizationBit: 4 })));
    expect(names(int4).filter((n) => n.startsWith('transformer.layers.0.mlp.'))).toEqual([
      'transformer.layers.0.mlp.dense_h_to_4h.weight',
      'transformer.layers.0.mlp.dense_h_to_4h.weight_scale',
      'transformer.layers.0.mlp.dense_h_to_4h.bias',
      'transformer.layers.0.mlp.dense_4h_to_h.weight',
      'transformer.layers.0.mlp.dense_4h_to_h.weight_scale',
      'transformer.layers.0.mlp.dense_4h_to_h.bias',
    ]);
    const prefix = new ChatGLMForConditionalGeneration(tiny({ preSeqLen: 3, prefixProjection: true }));
    // P-tuning v2: only the prefix encoder (and lm_head, built after the transformer) train.
    const trainable = [...prefix.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable).toEqual([
      'transformer.prefix_encoder.embedding.weight',
      'transformer.prefix_encoder.trans.0.weight',
      'transformer.prefix_encoder.trans.0.bias',
      'transformer.prefix_encoder.trans.2.weight',
      'transformer.prefix_encoder.trans.2.bias',
      'lm_head.weight',
    ]);
    [float, int4, prefix].forEach((m) => m.dispose());
  });
});

/** The float model of the int4 fixture: model.safetensors holds its weights before quantization. */
async function int4FixtureFloatModel(backend: Backend): Promise<ChatGLMForConditionalGeneration> {
  const json = JSON.parse(readFileSync(join(int4Dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const model = withoutInit(() => new ChatGLMForConditionalGeneration(ChatGLMConfig.fromJSON({ ...json, quantization_bit: 0 } as never), { backend })).eval();
  const ckpt = await openCheckpoint(join(int4Dir, 'model.safetensors'));
  await model.loadWeights(ckpt, { prefix: 'transformer' });
  await ckpt.close();
  return model;
}

/** ||a - b|| / ||b|| over all elements. */
async function relativeL2(a: Tensor, b: Tensor): Promise<number> {
  const [x, y] = await Promise.all([a.data(), b.data()]);
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num += (x[i] - y[i]) ** 2;
    den += y[i] ** 2;
  }
  return Math.sqrt(num / den);
}

describe.skipIf(!haveInt4).each(backends)('quantize() on %s', (_name, backend) => {
  it('quantize(4) of the float weights reproduces the THUDM checkpoint integers and scales exactly', async () => {
    const model = await int4FixtureFloatModel(backend);
    await model.quantize(4);
    expect(model.config.quantizationBit).toBe(4);
    const ckpt = await openCheckpoint(join(int4Dir, 'pytorch_model.bin'));
    let layers = 0;
    try {
      for (const [name, m] of model.namedModules()) {
        if (!(m instanceof QuantizedLinear)) continue;
        layers++;
        const stored = await m.storedWeight();
        const want = await ckpt.readTensor(`${name}.weight`, { as: 'native' });
        expect(stored.shape, name).toEqual(want.shape);
        expect(Array.from(stored.data), name).toEqual(Array.from(want.data as Int8Array));
        const scale = await ckpt.readTensor(`${name}.weight_scale`, { as: 'float32' });
        expect(Array.from(await m.weight_scale.data()), name).toEqual(Array.from(scale.data));
      }
    } finally {
      await ckpt.close();
    }
    expect(layers).toBe(8);
    model.dispose();
  });

  // Random weights are the hard case for weight-only quantization (no outliers to spare, deep-norm
  // alpha 7.48 amplifying every error). Stated bounds on the logits' relative L2 error.
  for (const [bits, bound] of [
    [8, 0.01],
    [4, 0.15],
  ] as const) {
    it(`int${bits} logits stay within relative L2 ${bound} of the float model's`, async () => {
      const model = await int4FixtureFloatModel(backend);
      const inputIds = tensor([[3, 3, 100, 19, 57, 131, 132, 123, 18], [121, 96, 130, 14, 62, 128, 132, 129, 7]], { dtype: 'int32', backend });
      const floatLogits = model.forward({ inputIds, useCache: false }).logits;
      await model.quantize(bits);
      const quantLogits = model.forward({ inputIds, useCache: false }).logits;
      const rel = await relativeL2(quantLogits, floatLogits);
      expect(rel).toBeGreaterThan(0);
      expect(rel).toBeLessThan(bound);
      [inputIds, floatLogits, quantLogits].forEach((t) => t.dispose());
      model.dispose();
    });
  }
});

describe.each(backends)('embeddings and lm_head held in float16 on %s', (_name, backend) => {
  /** A tiny model whose word embeddings and lm_head are float16-exact; equal when `tied`. */
  async function halfModel(tied: boolean, vocabSize = 40): Promise<ChatGLMForConditionalGeneration> {
    const model = new ChatGLMForConditionalGeneration(tiny({ vocabSize }), { backend }).eval();
    const round = async (t: Tensor, seed: number) => {
      const v = Float32Array.from((await t.data()) as Float32Array, (x, i) => roundToFloat16(x + seed * 1e-3 * (i % 7)));
      const h = fromHost(v, t.shape, 'float32', backend);
      noGrad(() => t.copy_(h));
      h.dispose();
    };
    await round(model.transformer.word_embeddings.weight, 0);
    if (tied) {
      const w = (model.transformer.word_embeddings.weight as Tensor).clone();
      noGrad(() => (model.lm_head.weight as Tensor).copy_(w));
      w.dispose();
    } else {
      await round(model.lm_head.weight, 1);
    }
    return model;
  }

  for (const tied of [true, false]) {
    it(`${tied ? 'equal tables become ONE' : 'different tables become two'} 16-bit table${tied ? '' : 's'}; the logits match the float model's`, async () => {
      const model = await halfModel(tied);
      const inputIds = tensor([[3, 7, 31, 32, 5], [9, 8, 31, 32, 6]], { dtype: 'int32', backend });
      const floatLogits = noGrad(() => model.forward({ inputIds, useCache: false }).logits);
      const before = backend.memory().bytes;
      const { tied: shared, bytes } = await model.holdEmbeddingsInFloat16();
      expect(shared).toBe(tied);
      expect(model.transformer.word_embeddings).toBeInstanceOf(Float16Embedding);
      expect(model.lm_head).toBeInstanceOf(Float16Linear);
      expect(model.lm_head.weight === model.transformer.word_embeddings.weight).toBe(tied);
      // 40 x 16 float32 tables (2 x 2560 bytes) -> 40 x 8 int32 words (1280 bytes) each, once when tied
      expect(bytes).toBe((tied ? 1 : 2) * 1280);
      expect(before - backend.memory().bytes).toBe(2 * 2560 - bytes - 40 * 4); // less the head's row scales
      const halfLogits = noGrad(() => model.forward({ inputIds, useCache: false }).logits);
      const cmp = compareArrays(Array.from(await halfLogits.data()), Array.from(await floatLogits.data()), 1e-5, 1e-5);
      expect(cmp.ok, `max |diff| ${cmp.maxAbs} at ${cmp.at}`).toBe(true);
      // the state dict keeps the reference's names (the tied table under both)
      expect([...model.stateDict().keys()]).toEqual(expect.arrayContaining(['transformer.word_embeddings.weight', 'lm_head.weight']));
      expect(() => model.transformer.getInputEmbeddings()).toThrow(/held in float16/);
      [inputIds, floatLogits, halfLogits].forEach((t) => t.dispose());
      model.dispose();
    });
  }

  // savePretrained writes what fromPretrained of a THUDM quantization_bit checkpoint reads: int8
  // `weight` (int4: nibble pairs [out, in/2]), float16 `weight_scale`, float16 tables under both names.
  for (const [bits, held] of [
    [4, false],
    [8, false],
    [4, true],
  ] as const) {
    it(`quantize(${bits})${held ? ' + 16-bit tables' : ''} -> savePretrained -> fromPretrained: the published layout, the same logits`, async () => {
      const model = await halfModel(true);
      const embeddings = (await model.transformer.word_embeddings.weight.data()) as Float32Array;
      await model.quantize(bits);
      if (held) await model.holdEmbeddingsInFloat16();
      const inputIds = tensor([[3, 7, 31, 32, 5], [9, 8, 31, 32, 6]], { dtype: 'int32', backend });
      const logits = noGrad(() => model.forward({ inputIds, useCache: false }).logits);
      const dir = mkdtempSync(join(tmpdir(), 'chatglm-save-'));
      try {
        await model.savePretrained(dir);
        expect((JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { quantization_bit: number }).quantization_bit).toBe(bits);
        const ckpt = await openCheckpoint(join(dir, 'model.safetensors'));
        try {
          const layer = model.transformer.layers.at(1).mlp.dense_h_to_4h as QuantizedLinear;
          const name = 'transformer.layers.1.mlp.dense_h_to_4h';
          expect(ckpt.info(`${name}.weight`)).toMatchObject({ dtype: 'I8', shape: [32, bits === 4 ? 8 : 16] });
          expect(ckpt.info(`${name}.weight_scale`)).toMatchObject({ dtype: 'F16', shape: [32] });
          const stored = await ckpt.readTensor(`${name}.weight`, { as: 'native' });
          expect(Array.from(stored.data as Int8Array)).toEqual(Array.from((await layer.storedWeight()).data));
          const scale = await ckpt.readTensor(`${name}.weight_scale`, { as: 'float32' });
          expect(Array.from(scale.data)).toEqual(Array.from((await layer.weight_scale.data()) as Float32Array));
          // the tables' values are the float model's (tied: equal), as float16 when held in 16 bits
          for (const table of ['transformer.word_embeddings.weight', 'lm_head.weight']) {
            expect(ckpt.info(table)).toMatchObject({ dtype: held ? 'F16' : 'F32', shape: [40, 16] });
            expect(Array.from((await ckpt.readTensor(table, { as: 'float32' })).data), table).toEqual(Array.from(embeddings));
          }
        } finally {
          await ckpt.close();
        }
        const loaded = await ChatGLMForConditionalGeneration.fromPretrained(dir, { backend });
        expect(loaded.config.quantizationBit).toBe(bits);
        expect(loaded.transformer.layers.at(1).mlp.dense_h_to_4h).toBeInstanceOf(QuantizedLinear);
        const again = noGrad(() => loaded.eval().forward({ inputIds, useCache: false }).logits);
        const cmp = compareArrays(Array.from(await again.data()), Array.from(await logits.data()), 1e-6, 1e-6);
        expect(cmp.ok, `max |diff| ${cmp.maxAbs} at ${cmp.at}`).toBe(true);
        [again].forEach((t) => t.dispose());
        loaded.dispose();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      [inputIds, logits].forEach((t) => t.dispose());
      model.dispose();
    });
  }

  // embeddingsDtype 'float16': the tables are built and loaded in 16 bits (no float32 copy); one table
  // when the checkpoint's two names hold equal values, two otherwise; float16 files move as bits.
  // 4200 rows: more than one block of rows (4096) is read, compared and written.
  for (const tied of [true, false]) {
    it(`fromPretrained with embeddingsDtype float16 (${tied ? 'equal' : 'different'} tables, float32 and float16 files): the float model's logits`, async () => {
      const model = await halfModel(tied, 4200);
      const inputIds = tensor([[3, 4199, 31, 32, 5], [9, 4100, 31, 32, 4150]], { dtype: 'int32', backend });
      const floatLogits = noGrad(() => model.forward({ inputIds, useCache: false }).logits);
      const want = Array.from(await floatLogits.data());
      const dirs = [mkdtempSync(join(tmpdir(), 'chatglm-f32-')), mkdtempSync(join(tmpdir(), 'chatglm-f16-'))];
      try {
        await model.savePretrained(dirs[0]); // F32 tables
        await model.holdEmbeddingsInFloat16();
        await model.savePretrained(dirs[1]); // F16 tables
        for (const dir of dirs) {
          const loaded = await ChatGLMForConditionalGeneration.fromPretrained(dir, { backend, modelOptions: { embeddingsDtype: 'float16' } });
          expect(loaded.transformer.word_embeddings).toBeInstanceOf(Float16Embedding);
          expect(loaded.lm_head).toBeInstanceOf(Float16Linear);
          expect(loaded.lm_head.weight === loaded.transformer.word_embeddings.weight).toBe(tied);
          const logits = noGrad(() => loaded.eval().forward({ inputIds, useCache: false }).logits);
          const cmp = compareArrays(Array.from(await logits.data()), want, 1e-5, 1e-5);
          expect(cmp.ok, `${dir}: max |diff| ${cmp.maxAbs} at ${cmp.at}`).toBe(true);
          logits.dispose();
          loaded.dispose();
        }
      } finally {
        dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
      }
      [inputIds, floatLogits].forEach((t) => t.dispose());
      model.dispose();
    });
  }

  it('embeddingsDtype: a value float16 cannot hold is refused naming the tensor; an unknown dtype is refused', async () => {
    const model = await halfModel(true);
    const w = model.lm_head.weight as Tensor;
    const v = (await w.data()) as Float32Array;
    v[16 * 5 + 1] = 0.1;
    const bad = fromHost(Float32Array.from(v), w.shape, 'float32', backend);
    noGrad(() => w.copy_(bad));
    bad.dispose();
    const dir = mkdtempSync(join(tmpdir(), 'chatglm-bad16-'));
    try {
      await model.savePretrained(dir);
      await expect(ChatGLMForConditionalGeneration.fromPretrained(dir, { backend, modelOptions: { embeddingsDtype: 'float16' } })).rejects.toThrow(/lm_head\.weight: value 0\.1.* at \[5, 1\] is not exact in float16/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => new ChatGLMForConditionalGeneration(tiny(), { backend, embeddingsDtype: 'bfloat16' as never })).toThrow(/embeddingsDtype must be 'float32' or 'float16', got bfloat16/);
    model.dispose();
  });

  it('a table float16 cannot hold exactly is refused by name and position; the model is left as it was', async () => {
    const model = await halfModel(true);
    const w = model.lm_head.weight as Tensor;
    const v = (await w.data()) as Float32Array;
    v[16 * 3 + 2] = 0.1; // not a float16 value
    const bad = fromHost(Float32Array.from(v), w.shape, 'float32', backend);
    noGrad(() => w.copy_(bad));
    bad.dispose();
    await expect(model.holdEmbeddingsInFloat16()).rejects.toThrow(/lm_head.weight: value 0.1.* at \[3, 2\] is not exact in float16/);
    expect(model.lm_head).not.toBeInstanceOf(Float16Linear);
    expect(model.transformer.word_embeddings).not.toBeInstanceOf(Float16Embedding);
    model.dispose();
  });
});

describe.each(backends)('bad input on %s', (_name, backend) => {
  it('a checkpoint whose quantization_bit disagrees with its tensors is refused, naming the tensor, and nothing stays allocated', async () => {
    if (!haveInt4) return;
    const json = JSON.parse(readFileSync(join(int4Dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    for (const [bit, pattern] of [
      [8, /transformer\.layers\.0\.attention\.query_key_value\.weight is I8 \[192,32\] \(the int4 layout\), but quantization_bit 8 in config\.json needs I8 \[192,64\]/],
      [0, /quantization_bit 0/],
    ] as const) {
      const before = memory().tensors;
      const model = withoutInit(() => new ChatGLMForConditionalGeneration(ChatGLMConfig.fromJSON({ ...json, quantization_bit: bit } as never), { backend }));
      const ckpt = await openCheckpoint(join(int4Dir, 'pytorch_model.bin'));
      await expect(model.loadWeights(ckpt, { prefix: 'transformer' })).rejects.toThrow(pattern);
      await ckpt.close();
      model.dispose();
      expect(memory().tensors).toBe(before);
    }
  });

  it('rows without <bos> or a mask token, wrong mask dtypes and position shapes are refused by name', async () => {
    const model = new ChatGLMForConditionalGeneration(tiny(), { backend }).eval();
    const noBos = tensor([[5, 6, 31, 7]], { dtype: 'int32', backend });
    // cpu reads ids synchronously and checks them in forward; every backend checks them when decoding.
    if (backend.readSync) expect(() => model.forward({ inputIds: noBos })).toThrow(ChatGLMInputError);
    await expect(greedySearch(model, { inputIds: noBos, maxNewTokens: 1 })).rejects.toThrow(/input_ids row 0 has no <bos> \(id 32\)/);
    const ids = tensor([[5, 6, 31, 32]], { dtype: 'int32', backend });
    const intMask = tensor([[[[0, 0, 0, 1]]]], { dtype: 'int32', backend });
    const positions = tensor([[0, 1, 2, 2]], { dtype: 'int32', backend });
    expect(() => model.forward({ inputIds: ids, attentionMask: intMask, positionIds: positions })).toThrow(/position_ids must be int32 \[1, 2, 4\]/);
    const pos2d = tensor([[[0, 1, 2, 2], [0, 0, 0, 1]]], { dtype: 'int32', backend });
    expect(() => model.forward({ inputIds: ids, attentionMask: intMask, positionIds: pos2d })).toThrow(/attention_mask must be bool \(true = masked\)/);
    await expect(greedySearch(model, { inputIds: ids, maxNewTokens: 40 })).rejects.toThrow(/max_sequence_length 32/);
    [noBos, ids, intMask, positions, pos2d].forEach((t) => t.dispose());
    model.dispose();
  });
});

describe.skipIf(!haveInt4).each(backends)('fromPretrained of a published layout on %s', (_name, backend) => {
  it('an int4 checkpoint split into two pytorch_model-0000N-of-00002.bin shards with their index loads as the single file does; a missing shard is refused before anything is allocated', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chatglm-shards-'));
    try {
      copyFileSync(join(int4Dir, 'config.json'), join(dir, 'config.json'));
      const src = await openCheckpoint(join(int4Dir, 'pytorch_model.bin'));
      const names = src.tensors.map((t) => t.name);
      const shards: Record<string, TensorToWrite>[] = [{}, {}];
      const weightMap: Record<string, string> = {};
      for (const [i, name] of names.entries()) {
        const info = src.info(name);
        const shard = i < names.length / 2 ? 0 : 1;
        shards[shard][name] = { dtype: info.dtype, shape: info.shape, data: await src.readRaw(name) } as TensorToWrite;
        weightMap[name] = `pytorch_model-0000${shard + 1}-of-00002.bin`;
      }
      await src.close();
      for (const [i, tensors] of shards.entries()) await writeTorchCheckpoint(join(dir, `pytorch_model-0000${i + 1}-of-00002.bin`), tensors);
      writeFileSync(join(dir, 'pytorch_model.bin.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));

      const sharded = await ChatGLMForConditionalGeneration.fromPretrained(dir, { backend });
      expect(sharded.config.quantizationBit).toBe(4);
      const single = withoutInit(() => new ChatGLMForConditionalGeneration(sharded.config, { backend })).eval();
      const ckpt = await openCheckpoint(join(int4Dir, 'pytorch_model.bin'));
      await single.loadWeights(ckpt, { prefix: 'transformer' });
      await ckpt.close();
      const inputIds = tensor([[121, 96, 130, 14, 62, 128, 132, 129, 7]], { dtype: 'int32', backend });
      const a = sharded.forward({ inputIds, useCache: false }).logits;
      const b = single.forward({ inputIds, useCache: false }).logits;
      expect(Array.from(await a.data())).toEqual(Array.from(await b.data()));
      [inputIds, a, b].forEach((t) => t.dispose());
      [sharded, single].forEach((m) => m.dispose());

      unlinkSync(join(dir, 'pytorch_model-00002-of-00002.bin'));
      const before = memory().tensors;
      await expect(ChatGLMForConditionalGeneration.fromPretrained(dir, { backend })).rejects.toThrow(/shard file 'pytorch_model-00002-of-00002\.bin' named by the index is missing/);
      expect(memory().tensors).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('P-tuning v2 prefix checkpoints', () => {
  it('the prefix is saved on its own (as the ptuning scripts save it), loads back, and a different pre_seq_len is refused by name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chatglm-prefix-'));
    try {
      const trained = new ChatGLMForConditionalGeneration(tiny({ preSeqLen: 4, prefixProjection: true }));
      const entries: Record<string, TensorToWrite> = {};
      for (const [k, t] of trained.prefixStateDict()) entries[k] = { dtype: 'F32', shape: [...t.shape], data: (await t.data()) as Float32Array } as TensorToWrite;
      expect(Object.keys(entries)).toEqual([
        'transformer.prefix_encoder.embedding.weight',
        'transformer.prefix_encoder.trans.0.weight',
        'transformer.prefix_encoder.trans.0.bias',
        'transformer.prefix_encoder.trans.2.weight',
        'transformer.prefix_encoder.trans.2.bias',
      ]);
      const file = join(dir, 'pytorch_model.bin');
      await writeTorchCheckpoint(file, entries);

      const fresh = new ChatGLMForConditionalGeneration(tiny({ preSeqLen: 4, prefixProjection: true }));
      const ckpt = await openCheckpoint(file);
      await fresh.loadPrefix(ckpt);
      for (const [k, t] of fresh.prefixStateDict()) expect(Array.from(await t.data()), k).toEqual(Array.from(entries[k].data as Float32Array));

      const longer = new ChatGLMForConditionalGeneration(tiny({ preSeqLen: 5, prefixProjection: true }));
      await expect(longer.loadPrefix(ckpt)).rejects.toThrow(/transformer\.prefix_encoder\.embedding\.weight is \[4,16\] in the checkpoint, the model's is \[5,16\]: the prefix was trained with pre_seq_len 4, config.json has 5/);
      const plain = new ChatGLMForConditionalGeneration(tiny({ preSeqLen: 4, prefixProjection: false }));
      await expect(plain.loadPrefix(ckpt)).rejects.toThrow(/embedding\.weight is \[4,16\] in the checkpoint, the model's is \[4,64\]/);
      await ckpt.close();
      [trained, fresh, longer, plain].forEach((m) => m.dispose());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
