// Reformer in the inference worker: builds ReformerModelWithLMHead and its tokenizer from the files and
// runs the panel's tasks with @lm/reformer: generation through the cached decoding path
// (past_buckets_states), streamed token by token, and the LSH buckets of every layer and hash round for a
// text (with the local layers' chunks). Tokenizers: a character vocabulary `vocab.json` (CharTokenizer,
// what `lm-train` exports for configs/reformer-long.yaml), SentencePiece `spiece.model` (ReformerTokenizer,
// what Hugging Face's Reformer checkpoints such as google/reformer-crime-and-punishment carry) or WordPiece
// `vocab.txt` / `tokenizer.json` (configs/reformer-causal-lm.yaml's export).
import { BertTokenizer, stream, type Tokenizer } from '@lm/layers';
import { CharTokenizer, ReformerModelWithLMHead, ReformerTokenizer, LSHSelfAttention } from '@lm/reformer';
import { noGrad, scope, tensor, type Tensor } from '@lm/tensor-gpu';
import { pretrainedFiles, tokenizerFiles } from '../files.js';
import type { FamilyRuntime, LoadedModel } from '../types.js';
import type { BucketsInput, BucketsResult, GenerateInput, GeneratePartial, GenerateResult, LayerBuckets } from './tasks.js';

/**
 * vocab.json (+ tokenizer_config.json) -> CharTokenizer; spiece.model (+ tokenizer_config.json /
 * special_tokens_map.json) -> ReformerTokenizer, ahead of a tokenizer.json beside it (as Hugging Face's slow
 * tokenizer reads the folder); vocab.txt / tokenizer.json -> BertTokenizer; anything else is refused by name.
 */
async function loadTokenizer(files: File[]): Promise<Tokenizer> {
  const named = (name: string) => files.find((f) => f.name === name);
  const charVocab = named('vocab.json');
  if (charVocab) {
    const config = named('tokenizer_config.json');
    return CharTokenizer.fromPretrained({ 'vocab.json': await charVocab.text(), ...(config ? { 'tokenizer_config.json': await config.text() } : {}) });
  }
  if (named('spiece.model')) return ReformerTokenizer.fromPretrained(files.filter((f) => /^(spiece\.model|tokenizer_config\.json|special_tokens_map\.json)$/.test(f.name)));
  if (named('vocab.txt') || named('tokenizer.json')) return BertTokenizer.fromPretrained(tokenizerFiles(files));
  throw new Error(`the Reformer panel reads a vocab.json (CharTokenizer), spiece.model (ReformerTokenizer), vocab.txt or tokenizer.json tokenizer; none among the files (${files.map((f) => f.name).join(', ')})`);
}

export const reformerRuntime: FamilyRuntime = {
  modelType: 'reformer',
  async load({ files, config: rawConfig, backend, progress }): Promise<LoadedModel> {
    // The tokenizer first: a folder without one is refused before the weights are read.
    progress({ stage: 'tokenizer', message: 'CharTokenizer (vocab.json), ReformerTokenizer (spiece.model) or BertTokenizer (vocab.txt / tokenizer.json)' });
    const tokenizer = await loadTokenizer(files);
    progress({ stage: 'weights', message: 'ReformerModelWithLMHead.fromPretrained: reading the weights' });
    const model = await ReformerModelWithLMHead.fromPretrained(pretrainedFiles(files), { backend });
    const config = model.config;
    const architectures = Array.isArray(rawConfig.architectures) ? rawConfig.architectures.join(', ') : 'not given';
    // Prompts start like the trainer's examples: [CLS] under WordPiece (no bos there), nothing under the
    // character tokenizer (packed blocks start anywhere in the text) nor under SentencePiece (the
    // reference ReformerTokenizer adds no special tokens).
    const bos = tokenizer.specialTokenIds.bos ?? tokenizer.specialTokenIds.cls;
    const eos = tokenizer.specialTokenIds.eos ?? tokenizer.specialTokenIds.sep;
    const encode = (text: string): number[] => {
      const ids = [...(bos !== null ? [bos] : []), ...tokenizer.encode(text, null, { addSpecialTokens: false }).inputIds];
      if (ids.length > config.maxPositionEmbeddings) throw new RangeError(`the text is ${ids.length} tokens long; this model takes at most ${config.maxPositionEmbeddings}`);
      return ids;
    };
    // Each id's token as shown: WordPiece's pieces (with ##) or SentencePiece's (with ▁), else each id
    // decoded alone (one character).
    const strings = (ids: number[]): string[] =>
      tokenizer instanceof BertTokenizer ? (tokenizer.convertIdsToTokens(ids) as string[]) : tokenizer instanceof ReformerTokenizer ? tokenizer.convertIdsToTokens(ids) : ids.map((id) => tokenizer.decode([id]));

    const tasks: LoadedModel['tasks'] = {
      async generate(input, emit) {
        const { prompt, maxNewTokens, doSample, temperature, topK, seed } = input as GenerateInput;
        const ids = encode(prompt);
        const room = config.maxPositionEmbeddings - ids.length;
        const inputIds = tensor([ids], { dtype: 'int32', backend });
        const tokens: number[] = [];
        const t0 = performance.now();
        let firstAt = 0;
        try {
          for await (const event of stream(model.decoderStep(), inputIds, {
            maxNewTokens: Math.max(0, Math.min(maxNewTokens, room)),
            doSample,
            temperature,
            topK,
            seed,
            ...(eos !== null ? { eosTokenId: eos } : {}),
          })) {
            if (tokens.length === 0) firstAt = performance.now();
            tokens.push(event.token);
            emit({ token: event.token, text: tokenizer.decode(tokens, { skipSpecialTokens: true }) } satisfies GeneratePartial);
          }
        } finally {
          inputIds.dispose();
        }
        const ms = performance.now() - t0;
        const value: GenerateResult = {
          promptTokens: strings(ids),
          tokens,
          text: tokenizer.decode(tokens, { skipSpecialTokens: true }),
          ms,
          msPerToken: tokens.length > 1 ? (performance.now() - firstAt) / (tokens.length - 1) : ms,
        };
        return { value };
      },

      async buckets(input) {
        const { text } = input as BucketsInput;
        const ids = encode(text);
        const seq = ids.length;
        const t0 = performance.now();
        const layers = model.reformer.encoder.layers.items;
        // The attention input of every layer (the Y2 stream), normalised as the attention sees it; LSH
        // layers hash it (hashing needs no chunking, so short texts are shown too).
        const perLayer = scope(() =>
          noGrad(() => {
            const out = model.reformer.forward({ inputIds: tensor([ids], { dtype: 'int32', backend }), outputHiddenStates: true, useCache: false });
            return layers.map((layer, i) => {
              const attn = layer.attention.self_attention;
              if (!(attn instanceof LSHSelfAttention)) return null;
              return attn.bucketsFor(layer.attention.layer_norm.forward(out.hiddenStates![i])); // [1, heads, hashes, seq]
            });
          }),
        );
        try {
          const result: LayerBuckets[] = [];
          for (const [i, layer] of layers.entries()) {
            const attn = layer.attention.self_attention;
            const t = perLayer[i] as Tensor | null;
            if (attn instanceof LSHSelfAttention && t) {
              const [, heads, rounds] = t.shape;
              const data = await t.data();
              const nb = attn.numBuckets!;
              result.push({
                layer: i,
                type: 'lsh',
                chunkLength: attn.chunkLength,
                numBuckets: Array.isArray(nb) ? nb.reduce((a, b) => a * b, 1) : nb,
                buckets: Array.from({ length: heads }, (_, hd) => Array.from({ length: rounds }, (_, r) => Array.from(data.subarray((hd * rounds + r) * seq, (hd * rounds + r + 1) * seq)))),
                chunksBefore: attn.numChunksBefore,
                chunksAfter: attn.numChunksAfter,
              });
            } else {
              const local = attn as unknown as { chunkLength: number; numChunksBefore: number; numChunksAfter: number };
              result.push({ layer: i, type: 'local', chunkLength: local.chunkLength, numBuckets: 0, buckets: null, chunksBefore: local.numChunksBefore, chunksAfter: local.numChunksAfter });
            }
          }
          const value: BucketsResult = { tokens: strings(ids), layers: result, seeded: config.hashSeed !== null, ms: performance.now() - t0 };
          return { value };
        } finally {
          for (const t of perLayer) t?.dispose();
        }
      },
    };

    return {
      summary: {
        className: `ReformerModelWithLMHead (checkpoint: ${architectures})`,
        numParameters: model.numParameters(),
        vocabSize: config.vocabSize,
        maskToken: null,
        config: [
          ['hidden size', config.hiddenSize],
          ['attention layers', config.attnLayers.join(', ')],
          ['attention heads', `${config.numAttentionHeads} x ${config.attentionHeadSize}`],
          ['LSH buckets / hashes / chunk', `${JSON.stringify(config.numBuckets)} / ${config.numHashes} / ${config.lshAttnChunkLength}`],
          ['local chunk', config.localAttnChunkLength],
          ['positions', config.axialPosEmbds ? `axial ${config.axialPosShape.join(' x ')}` : `learned ${config.maxPositionEmbeddings}`],
          ['vocabulary', config.vocabSize],
          ['tokenizer', tokenizer instanceof CharTokenizer ? 'characters (vocab.json, CharTokenizer)' : tokenizer instanceof ReformerTokenizer ? 'SentencePiece (spiece.model, ReformerTokenizer)' : 'WordPiece (BertTokenizer)'],
          ['hash seed', config.hashSeed === null ? 'none (fresh rotations each call)' : config.hashSeed],
        ],
      },
      tasks,
      dispose: () => model.dispose(),
    };
  },
};
