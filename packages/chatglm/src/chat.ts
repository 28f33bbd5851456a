// ChatGLM-6B's chat surface (THUDM/chatglm-6b `modeling_chatglm.py`: InvalidScoreLogitsProcessor,
// process_response, chat, stream_chat, generate) on @lm/layers' decoding loop (greedy, sampling, beam
// search, streaming). Decoding takes the reference's auto path: the prefill derives its masks and
// position ids from the ids, each cached step attends to every cached key with position ids
// [mask position, total length - context length] (2-D) or [mask position] (1-D). For one unpadded
// prompt (what chat sends) this is exactly what the tokenizer's mask and position ids lead to.

import { arange, fromHost, where, type Tensor } from '@lm/tensor-gpu';
import { generate as generateTokens, stream, type GenerateOptions, type GenerateOutput, type LogitsProcessor, type StreamEvent, type Tokenizer } from '@lm/layers';
import { ChatGLMInputError, type ChatGLMForConditionalGeneration } from './modeling.js';
import { chatglmCacheOps, chatglmDecoderStep, rowSpecialPositions, type ChatGLMCache } from './generation.js';

/**
 * The reference's InvalidScoreLogitsProcessor: a row of scores holding NaN or inf (fp16 overflow) is
 * replaced by zeros with 5e4 at token 5, so sampling still yields a token. Here per row; the
 * reference clears the whole batch when any row is invalid (identical for one prompt, as chat sends).
 */
export function invalidScoreLogitsProcessor(): LogitsProcessor {
  return (scores) => {
    const vocab = scores.shape[scores.rank - 1];
    const bad = scores.isNan().logicalOr(scores.abs().eq(Infinity)).toFloat().max(-1, true).gt(0); // [rows, 1]
    const replacement = where(arange(0, vocab, 1, { backend: scores.backend }).eq(5), 5e4, 0); // [vocab]
    return where(bad, replacement, scores); // [rows, vocab]
  };
}

/**
 * The reference's process_response: trims, fills the [[训练时间]] placeholder, and turns ASCII , ! : ;
 * ? next to a CJK character into their full-width forms.
 */
export function processResponse(response: string): string {
  let out = response.trim().replaceAll('[[训练时间]]', '2023年');
  const punkts: [string, string][] = [
    [',', '，'],
    ['!', '！'],
    [':', '：'],
    [';', '；'],
    ['?', '？'],
  ];
  for (const [ascii, wide] of punkts) {
    const a = ascii.replace(/[?]/g, '\\?');
    out = out.replace(new RegExp(`([\\u4e00-\\u9fff])${a}`, 'g'), `$1${wide}`);
    out = out.replace(new RegExp(`${a}([\\u4e00-\\u9fff])`, 'g'), `${wide}$1`);
  }
  return out;
}

export type ChatHistory = [string, string][];

/** What chat needs of a tokenizer (ChatGLMTokenizer, or any `Tokenizer` whose encode appends [gMASK] <sop>). */
export type ChatTokenizer = Pick<Tokenizer, 'encode' | 'decode'>;

/** The reference's prompt: the query alone without history, else "[Round i]\n问：q\n答：r\n" rounds then the new one. */
export function buildPrompt(query: string, history: ChatHistory = []): string {
  if (typeof query !== 'string') throw new ChatGLMInputError(`chat: query must be a string, got ${typeof query}`);
  checkHistory(history);
  if (history.length === 0) return query;
  let prompt = '';
  history.forEach(([oldQuery, response], i) => {
    prompt += `[Round ${i}]\n问：${oldQuery}\n答：${response}\n`;
  });
  return `${prompt}[Round ${history.length}]\n问：${query}\n答：`;
}

function checkHistory(history: unknown): asserts history is ChatHistory {
  if (!Array.isArray(history)) throw new ChatGLMInputError(`chat: history must be an array of [query, response] pairs, got ${typeof history}`);
  history.forEach((turn, i) => {
    if (!Array.isArray(turn) || turn.length !== 2 || typeof turn[0] !== 'string' || typeof turn[1] !== 'string') {
      throw new ChatGLMInputError(`chat: history[${i}] must be a [query, response] pair of strings, got ${JSON.stringify(turn)}`);
    }
  });
}

export interface ChatOptions extends Omit<GenerateOptions<ChatGLMCache>, 'cacheOps' | 'maxNewTokens'> {
  /** Total length, prompt included (the reference's max_length; default 2048). */
  maxLength?: number;
}

/** Checks the ids (host rows) as the reference would before decoding, and the length budget; returns maxNewTokens. */
async function checkInputs(model: ChatGLMForConditionalGeneration, inputIds: Tensor, maxLength: number, what: string): Promise<number> {
  const [batch, seq] = inputIds.shape;
  const data = await inputIds.data();
  for (let b = 0; b < batch; b++) rowSpecialPositions(Array.from(data.subarray(b * seq, (b + 1) * seq)), model.config, `${what} row ${b}`);
  const limit = model.config.maxSequenceLength;
  if (seq > limit) throw new ChatGLMInputError(`${what}: the prompt has ${seq} tokens, more than max_sequence_length ${limit}`);
  if (seq >= maxLength) throw new ChatGLMInputError(`${what}: the prompt has ${seq} tokens, which leaves nothing to generate within max_length ${maxLength}`);
  return Math.min(maxLength, limit) - seq;
}

function generationOptions(model: ChatGLMForConditionalGeneration, options: ChatOptions, maxNewTokens: number): GenerateOptions<ChatGLMCache> {
  const { maxLength: _maxLength, ...rest } = options;
  return {
    doSample: true,
    topP: 0.7,
    temperature: 0.95,
    topK: 0,
    eosTokenId: model.config.eosTokenId ?? undefined,
    padTokenId: model.config.padTokenId ?? undefined,
    ...rest,
    maxNewTokens,
    logitsProcessors: [...(rest.logitsProcessors ?? []), invalidScoreLogitsProcessor()],
    cacheOps: chatglmCacheOps,
  };
}

/** `generate`: greedy (default here, as transformers'), sampling or beam search on int32 ids [batch, len]. */
export async function generate(model: ChatGLMForConditionalGeneration, inputIds: Tensor, options: ChatOptions = {}): Promise<GenerateOutput> {
  const maxNewTokens = await checkInputs(model, inputIds, options.maxLength ?? 2048, 'generate');
  return generateTokens(chatglmDecoderStep(model), inputIds, { doSample: false, ...generationOptions(model, { doSample: false, ...options }, maxNewTokens) });
}

/** The reference's `chat`: one turn (sampling with top_p 0.7, temperature 0.95 unless given), the response and the new history. */
export async function chat(model: ChatGLMForConditionalGeneration, tokenizer: ChatTokenizer, query: string, history: ChatHistory = [], options: ChatOptions = {}): Promise<{ response: string; history: ChatHistory }> {
  let last = { response: '', history: [...history, [query, ''] as [string, string]] };
  for await (const turn of streamChat(model, tokenizer, query, history, options)) last = turn;
  return last;
}

/**
 * The reference's `stream_chat`: yields the processed response so far (and the history with it) after
 * every token, with the prompt's ids and the response's token ids so far (before <eop>).
 */
export async function* streamChat(
  model: ChatGLMForConditionalGeneration,
  tokenizer: ChatTokenizer,
  query: string,
  history: ChatHistory = [],
  options: ChatOptions = {},
): AsyncGenerator<{ response: string; history: ChatHistory; promptIds: number[]; tokens: number[] }> {
  const prompt = buildPrompt(query, history);
  const ids = tokenizer.encode(prompt).inputIds;
  const backend = model.lm_head.weight.backend;
  const inputIds = fromHost(Int32Array.from(ids), [1, ids.length], 'int32', backend); // [1, len]
  try {
    const maxNewTokens = await checkInputs(model, inputIds, options.maxLength ?? 2048, 'chat');
    const tokens: number[] = [];
    const events: AsyncIterable<StreamEvent> = stream(chatglmDecoderStep(model), inputIds, generationOptions(model, options, maxNewTokens));
    for await (const event of events) {
      if (event.finishReason === 'eos') break;
      tokens.push(event.token);
      const response = processResponse(tokenizer.decode(tokens));
      yield { response, history: [...history, [query, response]], promptIds: ids, tokens: [...tokens] };
    }
  } finally {
    inputIds.dispose();
  }
}

