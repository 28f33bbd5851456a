import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
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
    expect(r3.stderr).toMatch(/objective: expected one of "mlm-nsp", "mlm", "causal-lm", "prefix-lm" \(the objectives megatron-bert registers\), got "span-corruption"/);
  });

  it('a warmup longer than the run is accepted with a warning (--steps 5 on the default config, warmup 20)', () => {
    const dir = makeTinyCorpus().dir;
    const r = spawnSync(
      process.execPath,
      [cli, '--steps', '5', '--checkpointing.dir', join(dir, 'ckpt'), '--output.metrics', join(dir, 'm.jsonl'), '--output.plot', 'null', '--output.export', 'null', '--output.fillMask', '[]', '--eval.everySteps', '0'],
      { encoding: 'utf8' },
    );
    expect(r.stderr + r.stdout).toMatch(/warning: training\.warmupSteps \(20\) exceeds training\.steps \(5\): the learning rate never reaches its peak \(0\.003\); it ends at 7\.50e-4/);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/done: 5 steps/);
  });

  /** One line on stderr, no stack trace, exit code 2. */
  function expectOneLineError(r: ReturnType<typeof spawnSync>, pattern: RegExp): void {
    const stderr = String(r.stderr);
    expect(stderr).toMatch(pattern);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(r.status).toBe(2);
  }

  it('fill-mask: a missing folder, a file, a folder that is not an export, a text without [MASK]: one line naming it, exit 2', () => {
    const { dir } = makeTinyCorpus();
    const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'fill-mask', ...args], { encoding: 'utf8' });
    expectOneLineError(run(join(dir, 'missing'), 'the [MASK] .'), /^lm-train: fill-mask: .*missing does not exist \(expected a folder written by --export\)$/m);
    expectOneLineError(run(join(dir, 'vocab.txt'), 'the [MASK] .'), /^lm-train: fill-mask: .*vocab\.txt is a file, not a folder written by --export$/m);
    expectOneLineError(run(dir, 'the [MASK] .'), /^lm-train: fill-mask: .* has no config\.json \(expected a folder written by --export\)$/m);
    mkdirSync(join(dir, 'half'));
    writeFileSync(join(dir, 'half', 'config.json'), '{}');
    expectOneLineError(run(join(dir, 'half'), 'the [MASK] .'), /^lm-train: fill-mask: .*half has neither vocab\.txt nor tokenizer\.json$/m);
    writeFileSync(join(dir, 'half', 'vocab.txt'), '[PAD]\n[MASK]\n');
    expectOneLineError(run(join(dir, 'half'), 'no mask'), /^lm-train: fill-mask: "no mask" has no \[MASK\]$/m);
    expectOneLineError(run(join(dir, 'half'), 'the [MASK] .'), /^lm-train: fill-mask: .*half: /m);
  });

  it('plot: a missing file, a folder, a file that is not metrics: one line naming it, exit 2', () => {
    const { dir } = makeTinyCorpus();
    const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'plot', ...args], { encoding: 'utf8' });
    expectOneLineError(run(join(dir, 'missing.jsonl')), /^lm-train: plot: .*missing\.jsonl does not exist \(expected the metrics\.jsonl of a run\)$/m);
    expectOneLineError(run(dir), /^lm-train: plot: .* is not a file/m);
    expectOneLineError(run(join(dir, 'vocab.txt')), /^lm-train: plot: .*vocab\.txt:1: not a JSON line$/m);
    writeFileSync(join(dir, 'eval-only.jsonl'), '{"type":"eval","step":0,"loss":1}\n');
    expectOneLineError(run(join(dir, 'eval-only.jsonl')), /^lm-train: plot: .*eval-only\.jsonl has no training records to plot$/m);
  });

  it('demo: a bad seed or backend is one line naming the option, non-zero exit', () => {
    const seed = spawnSync(process.execPath, [cli, 'demo', '--seed', 'abc'], { encoding: 'utf8' });
    expect(seed.stderr.trim().split('\n')).toHaveLength(1);
    expect(seed.stderr).toMatch(/--seed: expected an integer, got "abc"/);
    expect(seed.status).not.toBe(0);
    const backend = spawnSync(process.execPath, [cli, 'demo', '--backend', 'tpu'], { encoding: 'utf8' });
    expect(backend.stderr.trim().split('\n')).toHaveLength(1);
    expect(backend.stderr).toMatch(/--backend.*tpu.*Allowed choices are auto, cpu, webgpu/);
    expect(backend.status).not.toBe(0);
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
