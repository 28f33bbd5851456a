// Pieces every family panel shows the same way: an error as one line (its name and message), the input
// row (a form that runs the task on submit), and the bundled model's example inputs as chips that fill
// the input and run it.
import { h } from './dom.js';

export function errorBox(err: unknown): HTMLElement {
  const e = err as Error;
  return h('p', { class: 'error' }, h('strong', null, `${e.name ?? 'Error'}: `), e.message ?? String(err));
}

/** "Examples:" and a chip per example; null when there are none. */
export function exampleChips(examples: readonly string[], pick: (text: string) => void): HTMLElement | null {
  if (examples.length === 0) return null;
  return h(
    'div',
    { class: 'examples' },
    h('span', { class: 'muted' }, 'Examples: '),
    examples.map((text) => h('button', { type: 'button', class: 'chip', onclick: () => pick(text) }, text)),
  );
}

/** The input row: submitting (Enter or the button) runs `run` instead of reloading the page. */
export function inputForm(run: () => Promise<void>, ...children: HTMLElement[]): HTMLFormElement {
  const submit = (event: Event) => {
    event.preventDefault();
    void run();
  };
  return h('form', { class: 'fill-mask-form', onsubmit: submit }, children);
}
