import { describe, expect, it } from 'vitest';
import { formatDemo, runDemo } from './demo.js';

describe('the demo run', () => {
  it('computes softmax(x @ w) on the cpu backend', async () => {
    const result = await runDemo({ backend: 'cpu', seed: 0 });
    expect(result.backend).toBe('cpu');
    expect(result.adapterInfo).toMatch(/cpu/);
    expect(result.probs).toHaveLength(4);
    for (const row of result.probs) {
      expect(row).toHaveLength(3);
      for (const p of row) expect(p).toBeGreaterThan(0);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
    expect(formatDemo(result)).toContain('backend: cpu');
  });

  it('is reproducible for a seed', async () => {
    const a = await runDemo({ backend: 'cpu', seed: 7 });
    const b = await runDemo({ backend: 'cpu', seed: 7 });
    expect(a.probs).toEqual(b.probs);
  });
});
