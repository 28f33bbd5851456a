// Worker side: model_type -> the family's runtime, loaded on demand (each is its own chunk).
import type { FamilyRuntime } from './types.js';

const RUNTIMES: Record<string, () => Promise<FamilyRuntime>> = {
  chatglm: async () => (await import('./chatglm/runtime.js')).chatglmRuntime,
  'megatron-bert': async () => (await import('./megatron-bert/runtime.js')).megatronBertRuntime,
  realm: async () => (await import('./realm/runtime.js')).realmRuntime,
  reformer: async () => (await import('./reformer/runtime.js')).reformerRuntime,
  t5: async () => (await import('./t5/runtime.js')).t5Runtime,
};

export const SUPPORTED_MODEL_TYPES = Object.keys(RUNTIMES);

export class UnsupportedModelError extends Error {
  override name = 'UnsupportedModelError';
}

export async function runtimeFor(modelType: unknown): Promise<FamilyRuntime> {
  const load = typeof modelType === 'string' ? RUNTIMES[modelType] : undefined;
  if (!load) {
    const got = typeof modelType === 'string' ? `model_type "${modelType}"` : 'config.json has no model_type';
    throw new UnsupportedModelError(`${got}: the playground runs ${SUPPORTED_MODEL_TYPES.map((t) => `"${t}"`).join(', ')} models today`);
  }
  return load();
}
