import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
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

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

describe.skipIf(!existsSync(cli))('the built lm-train CLI', () => {
  it('runs the demo and prints the backend', () => {
    const out = execFileSync(process.execPath, [cli, '--backend', 'cpu'], { encoding: 'utf8' });
    expect(out).toContain('backend: cpu');
    expect(out).toMatch(/sum=1\.0000/);
  });

  it('rejects an unknown backend through commander', () => {
    expect(() => execFileSync(process.execPath, [cli, '--backend', 'tpu'], { encoding: 'utf8', stdio: 'pipe' })).toThrow(
      /argument 'tpu' is invalid/,
    );
  });
});
