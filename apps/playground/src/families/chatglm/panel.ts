// The ChatGLM chat panel: a conversation with the model, each reply streamed token by token from the
// worker (@lm/chatglm's streamChat), the history kept and sent back with every turn (the reference's
// `[Round N]\n问：...\n答：...` prompt), sampling settings (greedy, or top-p / temperature as the
// reference samples), and the model's memory footprint and decoding speed.
import { decodingSelect, samplingInputs } from '../../ui/decoding.js';
import { clear, formatBytes, h } from '../../ui/dom.js';
import { busy, card, errorBox, exampleChips, initialText, inputForm, labelled, numberInput, numberValue, statusLine, textInput } from '../../ui/panel-parts.js';
import type { FamilyPanel, ModelSession } from '../types.js';
import type { ChatInput, ChatPartial, ChatResult, ChatTurn } from './tasks.js';

function message(role: 'user' | 'model', text: string): HTMLElement {
  return h(
    'div',
    { class: `chat-message chat-${role}`, dataset: { role }, style: { margin: '0.4em 0', whiteSpace: 'pre-wrap' } },
    h('strong', { class: 'muted' }, role === 'user' ? 'You: ' : 'ChatGLM: '),
    h('span', { class: 'chat-text' }, text),
  );
}

export const chatglmPanel: FamilyPanel = {
  modelType: 'chatglm',
  mount(root: HTMLElement, session: ModelSession) {
    const input = textInput('chat-input', 'message', initialText(session.examples, '你好'));
    const send = h('button', { type: 'submit', class: 'primary', 'data-testid': 'chat-send' }, 'Send');
    const clearButton = h('button', { type: 'button', 'data-testid': 'chat-clear' }, 'New conversation');
    // The reference's chat samples with top-p 0.7 and temperature 0.95 (no top-k).
    const sampling = samplingInputs('chat', { temperature: 0.95, topP: 0.7, seed: 0 });
    const mode = decodingSelect('chat', ['greedy', 'sample'], { sample: sampling.element });
    const maxLength = numberInput('chat-max-length', 'max length', 2048, { min: 2, max: 8192 });
    const log = h('div', { class: 'chat-log', 'data-testid': 'chat-log', dataset: { state: 'idle', turns: '0' } });
    const status = statusLine('chat-status');
    const footprint = session.summary.config.find(([label]) => label.startsWith('memory'));
    const memory = h('p', { class: 'muted', 'data-testid': 'chat-memory' }, footprint ? `Model memory: ${footprint[1]}` : '');

    let history: ChatTurn[] = [];
    let runId = 0;
    const render = () => {
      clear(log, history.flatMap(([q, r]) => [message('user', q), message('model', r)]));
      log.dataset.turns = String(history.length);
    };

    const run = async () => {
      const query = input.value;
      if (!query.trim()) return;
      const id = ++runId;
      send.disabled = true;
      log.dataset.state = 'running';
      const reply = message('model', '');
      const replyText = reply.querySelector<HTMLElement>('.chat-text')!;
      reply.dataset.testid = 'chat-reply';
      log.append(message('user', query), reply);
      busy(status, 'decoding in the worker…');
      let partials = 0;
      try {
        const result = await session.run<ChatResult>(
          'chat',
          { query, history, maxLength: numberValue(maxLength, 2048), doSample: mode.value === 'sample', ...sampling.read() } satisfies ChatInput,
          (partial) => {
            if (id !== runId) return;
            const p = partial as ChatPartial;
            partials++;
            replyText.textContent = p.response;
            reply.dataset.tokens = p.tokens.join(',');
          },
        );
        if (id !== runId) return;
        history = result.history;
        render();
        const last = log.lastElementChild as HTMLElement;
        last.dataset.testid = 'chat-reply';
        last.dataset.tokens = result.tokens.join(',');
        last.dataset.promptIds = result.promptIds.join(',');
        // How many streamed updates the reply got before the result (one per decoded token).
        last.dataset.partials = String(partials);
        log.dataset.state = 'done';
        input.value = '';
        clear(
          status,
          `${result.tokens.length} tokens in ${result.ms.toFixed(0)} ms: ${result.tokensPerSecond.toFixed(1)} tokens/s after the first (first token ${result.firstTokenMs.toFixed(0)} ms, prompt ${result.promptIds.length} tokens); backend holds ${formatBytes(result.backendBytes)}`,
        );
        status.dataset.tokensPerSecond = String(result.tokensPerSecond);
      } catch (err) {
        if (id !== runId) return;
        reply.remove();
        log.lastElementChild?.remove();
        log.append(errorBox(err, 'chat-error'));
        log.dataset.state = 'error';
        clear(status);
      } finally {
        if (id === runId) send.disabled = false;
      }
    };

    clearButton.onclick = () => {
      runId++;
      history = [];
      render();
      log.dataset.state = 'idle';
      send.disabled = false;
      clear(status);
    };

    const form = inputForm(run, input, send, clearButton);
    const settings = h('div', { class: 'controls' }, labelled('decoding', mode), labelled('max length', maxLength), sampling.element);
    const examples = exampleChips(session.examples, input, run);

    root.append(
      card(
        'Chat',
        'Each reply streams as it decodes; the conversation so far goes with every message as the reference\'s [Round N] prompt. Max length counts the prompt too and stops at the model\'s max_sequence_length. Decoding is greedy unless sampling is chosen.',
        memory,
        log,
        form,
        settings,
        examples,
        status,
      ),
    );
    return () => {
      runId++;
      root.replaceChildren();
    };
  },
};
