// ChatGLM in the inference worker: builds ChatGLMForConditionalGeneration (float, or int8 / int4 as
// `quantization_bit` in config.json says: THUDM's quantized checkpoints load as published) and
// ChatGLMTokenizer (ice_text.model + tokenizer_config.json) from the files, and chats with
// @lm/chatglm's `streamChat`: the reference's `[Round N]` prompt, its logits processing and
// process_response, each new token posted to the page as it is decoded.
import { ChatGLMForConditionalGeneration, ChatGLMTokenizer, type ChatGLMConfig, QuantizedLinear, streamChat } from '@lm/chatglm';
import type { DType } from '@lm/tensor-gpu';
import { ModelFilesError, pretrainedFiles } from '../files.js';
import type { FamilyRuntime, LoadedModel } from '../types.js';
import type { ChatInput, ChatPartial, ChatResult } from './tasks.js';

/** The tokenizer's files in a ChatGLM folder (THUDM ships ice_text.model and tokenizer_config.json). */
const TOKENIZER_FILES = /^(ice_text\.model|tokenizer_config\.json|special_tokens_map\.json)$/;

export const chatglmRuntime: FamilyRuntime = {
  modelType: 'chatglm',
  async load({ files, config: rawConfig, backend, progress }): Promise<LoadedModel> {
    if (!files.some((f) => f.name === 'ice_text.model')) {
      throw new ModelFilesError(`no ice_text.model among the files (${files.map((f) => f.name).join(', ')}): ChatGLMTokenizer reads THUDM's SentencePiece model`);
    }
    progress({ stage: 'tokenizer', message: 'ChatGLMTokenizer.fromPretrained: ice_text.model and tokenizer_config.json' });
    const tokenizer = await ChatGLMTokenizer.fromPretrained(files.filter((f) => TOKENIZER_FILES.test(f.name)));
    progress({ stage: 'weights', message: 'ChatGLMForConditionalGeneration.fromPretrained: reading the weights tensor by tensor' });
    const model = await ChatGLMForConditionalGeneration.fromPretrained<ChatGLMForConditionalGeneration, ChatGLMConfig>(pretrainedFiles(files), { backend });
    model.eval();
    const config = model.config;

    // The footprint: every registered tensor as the backend stores it (float16 widens to float32 on the
    // cpu backend; int4 / int8 weights are packed in int32 words), and the quantized layers' share.
    const bytesPer = (dtype: DType) => (dtype === 'float16' && backend.name === 'webgpu' ? 2 : dtype === 'bool' && backend.name === 'cpu' ? 1 : 4);
    let weightBytes = 0;
    let quantizedBytes = 0;
    for (const [, t] of model.stateDict()) weightBytes += t.size * bytesPer(t.dtype);
    for (const [, m] of model.namedModules()) {
      if (m instanceof QuantizedLinear) for (const [, t] of m.stateDict()) quantizedBytes += t.size * bytesPer(t.dtype);
    }
    const architectures = Array.isArray(rawConfig.architectures) ? rawConfig.architectures.join(', ') : 'not given';
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 1)} MiB`;

    const tasks: LoadedModel['tasks'] = {
      async chat(input, emit) {
        const { query, history, maxLength, doSample, topP, temperature, seed } = input as ChatInput;
        const t0 = performance.now();
        let firstAt = 0;
        let last: Omit<ChatResult, 'ms' | 'tokensPerSecond' | 'firstTokenMs' | 'backendBytes'> = { response: '', history: [...history, [query, '']], promptIds: [], tokens: [] };
        for await (const turn of streamChat(model, tokenizer, query, history, { maxLength: Math.min(maxLength, config.maxSequenceLength), doSample, topP, temperature, seed })) {
          if (turn.tokens.length === 1) firstAt = performance.now();
          last = turn;
          emit({ response: turn.response, tokens: turn.tokens } satisfies ChatPartial);
        }
        const end = performance.now();
        const n = last.tokens.length;
        const value: ChatResult = {
          ...last,
          ms: end - t0,
          firstTokenMs: n ? firstAt - t0 : 0,
          tokensPerSecond: n > 1 ? ((n - 1) * 1000) / (end - firstAt) : n ? (n * 1000) / (end - t0) : 0,
          backendBytes: backend.memory().bytes,
        };
        return { value };
      },
    };

    return {
      summary: {
        className: `ChatGLMForConditionalGeneration (checkpoint: ${architectures})`,
        numParameters: model.numParameters(),
        vocabSize: config.vocabSize,
        maskToken: null,
        config: [
          ['GLM blocks', config.numLayers],
          ['hidden size / heads', `${config.hiddenSize} / ${config.numAttentionHeads}`],
          ['inner hidden size', config.innerHiddenSize],
          ['positions', `${config.positionEncoding2d ? '2-D' : '1-D'} rotary, max_sequence_length ${config.maxSequenceLength}`],
          ['weights', config.quantizationBit ? `int${config.quantizationBit} GLM-block linears (THUDM's layout), float embeddings and lm_head` : 'float'],
          ['memory (weights in backend storage)', `${mib(weightBytes)}${quantizedBytes ? `, of which quantized linears ${mib(quantizedBytes)}` : ''}`],
          ['vocabulary', `${config.vocabSize} (ice_text.model: ${tokenizer.vocabSize})`],
        ],
      },
      tasks,
      dispose: () => model.dispose(),
    };
  },
};
