// The attention view: a layer and a head selector (or the mean over heads), the selected head's
// attention probabilities as a heatmap over the tokens (rows: the attending token, columns: the token
// attended to), and a thumbnail of every head in the layer to jump between them. Each map is coloured
// from 0 to its own largest value, or 2/n when larger (the legend shows the scale).
import { clear, h } from '../../ui/dom.js';
import { heatmap, legend, thumbnail } from '../../ui/heatmap.js';
import type { InspectResult } from './tasks.js';

export interface AttentionSelection {
  layer: number;
  /** A head index, or -1 for the mean over heads. */
  head: number;
}

function matrix(att: InspectResult['attentions'], layer: number, head: number): Float32Array {
  const { heads, seq, data } = att;
  const size = seq * seq;
  if (head >= 0) return data.subarray((layer * heads + head) * size, (layer * heads + head + 1) * size);
  const mean = new Float32Array(size);
  for (let k = 0; k < heads; k++) {
    const offset = (layer * heads + k) * size;
    for (let i = 0; i < size; i++) mean[i] += data[offset + i] / heads;
  }
  return mean;
}

export function attentionView(result: InspectResult, selection: AttentionSelection, onSelect: (s: AttentionSelection) => void): HTMLElement {
  const att = result.attentions;
  const labels = result.tokens.map((t) => t.token);
  const layer = Math.min(selection.layer, att.layers - 1);
  const head = Math.min(selection.head, att.heads - 1);
  const readout = h('p', { class: 'readout muted' }, 'hover a cell: attending token → attended token');

  const layerSelect = h(
    'select',
    { 'data-testid': 'attention-layer', onchange: () => onSelect({ layer: Number(layerSelect.value), head }) },
    Array.from({ length: att.layers }, (_, l) => h('option', { value: String(l), selected: l === layer }, `layer ${l + 1}`)),
  );
  const headSelect = h(
    'select',
    { 'data-testid': 'attention-head', onchange: () => onSelect({ layer, head: Number(headSelect.value) }) },
    h('option', { value: '-1', selected: head === -1 }, 'mean of heads'),
    Array.from({ length: att.heads }, (_, k) => h('option', { value: String(k), selected: k === head }, `head ${k + 1}`)),
  );
  const values = matrix(att, layer, head);
  // Colours run from 0 to the largest probability shown (at least twice the uniform weight 2/n, so a
  // head that attends evenly reads as pale and even rather than saturated).
  const peak = (m: Float32Array) => m.reduce((a, b) => Math.max(a, b), Math.min(1, 2 / att.seq));
  const scale = peak(values);
  const map = heatmap({
    scale,
    rowLabels: labels,
    colLabels: labels,
    values,
    onHover: (cell) => {
      clear(readout, cell ? `${labels[cell.row]} → ${labels[cell.col]}: ${cell.value.toFixed(3)}` : 'hover a cell: attending token → attended token');
    },
  });
  const thumbs = h(
    'div',
    { class: 'thumbs' },
    [-1, ...Array.from({ length: att.heads }, (_, k) => k)].map((k) =>
      h(
        'button',
        { class: `thumb-button${k === head ? ' selected' : ''}`, title: k === -1 ? 'mean of heads' : `head ${k + 1}`, onclick: () => onSelect({ layer, head: k }) },
        thumbnail(matrix(att, layer, k), att.seq, 56, peak(matrix(att, layer, k))),
        h('span', null, k === -1 ? 'mean' : `h${k + 1}`),
      ),
    ),
  );
  return h(
    'div',
    { class: 'attention', 'data-testid': 'attention', dataset: { layer: String(layer), head: String(head) } },
    h('div', { class: 'controls' }, h('label', null, 'Layer ', layerSelect), h('label', null, 'Head ', headSelect), legend(scale)),
    h('div', { class: 'attention-body' }, h('div', { class: 'heatmap-wrap' }, map, readout), thumbs),
  );
}
