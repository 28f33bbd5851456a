// The T5 panel: text-to-text generation streamed token by token (greedy, beam search, or sampling with
// temperature / top-k / top-p), and the cross-attention of the answer: for every layer and head, how
// much each generated (decoder) token attended to each input (encoder) token, as a heatmap with the
// selected row's weights listed below it. Both run in the worker; only the latest request is shown.
import { clear, h } from '../../ui/dom.js';
import { heatmap, legend } from '../../ui/heatmap.js';
import { decodingSelect, samplingInputs } from '../../ui/decoding.js';
import { busy, card, errorBox, exampleChips, initialText, inputForm, labelled, numberInput, numberValue, statusLine, textInput } from '../../ui/panel-parts.js';
import type { FamilyPanel, ModelSession } from '../types.js';
import type { CrossAttentionResult, DecodingMode, GenerateInput, GeneratePartial, GenerateResult } from './tasks.js';

interface Selection {
  layer: number;
  /** A head index, or -1 for the mean over heads. */
  head: number;
  /** The decoder row listed under the map. */
  row: number;
}

/** [decoder, encoder] weights of one layer and head (or their mean over heads). */
function matrix(att: CrossAttentionResult, layer: number, head: number): Float32Array {
  const size = att.decoderTokens.length * att.encoderTokens.length;
  if (head >= 0) return att.data.subarray((layer * att.heads + head) * size, (layer * att.heads + head + 1) * size);
  const mean = new Float32Array(size);
  for (let k = 0; k < att.heads; k++) {
    const offset = (layer * att.heads + k) * size;
    for (let i = 0; i < size; i++) mean[i] += att.data[offset + i] / att.heads;
  }
  return mean;
}

function crossAttentionView(att: CrossAttentionResult, selection: Selection, onSelect: (s: Selection) => void): HTMLElement {
  const layer = Math.min(selection.layer, att.layers - 1);
  const head = Math.min(selection.head, att.heads - 1);
  const rows = att.decoderTokens.length;
  const cols = att.encoderTokens.length;
  const row = Math.min(selection.row, rows - 1);
  const values = matrix(att, layer, head);
  const scale = values.reduce((a, b) => Math.max(a, b), Math.min(1, 2 / cols));
  const readout = h('p', { class: 'readout muted' }, 'hover a cell: generated token → input token');
  const select = (testid: string, options: [number, string][], value: number, change: (v: number) => void) => {
    const el = h('select', { 'data-testid': testid, onchange: () => change(Number(el.value)) }, options.map(([v, label]) => h('option', { value: String(v), selected: v === value }, label)));
    return el;
  };
  const rowValues = values.subarray(row * cols, (row + 1) * cols);
  return h(
    'div',
    { class: 'attention', 'data-testid': 't5-cross-attention', dataset: { layer: String(layer), head: String(head), row: String(row), state: 'done' } },
    h(
      'div',
      { class: 'controls' },
      h('label', null, 'Decoder layer ', select('t5-cross-layer', Array.from({ length: att.layers }, (_, l) => [l, `layer ${l + 1}`]), layer, (l) => onSelect({ ...selection, layer: l }))),
      h('label', null, 'Head ', select('t5-cross-head', [[-1, 'mean of heads'], ...Array.from({ length: att.heads }, (_, k): [number, string] => [k, `head ${k + 1}`])], head, (k) => onSelect({ ...selection, head: k }))),
      legend(scale),
    ),
    h(
      'div',
      { class: 'heatmap-wrap' },
      heatmap({
        scale,
        rowLabels: att.decoderTokens,
        colLabels: att.encoderTokens,
        values,
        onHover: (cell) => clear(readout, cell ? `${att.decoderTokens[cell.row]} → ${att.encoderTokens[cell.col]}: ${cell.value.toFixed(4)}` : 'hover a cell: generated token → input token'),
      }),
      readout,
    ),
    h(
      'div',
      { class: 'controls' },
      h('label', null, 'Row: generated token ', select('t5-cross-row', att.decoderTokens.map((t, i): [number, string] => [i, `${i + 1}: ${t}`]), row, (r) => onSelect({ ...selection, row: r }))),
    ),
    h(
      'table',
      { class: 't5-cross-row', 'data-testid': 't5-cross-row-values' },
      h('tr', null, att.encoderTokens.map((t) => h('th', null, t))),
      h('tr', null, Array.from(rowValues, (v) => h('td', { dataset: { value: String(v) }, style: { background: `rgba(8,48,107,${(0.6 * v) / scale})` } }, v.toFixed(3)))),
    ),
  );
}

export const t5Panel: FamilyPanel = {
  modelType: 't5',
  mount(root: HTMLElement, session: ModelSession) {
    const input = textInput('t5-input', 'input text', initialText(session.examples, 'translate English to German: The house is wonderful.'));
    const maxNew = numberInput('t5-max-new', 'max new tokens', 16, { min: 1, max: 256 });
    const beams = numberInput('t5-beams', 'beams', 4, { min: 2, max: 16 });
    const beamOptions = h('span', { class: 'decoding-options' }, labelled('beams', beams));
    const sampling = samplingInputs('t5', { temperature: 1, topK: 50, topP: 1, seed: 0 });
    const mode = decodingSelect('t5', ['greedy', 'beam', 'sample'], { beam: beamOptions, sample: sampling.element });
    const runButton = h('button', { type: 'submit', class: 'primary', 'data-testid': 't5-run' }, 'Generate');
    const status = statusLine('t5-status');
    const output = h('div', { class: 'generate-output', 'data-testid': 't5-output', dataset: { state: 'idle' } });
    const attention = h('div', { 'data-testid': 't5-cross-host', dataset: { state: 'idle' } });

    let runId = 0;
    let shown: CrossAttentionResult | null = null;
    let selection: Selection = { layer: 0, head: -1, row: 0 };
    const renderAttention = () => {
      if (shown) clear(attention, crossAttentionView(shown, selection, (s) => ((selection = s), renderAttention())));
    };

    const run = async () => {
      const id = ++runId;
      const { temperature, topK = 0, topP, seed } = sampling.read();
      const request: GenerateInput = {
        text: input.value,
        mode: mode.value as DecodingMode,
        maxNewTokens: numberValue(maxNew, 16),
        numBeams: numberValue(beams, 4),
        temperature,
        topK,
        topP,
        seed,
      };
      output.dataset.state = 'running';
      output.dataset.text = request.text;
      attention.dataset.state = 'running';
      runButton.disabled = true;
      const streamed = h('span', { class: 'generated', 'data-testid': 't5-generated' });
      clear(output, streamed);
      busy(status, request.mode === 'beam' ? `beam search (${request.numBeams} beams) in the worker…` : 'generating in the worker…');
      try {
        const result = await session.run<GenerateResult>('generate', request, (partial) => {
          if (id === runId) streamed.textContent = (partial as GeneratePartial).text;
        });
        if (id !== runId) return;
        streamed.textContent = result.text;
        Object.assign(output.dataset, { inputIds: result.inputIds.join(','), tokens: result.tokens.join(','), state: 'done' });
        output.append(h('p', { class: 'muted' }, 'tokens: ', result.outputTokens.join(' · ')));
        clear(status, `${result.tokens.length} tokens in ${result.ms.toFixed(0)} ms (${result.msPerToken.toFixed(1)} ms per token after the first)`);
        if (result.tokens.length === 0) {
          clear(attention, h('p', { class: 'muted' }, 'nothing generated'));
          attention.dataset.state = 'done';
          return;
        }
        shown = await session.run<CrossAttentionResult>('crossAttention', { inputIds: result.inputIds, tokens: result.tokens });
        if (id !== runId) return;
        selection = { ...selection, row: 0 };
        renderAttention();
        attention.dataset.state = 'done';
      } catch (err) {
        if (id !== runId) return;
        const target = output.dataset.state === 'running' ? output : attention;
        clear(target, errorBox(err));
        target.dataset.state = 'error';
        if (target === output) attention.dataset.state = 'idle';
        clear(status);
      } finally {
        if (id === runId) runButton.disabled = false;
      }
    };

    const form = inputForm(run, input, runButton);
    const options = h('div', { class: 'controls' }, labelled('decoding', mode), labelled('max new tokens', maxNew), beamOptions, sampling.element);
    const examples = exampleChips(session.examples, input, run);

    root.append(
      card(
        'Text to text',
        'The encoder reads the input once; the decoder writes the answer token by token (sentinels such as <extra_id_0> mark the spans a span-corruption model fills).',
        form,
        options,
        examples,
        status,
        output,
      ),
      card('Cross-attention', 'Rows: the generated tokens; columns: the input tokens; per decoder layer and head.', attention),
    );
    void run();
    return () => {
      runId++;
      root.replaceChildren();
    };
  },
};
