// The model families the trainer can build, by config name (`model.family`): one line per family.
// A family's file lists its objectives; adding a family or an objective never touches the loop.

import type { ModelFamily } from '../core/family.js';
import { chatglm } from './chatglm.js';
import { megatronBert } from './megatron-bert.js';
import { realm } from './realm.js';
import { reformer } from './reformer.js';
import { megatronT5, t5 } from './t5.js';

const FAMILIES = new Map<string, ModelFamily>([
  [megatronBert.name, megatronBert as ModelFamily],
  [t5.name, t5 as ModelFamily],
  [megatronT5.name, megatronT5 as ModelFamily],
  [reformer.name, reformer as ModelFamily],
  [chatglm.name, chatglm as ModelFamily],
  [realm.name, realm as ModelFamily],
]);

export function familyNames(): string[] {
  return [...FAMILIES.keys()];
}

/** The family's registered objective names (config `objective`), or [] for an unknown family. */
export function objectiveNames(family: string): string[] {
  return Object.keys(FAMILIES.get(family)?.objectives ?? {});
}

/** The objective `name` of `family` as registered, or null when either is unknown. */
export function familyObjective(family: string, name: string): ModelFamily['objectives'][string] | null {
  return FAMILIES.get(family)?.objectives[name] ?? null;
}

export function getFamily(name: string): ModelFamily {
  const f = FAMILIES.get(name);
  if (!f) throw new TypeError(`model.family: unknown family "${name}" (known: ${familyNames().join(', ')})`);
  return f;
}

/** Adds a family (tests register tiny stand-ins; a new model package adds its line above). */
export function registerFamily(family: ModelFamily): void {
  FAMILIES.set(family.name, family);
}

export type { FamilyObjective, ModelFamily, ObjectiveContext, ResolvedModelConfig, TrainableModel } from '../core/family.js';
