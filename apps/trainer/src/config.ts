// The training configuration: one typed object, read from a YAML or JSON file, overridden by dotted
// command-line keys (`--training.lr 3e-4`), and validated in full before anything runs. Every error
// names the field (`training.schedule`) and what is allowed there, and all of them are reported at
// once. Relative paths in a file are resolved against the file's folder; on the command line, against
// the working directory.

import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from './core/errors.js';
import { familyNames, familyObjective, objectiveNames } from './models/index.js';

export { ConfigError };

const int = (min: number) => z.number().int(`expected an integer`).min(min, `expected an integer >= ${min}`);
const path = z.string().min(1, 'expected a non-empty path');

const ModelSchema = z
  .object({
    /** Model family: which package builds the model, its objective and its export. */
    family: z
      .string()
      .default('megatron-bert')
      .superRefine((name, ctx) => {
        if (!familyNames().includes(name)) ctx.addIssue({ code: 'custom', message: `expected one of ${familyNames().map((n) => JSON.stringify(n)).join(', ')}` });
      }),
    /** A Hugging Face-format directory (config.json + weights) to start from instead of random init. */
    fromPretrained: path.nullable().default(null),
    /** Config fields (camelCase, e.g. hiddenSize) over the family's defaults or the pretrained config. */
    config: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

const DataSchema = z
  .object({
    /** Files or folders (read file by file, in name order, recursively). */
    paths: z.union([path, z.array(path).min(1, 'expected at least one path')]).transform((p) => (Array.isArray(p) ? p : [p])),
    /** text: one sentence per line, blank lines between documents; jsonl: one document per line. auto: by extension. */
    format: z.enum(['auto', 'text', 'jsonl']).default('auto'),
    /** The JSONL field that holds a document's text. */
    jsonlField: z.string().min(1).default('text'),
    /** vocab.txt, tokenizer.json, or a folder holding one; default: the fromPretrained folder's. */
    tokenizer: path.nullable().default(null),
    /** Lower-case and strip accents (uncased vocabularies). */
    lowercase: z.boolean().default(true),
    /** Tokens per example, [CLS] and [SEP]s included. */
    seqLength: int(8).default(128),
    /** Fraction of tokens to predict (BERT: 0.15; of those 80% [MASK], 10% random, 10% unchanged). */
    maskProbability: z.number().gt(0, 'expected a number in (0, 1)').lt(1, 'expected a number in (0, 1)').default(0.15),
    /** Probability of a shorter target length for an example (BERT's short_seq_prob). */
    shortSeqProbability: z.number().min(0, 'expected a number in [0, 1]').max(1, 'expected a number in [0, 1]').default(0.1),
    /** Fraction of documents held out for validation, chosen by a seeded hash of the document index. */
    validationFraction: z.number().min(0, 'expected a number in [0, 0.5]').max(0.5, 'expected a number in [0, 0.5]').default(0.05),
    /** Seed of shuffling, NSP pairing and masking; default: the top-level seed. */
    shuffleSeed: int(0).nullable().default(null),
    /** Examples held in the shuffle buffer (the stream is never loaded whole). */
    shuffleBuffer: int(1).default(10000),
  })
  .strict();

const TrainingSchema = z
  .object({
    /** Optimizer steps. */
    steps: int(1).default(1000),
    /** Examples per micro-batch. */
    batchSize: int(1).default(8),
    /** Micro-batches per optimizer step. */
    gradAccumulation: int(1).default(1),
    /** Peak learning rate (AdamW). */
    lr: z.number().gt(0, 'expected a number > 0').default(1e-4),
    warmupSteps: int(0).default(0),
    /** After warmup: linear decay to 0, or a half cosine down to minLrRatio * lr. */
    schedule: z.enum(['linear', 'cosine', 'constant']).default('linear'),
    minLrRatio: z.number().min(0, 'expected a number in [0, 1]').max(1, 'expected a number in [0, 1]').default(0),
    weightDecay: z.number().min(0, 'expected a number >= 0').default(0.01),
    betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]),
    eps: z.number().gt(0, 'expected a number > 0').default(1e-6),
    /** Global gradient-norm clip; 0 turns clipping off. */
    clipNorm: z.number().min(0, 'expected a number >= 0 (0 = no clipping)').default(1),
    /** float16 compute with float32 master weights and dynamic loss scaling (needs shader-f16 on WebGPU). */
    float16: z.boolean().default(false),
    /** Dynamic loss scaling with float16 (torch GradScaler / Megatron): halve on overflow, double after growthInterval clean steps. */
    lossScale: z
      .object({
        initial: z.number().gt(0, 'expected a number > 0').default(65536),
        growthInterval: int(1).default(2000),
        minimum: z.number().gt(0, 'expected a number > 0').default(1),
      })
      .strict()
      .prefault({}),
    /** Print a plain log line every N steps when stdout is not a terminal. */
    logEvery: int(1).default(10),
  })
  .strict();

const CheckpointSchema = z
  .object({
    dir: path.default('out/checkpoints'),
    /** Save every N steps (0: only at the end and on SIGINT/SIGTERM). */
    everySteps: int(0).default(500),
    /** Keep the last K checkpoints; older ones are removed after a new one is complete. */
    keepLast: int(1).default(3),
    /** Without --resume, a dir that already holds checkpoints is an error unless this is true (then they are removed). */
    overwrite: z.boolean().default(false),
  })
  .strict();

const EvalSchema = z
  .object({
    /** Evaluate every N steps (0: only at the end). */
    everySteps: int(0).default(200),
    /** Validation batches per evaluation (a fixed set: the same examples and masks every time). */
    batches: int(1).default(20),
  })
  .strict();

const OutputSchema = z
  .object({
    /** Metrics, one JSON object per line (train and eval records). */
    metrics: path.default('out/metrics.jsonl'),
    /** Loss / validation curves as PNG (null: none). */
    plot: path.nullable().default('out/loss.png'),
    /** Hugging Face-format export at the end (null: none). */
    export: path.nullable().default(null),
    /** Fill-mask queries (with [MASK]) answered by the exported model at the end (masked-LM objectives). */
    fillMask: z.array(z.string().includes('[MASK]', { message: 'expected text containing [MASK]' })).default([]),
    /** Prompts whose greedy continuation is printed at the end (causal objectives). */
    prompts: z.array(z.string().min(1, 'expected a non-empty prompt')).default([]),
  })
  .strict();

export const TrainConfigSchema = z
  .object({
    model: ModelSchema.prefault({}),
    data: DataSchema,
    training: TrainingSchema.prefault({}),
    checkpointing: CheckpointSchema.prefault({}),
    eval: EvalSchema.prefault({}),
    output: OutputSchema.prefault({}),
    backend: z.enum(['auto', 'cpu', 'webgpu']).default('auto'),
    seed: int(0).default(42),
    /** Which objective trains the model: one the family registers (models/<family>.ts). */
    objective: z.string().default('mlm-nsp'),
    /** Objective-specific settings by objective name (e.g. objectives.span-corruption.noiseDensity); the objective checks its own. */
    objectives: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
  })
  .strict();

export type TrainConfig = z.output<typeof TrainConfigSchema>;

/** Paths that are resolved against the config file's folder (or the working directory for flags). */
const PATH_FIELDS = ['model.fromPretrained', 'data.paths', 'data.tokenizer', 'checkpointing.dir', 'output.metrics', 'output.plot', 'output.export'];

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function getAt(obj: unknown, keys: readonly PropertyKey[]): unknown {
  let cur = obj;
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

function formatIssue(issue: z.core.$ZodIssue, input: unknown): string {
  const field = issue.path.map(String).join('.') || '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const base = issue.path.length ? `${field}.` : '';
    return issue.keys.map((k) => `${base}${k}: unknown field`).join('\n');
  }
  let message = issue.message;
  if (issue.code === 'invalid_value' && 'values' in issue) {
    message = `expected one of ${(issue.values as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  } else if (issue.code === 'invalid_type') {
    const got = getAt(input, issue.path);
    const expected = issue.expected === 'int' ? 'an integer' : issue.expected;
    message = got === undefined ? `required (expected ${expected})` : `expected ${expected}`;
  }
  const got = getAt(input, issue.path);
  return `${field}: ${message}${got !== undefined ? `, got ${describeValue(got)}` : ''}`;
}

/** Validates a raw object (after file + overrides) into a TrainConfig, or throws a ConfigError listing every bad field. */
export function validateConfig(raw: unknown, source = 'config'): TrainConfig {
  const result = TrainConfigSchema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.flatMap((i) => formatIssue(i, raw).split('\n'));
    throw new ConfigError(`${source}: invalid configuration:\n  ${issues.join('\n  ')}`, issues);
  }
  const cfg = result.data;
  const issues: string[] = [];
  // A warmup longer than the run is accepted (as Hugging Face's Trainer does): the trainer warns that the peak is never reached.
  const objectives = objectiveNames(cfg.model.family);
  for (const name of Object.keys(cfg.objectives)) {
    if (objectives.length && !objectives.includes(name)) issues.push(`objectives.${name}: not an objective ${cfg.model.family} registers (${objectives.join(', ')})`);
  }
  if (objectives.length && !objectives.includes(cfg.objective)) {
    issues.push(`objective: expected one of ${objectives.map((o) => JSON.stringify(o)).join(', ')} (the objectives ${cfg.model.family} registers), got ${JSON.stringify(cfg.objective)}`);
  }
  // What is printed at the end must fit the objective's export: fill-mask needs a masked LM, prompts a continuation.
  const entry = familyObjective(cfg.model.family, cfg.objective);
  if (entry && cfg.output.fillMask.length && !entry.fillsMasks) {
    issues.push(`output.fillMask: objective ${JSON.stringify(cfg.objective)} does not train a masked LM; use output.prompts for its continuations`);
  }
  if (entry && cfg.output.prompts.length && !entry.showcase) {
    issues.push(`output.prompts: objective ${JSON.stringify(cfg.objective)} prints no continuations`);
  }
  if (issues.length) throw new ConfigError(`${source}: invalid configuration:\n  ${issues.join('\n  ')}`, issues);
  return cfg;
}

/** Reads a YAML or JSON file (JSON is YAML) into a plain object. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`config file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`config file ${file}: not valid YAML/JSON: ${(e as Error).message}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`config file ${file}: expected a mapping of sections (model, data, training, ...)`);
  return value as Record<string, unknown>;
}

/** Parses an override value as YAML: numbers, booleans, null, [lists] and {maps}; anything else is a string. */
export function parseOverrideValue(text: string): unknown {
  try {
    return parseYaml(text);
  } catch {
    return text;
  }
}

/** Sets `a.b.c = value` in obj, creating maps on the way. */
export function setDotted(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  if (parts.some((p) => p === '' || p === '__proto__' || p === 'constructor' || p === 'prototype')) {
    throw new ConfigError(`override '${key}': not a valid dotted key`);
  }
  let cur: Record<string, unknown> = obj;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (next === undefined || next === null || typeof next !== 'object' || Array.isArray(next)) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]] = value;
}

function resolvePaths(obj: Record<string, unknown>, base: string, only?: ReadonlySet<string>): void {
  for (const field of PATH_FIELDS) {
    if (only && !only.has(field)) continue;
    const [section, key] = field.split('.');
    const sec = obj[section];
    if (!sec || typeof sec !== 'object') continue;
    const rec = sec as Record<string, unknown>;
    const v = rec[key];
    const fix = (p: unknown) => (typeof p === 'string' && p !== '' && !isAbsolute(p) ? resolve(base, p) : p);
    if (Array.isArray(v)) rec[key] = v.map(fix);
    else rec[key] = fix(v);
  }
  // Objective settings named `...Path` are files too (e.g. objectives.openqa.blockRecordsPath).
  for (const [name, settings] of Object.entries((obj.objectives ?? {}) as Record<string, Record<string, unknown>>)) {
    for (const [key, v] of Object.entries(settings ?? {})) {
      if (!key.endsWith('Path') || (only && !only.has(`objectives.${name}.${key}`))) continue;
      if (typeof v === 'string' && v !== '' && !isAbsolute(v)) settings[key] = resolve(base, v);
    }
  }
}

export interface LoadConfigOptions {
  /** A YAML/JSON file; optional when the overrides give everything required. */
  file?: string | null;
  /** Dotted keys to values (already parsed), applied over the file in order. */
  overrides?: readonly [string, unknown][];
  /** Where relative paths given as overrides resolve (default: process.cwd()). */
  cwd?: string;
}

/** File + overrides -> validated TrainConfig with absolute paths. */
export function loadConfig(options: LoadConfigOptions = {}): TrainConfig {
  const cwd = options.cwd ?? process.cwd();
  const raw: Record<string, unknown> = options.file ? readConfigFile(options.file) : {};
  if (options.file) resolvePaths(raw, dirname(resolve(cwd, options.file)));
  const overridden = new Set<string>();
  const over: Record<string, unknown> = {};
  for (const [key, value] of options.overrides ?? []) {
    setDotted(raw, key, value);
    setDotted(over, key, value);
    overridden.add(key);
  }
  // Paths given on the command line resolve against the working directory.
  const pathOverrides = new Set([...PATH_FIELDS, ...[...overridden].filter((k) => k.startsWith('objectives.') && k.endsWith('Path'))].filter((f) => overridden.has(f)));
  if (pathOverrides.size) {
    resolvePaths(over, cwd, pathOverrides);
    for (const f of pathOverrides) setDotted(raw, f, getAt(over, f.split('.')));
  }
  return validateConfig(raw, options.file ?? 'config');
}

/** Splits `--a.b value` / `--a.b=value` tokens (an option name with a dot) out of argv. */
export function extractDottedFlags(argv: readonly string[]): { rest: string[]; overrides: [string, unknown][] } {
  const rest: string[] = [];
  const overrides: [string, unknown][] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--([A-Za-z_][\w-]*(?:\.[\w-]+)+)(?:=(.*))?$/s.exec(a);
    if (!m) {
      rest.push(a);
      continue;
    }
    let value = m[2];
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && !/^--?\d/.test(next))) {
        value = 'true';
      } else {
        value = next;
        i++;
      }
    }
    overrides.push([m[1], parseOverrideValue(value)]);
  }
  return { rest, overrides };
}
