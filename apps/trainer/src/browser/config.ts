// The browser run's config: `lm-train`'s YAML (the playground starts from configs/default.yaml, the
// config of `pnpm start`), the choices made on the page as dotted overrides, and the worker's paths,
// validated by the same schema as the command line (config.ts), so a bad field gets the same message.

import { parse as parseYaml } from 'yaml';
import { ConfigError, setDotted, validateConfig, type TrainConfig } from '../config.js';

/** Where a browser run keeps its files in the worker's file system (persisted to IndexedDB). */
export const BROWSER_PATHS = {
  root: '/run',
  tokenizer: '/run/vocab.txt',
  checkpoints: '/run/checkpoints',
  metrics: '/run/metrics.jsonl',
  export: '/run/export',
} as const;

/** YAML text + overrides (dotted keys, applied in order) -> a validated config with the worker's paths. */
export function browserConfig(yamlText: string, overrides: readonly [string, unknown][], source = 'config'): TrainConfig {
  let raw: unknown;
  try {
    raw = parseYaml(yamlText) ?? {};
  } catch (e) {
    throw new ConfigError(`${source}: not valid YAML/JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: expected a mapping of sections (model, data, training, ...)`);
  const cfg = raw as Record<string, unknown>;
  for (const [key, value] of overrides) setDotted(cfg, key, value);
  // The corpus comes as files from the page; the rest lives under /run. No plot (the page draws the
  // curves) and no fill-mask lines (the inference panel answers them).
  setDotted(cfg, 'data.paths', ['(page)']);
  setDotted(cfg, 'data.tokenizer', BROWSER_PATHS.tokenizer);
  setDotted(cfg, 'checkpointing.dir', BROWSER_PATHS.checkpoints);
  setDotted(cfg, 'output.metrics', BROWSER_PATHS.metrics);
  setDotted(cfg, 'output.plot', null);
  setDotted(cfg, 'output.export', BROWSER_PATHS.export);
  setDotted(cfg, 'output.fillMask', []);
  return validateConfig(cfg, source);
}
