// The registry: which reference class names (case.json `class`) the project implements, and which
// package runs each. Every model package exports `conformance: ConformanceFamily` (see
// @lm/layers/testing) with its model classes and its family's own tokenizers (RealmTokenizer:
// @lm/realm); the tokenizers shared by several families (BertTokenizer) are registered by
// @lm/layers/testing. This file lists the packages. A package that does not (yet) export
// `conformance` contributes nothing, and the cases of its classes fail as "not implemented".
//
// Adding a family: add the package to this package's `dependencies` and one entry to
// FAMILY_PACKAGES. The imports are dynamic so that the list can name a package before its
// `conformance` export lands without breaking the build or the typecheck.

import type { ConformanceFamily } from '@lm/layers/testing';

export interface FamilyPackage {
  /** The npm name, for messages. */
  name: string;
  load: () => Promise<unknown>;
}

export const FAMILY_PACKAGES: readonly FamilyPackage[] = [
  { name: '@lm/layers/testing', load: () => import('@lm/layers/testing') },
  { name: '@lm/megatron-bert', load: () => import('@lm/megatron-bert') },
  { name: '@lm/t5', load: () => import('@lm/t5') },
  { name: '@lm/realm', load: () => import('@lm/realm') },
  { name: '@lm/reformer', load: () => import('@lm/reformer') },
  { name: '@lm/chatglm', load: () => import('@lm/chatglm') },
];

export class RegistryError extends Error {
  override name = 'RegistryError';
}

/** The `conformance` export of a loaded module, checked; null when the module has none. */
export function familyOf(mod: unknown, from: string): ConformanceFamily | null {
  const value = (mod as { conformance?: unknown } | null)?.conformance;
  if (value === undefined) return null;
  const f = value as Partial<ConformanceFamily> | null;
  if (typeof f !== 'object' || f === null || typeof f.family !== 'string' || typeof f.classes !== 'object' || f.classes === null) {
    throw new RegistryError(`${from}: \`conformance\` is not a ConformanceFamily ({ family: string, classes: { [class]: runner } })`);
  }
  for (const [cls, runner] of Object.entries(f.classes)) {
    if (typeof runner !== 'function') throw new RegistryError(`${from}: conformance.classes.${cls} is not a function`);
  }
  return f as ConformanceFamily;
}

/** Every family the listed packages export (packages without a `conformance` export are left out). */
export async function loadFamilies(packages: readonly FamilyPackage[] = FAMILY_PACKAGES): Promise<ConformanceFamily[]> {
  const families: ConformanceFamily[] = [];
  for (const pkg of packages) {
    let mod: unknown;
    try {
      mod = await pkg.load();
    } catch (e) {
      throw new RegistryError(`cannot import ${pkg.name} (run \`pnpm build\` first?): ${e instanceof Error ? e.message : String(e)}`);
    }
    const family = familyOf(mod, pkg.name);
    if (family) families.push(family);
  }
  return families;
}

/** Class name -> { family, runner }; a class registered by two families is an error. */
export function classTable(families: readonly ConformanceFamily[]): Map<string, { family: string; run: ConformanceFamily['classes'][string] }> {
  const table = new Map<string, { family: string; run: ConformanceFamily['classes'][string] }>();
  for (const f of families) {
    for (const [cls, run] of Object.entries(f.classes)) {
      const prev = table.get(cls);
      if (prev) throw new RegistryError(`class ${cls} is registered by two families: ${prev.family} and ${f.family}`);
      table.set(cls, { family: f.family, run });
    }
  }
  return table;
}
