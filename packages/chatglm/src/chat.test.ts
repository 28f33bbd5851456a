// generate / chat / stream_chat on @lm/layers' decoding loop: greedy generate reproduces the
// reference-driven decoding the fixtures pin down (chatglm/generate_*), beam search and streaming run
// on the same cache, the reference's prompt format, process_response and the invalid-score guard,
// and bad history / over-long prompts are refused before any work.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { noGrad, tensor, type Backend } from '@lm/tensor-gpu';
import { generate as generateTokens } from '@lm/layers';
import { findSharedFixtures, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { buildPrompt, chat, generate, invalidScoreLogitsProcessor, processResponse, streamChat, type ChatHistory, type ChatTokenizer } from './chat.js';
import { ChatGLMForConditionalGeneration } from './modeling.js';
import { chatglmCacheOps, chatglmDecoderStep, greedySearch } from './generation.js';

const webgpu = await testWebGPUBackend();
afterAll(() => webgpu?.destroy());
const backends: [string, Backend][] = webgpu ? [['cpu', testCpuBackend()], ['webgpu', webgpu]] : [['cpu', testCpuBackend()]];
const fixtures = findSharedFixtures(import.meta.url);
const caseDir = (name: string) => (fixtures ? join(fixtures, 'chatglm', name) : '');
const have = !!fixtures && existsSync(join(caseDir('generate_mask_token'), 'model.safetensors'));

/** A character tokenizer over the fixtures' 160-id vocabulary: char code mod 120 + 5, then [gMASK] <bos> as ChatGLMTokenizer frames a prompt. */
const charTokenizer: ChatTokenizer = {
  encode: (text) => ({ inputIds: [...Array.from(text, (ch) => (ch.codePointAt(0)! % 120) + 5), 131, 132] }),
  decode: (ids) => Array.from(ids, (id) => String.fromCharCode(97 + (Number(id) % 26))).join(''),
};

describe('prompt and response text', () => {
  it("builds the reference's [Round N] prompt and refuses history that is not pairs of strings", () => {
    expect(buildPrompt('你好')).toBe('你好');
    const history: ChatHistory = [
      ['你好', '你好！'],
      ['天气', '晴'],
    ];
    expect(buildPrompt('明天呢', history)).toBe('[Round 0]\n问：你好\n答：你好！\n[Round 1]\n问：天气\n答：晴\n[Round 2]\n问：明天呢\n答：');
    expect(() => buildPrompt('q', [['a']] as never)).toThrow(/chat: history\[0\] must be a \[query, response\] pair of strings, got \["a"\]/);
    expect(() => buildPrompt('q', [['a', 3]] as never)).toThrow(/history\[0\]/);
    expect(() => buildPrompt('q', 'a' as never)).toThrow(/history must be an array/);
  });

  it("process_response: trims, fills the training-time placeholder, full-width punctuation beside CJK only", () => {
    expect(processResponse('  今天,明天!好:是;吗? ok, fine! [[训练时间]] ')).toBe('今天，明天！好：是；吗？ ok, fine! 2023年');
    expect(processResponse('a,b 你,')).toBe('a,b 你，');
  });
});

describe.each(backends)('decoding on %s', (_name, backend) => {
  it('the invalid-score guard replaces a row holding NaN or inf by zeros with 5e4 at token 5', async () => {
    const scores = tensor([[1, 2, 3, 4, 5, 6, 7], [1, NaN, 0, 0, 0, 0, 0], [0, 0, -Infinity, 0, 0, 0, 0]], { backend });
    const out = invalidScoreLogitsProcessor()(scores, { inputIds: [], newTokens: 0 });
    expect(await out.toArray()).toEqual([
      [1, 2, 3, 4, 5, 6, 7],
      [0, 0, 0, 0, 0, 5e4, 0],
      [0, 0, 0, 0, 0, 5e4, 0],
    ]);
    [scores, out].forEach((t) => t.dispose());
  });

  for (const name of ['generate_mask_token', 'generate_position_1d_gmask']) {
    it.skipIf(!have)(`greedy generate() equals the reference-driven decoding of ${name}; beams and sampling run on the same cache`, async () => {
      const model = await ChatGLMForConditionalGeneration.fromPretrained(caseDir(name), { backend });
      const prompt = name === 'generate_mask_token' ? [35, 74, 130, 11, 28, 119, 132] : [103, 28, 111, 9, 122, 131, 132];
      const inputIds = tensor([prompt], { dtype: 'int32', backend });
      const reference = await greedySearch(model, { inputIds, maxNewTokens: 8 });
      for (const [k, v] of reference.pastKeyValues) [k, v].forEach((t) => t.dispose());
      const out = await generate(model, inputIds, { maxLength: prompt.length + 8, eosTokenId: undefined });
      expect(out.sequences).toEqual(reference.sequences);
      const beams = await generate(model, inputIds, { maxLength: prompt.length + 4, numBeams: 3, eosTokenId: undefined });
      expect(beams.sequences[0].length).toBe(prompt.length + 4);
      const sampled = await generate(model, inputIds, { maxLength: prompt.length + 4, doSample: true, seed: 3, eosTokenId: undefined });
      expect(sampled.sequences[0].slice(0, prompt.length)).toEqual(prompt);
      inputIds.dispose();
      model.dispose();
    });
  }

  it.skipIf(!have)("given a tokenizer's mask and position ids, decoding follows the auto path for one unpadded 2-D prompt, in greedy and beam search (the grown mask and ids reordered with the beams)", async () => {
    const model = await ChatGLMForConditionalGeneration.fromPretrained(caseDir('generate_mask_token'), { backend });
    model.eval();
    const inputIds = tensor([[35, 74, 130, 11, 28, 119, 132]], { dtype: 'int32', backend });
    const [attentionMask, positionIds] = noGrad(() => [model.transformer.getMasks(inputIds), model.transformer.getPositionIds(inputIds)]); // [1, 1, 7, 7], [1, 2, 7]
    const options = { maxNewTokens: 6, cacheOps: chatglmCacheOps };
    for (const numBeams of [1, 3]) {
      const auto = await generateTokens(chatglmDecoderStep(model), inputIds, { ...options, numBeams });
      const given = await generateTokens(chatglmDecoderStep(model, { attentionMask, positionIds }), inputIds, { ...options, numBeams });
      expect(given.sequences).toEqual(auto.sequences);
      expect(given.sequences[0].length).toBe(13);
    }
    // The caller's mask and position ids are left as they were (the step grows copies).
    expect(attentionMask.shape).toEqual([1, 1, 7, 7]);
    expect(positionIds.shape).toEqual([1, 2, 7]);
    expect(attentionMask.disposed || positionIds.disposed).toBe(false);
    [inputIds, attentionMask, positionIds].forEach((t) => t.dispose());
    model.dispose();
  });

  it.skipIf(!have)('chat and stream_chat: the response grows token by token, history gains the turn; over-long prompts are refused', async () => {
    const model = await ChatGLMForConditionalGeneration.fromPretrained(caseDir('generate_mask_token'), { backend });
    const seen: string[] = [];
    for await (const turn of streamChat(model, charTokenizer, 'hi', [], { maxLength: 12, seed: 1 })) {
      seen.push(turn.response);
      expect(turn.history).toEqual([['hi', turn.response]]);
      // The ids behind the text: the framed prompt, and one more response token per step.
      expect(turn.promptIds).toEqual(charTokenizer.encode('hi').inputIds);
      expect(turn.tokens.length).toBe(seen.length);
      expect(turn.response).toBe(processResponse(charTokenizer.decode(turn.tokens)));
    }
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.length).toBeLessThanOrEqual(8);
    const { response, history } = await chat(model, charTokenizer, 'hi', [['a', 'b']], { maxLength: 40, doSample: false });
    expect(history).toEqual([
      ['a', 'b'],
      ['hi', response],
    ]);
    await expect(chat(model, charTokenizer, 'x'.repeat(70), [])).rejects.toThrow(/chat: the prompt has 72 tokens, more than max_sequence_length 64/);
    await expect(chat(model, charTokenizer, 'hi', [['only one']] as never)).rejects.toThrow(/history\[0\]/);
    model.dispose();
  });
});
