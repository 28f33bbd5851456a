import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, extractDottedFlags, loadConfig, validateConfig } from './config.js';

const minimal = { data: { paths: ['corpus.txt'], tokenizer: 'vocab.txt' } };

function issuesOf(raw: unknown): string[] {
  try {
    validateConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('config validation', () => {
  it('fills defaults around the required fields', () => {
    const cfg = validateConfig(minimal);
    expect(cfg.training).toMatchObject({ steps: 1000, batchSize: 8, gradAccumulation: 1, schedule: 'linear', clipNorm: 1 });
    expect(cfg.data).toMatchObject({ seqLength: 128, maskProbability: 0.15, format: 'auto', paths: ['corpus.txt'] });
    expect(cfg.backend).toBe('auto');
    expect(cfg.model.family).toBe('megatron-bert');
  });

  it('names every bad field and what is allowed, all at once', () => {
    const issues = issuesOf({
      data: { paths: [], seqLength: 4, maskProbability: 1.5, format: 'csv' },
      training: { lr: -1, schedule: 'exponential', batchSize: 2.5, gradAccumulation: 0 },
      checkpointing: { keepLast: 0 },
      backend: 'tpu',
      seed: -3,
    });
    const text = issues.join('\n');
    expect(text).toMatch(/^data\.paths: expected at least one path/m);
    expect(text).toMatch(/^data\.seqLength: expected an integer >= 8, got 4/m);
    expect(text).toMatch(/^data\.maskProbability: expected a number in \(0, 1\), got 1\.5/m);
    expect(text).toMatch(/^data\.format: expected one of "auto", "text", "jsonl", got "csv"/m);
    expect(text).toMatch(/^training\.lr: expected a number > 0, got -1/m);
    expect(text).toMatch(/^training\.schedule: expected one of "linear", "cosine", "constant", got "exponential"/m);
    expect(text).toMatch(/^training\.batchSize: expected an integer, got 2\.5/m);
    expect(text).toMatch(/^training\.gradAccumulation: expected an integer >= 1, got 0/m);
    expect(text).toMatch(/^checkpointing\.keepLast: expected an integer >= 1, got 0/m);
    expect(text).toMatch(/^backend: expected one of "auto", "cpu", "webgpu", got "tpu"/m);
    expect(text).toMatch(/^seed: expected an integer >= 0, got -3/m);
  });

  it('reports a missing required section, unknown fields (typos), wrong types and unknown families', () => {
    expect(issuesOf({})).toEqual(['data: required (expected object)']);
    const issues = issuesOf({ ...minimal, training: { lerningRate: 1 }, modle: {} });
    expect(issues).toContain('training.lerningRate: unknown field');
    expect(issues).toContain('modle: unknown field');
    expect(issuesOf({ data: { paths: 'x', seqLength: 'long' } })).toEqual(['data.seqLength: expected number, got "long"']);
    expect(issuesOf({ ...minimal, model: { family: 'gpt-5' } })[0]).toMatch(/^model\.family: expected one of "megatron-bert"(, "[a-z0-9-]+")*, got "gpt-5"/);
    // A warmup longer than the run is accepted, as Hugging Face's Trainer does (the trainer warns).
    expect(validateConfig({ ...minimal, training: { steps: 10, warmupSteps: 20 } }).training).toMatchObject({ steps: 10, warmupSteps: 20 });
    expect(issuesOf({ ...minimal, output: { fillMask: ['no mask here'] } })[0]).toMatch(/^output\.fillMask\.0: expected text containing \[MASK\]/);
  });

  it('allows the objectives the family registers, and lists them for any other', () => {
    expect(validateConfig({ ...minimal, objective: 'causal-lm' }).objective).toBe('causal-lm');
    expect(validateConfig({ ...minimal, objective: 'mlm' }).objective).toBe('mlm');
    expect(issuesOf({ ...minimal, objective: 'span-corruption' })).toEqual([
      'objective: expected one of "mlm-nsp", "mlm", "causal-lm", "prefix-lm" (the objectives megatron-bert registers), got "span-corruption"',
    ]);
    expect(issuesOf({ ...minimal, objectives: { 'span-corruption': { noiseDensity: 0.2 } } })).toEqual([
      'objectives.span-corruption: not an objective megatron-bert registers (mlm-nsp, mlm, causal-lm, prefix-lm)',
    ]);
  });

  it('refuses end-of-run output that does not fit the objective', () => {
    expect(issuesOf({ ...minimal, objective: 'causal-lm', output: { fillMask: ['the cow says [MASK] .'] } })).toEqual([
      'output.fillMask: objective "causal-lm" does not train a masked LM; use output.prompts for its continuations',
    ]);
    expect(issuesOf({ ...minimal, objective: 'mlm', output: { prompts: ['the cow says'] } })).toEqual(['output.prompts: objective "mlm" prints no continuations']);
    expect(validateConfig({ ...minimal, objective: 'causal-lm', output: { prompts: ['the cow says'] } }).output.prompts).toEqual(['the cow says']);
    expect(validateConfig({ ...minimal, objective: 'mlm', output: { fillMask: ['the cow says [MASK] .'] } }).output.fillMask).toHaveLength(1);
  });

  it('the error message starts with the source and lists the issues', () => {
    expect(() => validateConfig({ data: { paths: 'x', seqLength: 2 } }, 'run.yaml')).toThrow(/^run\.yaml: invalid configuration:\n {2}data\.seqLength: expected an integer >= 8, got 2$/);
  });
});

describe('config files and overrides', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lm-train-config-'));
  const file = join(dir, 'run.yaml');
  writeFileSync(file, ['data:', '  paths: corpus/', '  tokenizer: vocab.txt', 'training:', '  lr: 1.0e-3', '  steps: 50', 'checkpointing:', '  dir: ckpt'].join('\n'));

  it('reads YAML, resolves relative paths against the file, and applies dotted overrides', () => {
    const cfg = loadConfig({ file, overrides: [['training.lr', 3e-4], ['training.schedule', 'cosine'], ['output.metrics', 'm.jsonl']], cwd: '/work/somewhere' });
    expect(cfg.training.lr).toBe(3e-4);
    expect(cfg.training.steps).toBe(50);
    expect(cfg.training.schedule).toBe('cosine');
    expect(cfg.data.paths).toEqual([join(dir, 'corpus')]);
    expect(cfg.data.tokenizer).toBe(join(dir, 'vocab.txt'));
    expect(cfg.checkpointing.dir).toBe(join(dir, 'ckpt'));
    expect(cfg.output.metrics).toBe('/work/somewhere/m.jsonl');
  });

  it('reads JSON too, and names the file when it cannot be read or parsed', () => {
    const json = join(dir, 'run.json');
    writeFileSync(json, JSON.stringify({ data: { paths: ['/abs/c.txt'], tokenizer: '/abs/v.txt' }, seed: 3 }));
    expect(loadConfig({ file: json }).seed).toBe(3);
    expect(() => loadConfig({ file: join(dir, 'nope.yaml') })).toThrow(/config file .*nope\.yaml: cannot read it \(ENOENT\)/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'data: [unclosed');
    expect(() => loadConfig({ file: bad })).toThrow(/bad\.yaml: not valid YAML\/JSON/);
    const override = () => loadConfig({ file, overrides: [['training.batchSize', 0]] });
    expect(override).toThrow(/training\.batchSize: expected an integer >= 1, got 0/);
  });

  it('extracts --a.b value and --a.b=value flags, parsing values as YAML scalars', () => {
    const { rest, overrides } = extractDottedFlags(['-c', 'x.yaml', '--training.lr', '1e-3', '--data.paths=a,b', '--training.float16', '--steps', '5', '--model.config.hiddenSize=64']);
    expect(rest).toEqual(['-c', 'x.yaml', '--steps', '5']);
    expect(overrides).toEqual([
      ['training.lr', 1e-3],
      ['data.paths', 'a,b'],
      ['training.float16', true],
      ['model.config.hiddenSize', 64],
    ]);
  });
});
