// Package tests of tokenizer class runners on the tokenizer fixture families (Node only: files are read
// through `process.getBuiltinModule`, so importing this entry pulls no Node built-in into a bundle).
// A test lists the cases of its class, runs each through the registered runner, and compares
// everything the conformance runner compares (case.json's JSON expectations and every output of
// expected.safetensors) with one `toEqual`, which names the first difference.

import type { Backend } from '@lm/tensor-gpu';
import type { ConformanceCase, ConformanceClassRunner, HostOutput } from './conformance.js';
import { readExpectedOutputs } from './tokenizer-cases.js';
import { nodeFs } from './node-fs.js';

/** A case folder as the conformance runner hands it to a class runner (no tensor inputs: tokenizer cases have none). */
export function readConformanceCase(dir: string, backend: Backend): ConformanceCase {
  const fs = nodeFs();
  const read = (name: string) => JSON.parse(fs.readFileSync(`${dir}/${name}`, 'utf8')) as Record<string, unknown>;
  const config = fs.existsSync(`${dir}/config.json`) ? (read('config.json') as ConformanceCase['config']) : {};
  return { dir, spec: read('case.json') as ConformanceCase['spec'], config, tensorInputs: new Map(), backend };
}

/** The case folders under `familyDir` whose case.json `class` is `cls`, sorted; none when the folder is missing. */
export function fixtureCasesOf(familyDir: string | null, cls: string): string[] {
  const fs = nodeFs();
  if (familyDir === null || !fs.existsSync(familyDir)) return [];
  return fs
    .readdirSync(familyDir)
    .filter((d) => fs.existsSync(`${familyDir}/${d}/case.json`) && (JSON.parse(fs.readFileSync(`${familyDir}/${d}/case.json`, 'utf8')) as { class?: unknown }).class === cls)
    .sort();
}

/**
 * Runs a tokenizer case and returns what it produced next to what the fixture holds, in one shape:
 * `{ values: { expected_ids, decode_expected? }, outputs: { name: [shape, values] } }` for every
 * output case.json lists.
 */
export async function tokenizerCaseResults(c: ConformanceCase, runner: ConformanceClassRunner): Promise<{ actual: unknown; expected: unknown }> {
  const result = await runner(c);
  if (result instanceof Map) throw new Error(`${c.dir}: a tokenizer runner returns { outputs, values }`);
  const { outputs, values } = result as { outputs: Map<string, HostOutput>; values: Record<string, unknown> };
  const want = await readExpectedOutputs(c.dir);
  const pick = (map: Map<string, HostOutput>) => Object.fromEntries(c.spec.outputs.map((name) => [name, map.has(name) ? [map.get(name)!.shape, Array.from(map.get(name)!.data)] : null]));
  const fields = ['expected_ids', 'decode_expected'].filter((f) => c.spec[f] !== undefined);
  return {
    actual: { values: Object.fromEntries(fields.map((f) => [f, values[f]])), outputs: pick(outputs) },
    expected: { values: Object.fromEntries(fields.map((f) => [f, c.spec[f]])), outputs: pick(want) },
  };
}
