// Horizontal probability bars: one row per candidate, label, bar and value.
import { h } from './dom.js';

export interface Bar {
  label: string;
  /** 0..1 */
  value: number;
  title?: string;
  dataset?: Record<string, string>;
}

export function bars(rows: Bar[], options: { className?: string; format?: (v: number) => string } = {}): HTMLElement {
  const format = options.format ?? ((v: number) => `${(v * 100).toFixed(v >= 0.1 ? 1 : 2)}%`);
  const max = Math.max(1e-12, ...rows.map((r) => r.value));
  return h(
    'ol',
    { class: `bars ${options.className ?? ''}` },
    rows.map((row) =>
      h(
        'li',
        { title: row.title, dataset: row.dataset },
        h('span', { class: 'bar-label' }, row.label),
        h('span', { class: 'bar-track' }, h('span', { class: 'bar-fill', style: { width: `${(100 * row.value) / max}%` } })),
        h('span', { class: 'bar-value' }, format(row.value)),
      ),
    ),
  );
}
