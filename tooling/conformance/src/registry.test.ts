import { describe, expect, it } from 'vitest';
import { conformance as fake } from '../test/fake-family.mjs';
import { classTable, FAMILY_PACKAGES, loadFamilies, RegistryError } from './registry.js';

describe('registry', () => {
  it('takes the `conformance` export of each package; a package without one contributes nothing', async () => {
    const families = await loadFamilies([
      { name: 'with', load: async () => ({ conformance: fake }) },
      { name: 'without', load: async () => ({ SomeConfig: class {} }) },
    ]);
    expect(families.map((f) => f.family)).toEqual(['fake']);
  });
  it('refuses a malformed export and a package that cannot be imported', async () => {
    await expect(loadFamilies([{ name: 'bad', load: async () => ({ conformance: { family: 'x' } }) }])).rejects.toThrow(
      /bad: `conformance` is not a ConformanceFamily/,
    );
    await expect(
      loadFamilies([{ name: 'bad', load: async () => ({ conformance: { family: 'x', classes: { A: 1 } } }) }]),
    ).rejects.toThrow('bad: conformance.classes.A is not a function');
    await expect(
      loadFamilies([{ name: '@lm/nope', load: () => Promise.reject(new Error('Cannot find module')) }]),
    ).rejects.toThrow(RegistryError);
  });
  it('a class registered by two families is an error', () => {
    expect(() => classTable([fake, { ...fake, family: 'other' }])).toThrow(/class \w+ is registered by two families: fake and other/);
  });
  it('every listed model package imports', async () => {
    const families = await loadFamilies(FAMILY_PACKAGES);
    classTable(families);
    expect(FAMILY_PACKAGES.map((p) => p.name)).toContain('@lm/megatron-bert');
  });
});
