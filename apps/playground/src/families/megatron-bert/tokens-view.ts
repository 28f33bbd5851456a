// Token and embedding inspection: every token with its id and type, the norms of its word and position
// embeddings (as bars), the norm of its hidden state after the embeddings and after each layer (as
// cells), and the first components of its word embedding as coloured cells. Selecting a token lists its
// nearest vocabulary entries by cosine.
import { h } from '../../ui/dom.js';
import type { InspectResult } from './tasks.js';

function normBar(value: number, max: number): HTMLElement {
  return h(
    'span',
    { class: 'norm', title: value.toFixed(4) },
    h('span', { class: 'bar-track small' }, h('span', { class: 'bar-fill', style: { width: `${(100 * value) / Math.max(max, 1e-12)}%` } })),
    h('span', { class: 'num' }, value.toFixed(2)),
  );
}

/** Diverging colour for an embedding component: red negative, blue positive, scaled by `scale`. */
function componentCell(v: number, scale: number): HTMLElement {
  const t = Math.max(-1, Math.min(1, v / Math.max(scale, 1e-12)));
  const a = Math.abs(t);
  const rgb = t >= 0 ? [255 - a * 200, 255 - a * 150, 255] : [255, 255 - a * 170, 255 - a * 170];
  return h('td', { class: 'cell', title: v.toFixed(5), style: { background: `rgb(${rgb.map(Math.round).join(',')})` } });
}

function hiddenCell(value: number, max: number, stage: number): HTMLElement {
  const t = value / Math.max(max, 1e-12);
  return h('td', { class: 'cell wide', title: `${stage === 0 ? 'after the embeddings' : `after layer ${stage}`}: ${value.toFixed(3)}`, style: { background: `rgba(47, 109, 181, ${(0.15 + 0.85 * t).toFixed(3)})` } });
}

export function tokensView(result: InspectResult, selected: number | null, onSelect: (index: number) => void): HTMLElement {
  const maxWord = Math.max(...result.wordNorms);
  const maxPos = result.positionNorms ? Math.max(...result.positionNorms) : 0;
  const stages = result.hiddenNorms.length; // embeddings output, then each layer
  const maxHidden = result.hiddenNorms.map((row) => Math.max(...row));
  const dims = result.embeddingPreview[0]?.length ?? 0;
  const scale = Math.max(...result.embeddingPreview.flat().map(Math.abs));
  return h(
    'table',
    { class: 'tokens', 'data-testid': 'tokens' },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', null, '#'),
        h('th', null, 'token'),
        h('th', null, 'id'),
        h('th', null, 'type'),
        h('th', null, '‖word emb‖'),
        result.positionNorms ? h('th', null, '‖pos emb‖') : null,
        h('th', { colspan: stages, title: 'after the embeddings, then after each layer (coloured per stage)' }, `‖hidden‖ emb, L1…L${stages - 1}`),
        h('th', { colspan: dims }, `word emb [0:${dims}] of ${result.hiddenSize}`),
      ),
    ),
    h(
      'tbody',
      null,
      result.tokens.map((t, i) =>
        h(
          'tr',
          { class: `${t.special ? 'special' : ''}${selected === i ? ' selected' : ''}`, onclick: () => onSelect(i), title: 'show the nearest tokens' },
          h('td', { class: 'num' }, String(i)),
          h('td', null, h('code', null, t.token)),
          h('td', { class: 'num' }, String(t.id)),
          h('td', { class: 'num' }, String(t.typeId)),
          h('td', null, normBar(result.wordNorms[i], maxWord)),
          result.positionNorms ? h('td', null, normBar(result.positionNorms[i], maxPos)) : null,
          result.hiddenNorms.map((row, l) => hiddenCell(row[i], maxHidden[l], l)),
          result.embeddingPreview[i].map((v) => componentCell(v, scale)),
        ),
      ),
    ),
  );
}
