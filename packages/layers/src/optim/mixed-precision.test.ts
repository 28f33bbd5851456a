import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, memory, noGrad, roundToFloat16, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { seededRandom, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { getActivation } from '../activations.js';
import { Module } from '../module.js';
import { Linear } from '../nn/index.js';
import { AdamW } from './adam.js';
import { DynamicLossScaler, Float16MainParams } from './mixed-precision.js';
import { OptimizerError } from './optimizer.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

describe('DynamicLossScaler', () => {
  it('halves on overflow, grows after growthInterval clean steps, never drops below minScale', () => {
    const s = new DynamicLossScaler({ initScale: 8, growthInterval: 3, minScale: 2 });
    const seen: number[] = [];
    for (const overflow of [false, false, true, false, false, false, false, true, true, true]) {
      s.update(overflow);
      seen.push(s.scale);
    }
    // 8 8 | overflow -> 4 | 4 4 then growth at the 3rd clean step -> 8 | 8 | 4 2 2 (min)
    expect(seen).toEqual([8, 8, 4, 4, 4, 8, 8, 4, 2, 2]);
    expect(s.growthTracker).toBe(0);
  });

  it('defaults to torch GradScaler (2^16, x2, x0.5, 2000) and round-trips its state', () => {
    const s = new DynamicLossScaler();
    expect([s.scale, s.growthFactor, s.backoffFactor, s.growthInterval]).toEqual([65536, 2, 0.5, 2000]);
    for (let i = 0; i < 1999; i++) s.update(false);
    expect(s.stateDict()).toEqual({ scale: 65536, growthTracker: 1999 });
    const t = new DynamicLossScaler();
    t.loadStateDict(s.stateDict());
    t.update(false);
    expect(t.stateDict()).toEqual({ scale: 131072, growthTracker: 0 });
  });

  it('refuses bad options and bad state, naming them', () => {
    expect(() => new DynamicLossScaler({ initScale: 0, backoffFactor: 1 })).toThrow(/initScale must be a finite number > 0, got 0; backoffFactor must be in \(0, 1\), got 1/);
    expect(() => new DynamicLossScaler().loadStateDict({ scale: -1, growthTracker: 0 })).toThrow(OptimizerError);
  });
});

const gelu = getActivation('gelu');

/** y = W2 gelu(W1 x + b1) + b2, tied nothing; small enough to check by hand. */
class TinyMlp extends Module {
  declare readonly fc1: Linear;
  declare readonly fc2: Linear;
  constructor(backend: Backend) {
    super();
    this.registerModule('fc1', new Linear(4, 8, { backend }));
    this.registerModule('fc2', new Linear(8, 2, { backend }));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(gelu(this.fc1.forward(x)));
  }
}

function batch(backend: Backend, seed: number): { x: Tensor; y: Tensor } {
  const rnd = seededRandom(seed);
  const x = Float32Array.from({ length: 16 * 4 }, () => rnd() * 2 - 1);
  // A target the MLP can fit: y = [x0 - x1, x2 * 0.5 + x3].
  const y = new Float32Array(16 * 2);
  for (let i = 0; i < 16; i++) {
    y[2 * i] = x[4 * i] - x[4 * i + 1];
    y[2 * i + 1] = 0.5 * x[4 * i + 2] + x[4 * i + 3];
  }
  return { x: fromHost(x, [16, 4], 'float32', backend), y: fromHost(y, [16, 2], 'float32', backend) };
}

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('Float16MainParams on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    if (backend && !backend.supportsFloat16) {
      it('refuses float16 with an error naming the missing shader-f16 feature', () => {
        const m = new TinyMlp(backend);
        expect(() => m.cast('float16')).toThrow(/float16 storage needs the 'shader-f16' feature/);
        m.dispose();
      });
      return;
    }

    it('unscales float16 gradients into float32 main grads that match a float32 model', async () => {
      const before = memory().tensors;
      const ref = new TinyMlp(backend);
      const main = new Float16MainParams(ref.parameters());
      const half = new TinyMlp(backend);
      half.loadStateDict(ref.stateDict());
      half.cast('float16');
      main.bindModel(half.parameters());
      expect([...half.parameters()].every((p) => p.dtype === 'float16')).toBe(true);

      const { x, y } = batch(backend, 1);
      const scale = 1024;
      scope(() => {
        const loss = ref.forward(x).sub(y).square().mean();
        loss.backward();
        const lossHalf = half.forward(x.cast('float16')).cast('float32').sub(y).square().mean();
        lossHalf.mulScalar(scale).backward();
      });
      expect([...half.parameters()].every((p) => p.grad?.dtype === 'float16')).toBe(true);
      const foundInf = main.unscaleGrads(scale);
      expect(await foundInf.item()).toBe(0);
      foundInf.dispose();
      expect([...half.parameters()].every((p) => p.grad === null)).toBe(true);
      for (const [i, p] of [...ref.parameters()].entries()) {
        const want = await p.grad!.data();
        const got = await main.params[i].grad!.data();
        expect(main.params[i].grad!.dtype).toBe('float32');
        // float16 forward and backward: agreement to a few float16 ulps of the largest gradient.
        const tol = 1e-2 * Math.max(...Array.from(want, Math.abs));
        for (let k = 0; k < want.length; k++) expect(Math.abs(got[k] - want[k])).toBeLessThan(tol);
      }
      ref.dispose();
      half.dispose();
      main.dispose();
      x.dispose();
      y.dispose();
      expect(memory().tensors).toBe(before);
    });

    it('reports overflow (a step to skip) when the scaled gradients leave float16 range', async () => {
      const model = new TinyMlp(backend);
      const main = new Float16MainParams(model.parameters());
      model.cast('float16');
      main.bindModel(model.parameters());
      const { x, y } = batch(backend, 2);
      scope(() => model.forward(x.cast('float16')).cast('float32').sub(y).square().mean().mulScalar(1e9).backward());
      const foundInf = main.unscaleGrads(1e9);
      expect(await foundInf.item()).toBe(1);
      foundInf.dispose();
      model.dispose();
      main.dispose();
      x.dispose();
      y.dispose();
    });

    it('copyToModel rounds the main weights to float16', async () => {
      const model = new TinyMlp(backend);
      const main = new Float16MainParams(model.parameters());
      model.cast('float16');
      main.bindModel(model.parameters());
      noGrad(() => main.params[0].copy_(fromHost(new Float32Array(32).fill(0.1 + 1e-5), [8, 4], 'float32', backend)));
      main.copyToModel();
      const got = await model.fc1.weight.data();
      expect(Array.from(got)).toEqual(new Array(32).fill(roundToFloat16(0.1 + 1e-5)));
      model.dispose();
      main.dispose();
    });

    it('trains with AdamW + dynamic loss scaling as well as in float32', async () => {
      const run = async (float16: boolean): Promise<{ loss: number; skipped: number[] }> => {
        const model = new TinyMlp(backend);
        noGrad(() => {
          for (const [i, p] of [...model.parameters()].entries()) {
            const rnd = seededRandom(100 + i);
            p.copy_(fromHost(Float32Array.from({ length: p.size }, () => (rnd() - 0.5) * 0.8), p.shape, 'float32', backend));
          }
        });
        const main = float16 ? new Float16MainParams(model.parameters()) : null;
        if (main) main.bindModel(model.cast('float16').parameters());
        const optimizer = new AdamW(main ? main.params : [...model.parameters()], { lr: 1e-2, weightDecay: 0 });
        // A scale that overflows at first: the scaler must back off and then train normally.
        const scaler = new DynamicLossScaler({ initScale: 2 ** 24, growthInterval: 20 });
        let loss = 0;
        const skipped: number[] = [];
        for (let step = 0; step < 150; step++) {
          const { x, y } = batch(backend, step % 4);
          const l = scope(() => {
            const out = main ? model.forward(x.cast('float16')).cast('float32') : model.forward(x);
            const value = out.sub(y).square().mean();
            (main ? value.mulScalar(scaler.scale) : value).backward();
            return value.detach();
          });
          loss = await l.item();
          l.dispose();
          if (main) {
            const foundInf = main.unscaleGrads(scaler.scale);
            const overflow = (await foundInf.item()) === 1;
            foundInf.dispose();
            if (!overflow) {
              scope(() => optimizer.step());
              main.copyToModel();
            } else skipped.push(step);
            scaler.update(overflow);
          } else scope(() => optimizer.step());
          optimizer.zeroGrad();
          x.dispose();
          y.dispose();
        }
        optimizer.dispose();
        main?.dispose();
        model.dispose();
        return { loss, skipped };
      };
      const f32 = await run(false);
      const f16 = await run(true);
      expect(f32.loss).toBeLessThan(0.01);
      expect(f32.skipped).toEqual([]);
      // 2^24 overflows: the scaler halves on each of the first steps until the gradients fit...
      let backoff = 0;
      while (f16.skipped[backoff] === backoff) backoff++;
      expect(backoff).toBeGreaterThan(0);
      // ...then a skip can only follow a growth, so later skips are at least growthInterval apart.
      const later = f16.skipped.slice(backoff);
      for (let i = 1; i < later.length; i++) expect(later[i] - later[i - 1]).toBeGreaterThanOrEqual(20);
      expect(f16.loss).toBeLessThan(0.02);
    });
  });
});

describe('Module.cast', () => {
  const backend = testCpuBackend();

  it('casts float parameters and buffers, keeps ties and integer buffers, frees the old tensors', () => {
    class Tied extends Module {
      declare readonly a: Linear;
      declare readonly b: Linear;
      declare readonly positions: Tensor;
      constructor() {
        super();
        this.registerModule('a', new Linear(3, 3, { backend }));
        this.registerModule('b', new Linear(3, 3, { backend }));
        this.b.setParameter('weight', this.a.weight);
        this.registerBuffer('positions', fromHost(new Int32Array([0, 1, 2]), [3], 'int32', backend));
      }
    }
    const before = memory().tensors;
    const m = new Tied();
    const live = memory().tensors;
    m.cast('float16');
    expect(memory().tensors).toBe(live);
    const sd = m.stateDict();
    expect(sd.get('a.weight')).toBe(sd.get('b.weight'));
    expect(sd.get('a.weight')!.dtype).toBe('float16');
    expect(sd.get('a.weight')!.requiresGrad).toBe(true);
    expect(sd.get('positions')!.dtype).toBe('int32');
    m.cast('float32');
    expect(m.a.weight).toBe(m.b.weight);
    expect(m.a.weight.dtype).toBe('float32');
    m.dispose();
    expect(memory().tensors).toBe(before);
  });
});
