// The decoding settings of the panels that generate text (T5, ChatGLM): how to pick the next token
// (greedy, beam search, sampling: those the family offers), with each mode's own options shown only in
// that mode, and sampling's temperature / top-k / top-p / seed. Test ids are `<prefix>-mode`,
// `<prefix>-temperature`, `<prefix>-top-k`, `<prefix>-top-p`, `<prefix>-seed`.
import { h } from './dom.js';
import { labelled, numberInput, numberValue } from './panel-parts.js';

export type DecodingMode = 'greedy' | 'beam' | 'sample';

const MODE_LABELS: Record<DecodingMode, string> = { greedy: 'greedy', beam: 'beam search', sample: 'sampling' };

/**
 * The mode selector over `modes` (the first is the default); `options[mode]` is shown while that mode
 * is selected and hidden otherwise.
 */
export function decodingSelect(prefix: string, modes: readonly DecodingMode[], options: Partial<Record<DecodingMode, HTMLElement>>): HTMLSelectElement {
  const select = h('select', { 'data-testid': `${prefix}-mode`, 'aria-label': 'decoding' }, modes.map((m) => h('option', { value: m }, MODE_LABELS[m])));
  const show = () => {
    for (const [mode, el] of Object.entries(options)) el.hidden = select.value !== mode;
  };
  select.onchange = show;
  show();
  return select;
}

export interface SamplingSettings {
  temperature: number;
  /** Absent where the family's sampling has no top-k (ChatGLM's chat samples with top-p only). */
  topK?: number;
  topP: number;
  seed: number;
}

/** Sampling's fields, with `defaults` (a top-k field only when it has a default); `read()` gives their values. */
export function samplingInputs(prefix: string, defaults: SamplingSettings): { element: HTMLElement; read(): SamplingSettings } {
  const temperature = numberInput(`${prefix}-temperature`, 'temperature', defaults.temperature, { min: 0.01, max: 5, step: 0.05 });
  const topK = defaults.topK === undefined ? null : numberInput(`${prefix}-top-k`, 'top-k (0: off)', defaults.topK, { min: 0, max: 10000 });
  const topP = numberInput(`${prefix}-top-p`, 'top-p', defaults.topP, { min: 0.01, max: 1, step: 0.05 });
  const seed = numberInput(`${prefix}-seed`, 'seed', defaults.seed, { min: 0, max: 1000000 });
  const element = h('span', { class: 'decoding-options' }, labelled('temperature', temperature), topK && labelled('top-k', topK), labelled('top-p', topP), labelled('seed', seed));
  return {
    element,
    read: () => ({
      temperature: numberValue(temperature, defaults.temperature),
      ...(topK && { topK: numberValue(topK, defaults.topK!) }),
      topP: numberValue(topP, defaults.topP),
      seed: numberValue(seed, defaults.seed),
    }),
  };
}
