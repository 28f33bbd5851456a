// Every differentiable op in the table: backward() against central finite differences on cpu.
import { describe, expect, it } from 'vitest';
import { OP_CASES, gradcheck, testCpuBackend } from '../testing/index.js';

const backend = testCpuBackend();

describe('gradcheck (cpu, finite differences)', () => {
  for (const c of OP_CASES.filter((k) => k.grad !== false && !k.noGradcheck && k.inputs.some((s) => (s.dtype ?? 'float32') === 'float32' && s.kind !== 'int' && s.kind !== 'bool'))) {
    it(c.name, () => {
      const r = gradcheck(c.run, c.inputs, backend, { rtol: c.gradTol ?? 2e-2 });
      expect(r.worst, r.detail).toBeLessThanOrEqual(1);
    });
  }
});
