import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { makeTinyCorpus } from './test-helpers.js';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

function tinyRunFile(steps: number): { file: string; dir: string } {
  const c = makeTinyCorpus();
  const file = join(c.dir, 'run.yaml');
  writeFileSync(
    file,
    stringify({
      model: { config: { hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 32 } },
      data: { paths: 'corpus', tokenizer: 'vocab.txt', seqLength: 24, validationFraction: 0.2 },
      training: { steps, batchSize: 4, lr: 1e-3, logEvery: 1 },
      checkpointing: { dir: 'ckpt', everySteps: 0 },
      eval: { everySteps: 0, batches: 1 },
      output: { metrics: 'out/metrics.jsonl', plot: 'out/loss.png' },
      backend: 'cpu',
    }),
  );
  return { file, dir: c.dir };
}

describe('lm-train (built CLI)', () => {
  it('SIGINT after the first step: finishes the step, saves a checkpoint, exits 0; --resume completes the run', async () => {
    const { file, dir } = tinyRunFile(100_000);
    const child = spawn(process.execPath, [cli, '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!sent && /step 1\/100000/.test(out)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(sent).toBe(true);
    expect(code).toBe(0);
    expect(out).toMatch(/SIGINT: finishing the current step, then saving a checkpoint/);
    const m = /interrupted at step (\d+): checkpoint saved to (\S+); continue with --resume/.exec(out);
    expect(m).not.toBeNull();
    const step = Number(m![1]);
    expect(existsSync(join(m![2], 'latest.json'))).toBe(true);
    expect(existsSync(join(dir, 'out', 'loss.png'))).toBe(true);

    const resumed = spawnSync(process.execPath, [cli, '-c', file, '--resume', '--steps', String(step + 2)], { encoding: 'utf8' });
    expect(resumed.stderr + resumed.stdout).toMatch(new RegExp(`resumed from step ${step}`));
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`done: ${step + 2} steps`));
    expect(readdirSync(join(dir, 'ckpt'))).toContain(`step-${String(step + 2).padStart(8, '0')}`);
  });

  it('bad input: exit code 2 and a message naming the field, before any training', () => {
    const { file } = tinyRunFile(5);
    const r = spawnSync(process.execPath, [cli, '-c', file, '--data.seqLength', '100', '--training.lr', '-1'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/training\.lr: expected a number > 0, got -1/);
    const r2 = spawnSync(process.execPath, [cli, '-c', file, '--data.seqLength', '100'], { encoding: 'utf8' });
    expect(r2.status).toBe(2);
    expect(r2.stderr).toMatch(/data\.seqLength: 100 exceeds the model's maxPositionEmbeddings \(32\)/);
    expect(r2.stdout).not.toMatch(/step 1\//);
    // top-level fields have flags too: --objective is validated like the file's field
    const r3 = spawnSync(process.execPath, [cli, '-c', file, '--objective', 'span-corruption'], { encoding: 'utf8' });
    expect(r3.status).toBe(2);
    expect(r3.stderr).toMatch(/objective: expected one of "mlm-nsp", "mlm", got "span-corruption"/);
  });

  it('plot renders a metrics file on demand; demo still runs', () => {
    const { file, dir } = tinyRunFile(2);
    expect(spawnSync(process.execPath, [cli, '-c', file], { encoding: 'utf8' }).status).toBe(0);
    const r = spawnSync(process.execPath, [cli, 'plot', join(dir, 'out', 'metrics.jsonl'), '-o', join(dir, 'again.png')], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(existsSync(join(dir, 'again.png'))).toBe(true);
    expect(spawnSync(process.execPath, [cli, 'demo', '--backend', 'cpu'], { encoding: 'utf8' }).stdout).toContain('backend: cpu');
  });
});
