// Every path to a weight must reach the same live tensor: the check behind "the registry is the only
// holder of weights" (docs/decisions/0004-registry-holds-every-weight.md), for any model's tests.

import type { Tensor } from '@lm/tensor-gpu';
import type { Module } from '../module.js';

export interface WeightPathOptions {
  /** Groups of state-dict keys that must be one tensor (tied weights), e.g. [['decoder.weight', 'word_embeddings.weight']]. */
  tied?: readonly (readonly string[])[];
}

/**
 * The disagreements between the paths to each weight of `root`, as lines naming the key (empty when
 * every path agrees). For every `stateDict()` key it compares the tensor with the accessor chain
 * (`root.bert.embeddings.word_embeddings.weight`), `getSubmodule(path).getParameter|getBuffer(name)`
 * and `namedParameters` / `namedBuffers` (without de-duplication); a disposed tensor and a broken
 * tie are reported too.
 */
export function weightPathProblems(root: Module, options: WeightPathOptions = {}): string[] {
  const problems: string[] = [];
  const stateDict = root.stateDict();
  const parameters = new Map(root.namedParameters('', { removeDuplicate: false }));
  const buffers = new Map(root.namedBuffers('', { removeDuplicate: false }));
  for (const [key, t] of stateDict) {
    if (t.disposed) problems.push(`${key}: disposed`);
    const isParameter = parameters.has(key);
    const listed = isParameter ? parameters.get(key) : buffers.get(key);
    if (listed !== t) problems.push(`${key}: ${isParameter ? 'namedParameters' : 'namedBuffers'} gives ${describe(listed)}`);
    const parts = key.split('.');
    const name = parts.pop()!;
    try {
      const owner = root.getSubmodule(parts.join('.'));
      const got = isParameter ? owner.getParameter(name) : owner.getBuffer(name);
      if (got !== t) problems.push(`${key}: getSubmodule('${parts.join('.')}').${isParameter ? 'getParameter' : 'getBuffer'}('${name}') gives ${describe(got)}`);
    } catch (e) {
      problems.push(`${key}: ${(e as Error).message}`);
    }
    let node: unknown = root;
    for (const part of [...parts, name]) node = node == null ? undefined : (node as Record<string, unknown>)[part];
    if (node !== t) problems.push(`${key}: the accessor chain gives ${describe(node)}`);
  }
  for (const group of options.tied ?? []) {
    const tensors = group.map((k) => stateDict.get(k));
    if (tensors.some((t) => t === undefined)) problems.push(`tied ${group.join(' = ')}: missing ${group.filter((_, i) => !tensors[i]).join(', ')}`);
    else if (tensors.some((t) => t !== tensors[0])) problems.push(`tied ${group.join(' = ')}: not one tensor`);
  }
  return problems;
}

function describe(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  const t = value as Tensor;
  return typeof t === 'object' && 'shape' in t ? `another tensor [${t.shape.join(',')}]${t.disposed ? ' (disposed)' : ''}` : typeof value;
}
