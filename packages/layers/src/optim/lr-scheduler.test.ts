import { describe, expect, it } from 'vitest';
import { testCpuBackend } from '@lm/tensor-gpu/testing';
import { LRScheduler, linearWarmupConstant, linearWarmupCosineDecay, linearWarmupLinearDecay } from './lr-scheduler.js';
import { OptimizerError } from './optimizer.js';
import { SGD } from './sgd.js';
import { quadratic, quadraticParams } from './testing.js';

function expectValues(fn: (step: number) => number, table: [number, number][]): void {
  for (const [step, want] of table) expect(fn(step), `step ${step}`).toBeCloseTo(want, 12);
}

describe('schedules (Hugging Face get_*_schedule_with_warmup)', () => {
  it('linearWarmupConstant', () => {
    expectValues(linearWarmupConstant(4), [[0, 0], [1, 0.25], [3, 0.75], [4, 1], [1000, 1]]);
    expectValues(linearWarmupConstant(0), [[0, 1], [5, 1]]);
  });

  it('linearWarmupLinearDecay', () => {
    expectValues(linearWarmupLinearDecay(10, 100), [[0, 0], [5, 0.5], [10, 1], [55, 0.5], [99, 1 / 90], [100, 0], [150, 0]]);
    expectValues(linearWarmupLinearDecay(0, 10), [[0, 1], [5, 0.5], [10, 0]]);
  });

  it('linearWarmupCosineDecay, with cycles and a floor', () => {
    expectValues(linearWarmupCosineDecay(10, 110), [[0, 0], [5, 0.5], [10, 1], [35, 0.5 * (1 + Math.cos(Math.PI / 4))], [60, 0.5], [110, 0]]);
    expectValues(linearWarmupCosineDecay(10, 110, 1), [[60, 0], [110, 1]]);
    expectValues(linearWarmupCosineDecay(10, 110, 0.5, 0.1), [[5, 0.5], [10, 1], [60, 0.55], [110, 0.1]]);
  });

  it('rejects negative or fractional step counts', () => {
    expect(() => linearWarmupLinearDecay(-1, 10)).toThrow(OptimizerError);
    expect(() => linearWarmupCosineDecay(1.5, 10)).toThrow(/warmupSteps must be an integer >= 0, got 1.5/);
    expect(() => linearWarmupCosineDecay(1, 10, 0.5, 2)).toThrow(/minLrRatio must be in \[0, 1\]/);
  });
});

describe('LRScheduler (torch LambdaLR semantics)', () => {
  const backend = testCpuBackend();
  const makeOpt = () => {
    const ps = quadraticParams(quadratic(3, [[2], [3]]), backend);
    return new SGD([{ params: [ps[0]], lr: 0.1 }, { params: [ps[1]], lr: 0.01 }]);
  };

  it('sets lr = baseLr * lambda(step), starting at lambda(0) on construction', () => {
    const opt = makeOpt();
    const lambda = linearWarmupLinearDecay(2, 6);
    const sched = new LRScheduler(opt, lambda);
    const lrs = () => opt.paramGroups.map((g) => g.lr);
    expect(lrs()).toEqual([0, 0]);
    for (let step = 1; step <= 7; step++) {
      sched.step();
      expect(sched.lastEpoch).toBe(step);
      expect(lrs()).toEqual([0.1 * lambda(step), 0.01 * lambda(step)]);
      expect(sched.getLastLr()).toEqual(lrs());
    }
    expect(lrs()).toEqual([0, 0]);
    expect(sched.baseLrs).toEqual([0.1, 0.01]);
  });

  it('takes one lambda per group', () => {
    const opt = makeOpt();
    const sched = new LRScheduler(opt, [linearWarmupConstant(0), (s) => 0.5 ** s]);
    sched.step();
    sched.step();
    expect(sched.getLastLr()).toEqual([0.1, 0.0025]);
    expect(() => new LRScheduler(opt, [linearWarmupConstant(0)])).toThrow(/got 1 lambdas for 2 param groups/);
  });

  it('resumes from its state dict', () => {
    const lambda = linearWarmupCosineDecay(2, 10);
    const a = new LRScheduler(makeOpt(), lambda);
    for (let i = 0; i < 4; i++) a.step();
    const sd = a.stateDict();
    const optB = makeOpt();
    const b = new LRScheduler(optB, lambda);
    b.loadStateDict(sd);
    expect(b.lastEpoch).toBe(4);
    expect(optB.paramGroups.map((g) => g.lr)).toEqual(a.getLastLr());
    for (let i = 0; i < 3; i++) {
      a.step();
      b.step();
      expect(b.getLastLr()).toEqual(a.getLastLr());
    }
    expect(() => b.loadStateDict({ ...sd, baseLrs: [1] })).toThrow(/has 1 base lrs, the optimizer has 2 param groups/);
  });
});
