// Pieces every family panel shows the same way: an error as one line (its name and message), the input
// row (a form that runs the task on submit) with its text box, labelled number fields, the status line
// (a spinner while the worker runs), the bundled model's example inputs as chips that fill the input
// and run it, and the cards the panel is made of.
import { clear, h } from './dom.js';

export function errorBox(err: unknown, testid?: string): HTMLElement {
  const e = err as Error;
  return h('p', { class: 'error', 'data-testid': testid }, h('strong', null, `${e.name ?? 'Error'}: `), e.message ?? String(err));
}

/** A panel's card: its title, a line on what it shows, and its content. */
export function card(title: string, intro: string | null, ...children: (HTMLElement | null)[]): HTMLElement {
  return h('section', { class: 'card' }, h('h2', null, title), intro !== null && h('p', { class: 'muted' }, intro), children);
}

/** "Examples:" and a chip per example, which puts it in `input` and runs it; null when there are none. */
export function exampleChips(examples: readonly string[], input: HTMLInputElement, run: () => Promise<void>): HTMLElement | null {
  if (examples.length === 0) return null;
  const pick = (text: string) => {
    input.value = text;
    void run();
  };
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

/** The panel's first input: `?<param>=` from the address, else the bundled model's first example, else `fallback`. */
export function initialText(examples: readonly string[], fallback: string, param = 'text'): string {
  return new URLSearchParams(location.search).get(param) ?? examples[0] ?? fallback;
}

/** The input row's text box. */
export function textInput(testid: string, label: string, value: string): HTMLInputElement {
  return h('input', { type: 'text', value, 'data-testid': testid, spellcheck: false, 'aria-label': label });
}

/** A number field (its value: numberValue). */
export function numberInput(testid: string, label: string, value: number, range: { min: number; max?: number; step?: number }): HTMLInputElement {
  const { min, max, step = 1 } = range;
  return h('input', { type: 'number', value: String(value), min: String(min), max: max === undefined ? undefined : String(max), step: String(step), 'data-testid': testid, 'aria-label': label, style: { width: '5rem' } });
}

/** A number field's value; `fallback` when it is empty or not a number. */
export function numberValue(input: HTMLInputElement, fallback: number): number {
  const value = input.valueAsNumber;
  return Number.isFinite(value) ? value : fallback;
}

/** A control with its name before it. */
export function labelled(text: string, control: HTMLElement): HTMLLabelElement {
  return h('label', { class: 'muted' }, text, ' ', control);
}

/** The line under the input row: what the worker is doing, then how long it took. */
export function statusLine(testid?: string): HTMLElement {
  return h('span', { class: 'muted status-line', 'data-testid': testid });
}

/** Shows a spinner and what the worker is doing on the status line. */
export function busy(status: HTMLElement, doing: string): void {
  clear(status, h('span', { class: 'spinner' }), ` ${doing}`);
}
