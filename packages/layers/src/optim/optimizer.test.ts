import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, memory, scope, Tensor, type Backend } from '@lm/tensor-gpu';
import { testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { AdamW } from './adam.js';
import { clipGradNorm } from './clip-grad-norm.js';
import { LRScheduler, linearWarmupCosineDecay } from './lr-scheduler.js';
import { OptimizerError, type Optimizer, type OptimizerStateDict, type Hyperparams } from './optimizer.js';
import { SGD } from './sgd.js';
import { quadratic, quadraticParams, runQuadratic, snapshot, upload, type Stepper } from './testing.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());

const SHAPES = [[3, 4], [6], [2, 2, 2]];
const SCALES = [1, 0.4, 1.7, 0.2, 0.9];

type HostValue = number | { values: Float32Array; shape: number[] };
interface HostStateDict {
  state: Map<number, Record<string, HostValue>>;
  paramGroups: unknown;
}

/** What a checkpoint writer does: tensors to host arrays, hyperparameters through JSON. */
async function toHost(sd: OptimizerStateDict): Promise<HostStateDict> {
  const state = new Map<number, Record<string, HostValue>>();
  for (const [id, rec] of sd.state) {
    const out: Record<string, HostValue> = {};
    for (const [k, v] of Object.entries(rec)) {
      out[k] = v instanceof Tensor ? { values: Float32Array.from((await v.data()) as Float32Array), shape: [...v.shape] } : v;
    }
    state.set(id, out);
  }
  return { state, paramGroups: JSON.parse(JSON.stringify(sd.paramGroups)) };
}

function fromHostDict<H extends Hyperparams>(sd: HostStateDict, backend: Backend): OptimizerStateDict<H> {
  const state = new Map<number, Record<string, Tensor | number>>();
  for (const [id, rec] of sd.state) {
    state.set(id, Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, typeof v === 'number' ? v : fromHost(v.values, v.shape, 'float32', backend)])));
  }
  return { state, paramGroups: sd.paramGroups as OptimizerStateDict<H>['paramGroups'] };
}

function disposeDict(sd: OptimizerStateDict): void {
  for (const rec of sd.state.values()) for (const v of Object.values(rec)) if (v instanceof Tensor) v.dispose();
}

interface Setup {
  name: string;
  make: (params: Tensor[]) => { optimizer: Optimizer<Hyperparams>; scheduler?: LRScheduler };
}

const SETUPS: Setup[] = [
  {
    name: 'AdamW (amsgrad, two groups) with a cosine schedule',
    make: (ps) => {
      const optimizer = new AdamW([{ params: [ps[0], ps[1]], lr: 0.05 }, { params: [ps[2]], weightDecay: 0 }], { lr: 0.02, amsgrad: true, betas: [0.8, 0.7] });
      return { optimizer, scheduler: new LRScheduler(optimizer, linearWarmupCosineDecay(1, 6)) };
    },
  },
  { name: 'SGD with Nesterov momentum', make: (ps) => ({ optimizer: new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 }) }) },
];

function stepper(o: { optimizer: Optimizer<Hyperparams>; scheduler?: LRScheduler }): Stepper {
  return {
    step: () => {
      o.optimizer.step();
      o.scheduler?.step();
    },
    zeroGrad: () => o.optimizer.zeroGrad(),
  };
}

describe('Optimizer construction and bookkeeping', () => {
  const backend = testCpuBackend();
  const params = () => quadraticParams(quadratic(5, SHAPES), backend);

  it('fills group defaults and rejects bad parameter lists', () => {
    const ps = params();
    const opt = new AdamW([{ params: [ps[0]], lr: 0.5 }, { params: ps.slice(1) }], { weightDecay: 0.3 });
    expect(opt.paramGroups.map((g) => [g.lr, g.weightDecay, g.params.length])).toEqual([
      [0.5, 0.3, 1],
      [1e-3, 0.3, 2],
    ]);
    expect(() => new AdamW([])).toThrow(/AdamW: got an empty parameter list/);
    const single = new SGD([{ params: ps[0] }]);
    expect(single.paramGroups[0].params.length === 1 && single.paramGroups[0].params[0] === ps[0]).toBe(true);
    expect(() => new SGD([{ params: ps }, { params: [ps[1]] }])).toThrow(/some parameters appear more than once \(param group 1, entry 0\)/);
    const nonLeaf = ps[0].mulScalar(2);
    expect(() => new SGD([nonLeaf])).toThrow(/param group 0, entry 0 \[3,4\] is not a leaf tensor/);
    nonLeaf.dispose();
    ps.forEach((p) => p.dispose());
  });

  it('zeroGrad disposes gradients and sets them to null', () => {
    const ps = params();
    const opt = new SGD(ps);
    ps.forEach((p) => (p.grad = upload(new Array(p.size).fill(1), [...p.shape], backend)));
    const grads = ps.map((p) => p.grad!);
    const before = memory().tensors;
    opt.zeroGrad();
    expect(ps.every((p) => p.grad === null)).toBe(true);
    expect(grads.every((g) => g.disposed)).toBe(true);
    expect(memory().tensors).toBe(before - ps.length);
    ps.forEach((p) => p.dispose());
  });

  it('stateDict names params by index across groups and copies hyperparameters', async () => {
    const ps = params();
    const opt = new AdamW([{ params: [ps[2]] }, { params: [ps[0], ps[1]], lr: 0.1 }]);
    await runQuadratic(quadratic(5, SHAPES), ps, opt, [1], { skip: new Set([1]) });
    const sd = opt.stateDict();
    expect(sd.paramGroups.map((g) => g.params)).toEqual([[0], [1, 2]]);
    expect(sd.paramGroups[1]).toMatchObject({ lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false });
    // ps[1] (index 2) had no grad: no state, as in torch.
    expect([...sd.state.keys()]).toEqual([0, 1]);
    expect(Object.keys(sd.state.get(1)!).sort()).toEqual(['exp_avg', 'exp_avg_sq', 'step']);
    expect(sd.state.get(1)!.step).toBe(1);
    expect(sd.state.get(1)!.exp_avg).toBe(opt.state.get(ps[0])!.exp_avg); // live state, as in torch
    sd.paramGroups[1].betas[0] = 0.5;
    expect(opt.paramGroups[1].betas[0]).toBe(0.9);
    opt.dispose();
    ps.forEach((p) => p.dispose());
  });

  it('loadStateDict copies (the dict stays the caller’s) and loads its own dict', async () => {
    const q = quadratic(5, SHAPES);
    const ps = params();
    const a = new AdamW(ps, { lr: 0.1 });
    await runQuadratic(q, ps, a, [1, 0.5]);
    const b = new AdamW(params(), { lr: 0.3 });
    b.loadStateDict(a.stateDict());
    expect(b.paramGroups[0].lr).toBe(0.1);
    const bExpAvg = [...b.state.values()][0].exp_avg as Tensor;
    const saved = Array.from(await bExpAvg.data());
    await runQuadratic(q, ps, a, [2]);
    expect(Array.from(await bExpAvg.data())).toEqual(saved);
    const aBefore = await snapshot([a.state.get(ps[0])!.exp_avg as Tensor]);
    a.loadStateDict(a.stateDict());
    expect(await snapshot([a.state.get(ps[0])!.exp_avg as Tensor])).toEqual(aBefore);
    const live = memory().tensors;
    const nState = [...b.state.values()].reduce((n, s) => n + Object.values(s).filter((v) => v instanceof Tensor).length, 0);
    b.dispose();
    expect(memory().tensors).toBe(live - nState);
    a.dispose();
    ps.forEach((p) => p.dispose());
  });

  it('loadStateDict validates group counts, group sizes, shapes and keys, and changes nothing on error', async () => {
    const q = quadratic(5, SHAPES);
    const ps = params();
    const opt = new AdamW([{ params: [ps[0], ps[1]] }, { params: [ps[2]] }]);
    await runQuadratic(q, ps, opt, [1]);
    const sd = opt.stateDict();
    const stateBefore = new Map(opt.state);
    const groups = (gs: OptimizerStateDict['paramGroups']) => ({ ...sd, paramGroups: gs }) as typeof sd;
    expect(() => opt.loadStateDict(groups(sd.paramGroups.slice(0, 1)))).toThrow(/the state dict has 1 param groups, the optimizer has 2/);
    expect(() => opt.loadStateDict(groups([{ ...sd.paramGroups[0], params: [0] }, sd.paramGroups[1]]))).toThrow(
      /param group 0 has 1 params in the state dict, 2 in the optimizer/,
    );
    const wrong = upload(new Array(12).fill(0), [4, 3], testCpuBackend());
    const badShape = { ...sd, state: new Map(sd.state).set(0, { ...sd.state.get(0)!, exp_avg_sq: wrong }) };
    expect(() => opt.loadStateDict(badShape)).toThrow(OptimizerError);
    expect(() => opt.loadStateDict(badShape)).toThrow(/AdamW.loadStateDict: state of param 0 \('exp_avg_sq'\): expected shape \[3,4\] \(the param's\), got \[4,3\]/);
    const { exp_avg: _dropped, ...missing } = sd.state.get(1)!;
    expect(() => opt.loadStateDict({ ...sd, state: new Map(sd.state).set(1, missing) })).toThrow(/state of param 1 \[6\] lacks 'exp_avg'/);
    expect(() => opt.loadStateDict({ ...sd, state: new Map(sd.state).set(7, sd.state.get(0)!) })).toThrow(/state for param 7, which no param group lists/);
    const amsgrad = groups([{ ...sd.paramGroups[0], amsgrad: true }, sd.paramGroups[1]]);
    expect(() => opt.loadStateDict(amsgrad)).toThrow(/state of param 0 \[3,4\] lacks 'max_exp_avg_sq'/);
    expect(() => opt.loadStateDict(groups([{ ...sd.paramGroups[0], lr: -1 }, sd.paramGroups[1]]))).toThrow(/AdamW: loadStateDict: param group 0: lr must be a number >= 0, got -1/);
    expect(opt.state.size).toBe(stateBefore.size);
    for (const [p, st] of stateBefore) expect(opt.state.get(p)).toBe(st);
    expect([...opt.state.values()].every((s) => !(s.exp_avg as Tensor).disposed)).toBe(true);
    wrong.dispose();
    opt.dispose();
    ps.forEach((p) => p.dispose());
  });
});

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('Optimizer state and memory on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    const q = quadratic(11, SHAPES);

    for (const setup of SETUPS) {
      it(`${setup.name}: 3 steps, save, 2 more == load after 3 and run 2 (exact)`, async () => {
        const psA = quadraticParams(q, backend);
        const a = setup.make(psA);
        await runQuadratic(q, psA, stepper(a), SCALES.slice(0, 3));
        // The checkpoint: params and optimizer state on the host, scheduler state as plain numbers.
        const savedParams = await snapshot(psA);
        const savedOpt = await toHost(a.optimizer.stateDict());
        const savedSched = a.scheduler?.stateDict();
        const restA = await runQuadratic(q, psA, stepper(a), SCALES.slice(3));

        // Resume in a fresh optimizer; state tensors come from the cpu (uploaded when backend is webgpu).
        const psB = savedParams.map((v, i) => upload(v, SHAPES[i], backend).requiresGrad_());
        const b = setup.make(psB);
        const loaded = fromHostDict(savedOpt, testCpuBackend());
        b.optimizer.loadStateDict(loaded);
        disposeDict(loaded);
        if (savedSched) b.scheduler!.loadStateDict(savedSched);
        const restB = await runQuadratic(q, psB, stepper(b), SCALES.slice(3));
        expect(restB).toEqual(restA);

        // Without the state the run differs (the state matters).
        const psC = savedParams.map((v, i) => upload(v, SHAPES[i], backend).requiresGrad_());
        const c = setup.make(psC);
        if (savedSched) c.scheduler!.loadStateDict(savedSched);
        expect(await runQuadratic(q, psC, stepper(c), SCALES.slice(3))).not.toEqual(restA);
        for (const o of [a, b, c]) o.optimizer.dispose();
        [...psA, ...psB, ...psC].forEach((p) => p.dispose());
      });
    }

    it('20 training steps (backward, clip, step, schedule, zeroGrad) inside scopes do not grow memory', async () => {
      const ps = quadraticParams(q, backend);
      const w = ps.map((p) => upload(new Array(p.size).fill(0.75), [...p.shape], backend));
      const opt = new AdamW(ps, { lr: 0.01, amsgrad: true });
      const sched = new LRScheduler(opt, linearWarmupCosineDecay(2, 20));
      const norms: number[] = [];
      const trainStep = async () => {
        const norm = scope(() => {
          let loss = ps[0].square().mul(w[0]).sum();
          for (let i = 1; i < ps.length; i++) loss = loss.add(ps[i].square().mul(w[i]).sum());
          loss.backward();
          const total = clipGradNorm(ps, 0.5);
          opt.step();
          sched.step();
          opt.zeroGrad();
          return total;
        });
        norms.push(await norm.item());
        norm.dispose();
      };
      await trainStep();
      // State created inside the first step's scope survives it.
      const stateTensors = [...opt.state.values()].flatMap((s) => Object.values(s).filter((v): v is Tensor => v instanceof Tensor));
      expect(stateTensors.length).toBe(3 * ps.length);
      expect(stateTensors.every((t) => !t.disposed)).toBe(true);
      const before = memory();
      for (let i = 0; i < 20; i++) await trainStep();
      const after = memory();
      expect(after.tensors).toBe(before.tensors);
      expect(after.backends[backend.name].bytes).toBe(before.backends[backend.name].bytes);
      expect(norms.every((n) => Number.isFinite(n) && n > 0)).toBe(true);
      opt.dispose();
      expect(memory().tensors).toBe(before.tensors - stateTensors.length);
      [...ps, ...w].forEach((t) => t.dispose());
    });
  });
});
