// The REALM panel: ask a question over the model's document index and see the blocks it retrieved,
// best relevance score first, with the answer span highlighted in its block; add your own documents
// (dropped here, opened from files, or pasted), which the worker splits into blocks and embeds with a
// progress bar, so later questions search them too.
import { clear, h } from '../../ui/dom.js';
import { busy, card, errorBox, exampleChips, initialText, inputForm, statusLine, textInput } from '../../ui/panel-parts.js';
import type { FamilyPanel, ModelSession } from '../types.js';
import type { AddDocumentsResult, AskResult, IndexProgressMessage, ShownBlock } from './tasks.js';

/** The block's text with [charStart, charEnd) in a <mark>. */
function blockText(text: string, range: { charStart: number | null; charEnd: number | null } | null): HTMLElement {
  if (!range || range.charStart === null || range.charEnd === null) return h('p', { class: 'realm-block-text' }, text);
  return h(
    'p',
    { class: 'realm-block-text' },
    text.slice(0, range.charStart),
    h('mark', { 'data-testid': 'realm-answer-mark' }, text.slice(range.charStart, range.charEnd)),
    text.slice(range.charEnd),
  );
}

function answerView(result: AskResult): HTMLElement {
  const top = Math.max(...result.blocks.map((b) => b.score));
  const bottom = Math.min(...result.blocks.map((b) => b.score));
  const item = (block: ShownBlock, rank: number) => {
    const isAnswer = rank === result.span.block;
    const width = top === bottom ? 100 : 10 + (90 * (block.score - bottom)) / (top - bottom);
    return h(
      'li',
      { class: `realm-block${isAnswer ? ' answer' : ''}`, dataset: { blockId: String(block.id), score: String(block.score), source: block.source } },
      h(
        'div',
        { class: 'realm-block-head' },
        h('span', { class: 'bar', style: { display: 'inline-block', width: `${width.toFixed(0)}px`, height: '0.6em', background: 'currentColor', opacity: '0.4', marginRight: '0.5em' } }),
        h('span', { class: 'realm-score' }, `score ${block.score.toFixed(4)}`),
        h('span', { class: 'muted' }, ` · block ${block.id}${block.source === 'added' ? ' (your documents)' : ''}${isAnswer ? ' · answer read here' : ''}`),
      ),
      blockText(block.text, isAnswer ? result.span : null),
    );
  };
  return h(
    'div',
    null,
    h('p', { class: 'realm-answer-line' }, 'Answer: ', h('strong', { 'data-testid': 'realm-answer-text' }, result.answer || '(empty span)')),
    h('ol', { class: 'realm-blocks' }, result.blocks.map(item)),
  );
}

/** Files as documents: the text of each, titled by its name. */
async function readDocuments(files: Iterable<File>): Promise<{ title: string; text: string }[]> {
  const docs: { title: string; text: string }[] = [];
  for (const file of files) docs.push({ title: file.name.replace(/\.[^.]+$/, ''), text: await file.text() });
  return docs;
}

export const realmPanel: FamilyPanel = {
  modelType: 'realm',
  mount(root: HTMLElement, session: ModelSession) {
    const question = textInput('realm-question', 'question', initialText(session.examples, 'What is the capital of France?', 'question'));
    const askButton = h('button', { type: 'submit', class: 'primary', 'data-testid': 'realm-ask' }, 'Ask');
    const askStatus = statusLine();
    const results = h('div', { class: 'realm-results', 'data-testid': 'realm-answer', dataset: { state: 'idle' } });

    const pasted = h('textarea', { rows: 4, 'data-testid': 'realm-paste', placeholder: 'Paste a document here, or drop text files on this card.', 'aria-label': 'a document to add' });
    const fileInput = h('input', { type: 'file', multiple: true, accept: '.txt,.md,text/plain', 'data-testid': 'realm-files', 'aria-label': 'text files to add' });
    const addButton = h('button', { type: 'button', 'data-testid': 'realm-add' }, 'Index these documents');
    const bar = h('progress', { max: 1, value: 0, 'data-testid': 'realm-index-progress' });
    const indexStatus = h('div', { class: 'muted', 'data-testid': 'realm-index-status', dataset: { state: 'idle' } }, 'No documents added yet.');

    let askId = 0;
    const ask = async () => {
      const id = ++askId;
      const text = question.value;
      results.dataset.state = 'running';
      results.dataset.question = text;
      askButton.disabled = true;
      busy(askStatus, 'retrieving and reading in the worker…');
      try {
        const result = await session.run<AskResult>('ask', { question: text });
        if (id !== askId) return;
        clear(results, answerView(result));
        results.dataset.state = 'done';
        clear(askStatus, `${result.ms.toFixed(0)} ms · top ${result.blocks.length} of ${result.numBlocks} blocks`);
      } catch (err) {
        if (id !== askId) return;
        clear(results, errorBox(err));
        results.dataset.state = 'error';
        clear(askStatus);
      } finally {
        if (id === askId) askButton.disabled = false;
      }
    };

    let indexing = false;
    const addDocuments = async (documents: { title: string; text: string }[]) => {
      if (indexing) return;
      const nonEmpty = documents.filter((d) => d.text.trim() !== '');
      if (nonEmpty.length === 0) {
        indexStatus.dataset.state = 'error';
        clear(indexStatus, errorBox(new Error('no document to add: the files or the pasted text are empty')));
        return;
      }
      indexing = true;
      addButton.disabled = true;
      indexStatus.dataset.state = 'running';
      bar.value = 0;
      clear(indexStatus, `splitting ${nonEmpty.length} document${nonEmpty.length === 1 ? '' : 's'} into blocks…`);
      try {
        const result = await session.run<AddDocumentsResult>('addDocuments', { documents: nonEmpty }, (partial) => {
          const p = partial as IndexProgressMessage;
          bar.value = p.total === 0 ? 1 : p.done / p.total;
          clear(indexStatus, `embedding blocks: ${p.done} / ${p.total}`);
        });
        bar.value = 1;
        indexStatus.dataset.state = 'done';
        indexStatus.dataset.added = String(result.added);
        clear(indexStatus, `added ${result.added} block${result.added === 1 ? '' : 's'} in ${result.ms.toFixed(0)} ms; the index now holds ${result.numBlocks}.`);
        pasted.value = '';
      } catch (err) {
        indexStatus.dataset.state = 'error';
        clear(indexStatus, errorBox(err));
      } finally {
        indexing = false;
        addButton.disabled = false;
      }
    };

    addButton.addEventListener('click', () => {
      void (async () => {
        const docs = await readDocuments(fileInput.files ?? []);
        if (pasted.value.trim()) docs.push({ title: 'pasted', text: pasted.value });
        fileInput.value = '';
        await addDocuments(docs);
      })();
    });

    // Dropped here, files are documents to index, not a model to load: keep the drop from the page's handler.
    const stop = (e: DragEvent) => {
      e.preventDefault();
      e.stopPropagation();
    };
    const drop = h(
      'section',
      {
        class: 'card realm-documents',
        'data-testid': 'realm-drop',
        ondragenter: stop,
        ondragover: stop,
        ondrop: (e: DragEvent) => {
          stop(e);
          if (e.dataTransfer?.files.length) void readDocuments(e.dataTransfer.files).then(addDocuments);
        },
      },
      h('h2', null, 'Your documents'),
      h('p', { class: 'muted' }, 'Drop text files on this card, open them, or paste text: they are split into blocks and embedded with the model’s embedder in the worker, then searched with the bundled blocks.'),
      pasted,
      h('div', { class: 'row' }, fileInput, addButton),
      bar,
      indexStatus,
    );

    const examples = exampleChips(session.examples, question, ask);

    root.append(
      card(
        'Ask the documents',
        'The question is embedded, scored against every block of the index (inner product), and the reader picks an answer span in the top blocks.',
        inputForm(ask, question, askButton),
        examples,
        askStatus,
        results,
      ),
      drop,
    );
    void ask();
    return () => {
      askId++;
      root.replaceChildren();
    };
  },
};
