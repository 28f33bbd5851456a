// The conformance suite every model config runs: defaults equal the reference's, and every shared
// fixture's config.json survives fromJSON -> toJSON with each key read into a typed field. The test
// framework is passed in, so this module does not depend on one.

import type { JsonObject } from '../pretrained-config.js';
import { nodeFs } from './node-fs.js';

export interface ConfigClassUnderTest {
  new (): { toJSON(): JsonObject };
  fromJSON(json: JsonObject): { toJSON(): JsonObject };
  /** camelCase field -> reference snake_case key. */
  readonly fields: Record<string, string>;
}

export interface ConfigSuiteSpec {
  ConfigClass: ConfigClassUnderTest;
  /** The `model_type` toJSON writes (undefined when the reference writes none). */
  modelType: string | undefined;
  /** The reference's defaults as config.json keys and values. */
  defaults: JsonObject;
  /** Fixture family folders whose case config.json files this class reads. */
  families: string[];
  /** The shared fixtures folder (findSharedFixtures(import.meta.url)), or null to skip the round trips. */
  fixtures: string | null;
  /** config.json keys that are not config fields (kept verbatim), e.g. megatron-t5's `function`. */
  untypedKeys?: string[];
}

export interface TestApi {
  describe: { (name: string, fn: () => void): void; skipIf(cond: boolean): (name: string, fn: () => void) => void };
  it: (name: string, fn: () => void) => void;
  expect: (value: unknown) => { toBe(v: unknown): void; toEqual(v: unknown): void; toBeGreaterThan(v: number): void; toBeUndefined(): void };
}

/** Every `<family>/<case>/config.json` under the fixtures folder. */
export function fixtureConfigs(fixtures: string, families: readonly string[]): { name: string; json: JsonObject }[] {
  const fs = nodeFs();
  return families.flatMap((family) => {
    const dir = `${fixtures}/${family}`;
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .filter((name) => fs.existsSync(`${dir}/${name}/config.json`))
      .sort()
      .map((name) => ({ name: `${family}/${name}`, json: JSON.parse(fs.readFileSync(`${dir}/${name}/config.json`, 'utf8')) as JsonObject }));
  });
}

export function describeConfigSuite(t: TestApi, spec: ConfigSuiteSpec): void {
  const { ConfigClass, modelType, defaults } = spec;
  const name = ConfigClass.name;
  t.describe(`${name} defaults`, () => {
    t.it('equal the reference', () => {
      const json = new ConfigClass().toJSON();
      if (modelType === undefined) t.expect(json.model_type).toBeUndefined();
      else t.expect(json.model_type).toBe(modelType);
      for (const [key, value] of Object.entries(defaults)) t.expect([key, json[key]]).toEqual([key, value]);
      // Every typed field has a reference default listed.
      const written = Object.keys(json).filter((k) => k !== 'model_type');
      t.expect(written.sort()).toEqual(Object.keys(defaults).sort());
    });
  });

  const cases = spec.fixtures ? fixtureConfigs(spec.fixtures, spec.families) : [];
  t.describe.skipIf(!spec.fixtures)(`${name} round trip of every shared fixture config.json`, () => {
    t.it('finds fixtures', () => t.expect(cases.length).toBeGreaterThan(0));
    for (const { name: caseName, json } of cases) {
      t.it(caseName, () => {
        const config = ConfigClass.fromJSON(json);
        const back = config.toJSON();
        for (const [key, value] of Object.entries(json)) t.expect([key, back[key]]).toEqual([key, value]);
        t.expect(ConfigClass.fromJSON(back).toJSON()).toEqual(back);
        // Every key the reference wrote is a typed field, read into its camelCase name.
        const typed = new Set(Object.values(ConfigClass.fields));
        const allowed = new Set(['model_type', ...(spec.untypedKeys ?? [])]);
        t.expect(Object.keys(json).filter((k) => !typed.has(k) && !allowed.has(k))).toEqual([]);
        for (const [field, key] of Object.entries(ConfigClass.fields)) {
          if (key in json) t.expect([key, (config as unknown as Record<string, unknown>)[field]]).toEqual([key, json[key]]);
        }
      });
    }
  });
}
