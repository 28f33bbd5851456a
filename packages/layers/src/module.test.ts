import { afterAll, describe, expect, it } from 'vitest';
import { manualSeed, memory, scope, tensor, type Backend, type Tensor } from '@lm/tensor-gpu';
import { testCpuBackend, testWebGPUBackend, compareArrays } from '@lm/tensor-gpu/testing';
import { Module, ModuleList, StateDictError } from './module.js';
import { weightPathProblems } from './testing/weight-paths.js';
import { Dropout, Embedding, LayerNorm, Linear, RMSNorm } from './nn/index.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

class Block extends Module {
  declare dense: Linear;
  declare LayerNorm: LayerNorm;
  constructor(backend: Backend) {
    super();
    this.registerModule('dense', new Linear(4, 4, { backend }));
    this.registerModule('LayerNorm', new LayerNorm(4, { eps: 1e-12, backend }));
  }
  forward(x: Tensor): Tensor {
    return this.LayerNorm.forward(this.dense.forward(x, 'gelu'));
  }
}

class Tiny extends Module {
  declare word_embeddings: Embedding;
  declare layer: ModuleList<Block>;
  declare decoder: Linear;
  declare position_ids: Tensor;
  constructor(backend: Backend) {
    super();
    this.registerModule('word_embeddings', new Embedding(10, 4, { paddingIdx: 0, backend }));
    this.registerModule('layer', new ModuleList([new Block(backend), new Block(backend)]));
    this.registerModule('decoder', new Linear(4, 10, { backend }));
    this.registerBuffer('position_ids', tensor([[0, 1, 2]], { backend, dtype: 'int32' }));
    this.decoder.setParameter('weight', this.word_embeddings.weight); // tied (its own weight is freed)
  }
}

const TIED = [['decoder.weight', 'word_embeddings.weight']];

describe('Module', () => {
  const backend = testCpuBackend();

  it('names parameters by registration path, listing tied tensors once', () => {
    const m = new Tiny(backend);
    const names = [...m.namedParameters()].map(([n]) => n);
    expect(names).toEqual([
      'word_embeddings.weight',
      'layer.0.dense.weight',
      'layer.0.dense.bias',
      'layer.0.LayerNorm.weight',
      'layer.0.LayerNorm.bias',
      'layer.1.dense.weight',
      'layer.1.dense.bias',
      'layer.1.LayerNorm.weight',
      'layer.1.LayerNorm.bias',
      'decoder.bias',
    ]);
    expect([...m.stateDict().keys()]).toContain('decoder.weight');
    expect(m.stateDict().get('decoder.weight')).toBe(m.stateDict().get('word_embeddings.weight'));
    expect(m.getSubmodule('layer.1.dense')).toBe(m.layer.at(1).dense);
    expect(m.layer[1]).toBe(m.layer.at(1));
    expect(m.layer.items).toEqual([m.layer[0], m.layer[1]]);
    m.dispose();
  });

  it('loadStateDict copies in place, keeps ties, and reports every problem by name', async () => {
    manualSeed(1);
    const a = new Tiny(backend);
    manualSeed(2);
    const b = new Tiny(backend);
    b.loadStateDict(a.stateDict());
    for (const [name, t] of a.stateDict()) expect(Array.from(await b.stateDict().get(name)!.data()), name).toEqual(Array.from(await t.data()));
    expect(b.decoder.weight).toBe(b.word_embeddings.weight);

    const sd = new Map(a.stateDict());
    sd.delete('decoder.bias');
    sd.set('extra.weight', tensor([1], { backend }));
    sd.set('layer.0.dense.weight', tensor([[1, 2]], { backend }));
    try {
      b.loadStateDict(sd);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(StateDictError);
      const err = e as StateDictError;
      expect(err.missingKeys).toEqual(['decoder.bias']);
      expect(err.unexpectedKeys).toEqual(['extra.weight']);
      expect(err.message).toMatch(/size mismatch for layer\.0\.dense\.weight: checkpoint \[1,2\], model \[4,4\]/);
    }
    const r = b.loadStateDict(sd, { strict: false });
    expect(r.missingKeys).toEqual(['decoder.bias']);
    a.dispose();
    b.dispose();
  });

  it('train()/eval() reach every submodule; dropout is the identity in eval', async () => {
    const m = new Tiny(backend);
    m.eval();
    expect([...m.namedModules()].every(([, x]) => !x.training)).toBe(true);
    const d = new Dropout(0.5).eval();
    const x = tensor([1, 2, 3], { backend });
    expect(Array.from(await d.forward(x).data())).toEqual([1, 2, 3]);
    m.dispose();
  });

  it('dispose frees everything; a training step leaves no tensors behind', () => {
    const before = memory().tensors;
    const m = new Tiny(backend);
    const ids = tensor([[1, 2, 0]], { backend, dtype: 'int32' });
    for (let i = 0; i < 3; i++) {
      scope(() => {
        let h = m.word_embeddings.forward(ids);
        for (const block of m.layer) h = block.forward(h);
        m.decoder.forward(h).square().mean().backward();
      });
    }
    ids.dispose();
    m.dispose();
    expect(memory().tensors).toBe(before);
  });

  it('to() moves parameters to another backend and keeps ties', async () => {
    if (!webgpu) return;
    const m = new Tiny(backend);
    const ref = Array.from(await m.word_embeddings.weight.data());
    await m.to(webgpu);
    expect(m.word_embeddings.weight.backend).toBe(webgpu);
    expect(weightPathProblems(m, { tied: TIED })).toEqual([]);
    expect(Array.from(await m.word_embeddings.weight.data())).toEqual(ref);
    m.dispose();
  });
});

describe('the registry is the only holder of weights', () => {
  const backend = testCpuBackend();

  it('accessors read and replace the registry (torch: module.weight = Parameter, module.dense = Linear)', () => {
    const m = new Tiny(backend);
    const block = m.layer[0];
    const w = tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], { backend });
    block.dense.weight = w;
    expect(block.dense.getParameter('weight')).toBe(w);
    expect(m.stateDict().get('layer.0.dense.weight')).toBe(w);
    expect(w.requiresGrad && w.isLeaf).toBe(true);
    const dense = new Linear(4, 4, { backend });
    const old = block.dense;
    block.dense = dense;
    expect(m.getSubmodule('layer.0.dense')).toBe(dense);
    expect(m.stateDict().get('layer.0.dense.weight')).toBe(dense.weight);
    expect(weightPathProblems(m, { tied: TIED })).toEqual([]);
    expect(() => ((block as unknown as { dense: unknown }).dense = w)).toThrow(/Block: submodule 'dense' must be a Module or null, got Tensor/);
    expect(() => ((dense as unknown as { weight: unknown }).weight = dense)).toThrow(/Linear: parameter 'weight' must be a Tensor or null, got Linear/);
    old.dispose();
    m.dispose();
  });

  it('refuses names that would shadow a member, a field, or another kind of entry', () => {
    const register = (m: Module, kind: 'registerModule' | 'registerParameter' | 'registerBuffer', name: string, value: unknown) =>
      (m as unknown as Record<string, (n: string, v: unknown) => unknown>)[kind](name, value);
    const m = new Module();
    expect(() => register(m, 'registerModule', 'apply', new Module())).toThrow(/cannot register submodule 'apply': it would shadow a method or accessor of the class/);
    expect(() => register(m, 'registerParameter', 'training', null)).toThrow(/cannot register parameter 'training': it would shadow a field \(declare registered fields with `declare`\)/);
    expect(() => register(m, 'registerBuffer', 'constructor', null)).toThrow(/would shadow a method/);
    register(m, 'registerModule', 'dense', new Module());
    expect(() => register(m, 'registerParameter', 'dense', null)).toThrow(/cannot register parameter 'dense': it is already a submodule/);
    // A subclass field initialiser on a registered name cannot silently replace the accessor.
    class Shadowing extends Linear {
      constructor() {
        super(2, 2, { backend });
        Object.defineProperty(this, 'weight', { value: null });
      }
    }
    expect(() => new Shadowing()).toThrow(TypeError);
  });

  it('every path sees the same tensor after loadStateDict, cast, to() and re-tying; weightPathProblems can fail', () => {
    manualSeed(3);
    const a = new Tiny(backend);
    const b = new Tiny(backend);
    b.loadStateDict(a.stateDict());
    expect(weightPathProblems(b, { tied: TIED })).toEqual([]);
    b.cast('float16');
    expect(b.word_embeddings.weight.dtype).toBe('float16');
    expect(b.position_ids.dtype).toBe('int32');
    expect(weightPathProblems(b, { tied: TIED })).toEqual([]);
    b.cast('float32');
    expect(weightPathProblems(b, { tied: TIED })).toEqual([]);
    // A stale copy is what the check exists to catch.
    const decoder = b.decoder;
    const stale = decoder.weight;
    const own = decoder.getParameter.bind(decoder);
    decoder.getParameter = (name: string) => (name === 'weight' ? stale.detach() : own(name));
    expect(weightPathProblems(b)).toEqual([expect.stringMatching(/^decoder\.weight: getSubmodule\('decoder'\)\.getParameter\('weight'\) gives another tensor \[10,4\]/)]);
    decoder.weight = b.word_embeddings.weight.detach();
    expect(weightPathProblems(b, { tied: TIED })).toContain('tied decoder.weight = word_embeddings.weight: not one tensor');
    a.dispose();
    b.dispose();
  });
});

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('layers on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    it('Linear matches x W^T + b with gradients', async () => {
      const lin = new Linear(3, 2, { backend });
      lin.loadStateDict({ weight: tensor([[1, 2, 3], [4, 5, 6]], { backend }), bias: tensor([0.5, -1], { backend }) });
      const x = tensor([[1, 0, -1], [2, 1, 0]], { backend });
      const y = lin.forward(x);
      expect(await y.toArray()).toEqual([[-1.5, -3], [4.5, 12]]);
      y.sum().backward();
      expect(await lin.weight.grad!.toArray()).toEqual([[3, 1, -1], [3, 1, -1]]);
      expect(await lin.bias!.grad!.toArray()).toEqual([2, 2]);
      const fused = lin.forward(x, 'relu');
      expect(await fused.toArray()).toEqual([[0, 0], [4.5, 12]]);
      lin.dispose();
    });

    it('Embedding skips the padding row in backward', async () => {
      const emb = new Embedding(4, 2, { paddingIdx: 0, backend });
      expect(await emb.weight.narrow(0, 0, 1).toArray()).toEqual([[0, 0]]);
      emb.forward(tensor([0, 2, 2], { backend, dtype: 'int32' })).sum().backward();
      expect(await emb.weight.grad!.toArray()).toEqual([[0, 0], [0, 0], [2, 2], [0, 0]]);
      emb.dispose();
    });

    it('LayerNorm and RMSNorm', async () => {
      const ln = new LayerNorm(4, { eps: 0, backend });
      const y = await ln.forward(tensor([[1, 2, 3, 4]], { backend })).data();
      const r = compareArrays(y, [-1.3416407, -0.4472136, 0.4472136, 1.3416407], 1e-5, 1e-5);
      expect(r.ok).toBe(true);
      const rms = new RMSNorm(2, { eps: 0, backend });
      const z = await rms.forward(tensor([[3, 4]], { backend })).data();
      expect(compareArrays(z, [3 / Math.sqrt(12.5), 4 / Math.sqrt(12.5)], 1e-6, 1e-6).ok).toBe(true);
      ln.dispose();
      rms.dispose();
    });
  });
});
