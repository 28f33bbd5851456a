// End-to-end test of the ChatGLM chat panel in the BUILT playground (dist/, ?model=chatglm), in headless
// Chromium on WebGPU (SwiftShader) and with WebGPU disabled (the cpu fallback): the greedy replies the
// page streams (token ids and text) must be the ones @lm/chatglm's streamChat gives in this Node process
// (cpu backend) on the same files, for a first turn and a second turn that carries the history; then an
// int4 checkpoint in THUDM's published layout (pytorch_model.bin with I8 weights, float16 scales and
// float16 everything else, quantization_bit 4), written here from the bundled model, is picked as files,
// opens in the page and replies as Node does with the same checkpoint. Skips like browser.test.ts when
// Chromium or a WebGPU adapter is missing, unless LM_REQUIRE_WEBGPU=1.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChatGLMForConditionalGeneration, ChatGLMTokenizer, QuantizedLinear, type ChatGLMConfig, streamChat, type ChatHistory } from '@lm/chatglm';
import { writeTorchCheckpoint, type TensorToWrite } from '@lm/dist-ckpt';
import { init, type Backend } from '@lm/tensor-gpu';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { artifacts, BACKENDS, bundledModel, describePanel } from './panel-suite.js';

const modelDir = bundledModel('chatglm');

const FIRST = 'repeat cat moon ?';
const SECOND = 'reverse red dog sun ?';
const TOKENIZER_FILES = ['ice_text.model', 'tokenizer_config.json'];

interface Turn {
  response: string;
  tokens: number[];
  promptIds: number[];
  history: ChatHistory;
}

async function nodeTurn(model: ChatGLMForConditionalGeneration, tokenizer: ChatGLMTokenizer, query: string, history: ChatHistory): Promise<Turn> {
  let last: Turn | null = null;
  for await (const turn of streamChat(model, tokenizer, query, history, { doSample: false, maxLength: model.config.maxSequenceLength })) last = turn;
  if (!last) throw new Error(`Node gave no reply to ${JSON.stringify(query)}`);
  return last;
}

/** The bundled model quantized to int4 and saved as THUDM publishes chatglm-6b-int4: pytorch_model.bin + config.json with quantization_bit 4. */
async function writeInt4Checkpoint(model: ChatGLMForConditionalGeneration, dir: string): Promise<void> {
  await model.quantize(4);
  const stored = new Map<string, TensorToWrite>();
  const quantized = new Map<string, QuantizedLinear>();
  for (const [name, m] of model.namedModules()) if (m instanceof QuantizedLinear) quantized.set(`${name}.weight`, m);
  for (const [key, t] of model.stateDict()) {
    const layer = quantized.get(key);
    if (layer) {
      const { data, shape } = await layer.storedWeight();
      stored.set(key, { dtype: 'I8', shape, data });
    } else {
      stored.set(key, { dtype: 'F16', shape: t.shape, data: Float32Array.from((await t.data()) as Float32Array) });
    }
  }
  await writeTorchCheckpoint(join(dir, 'pytorch_model.bin'), stored);
  const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify({ ...config, quantization_bit: 4, torch_dtype: 'float16' }, null, 2)}\n`);
  for (const f of TOKENIZER_FILES) copyFileSync(join(modelDir, f), join(dir, f));
}

/** Node's replies: two turns of the bundled model, and the first turn of its int4 checkpoint (written to `int4Dir`). */
async function reference(backend: Backend, int4Dir: string): Promise<{ first: Turn; second: Turn; int4: Turn }> {
  const tokenizer = await ChatGLMTokenizer.fromPretrained(modelDir);
  const model = await ChatGLMForConditionalGeneration.fromPretrained<ChatGLMForConditionalGeneration, ChatGLMConfig>(modelDir, { backend });
  model.eval();
  const first = await nodeTurn(model, tokenizer, FIRST, []);
  const second = await nodeTurn(model, tokenizer, SECOND, first.history);
  await writeInt4Checkpoint(model, int4Dir);
  model.dispose();
  const q = await ChatGLMForConditionalGeneration.fromPretrained<ChatGLMForConditionalGeneration, ChatGLMConfig>(int4Dir, { backend });
  q.eval();
  expect(q.config.quantizationBit).toBe(4);
  const int4 = await nodeTurn(q, tokenizer, FIRST, []);
  q.dispose();
  return { first, second, int4 };
}

interface Shown {
  text: string;
  tokens: number[];
  promptIds: number[];
  partials: number;
  turns: number;
}

async function say(page: Page, query: string, turnsBefore: number): Promise<Shown> {
  await page.fill('[data-testid=chat-input]', query);
  await page.click('[data-testid=chat-send]');
  await page.waitForFunction(
    (n) => {
      const log = document.querySelector<HTMLElement>('[data-testid=chat-log]');
      return log?.dataset.state === 'error' || (log?.dataset.state === 'done' && Number(log.dataset.turns) === n);
    },
    turnsBefore + 1,
    { timeout: 120_000 },
  );
  const state = await page.getAttribute('[data-testid=chat-log]', 'data-state');
  if (state !== 'done') throw new Error(`chat failed in the page: ${await page.textContent('[data-testid=chat-log]')}`);
  return page.evaluate(() => {
    const log = document.querySelector<HTMLElement>('[data-testid=chat-log]')!;
    const replies = log.querySelectorAll<HTMLElement>('[data-testid=chat-reply]');
    const reply = replies[replies.length - 1];
    const ids = (s: string | undefined) => (s ? s.split(',').map(Number) : []);
    return {
      text: reply.querySelector('.chat-text')?.textContent ?? '',
      tokens: ids(reply.dataset.tokens),
      promptIds: ids(reply.dataset.promptIds),
      partials: Number(reply.dataset.partials),
      turns: Number(log.dataset.turns),
    };
  });
}

function expectSame(shown: Shown, node: Turn, log: string[]): void {
  const context = `page: ${JSON.stringify(shown)}\nnode: ${JSON.stringify(node)}\n${log.join('\n')}`;
  expect(log.filter((l) => l.startsWith('[pageerror]')), context).toEqual([]);
  expect(shown.promptIds, context).toEqual(node.promptIds);
  expect(shown.tokens, context).toEqual(node.tokens);
  expect(shown.text, context).toBe(node.response);
  // Streamed: one update per decoded token before the result.
  expect(shown.partials, context).toBe(node.tokens.length);
}

describePanel('chatglm', 'the ChatGLM chat panel in headless Chromium', 'chatglm', (suite) => {
  let int4Dir = '';
  let expected: Awaited<ReturnType<typeof reference>>;

  beforeAll(async () => {
    int4Dir = mkdtempSync(join(tmpdir(), 'lm-playground-chatglm-int4-'));
    expected = await reference(await init('cpu'), int4Dir);
    // The bundled model answers the task it was trained on.
    expect(expected.first.response).toBe('moon cat .');
  }, 120_000);

  afterAll(() => {
    if (int4Dir) rmSync(int4Dir, { recursive: true, force: true });
  });

  for (const backend of BACKENDS) {
    it(`streams Node's greedy replies with history, and opens an int4 checkpoint (${backend.label})`, async (ctx) => {
      const browser = await suite.open(ctx, backend, 'model=chatglm');
      const { page, log } = browser;
      try {
        expect(await page.textContent('[data-testid=chat-memory]')).toMatch(/^Model memory: \d+\.\d+ MiB$/);

        await page.selectOption('[data-testid=chat-mode]', 'greedy');
        expectSame(await say(page, FIRST, 0), expected.first, log);
        // The second turn goes out as "[Round 0]\n问：...\n答：...\n[Round 1]\n问：...\n答：" with the first in it.
        const second = await say(page, SECOND, 1);
        expectSame(second, expected.second, log);
        expect(second.turns).toBe(2);
        const status = (await page.textContent('[data-testid=chat-status]')) ?? '';
        expect(status).toMatch(new RegExp(`^${expected.second.tokens.length} tokens in \\d+ ms: \\d+\\.\\d tokens/s after the first .*backend holds \\d`));
        await page.screenshot({ path: join(artifacts, `playground-chatglm-${backend.name}.png`), fullPage: true });

        // A new conversation starts without history.
        await page.click('[data-testid=chat-clear]');
        expect(await page.getAttribute('[data-testid=chat-log]', 'data-turns')).toBe('0');

        // The int4 checkpoint, picked as files as a person would pick THUDM's chatglm-6b-int4 folder.
        await page.evaluate(() => (document.documentElement.dataset.model = 'picking'));
        await page.setInputFiles('[data-testid=open-files-input]', ['config.json', 'pytorch_model.bin', ...TOKENIZER_FILES].map((f) => join(int4Dir, f)));
        await page.waitForFunction(() => ['ready', 'error'].includes(document.documentElement.dataset.model ?? ''), undefined, { timeout: 60_000 });
        expect(await page.evaluate(() => document.documentElement.dataset.model), `${await page.textContent('#model')}\n${log.join('\n')}`).toBe('ready');
        expect(await page.textContent('[data-testid=model-name]')).toBe(`config.json, pytorch_model.bin, ${TOKENIZER_FILES.join(', ')}`);
        expect(await page.textContent('[data-testid=chat-memory]')).toMatch(/, of which quantized linears \d+\.\d+ MiB$/);
        await page.selectOption('[data-testid=chat-mode]', 'greedy');
        expectSame(await say(page, FIRST, 0), expected.int4, log);
      } finally {
        await browser.close();
      }
    }, 300_000);
  }
});
