// Fill-mask results: for each [MASK], the top-k tokens with their probabilities as bars. Each row
// carries data-token-id / data-token / data-score (full precision) for the browser test.
import { bars } from '../../ui/bars.js';
import { h } from '../../ui/dom.js';
import type { FillMaskResult } from './tasks.js';

export function fillMaskView(result: FillMaskResult): HTMLElement {
  const many = result.masks.length > 1;
  return h(
    'div',
    { class: 'fill-mask-masks' },
    result.masks.map((mask, i) => {
      const best = mask.candidates[0];
      return h(
        'div',
        { class: 'fill-mask-mask', dataset: { position: String(mask.position) } },
        many ? h('h4', null, `mask ${i + 1} (token ${mask.position})`) : null,
        bars(
          mask.candidates.map((c) => ({
            label: c.tokenStr,
            value: c.score,
            title: c.sequence,
            dataset: { tokenId: String(c.token), token: c.tokenStr, score: String(c.score) },
          })),
          { className: 'fill-mask-bars' },
        ),
        best ? h('p', { class: 'sequence' }, '→ ', h('span', null, best.sequence)) : null,
      );
    }),
  );
}
