// The MegatronBERT panel: fill-mask (top-k tokens and probabilities), the attention of every layer and
// head over the same input, and token / embedding inspection. Both tasks run in the worker on each
// submit; only the latest submit's answers are shown.
import { bars } from '../../ui/bars.js';
import { clear, h } from '../../ui/dom.js';
import { busy, card, errorBox, exampleChips, initialText, inputForm, statusLine, textInput } from '../../ui/panel-parts.js';
import type { FamilyPanel, ModelSession } from '../types.js';
import { attentionView, type AttentionSelection } from './attention-view.js';
import { fillMaskView } from './fill-mask-view.js';
import type { FillMaskResult, InspectResult, NeighboursResult } from './tasks.js';
import { tokensView } from './tokens-view.js';

const TOP_K = [3, 5, 10, 20];

export const megatronBertPanel: FamilyPanel = {
  modelType: 'megatron-bert',
  mount(root: HTMLElement, session: ModelSession) {
    const mask = session.summary.maskToken ?? '[MASK]';
    const input = textInput('fill-mask-input', 'text with a mask token', initialText(session.examples, `The capital of France is ${mask}.`));
    const topK = h(
      'select',
      { 'data-testid': 'fill-mask-topk', 'aria-label': 'top k' },
      TOP_K.map((k) => h('option', { value: String(k), selected: k === 5 }, `top ${k}`)),
    );
    const runButton = h('button', { type: 'submit', class: 'primary', 'data-testid': 'fill-mask-run' }, 'Fill mask');
    const status = statusLine();
    const results = h('div', { class: 'fill-mask-results', 'data-testid': 'fill-mask', dataset: { state: 'idle' } });
    const attention = h('div', { class: 'attention-host' }, h('p', { class: 'muted' }, 'Run the model to see its attention.'));
    const tokens = h('div', { class: 'tokens-host' });
    const neighbours = h('div', { class: 'neighbours' });

    let runId = 0;
    let inspect: InspectResult | null = null;
    let selection: AttentionSelection = { layer: Number.MAX_SAFE_INTEGER, head: -1 }; // the last layer
    let selectedToken: number | null = null;

    const renderAttention = () => {
      if (inspect) clear(attention, attentionView(inspect, selection, (s) => ((selection = s), renderAttention())));
    };
    const renderTokens = () => {
      if (inspect) clear(tokens, tokensView(inspect, selectedToken, (i) => void selectToken(i)));
    };
    const selectToken = async (index: number) => {
      if (!inspect) return;
      selectedToken = index;
      renderTokens();
      const token = inspect.tokens[index];
      clear(neighbours, h('p', { class: 'muted' }, `nearest to ${token.token}…`));
      try {
        const near = await session.run<NeighboursResult>('neighbours', { tokenId: token.id, k: 8 });
        if (selectedToken !== index) return;
        clear(
          neighbours,
          h('h4', null, 'Nearest by word-embedding cosine to ', h('code', null, near.token)),
          bars(near.neighbours.map((n) => ({ label: n.token, value: Math.max(0, n.cosine), title: `cosine ${n.cosine.toFixed(4)}` })), {
            format: (v) => v.toFixed(3),
          }),
        );
      } catch (err) {
        clear(neighbours, errorBox(err));
      }
    };

    const run = async () => {
      const id = ++runId;
      const text = input.value;
      const k = Number(topK.value);
      results.dataset.state = 'running';
      results.dataset.text = text;
      runButton.disabled = true;
      busy(status, 'running in the worker…');
      const [fill, insp] = await Promise.allSettled([
        session.run<FillMaskResult>('fillMask', { text, topK: k }),
        session.run<InspectResult>('inspect', { text }),
      ]);
      if (id !== runId) return;
      runButton.disabled = false;
      if (fill.status === 'fulfilled') {
        clear(results, fillMaskView(fill.value));
        results.dataset.state = 'done';
      } else {
        clear(results, errorBox(fill.reason));
        results.dataset.state = 'error';
      }
      if (insp.status === 'fulfilled') {
        inspect = insp.value;
        selection = { layer: Math.min(selection.layer, inspect.attentions.layers - 1), head: selection.head };
        selectedToken = null;
        clear(neighbours, h('p', { class: 'muted' }, 'Click a token to list its nearest vocabulary entries.'));
        renderAttention();
        renderTokens();
      } else {
        inspect = null;
        clear(attention, errorBox(insp.reason));
        clear(tokens);
      }
      const times = [fill.status === 'fulfilled' ? `fill-mask ${fill.value.ms.toFixed(0)} ms` : null, insp.status === 'fulfilled' ? `attention + embeddings ${insp.value.ms.toFixed(0)} ms` : null];
      clear(status, times.filter(Boolean).join(' · '));
    };

    const form = inputForm(run, input, topK, runButton);
    const examples = exampleChips(session.examples, input, run);

    root.append(
      card(
        'Fill mask',
        `Write a sentence with ${mask}; the model ranks the vocabulary for each mask.`,
        form,
        examples,
        status,
        results,
      ),
      card('Attention', null, attention),
      card('Tokens and embeddings', null, h('div', { class: 'tokens-layout' }, tokens, neighbours)),
    );
    void run();
    return () => {
      runId++;
      root.replaceChildren();
    };
  },
};
