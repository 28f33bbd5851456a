// Finding case folders and reading one case (../shared/fixtures/README.md is the format's spec).

import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { isFloatDType, openCheckpoint } from '@lm/dist-ckpt';
import type { HostArray, TensorData } from '@lm/dist-ckpt';
import type { ConformanceCase } from '@lm/layers/testing';

/** A case folder and its display name `<family>/<case>`. */
export interface CaseRef {
  dir: string;
  label: string;
}

/** A folder that could not be searched (missing, not a folder, no cases below it). */
export interface DiscoveryProblem {
  label: string;
  dir: string;
  message: string;
}

export class CaseReadError extends Error {
  override name = 'CaseReadError';
}

const SKIP_DIRS = new Set(['node_modules']);

/**
 * The cases under `arg`: the folder itself when it holds case.json, else every folder below it that
 * holds one (recursively; a case folder is not searched further), in name order. A case is named by
 * its path from the parent of `arg`: `megatron-bert/relu` for `fixtures/megatron-bert` and for
 * `fixtures/megatron-bert/relu` alike.
 */
export async function discoverCases(arg: string): Promise<{ cases: CaseRef[]; problem?: DiscoveryProblem }> {
  const root = resolve(arg);
  const rootLabel = basename(root);
  let st;
  try {
    st = await stat(root);
  } catch {
    return { cases: [], problem: { label: arg, dir: root, message: `no such folder: ${root}` } };
  }
  if (!st.isDirectory()) return { cases: [], problem: { label: arg, dir: root, message: `not a folder: ${root}` } };
  if (existsSync(join(root, 'case.json'))) {
    return { cases: [{ dir: root, label: `${basename(dirname(root))}/${rootLabel}` }] };
  }
  const cases: CaseRef[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.') || SKIP_DIRS.has(e.name)) continue;
      const path = join(dir, e.name);
      const isDir = e.isDirectory() || (e.isSymbolicLink() && (await stat(path).catch(() => null))?.isDirectory());
      if (!isDir) continue;
      if (existsSync(join(path, 'case.json'))) {
        cases.push({ dir: path, label: `${rootLabel}/${relative(root, path).split(sep).join('/')}` });
      } else {
        await walk(path);
      }
    }
  };
  await walk(root);
  if (cases.length === 0) {
    return { cases, problem: { label: arg, dir: root, message: `no case folders (with case.json) below ${root}` } };
  }
  return { cases };
}

export type CaseSpec = ConformanceCase['spec'] & {
  atol: number;
  rtol: number;
  grad_atol?: number;
  grad_rtol?: number;
};

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new CaseReadError(`${what}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CaseReadError(`${what}: invalid JSON: ${(e as Error).message}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** case.json, parsed and checked against the fields the runner relies on. */
export async function readCaseSpec(dir: string): Promise<CaseSpec> {
  const spec = await readJson(join(dir, 'case.json'), 'case.json');
  if (!isObject(spec)) throw new CaseReadError('case.json: not a JSON object');
  const bad = (msg: string) => new CaseReadError(`case.json: ${msg}`);
  if (typeof spec.class !== 'string' || spec.class === '') throw bad('"class" must be a non-empty string');
  if (!isStringArray(spec.outputs) || spec.outputs.length === 0) throw bad('"outputs" must be a non-empty list of names');
  if (new Set(spec.outputs).size !== spec.outputs.length) throw bad('"outputs" lists a name twice');
  for (const key of ['atol', 'rtol'] as const) {
    if (typeof spec[key] !== 'number' || !(spec[key] >= 0)) throw bad(`"${key}" must be a number >= 0`);
  }
  for (const key of ['grad_atol', 'grad_rtol'] as const) {
    if (spec[key] !== undefined && (typeof spec[key] !== 'number' || !(spec[key] >= 0))) throw bad(`"${key}" must be a number >= 0`);
  }
  for (const key of ['inputs', 'kwargs', 'init_kwargs'] as const) {
    if (spec[key] !== undefined && !isObject(spec[key])) throw bad(`"${key}" must be an object`);
  }
  if (spec.tensor_inputs !== undefined && !isStringArray(spec.tensor_inputs)) throw bad('"tensor_inputs" must be a list of names');
  return spec as CaseSpec;
}

/** config.json ({} when the case has none). */
export async function readCaseConfig(dir: string): Promise<ConformanceCase['config']> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) return {};
  const config = await readJson(path, 'config.json');
  if (!isObject(config)) throw new CaseReadError('config.json: not a JSON object');
  return config as ConformanceCase['config'];
}

async function readSafetensors(path: string, file: string, names: readonly string[] | null, role: string): Promise<Map<string, TensorData<HostArray>>> {
  if (!existsSync(path)) throw new CaseReadError(`${file}: missing`);
  let ckpt;
  try {
    ckpt = await openCheckpoint(path);
  } catch (e) {
    throw new CaseReadError(`${file}: ${(e as Error).message}`);
  }
  try {
    const wanted = names ?? ckpt.tensors.map((t) => t.name);
    const missing = wanted.filter((n) => !ckpt.has(n));
    if (missing.length) throw new CaseReadError(`${file}: no tensor ${missing.map((n) => `'${n}'`).join(', ')} (named in case.json "${role}")`);
    const out = new Map<string, TensorData<HostArray>>();
    for (const name of wanted) {
      try {
        out.set(name, await ckpt.readTensor(name, { as: 'host' }));
      } catch (e) {
        throw new CaseReadError(`${file}: ${(e as Error).message}`);
      }
    }
    return out;
  } finally {
    await ckpt.close();
  }
}

/**
 * expected.safetensors: every name in `outputs` must be there, and nothing else (the format says
 * `outputs` lists every name in the file).
 */
export async function readExpected(dir: string, spec: CaseSpec): Promise<Map<string, TensorData<HostArray>>> {
  const expected = await readSafetensors(join(dir, 'expected.safetensors'), 'expected.safetensors', null, 'outputs');
  const missing = spec.outputs.filter((n) => !expected.has(n));
  if (missing.length) {
    throw new CaseReadError(`expected.safetensors: no tensor ${missing.map((n) => `'${n}'`).join(', ')} (named in case.json "outputs")`);
  }
  const extra = [...expected.keys()].filter((n) => !spec.outputs.includes(n));
  if (extra.length) {
    throw new CaseReadError(`expected.safetensors: ${extra.map((n) => `'${n}'`).join(', ')} not listed in case.json "outputs"`);
  }
  return expected;
}

/**
 * inputs.safetensors as host arrays: the names in `tensor_inputs` (each must be there), or every
 * tensor when case.json has no `tensor_inputs`; empty when there is neither list nor file.
 */
export async function readTensorInputs(dir: string, spec: CaseSpec): Promise<Map<string, TensorData<HostArray>>> {
  const path = join(dir, 'inputs.safetensors');
  const names = spec.tensor_inputs ?? null;
  if (names === null && !existsSync(path)) return new Map();
  if (names !== null && names.length === 0) return new Map();
  return readSafetensors(path, 'inputs.safetensors', names, 'tensor_inputs');
}

/** The @lm/tensor-gpu dtype a safetensors tensor is uploaded as: floats -> float32, BOOL -> bool, ints -> int32. */
export function uploadDType(dtype: TensorData['dtype']): 'float32' | 'int32' | 'bool' {
  if (isFloatDType(dtype)) return 'float32';
  return dtype === 'BOOL' ? 'bool' : 'int32';
}
