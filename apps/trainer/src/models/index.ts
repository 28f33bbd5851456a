// The model families the trainer can build, by config name (`model.family`).

import type { ModelFamily } from './family.js';
import { megatronBert } from './megatron-bert.js';

const FAMILIES = new Map<string, ModelFamily<unknown>>([[megatronBert.name, megatronBert as ModelFamily<unknown>]]);

export function familyNames(): string[] {
  return [...FAMILIES.keys()];
}

export function getFamily(name: string): ModelFamily<unknown> {
  const f = FAMILIES.get(name);
  if (!f) throw new TypeError(`model.family: unknown family "${name}" (known: ${familyNames().join(', ')})`);
  return f;
}

/** Adds a family (new model packages; tests register tiny stand-ins). */
export function registerFamily(family: ModelFamily<unknown>): void {
  FAMILIES.set(family.name, family);
}

export type { ModelFamily, TrainableModel, ResolvedModelConfig } from './family.js';
