import { mkdtemp, readdir, rm, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '@lm/dist-ckpt';
import { cpu, defaultGenerator, manualSeed, memory, noGrad, scope, tensor, zeros, type Tensor, type Backend } from '@lm/tensor-gpu';
import { Module } from './module.js';
import { Dropout, Embedding, Linear } from './nn/index.js';
import { PreTrainedModel, PretrainedLoadError } from './pretrained-model.js';
import { PretrainedConfig, type JsonObject } from './pretrained-config.js';
import { withoutInit } from './init.js';
import { checkpoint } from './checkpoint.js';
import { weightPathProblems } from './testing/weight-paths.js';

function findFixtures(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, 'shared', 'fixtures');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return null;
}
const fixtures = findFixtures();
if (!fixtures && process.env.CI) throw new Error('shared/fixtures not found');

// ---- a tiny model whose names match the io fixture's state dict ---------------------------------
class WeightOnly extends Module {
  declare weight: Tensor;
  constructor(shape: number[], backend: Backend) {
    super();
    this.registerParameter('weight', zeros(shape, { backend }));
  }
}

/** A container registering children under any name (the nested paths of the io fixture). */
class Container extends Module {
  add<M extends Module>(name: string, child: M): M {
    (this as Container & Record<string, unknown>).registerModule(name, child);
    return child;
  }
}

class TinyConfig extends PretrainedConfig {
  vocabSize: number;
  hiddenSize: number;
  initializerRange = 0.02;
  constructor(init: { vocabSize?: number; hiddenSize?: number; tieWordEmbeddings?: boolean } = {}) {
    super({ tieWordEmbeddings: init.tieWordEmbeddings ?? true });
    this.vocabSize = init.vocabSize ?? 11;
    this.hiddenSize = init.hiddenSize ?? 8;
  }
  static fromJSON(json: JsonObject): TinyConfig {
    return new TinyConfig({ vocabSize: json.vocab_size as number, hiddenSize: json.hidden_size as number, tieWordEmbeddings: json.tie_word_embeddings as boolean });
  }
  toJSON(): JsonObject {
    return { model_type: 'tiny', vocab_size: this.vocabSize, hidden_size: this.hiddenSize, tie_word_embeddings: this.tieWordEmbeddings };
  }
}

class Embeddings extends Module {
  declare word_embeddings: Embedding;
  constructor(c: TinyConfig, backend: Backend) {
    super();
    this.registerModule('word_embeddings', new Embedding(c.vocabSize, c.hiddenSize, { backend }));
  }
}

class TinyModel extends PreTrainedModel<TinyConfig> {
  declare embeddings: Embeddings;
  declare encoder: Container;
  declare pooler: Container;
  declare position_ids: Tensor;
  declare scalar: Tensor;
  declare slice: WeightOnly;
  declare transposed: WeightOnly;
  declare decoder: Linear;
  constructor(config: TinyConfig, options: { backend?: Backend } = {}) {
    super(config);
    const backend = options.backend ?? cpu();
    const H = config.hiddenSize;
    this.registerModule('embeddings', new Embeddings(config, backend));
    // encoder.layer.0.attention.self.query / encoder.layer.0.output.LayerNorm
    const l0 = this.registerModule('encoder', new Container()).add('layer', new Container()).add('0', new Container());
    l0.add('attention', new Container()).add('self', new Container()).add('query', new Linear(H, H, { backend }));
    l0.add('output', new Container()).add('LayerNorm', new WeightOnly([H], backend));
    this.registerModule('pooler', new Container()).add('dense', new Linear(H, H, { bias: false, backend }));
    this.registerBuffer('position_ids', zeros([1, 16], { backend, dtype: 'int32' }));
    this.registerParameter('scalar', zeros([], { backend }));
    this.registerModule('slice', new WeightOnly([2, 6], backend));
    this.registerModule('transposed', new WeightOnly([6, 4], backend));
    this.registerModule('decoder', new Linear(H, config.vocabSize, { bias: false, backend }));
    this.tiedWeightsKeys = ['decoder.weight'];
  }
  static configFromJSON(json: JsonObject): TinyConfig {
    return TinyConfig.fromJSON(json);
  }
  getInputEmbeddings(): Embedding {
    return this.embeddings.word_embeddings;
  }
  setInputEmbeddings(e: Embedding): void {
    this.embeddings.word_embeddings = e;
  }
  override getOutputEmbeddings(): Linear {
    return this.decoder;
  }
  override setOutputEmbeddings(linear: Linear): void {
    this.decoder = linear;
  }
}

const TIED = [['decoder.weight', 'embeddings.word_embeddings.weight']];

async function values(m: Module): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [k, t] of m.stateDict()) out[k] = Array.from(await t.data());
  return out;
}

afterAll(() => cpu().destroy());

describe.skipIf(!fixtures)('loading the io fixtures into a model', () => {
  const io = join(fixtures ?? '', 'io');
  const load = async (file: string) => {
    const m = withoutInit(() => new TinyModel(new TinyConfig()));
    const ckpt = await openCheckpoint(join(io, file));
    await m.loadWeights(ckpt, { strict: true });
    await ckpt.close();
    return m;
  };

  it('safetensors, zip .bin, legacy .bin, OrderedDict .bin and sharded files give identical parameters', async () => {
    const reference = await values(await load('expected.safetensors'));
    for (const file of ['model.safetensors', 'pytorch_model.bin', 'pytorch_model.legacy.bin', 'pytorch_model.ordereddict.bin', 'sharded-bin', 'sharded-safetensors']) {
      const got = await values(await load(file));
      expect(got, file).toEqual(reference);
    }
    const f16 = await values(await load('model.f16.safetensors'));
    for (const [k, v] of Object.entries(reference)) v.forEach((x, i) => expect(Math.abs(f16[k][i] - x), k).toBeLessThanOrEqual(Math.abs(x) * 1e-3 + 1e-4));
  });

  it('a weight with the wrong shape is refused by name', async () => {
    const m = withoutInit(() => new TinyModel(new TinyConfig({ hiddenSize: 8, vocabSize: 12 })));
    const ckpt = await openCheckpoint(join(io, 'model.safetensors'));
    await expect(m.loadWeights(ckpt)).rejects.toThrow(/embeddings\.word_embeddings\.weight: checkpoint \[11,8\], model \[12,8\]/);
    await ckpt.close();
  });

  it('hostile files are refused', async () => {
    await expect(load('bad/evil-system.bin')).rejects.toThrow(/refused pickle global/);
  });
});

describe('savePretrained / fromPretrained', () => {
  it('round-trips config and weights, sharded, with tied weights written once', async () => {
    manualSeed(3);
    const model = new TinyModel(new TinyConfig());
    model.tieWeights();
    expect(model.decoder.weight).toBe(model.embeddings.word_embeddings.weight);
    const dir = await mkdtemp(join(tmpdir(), 'lm-pretrained-'));
    try {
      await model.savePretrained(dir, { maxShardSize: 300 });
      const files = (await readdir(dir)).sort();
      expect(files).toContain('config.json');
      expect(files).toContain('model.safetensors.index.json');
      expect(files.filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(1);
      const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
      expect(Object.keys(index.weight_map)).not.toContain('decoder.weight');
      const loaded = await TinyModel.fromPretrained(dir);
      expect(loaded.training).toBe(false);
      expect(loaded.decoder.weight).toBe(loaded.embeddings.word_embeddings.weight);
      expect(await values(loaded)).toEqual(await values(model));
      loaded.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    model.dispose();
  });

  it('loads from a URL: file: in Node, and http(s) through fetch (index, shards, config)', async () => {
    const { pathToFileURL } = await import('node:url');
    const { createServer } = await import('node:http');
    manualSeed(4);
    const model = new TinyModel(new TinyConfig());
    model.tieWeights();
    const dir = await mkdtemp(join(tmpdir(), 'lm-pretrained-'));
    const server = createServer(async (req, res) => {
      try {
        const body = await readFile(join(dir, decodeURIComponent(req.url!.split('/').pop()!)));
        res.writeHead(200).end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    try {
      await model.savePretrained(dir, { maxShardSize: 300 });
      const fromFileUrl = await TinyModel.fromPretrained(pathToFileURL(dir));
      expect(await values(fromFileUrl)).toEqual(await values(model));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      const fromHttp = await TinyModel.fromPretrained(new URL(`http://127.0.0.1:${port}/tiny`));
      expect(await values(fromHttp)).toEqual(await values(model));
      fromFileUrl.dispose();
      fromHttp.dispose();
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
    model.dispose();
  });

  it('loads from a list of files holding more than weights (vocab.txt, tokenizer files)', async () => {
    const { readFile: read } = await import('node:fs/promises');
    manualSeed(6);
    const model = new TinyModel(new TinyConfig());
    model.tieWeights();
    const dir = await mkdtemp(join(tmpdir(), 'lm-pretrained-'));
    try {
      await model.savePretrained(dir);
      const files = await Promise.all(
        ['config.json', 'model.safetensors'].map(async (name) => Object.assign(new Blob([await read(join(dir, name))]), { name })),
      );
      files.push(Object.assign(new Blob(['[PAD]\n[UNK]\n']), { name: 'vocab.txt' }), Object.assign(new Blob(['{}']), { name: 'tokenizer_config.json' }));
      const loaded = await TinyModel.fromPretrained(files);
      expect(await values(loaded)).toEqual(await values(model));
      loaded.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    model.dispose();
  });

  it('a missing config.json or weight is a clear error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lm-pretrained-'));
    try {
      await expect(TinyModel.fromPretrained(dir)).rejects.toThrow(PretrainedLoadError);
      await expect(TinyModel.fromPretrained(dir)).rejects.toThrow(/no config\.json/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('PreTrainedModel utilities', () => {
  it('counts parameters and bytes, and estimates FLOPs', () => {
    const m = new TinyModel(new TinyConfig());
    m.tieWeights();
    const all = 11 * 8 + (64 + 8) + 8 + 64 + 1 + 12 + 24;
    expect(m.numParameters()).toBe(all);
    expect(m.numParameters({ excludeEmbeddings: true })).toBe(all - 88);
    expect(m.getMemoryFootprint()).toBe(all * 4 + 16 * 4);
    expect(m.getMemoryFootprint({ returnBuffers: false })).toBe(all * 4);
    const ids = zeros([2, 5], { dtype: 'int32' });
    expect(m.floatingPointOps({ inputIds: ids })).toBe(6 * 10 * (all - 88));
    ids.dispose();
    m.dispose();
  });

  it('resizes token embeddings, keeping old rows and the tie', async () => {
    manualSeed(5);
    const m = new TinyModel(new TinyConfig());
    m.tieWeights();
    const before = Array.from(await m.embeddings.word_embeddings.weight.data());
    const emb = m.resizeTokenEmbeddings(13, { padToMultipleOf: 8 });
    expect(emb.numEmbeddings).toBe(16);
    expect(m.config.vocabSize).toBe(16);
    expect(m.decoder.weight).toBe(emb.weight);
    const after = Array.from(await emb.weight.data());
    expect(after.slice(0, before.length)).toEqual(before);
    m.dispose();
  });

  it('every path sees the same tensor after loading, casting, resizing and tying', async () => {
    manualSeed(7);
    const source = new TinyModel(new TinyConfig());
    source.tieWeights();
    const dir = await mkdtemp(join(tmpdir(), 'lm-pretrained-'));
    try {
      await source.savePretrained(dir);
      const m = await TinyModel.fromPretrained(dir);
      expect(weightPathProblems(m, { tied: TIED })).toEqual([]);
      m.cast('float16');
      expect(m.dtype).toBe('float16');
      expect(weightPathProblems(m, { tied: TIED })).toEqual([]);
      m.cast('float32');
      const emb = m.resizeTokenEmbeddings(20);
      expect(m.embeddings.word_embeddings).toBe(emb);
      expect(m.decoder.outFeatures).toBe(20);
      expect(weightPathProblems(m, { tied: TIED })).toEqual([]);
      // Untie, then tie again: the output projection takes the embedding tensor itself.
      m.decoder.weight = zeros([20, 8]);
      expect(weightPathProblems(m, { tied: TIED })).toEqual(['tied decoder.weight = embeddings.word_embeddings.weight: not one tensor']);
      m.tieWeights();
      expect(weightPathProblems(m, { tied: TIED })).toEqual([]);
      expect(m.stateDict().get('decoder.weight')).toBe(emb.weight);
      m.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    source.dispose();
  });

  it('gradient checkpointing with dropout replays the masks and leaves the generator where a plain run does', async () => {
    const backend = cpu();
    const lin = new Linear(6, 6, { backend });
    const drop = new Dropout(0.5);
    const block = (x: Tensor) => drop.forward(lin.forward(x, 'gelu'));
    const x = tensor([[0.3, -0.7, 1.1, 0.2, -0.4, 0.9], [0.5, 0.1, -1.2, 0.8, 0.6, -0.3]], { backend, requiresGrad: true });
    const run = async (wrap: (x: Tensor) => Tensor, seed: number) => {
      lin.zeroGrad();
      x.zeroGrad();
      manualSeed(seed);
      scope(() => wrap(x).sum().backward());
      const grads = [await lin.weight.grad!.data(), await lin.bias!.grad!.data(), await x.grad!.data()].map((a) => Array.from(a));
      return { grads, generator: defaultGenerator.getState() };
    };
    const plain = await run(block, 5);
    expect((await run(block, 6)).grads).not.toEqual(plain.grads); // the masks matter
    const checkpointed = await run((h) => checkpoint(block, h), 5);
    expect(checkpointed.grads).toEqual(plain.grads);
    expect(checkpointed.generator).toEqual(plain.generator);
    lin.dispose();
  });

  it('gradient checkpointing gives the same gradients and frees activations', async () => {
    const backend = cpu();
    const lin1 = new Linear(4, 4, { backend });
    const lin2 = new Linear(4, 4, { backend });
    const block = (x: Tensor) => lin2.forward(lin1.forward(x, 'gelu'), 'tanh');
    const x = tensor([[0.1, -0.2, 0.3, 0.5]], { backend, requiresGrad: true });
    scope(() => block(x).sum().backward());
    const plain = [await lin1.weight.grad!.data(), await lin2.bias!.grad!.data(), await x.grad!.data()].map((a) => Array.from(a));
    const withPlainGrads = memory().tensors;
    lin1.zeroGrad();
    lin2.zeroGrad();
    x.zeroGrad();
    scope(() => checkpoint(block, x).sum().backward());
    const ckpt = [await lin1.weight.grad!.data(), await lin2.bias!.grad!.data(), await x.grad!.data()].map((a) => Array.from(a));
    expect(ckpt).toEqual(plain);
    // the same gradients exist afterwards and nothing else survived
    expect(memory().tensors).toBe(withPlainGrads);
    void noGrad;
  });
});
