// T5 in the inference worker: builds T5ForConditionalGeneration and its tokenizer from the files and runs
// the panel's tasks with @lm/t5. The tokenizer is SentencePiece's T5Tokenizer when the folder has
// spiece.model (real T5 checkpoints), else the WordPiece vocab.txt + sentinels (ExtraIdsTokenizer) that
// lm-train's t5 family exports. `generate` streams greedy or sampled tokens through the model's cached
// decoding path (encoder once, cross-attention keys/values once) or runs beam search; `crossAttention`
// re-reads the generated tokens with teacher forcing and returns every layer's and head's cross-attention.
import { ExtraIdsTokenizer, T5ForConditionalGeneration, T5Tokenizer, type T5GenerateOptions } from '@lm/t5';
import { noGrad, scope, stack, tensor, type Tensor } from '@lm/tensor-gpu';
import { pretrainedFiles } from '../files.js';
import type { FamilyRuntime, LoadedModel } from '../types.js';
import type { CrossAttentionInput, CrossAttentionResult, GenerateInput, GeneratePartial, GenerateResult } from './tasks.js';

type T5PanelTokenizer = T5Tokenizer | ExtraIdsTokenizer;

/** spiece.model (with tokenizer.json / tokenizer_config.json / special_tokens_map.json) or vocab.txt + sentinels. */
async function loadTokenizer(files: File[]): Promise<T5PanelTokenizer> {
  const named = (name: string) => files.find((f) => f.name === name);
  if (named('spiece.model') || named('tokenizer.json')) {
    return T5Tokenizer.fromPretrained(files.filter((f) => /^(spiece\.model|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json)$/.test(f.name)));
  }
  const vocab = named('vocab.txt');
  if (!vocab) throw new Error(`the T5 panel needs spiece.model, tokenizer.json or vocab.txt; none among the files (${files.map((f) => f.name).join(', ')})`);
  const configFile = named('tokenizer_config.json');
  const tokenizerConfig = configFile ? (JSON.parse(await configFile.text()) as { do_lower_case?: unknown }) : {};
  return ExtraIdsTokenizer.fromVocab(await vocab.text(), { lowercase: tokenizerConfig.do_lower_case !== false });
}

const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : 0);

export const t5Runtime: FamilyRuntime = {
  modelType: 't5',
  async load({ files, config: rawConfig, backend, progress }): Promise<LoadedModel> {
    progress({ stage: 'tokenizer', message: 'T5Tokenizer (spiece.model) or ExtraIdsTokenizer (vocab.txt + sentinels)' });
    const tokenizer = await loadTokenizer(files);
    progress({ stage: 'weights', message: 'T5ForConditionalGeneration.fromPretrained: reading the weights' });
    const model = await T5ForConditionalGeneration.fromPretrained(pretrainedFiles(files), { backend });
    model.eval();
    const config = model.config;
    const architectures = Array.isArray(rawConfig.architectures) ? rawConfig.architectures.join(', ') : 'not given';
    const eos = tokenizer.specialTokenIds.eos ?? config.eosTokenId;
    const pad = tokenizer.specialTokenIds.pad ?? config.padTokenId;
    const start = config.decoderStartTokenId ?? pad ?? 0;
    // Shown text: sentinels kept (they frame the filled spans), pad and eos left out.
    const hidden = new Set([eos, pad].filter((id): id is number => id !== null && id !== undefined));
    const decode = (ids: number[]) => tokenizer.decode(ids.filter((id) => !hidden.has(id)), { skipSpecialTokens: false }).trim();
    const strings = (ids: number[]) => ids.map((id) => tokenizer.decode([id], { skipSpecialTokens: false }) || `[${id}]`);
    const encode = (text: string) => {
      const ids = tokenizer.encode(text).inputIds;
      const bad = ids.find((id) => id < 0 || id >= config.vocabSize);
      if (bad !== undefined) throw new RangeError(`the tokenizer gave id ${bad}, outside the model's vocabulary [0, ${config.vocabSize})`);
      return ids;
    };
    const rows = (ids: number[]) => tensor([ids], { dtype: 'int32', backend }); // [1, seq]

    const tasks: LoadedModel['tasks'] = {
      async generate(input, emit) {
        const { text, mode, maxNewTokens, numBeams, temperature, topK, topP, seed } = input as GenerateInput;
        if (!Number.isInteger(maxNewTokens) || maxNewTokens <= 0) throw new RangeError(`max new tokens must be a positive integer, got ${maxNewTokens}`);
        const inputIds = encode(text);
        const ids = rows(inputIds);
        const options: T5GenerateOptions = { maxNewTokens, decoderStartTokenId: start, ...(eos !== null ? { eosTokenId: eos } : {}) };
        if (mode === 'sample') Object.assign(options, { doSample: true, temperature, topK, topP, seed });
        const tokens: number[] = [];
        const t0 = performance.now();
        const stamps: number[] = [];
        try {
          if (mode === 'beam') {
            const out = await model.generate(ids, { ...options, numBeams, earlyStopping: true });
            tokens.push(...out.sequences[0].slice(1));
            // Rows that ended early are padded: cut after the first eos.
            const end = tokens.indexOf(eos ?? -1);
            if (end >= 0) tokens.length = end + 1;
          } else {
            for await (const event of model.stream(ids, options)) {
              stamps.push(performance.now());
              tokens.push(event.token);
              emit({ token: event.token, text: decode(tokens) } satisfies GeneratePartial);
            }
          }
        } finally {
          ids.dispose();
        }
        const ms = performance.now() - t0;
        const value: GenerateResult = {
          inputIds,
          inputTokens: strings(inputIds),
          tokens,
          outputTokens: strings(tokens),
          text: decode(tokens),
          ms,
          msPerToken: stamps.length > 1 ? median(stamps.slice(1).map((t, i) => t - stamps[i])) : ms / Math.max(1, tokens.length),
        };
        return { value };
      },

      async crossAttention(input) {
        const { inputIds, tokens } = input as CrossAttentionInput;
        if (tokens.length === 0) throw new RangeError('crossAttention: no generated tokens');
        const t0 = performance.now();
        // Teacher forcing: the decoder reads [start, t0 .. t(n-2)], so row i is the step that chose tokens[i].
        const attentions = scope(() =>
          noGrad(() => {
            const out = model.forward({ inputIds: rows(inputIds), decoderInputIds: rows([start, ...tokens.slice(0, -1)]), outputAttentions: true, useCache: false });
            return stack(out.crossAttentions!, 0); // [layers, 1, heads, decoderSeq, encoderSeq]
          }),
        ) as Tensor;
        try {
          const [layers, , heads] = attentions.shape;
          const data = Float32Array.from(await attentions.data());
          const value: CrossAttentionResult = { encoderTokens: strings(inputIds), decoderTokens: strings(tokens), layers, heads, data, ms: performance.now() - t0 };
          return { value, transfer: [data.buffer] };
        } finally {
          attentions.dispose();
        }
      },
    };

    return {
      summary: {
        className: `T5ForConditionalGeneration (checkpoint: ${architectures})`,
        numParameters: model.numParameters(),
        vocabSize: config.vocabSize,
        maskToken: null,
        config: [
          ['d_model / d_kv / d_ff', `${config.dModel} / ${config.dKv} / ${config.dFf}`],
          ['layers (encoder + decoder)', `${config.numLayers} + ${config.numDecoderLayers}`],
          ['attention heads', config.numHeads],
          ['feed-forward', config.feedForwardProj],
          ['relative position buckets / max distance', `${config.relativeAttentionNumBuckets} / ${config.relativeAttentionMaxDistance}`],
          ['tied embeddings', String(config.tieWordEmbeddings)],
          ['vocabulary', config.vocabSize],
          ['tokenizer', tokenizer instanceof T5Tokenizer ? 'SentencePiece (spiece.model)' : `WordPiece + ${tokenizer.extraIds} sentinels (vocab.txt)`],
          ['decoder start / eos', `${start} / ${eos}`],
        ],
      },
      tasks,
      dispose: () => model.dispose(),
    };
  },
};
