// The ChatGLM chat panel: a conversation with the model, each reply streamed token by token from the
// worker (@lm/chatglm's streamChat), the history kept and sent back with every turn (the reference's
// `[Round N]\n问：...\n答：...` prompt), sampling settings (greedy, or top-p / temperature as the
// reference samples), and the model's memory footprint and decoding speed.
import { clear, formatBytes, h } from '../../ui/dom.js';
import { exampleChips } from '../../ui/panel-parts.js';
import type { FamilyPanel, ModelSession } from '../types.js';
import type { ChatPartial, ChatResult, ChatTurn } from './tasks.js';

function errorBox(err: unknown): HTMLElement {
  const e = err as Error;
  return h('p', { class: 'error', 'data-testid': 'chat-error' }, h('strong', null, `${e.name ?? 'Error'}: `), e.message ?? String(err));
}

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
    const initial = new URLSearchParams(location.search).get('text') ?? session.examples[0] ?? '你好';
    const input = h('input', { type: 'text', value: initial, 'data-testid': 'chat-input', spellcheck: false, 'aria-label': 'message' });
    const send = h('button', { type: 'submit', class: 'primary', 'data-testid': 'chat-send' }, 'Send');
    const clearButton = h('button', { type: 'button', 'data-testid': 'chat-clear' }, 'New conversation');
    const greedy = h('input', { type: 'checkbox', checked: true, 'data-testid': 'chat-greedy', 'aria-label': 'greedy' });
    const topP = h('input', { type: 'number', value: '0.7', min: '0.01', max: '1', step: '0.05', 'data-testid': 'chat-top-p', 'aria-label': 'top-p' });
    const temperature = h('input', { type: 'number', value: '0.95', min: '0.01', max: '5', step: '0.05', 'data-testid': 'chat-temperature', 'aria-label': 'temperature' });
    const maxLength = h('input', { type: 'number', value: '2048', min: '2', max: '8192', 'data-testid': 'chat-max-length', 'aria-label': 'max length' });
    const seed = h('input', { type: 'number', value: '0', min: '0', 'data-testid': 'chat-seed', 'aria-label': 'seed' });
    const syncSampling = () => {
      topP.disabled = greedy.checked;
      temperature.disabled = greedy.checked;
      seed.disabled = greedy.checked;
    };
    greedy.onchange = syncSampling;
    syncSampling();
    const log = h('div', { class: 'chat-log', 'data-testid': 'chat-log', dataset: { state: 'idle', turns: '0' } });
    const status = h('p', { class: 'muted status-line', 'data-testid': 'chat-status' });
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
      clear(status, h('span', { class: 'spinner' }), ' decoding in the worker…');
      let partials = 0;
      try {
        const result = await session.run<ChatResult>(
          'chat',
          {
            query,
            history,
            maxLength: Number(maxLength.value) || 2048,
            doSample: !greedy.checked,
            topP: Number(topP.value) || 0.7,
            temperature: Number(temperature.value) || 0.95,
            seed: Number(seed.value) || 0,
          },
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
        log.append(errorBox(err));
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

    const form = h(
      'form',
      {
        class: 'fill-mask-form',
        onsubmit: (event: Event) => {
          event.preventDefault();
          void run();
        },
      },
      input,
      send,
      clearButton,
    );
    const settings = h(
      'div',
      { class: 'examples' },
      h('label', { class: 'muted' }, greedy, ' greedy'),
      h('label', { class: 'muted' }, ' top-p ', topP),
      h('label', { class: 'muted' }, ' temperature ', temperature),
      h('label', { class: 'muted' }, ' seed ', seed),
      h('label', { class: 'muted' }, ' max length ', maxLength),
    );
    const examples = exampleChips(session.examples, (text) => {
      input.value = text;
      void run();
    });

    root.append(
      h(
        'section',
        { class: 'card' },
        h('h2', null, 'Chat'),
        h('p', { class: 'muted' }, 'Each reply streams as it decodes; the conversation so far goes with every message as the reference\'s [Round N] prompt. Max length counts the prompt too and stops at the model\'s max_sequence_length. Sampling off is greedy decoding.'),
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
