// The Reformer panel: generation from a prompt, streamed token by token through the cached decoding
// path, and a view of the LSH buckets (which positions share a bucket, per layer, head and hash round)
// beside the local-attention chunks. Both run in the worker; only the latest request's answers are shown.
import { clear, h } from '../../ui/dom.js';
import { busy, errorBox, exampleChips, initialText, inputForm, numberInput, statusLine, textInput } from '../../ui/panel-parts.js';
import type { FamilyPanel, ModelSession } from '../types.js';
import type { BucketsResult, GeneratePartial, GenerateResult, LayerBuckets } from './tasks.js';

/** A distinct colour per bucket (or chunk) index. */
const hue = (i: number, n: number) => `hsl(${Math.round((360 * i) / Math.max(1, n))} 70% 78%)`;

/** One row of cells, a cell per position, coloured and labelled by its group (bucket or chunk). */
function row(label: string, groups: number[], count: number, testid: string): HTMLElement {
  return h(
    'div',
    { class: 'bucket-row', 'data-testid': testid, dataset: { groups: groups.join(',') } },
    h('span', { class: 'bucket-row-label muted' }, label),
    groups.map((g, t) => h('span', { class: 'bucket-cell', title: `position ${t}: ${g}`, style: `background:${hue(g, count)}` }, String(g))),
  );
}

function layerView(layer: LayerBuckets, seq: number, head: number): HTMLElement {
  if (layer.type === 'local' || !layer.buckets) {
    const chunks = Array.from({ length: seq }, (_, t) => Math.floor(t / layer.chunkLength));
    return h(
      'div',
      { class: 'bucket-layer' },
      h('h4', null, `layer ${layer.layer}: local attention, chunks of ${layer.chunkLength} (each also sees ${layer.chunksBefore} before, ${layer.chunksAfter} after)`),
      row('chunk', chunks, Math.ceil(seq / layer.chunkLength), `chunks-${layer.layer}`),
    );
  }
  const rounds = layer.buckets[head];
  return h(
    'div',
    { class: 'bucket-layer' },
    h('h4', null, `layer ${layer.layer}: LSH, ${layer.numBuckets} buckets, ${rounds.length} hash round(s), sorted chunks of ${layer.chunkLength} — head ${head}`),
    rounds.map((b, r) => row(`round ${r}`, b, layer.numBuckets, `buckets-${layer.layer}-${r}`)),
  );
}

export const reformerPanel: FamilyPanel = {
  modelType: 'reformer',
  mount(root: HTMLElement, session: ModelSession) {
    const prompt = textInput('generate-input', 'prompt', initialText(session.examples, 'the capital of france is'));
    const maxNew = numberInput('generate-max', 'new tokens', 12, { min: 1, max: 256 });
    const sample = h('input', { type: 'checkbox', 'data-testid': 'generate-sample', 'aria-label': 'sample' });
    const runButton = h('button', { type: 'submit', class: 'primary', 'data-testid': 'generate-run' }, 'Generate');
    const status = statusLine();
    const output = h('div', { class: 'generate-output', 'data-testid': 'generate', dataset: { state: 'idle' } });
    const headSelect = h('select', { 'data-testid': 'buckets-head', 'aria-label': 'head' });
    const buckets = h('div', { class: 'buckets-host', 'data-testid': 'buckets', dataset: { state: 'idle' } });

    let runId = 0;
    let shown: BucketsResult | null = null;
    const renderBuckets = () => {
      if (!shown) return;
      const head = Number(headSelect.value || 0);
      const seq = shown.tokens.length;
      clear(
        buckets,
        h('p', { class: 'muted' }, shown.seeded ? 'hash_seed is set: these are the buckets the model attends with (LSH chunks them once the text is longer than a chunk; shorter texts attend to every position).' : 'No hash_seed: the rotations are drawn afresh on every call, so this is one draw of the buckets.'),
        h('div', { class: 'bucket-row' }, h('span', { class: 'bucket-row-label muted' }, 'token'), shown.tokens.map((tok) => h('span', { class: 'bucket-cell token' }, tok))),
        shown.layers.map((l) => layerView(l, seq, head)),
      );
      buckets.dataset.state = 'done';
    };
    headSelect.onchange = renderBuckets;

    const run = async () => {
      const id = ++runId;
      const text = prompt.value;
      output.dataset.state = 'running';
      output.dataset.text = text;
      buckets.dataset.state = 'running';
      runButton.disabled = true;
      const streamed = h('span', { class: 'generated', 'data-testid': 'generated' });
      clear(output, h('span', { class: 'prompt' }, text, ' '), streamed);
      busy(status, 'generating in the worker…');
      const generated = session.run<GenerateResult>(
        'generate',
        { prompt: text, maxNewTokens: Number(maxNew.value) || 12, doSample: sample.checked, temperature: 1, topK: 20, seed: 0 },
        (partial) => {
          if (id === runId) streamed.textContent = (partial as GeneratePartial).text;
        },
      );
      const [gen, bk] = await Promise.allSettled([generated, session.run<BucketsResult>('buckets', { text })]);
      if (id !== runId) return;
      runButton.disabled = false;
      if (gen.status === 'fulfilled') {
        streamed.textContent = gen.value.text;
        output.dataset.tokens = gen.value.tokens.join(',');
        output.dataset.state = 'done';
        clear(status, `${gen.value.tokens.length} tokens in ${gen.value.ms.toFixed(0)} ms (${gen.value.msPerToken.toFixed(1)} ms per token with past_buckets_states)`);
      } else {
        clear(output, errorBox(gen.reason));
        output.dataset.state = 'error';
        clear(status);
      }
      if (bk.status === 'fulfilled') {
        shown = bk.value;
        const heads = bk.value.layers.find((l) => l.buckets)?.buckets?.length ?? 1;
        clear(headSelect, Array.from({ length: heads }, (_, i) => h('option', { value: String(i) }, `head ${i}`)));
        renderBuckets();
      } else {
        shown = null;
        clear(buckets, errorBox(bk.reason));
        buckets.dataset.state = 'error';
      }
    };

    const form = inputForm(run, prompt, maxNew, h('label', { class: 'muted' }, sample, ' sample'), runButton);
    const examples = exampleChips(session.examples, prompt, run);

    root.append(
      h('section', { class: 'card' }, h('h2', null, 'Generate'), h('p', { class: 'muted' }, 'Greedy (or sampled) continuation, streamed as it decodes.'), form, examples, status, output),
      h('section', { class: 'card' }, h('h2', null, 'LSH buckets and local chunks'), headSelect, buckets),
    );
    void run();
    return () => {
      runId++;
      root.replaceChildren();
    };
  },
};
