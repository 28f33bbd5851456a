// Page side: model_type -> the family's panel, loaded on demand (each is its own chunk).
import type { FamilyPanel } from './types.js';

const PANELS: Record<string, () => Promise<FamilyPanel>> = {
  chatglm: async () => (await import('./chatglm/panel.js')).chatglmPanel,
  'megatron-bert': async () => (await import('./megatron-bert/panel.js')).megatronBertPanel,
  realm: async () => (await import('./realm/panel.js')).realmPanel,
  reformer: async () => (await import('./reformer/panel.js')).reformerPanel,
  t5: async () => (await import('./t5/panel.js')).t5Panel,
};

export async function panelFor(modelType: string): Promise<FamilyPanel | null> {
  const load = PANELS[modelType];
  return load ? load() : null;
}
