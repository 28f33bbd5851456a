// MegatronBERT in the inference worker: builds MegatronBertForMaskedLM and its BertTokenizer from the
// files and runs the panel's tasks with @lm/megatron-bert. fillMask is the package's own pipeline, so
// the page shows exactly what the library computes; the inspection task runs one more forward with
// outputAttentions / outputHiddenStates and reads the embeddings.
import { BertTokenizer } from '@lm/layers';
import { MegatronBertForMaskedLM, fillMask } from '@lm/megatron-bert';
import { noGrad, scope, stack, tensor, topk, type Tensor } from '@lm/tensor-gpu';
import { pretrainedFiles, tokenizerFiles } from '../files.js';
import type { FamilyRuntime, LoadedModel } from '../types.js';
import type { FillMaskInput, FillMaskResult, InspectInput, InspectResult, NeighboursInput, NeighboursResult, TokenInfo } from './tasks.js';

const PREVIEW_DIMS = 8;

export const megatronBertRuntime: FamilyRuntime = {
  modelType: 'megatron-bert',
  async load({ files, config: rawConfig, backend, progress }): Promise<LoadedModel> {
    progress({ stage: 'weights', message: 'MegatronBertForMaskedLM.fromPretrained: reading the weights' });
    const model = await MegatronBertForMaskedLM.fromPretrained(pretrainedFiles(files), { backend });
    let tokenizer: BertTokenizer;
    try {
      progress({ stage: 'tokenizer', message: 'BertTokenizer.fromPretrained: vocab.txt / tokenizer.json' });
      tokenizer = await BertTokenizer.fromPretrained(tokenizerFiles(files));
    } catch (err) {
      model.dispose();
      throw err;
    }
    const config = model.config;
    const architectures = Array.isArray(rawConfig.architectures) ? rawConfig.architectures.join(', ') : 'not given';

    const encode = (text: string): { ids: number[]; typeIds: number[]; tokens: TokenInfo[] } => {
      const enc = tokenizer.encode(text);
      const ids = enc.inputIds;
      if (ids.length > config.maxPositionEmbeddings) {
        throw new RangeError(`the text is ${ids.length} tokens long; this model takes at most ${config.maxPositionEmbeddings}`);
      }
      const typeIds = enc.tokenTypeIds ?? ids.map(() => 0);
      const special = new Set(tokenizer.allSpecialIds);
      const strings = tokenizer.convertIdsToTokens(ids) as string[];
      return { ids, typeIds, tokens: ids.map((id, i) => ({ id, token: strings[i], typeId: typeIds[i], special: special.has(id) })) };
    };

    const tasks: LoadedModel['tasks'] = {
      async fillMask(input) {
        const { text, topK } = input as FillMaskInput;
        const { ids, tokens } = encode(text);
        const t0 = performance.now();
        const perMask = await fillMask(model, tokenizer, text, { topK });
        const ms = performance.now() - t0;
        const positions = ids.flatMap((id, i) => (id === tokenizer.maskTokenId ? [i] : []));
        const value: FillMaskResult = { masks: perMask.map((candidates, i) => ({ position: positions[i], candidates })), tokens, ms };
        return { value };
      },

      async inspect(input) {
        const { text } = input as InspectInput;
        const { ids, typeIds, tokens } = encode(text);
        const seq = ids.length;
        const t0 = performance.now();
        const embeddings = model.bert.embeddings;
        const absolute = config.positionEmbeddingType === 'absolute';
        const out = scope(() =>
          noGrad(() => {
            const inputIds = tensor([ids], { dtype: 'int32', backend }); // [1, seq]
            const result = model.forward({
              inputIds,
              attentionMask: tensor([ids.map(() => 1)], { dtype: 'int32', backend }),
              tokenTypeIds: tensor([typeIds], { dtype: 'int32', backend }),
              outputAttentions: true,
              outputHiddenStates: true,
            });
            const attentions = stack(result.attentions!, 0).reshape(config.numHiddenLayers, config.numAttentionHeads, seq, seq).contiguous(); // [layers, heads, seq, seq]
            const hidden = stack(result.hiddenStates!, 0).reshape(config.numHiddenLayers + 1, seq, config.hiddenSize); // [layers + 1, seq, hidden]
            const hiddenNorms = hidden.square().sum(-1).sqrt(); // [layers + 1, seq]
            const word = embeddings.word_embeddings.weight.indexSelect(0, inputIds.reshape(-1)); // [seq, hidden]
            const wordNorms = word.square().sum(-1).sqrt(); // [seq]
            const preview = word.narrow(1, 0, Math.min(PREVIEW_DIMS, config.hiddenSize)).contiguous(); // [seq, dims]
            const positionNorms = absolute ? embeddings.position_embeddings.weight.narrow(0, 0, seq).square().sum(-1).sqrt() : null; // [seq]
            return { attentions, hiddenNorms, wordNorms, preview, positionNorms };
          }),
        );
        try {
          const [att, hn, wn, pv, pn] = await Promise.all([
            out.attentions.data(),
            out.hiddenNorms.data(),
            out.wordNorms.data(),
            out.preview.data(),
            out.positionNorms?.data() ?? Promise.resolve(null),
          ]);
          const dims = Math.min(PREVIEW_DIMS, config.hiddenSize);
          const value: InspectResult = {
            tokens,
            attentions: { layers: config.numHiddenLayers, heads: config.numAttentionHeads, seq, data: Float32Array.from(att) },
            wordNorms: Array.from(wn),
            positionNorms: pn ? Array.from(pn) : null,
            hiddenNorms: Array.from({ length: config.numHiddenLayers + 1 }, (_, l) => Array.from(hn.subarray(l * seq, (l + 1) * seq))),
            embeddingPreview: Array.from({ length: seq }, (_, t) => Array.from(pv.subarray(t * dims, (t + 1) * dims))),
            hiddenSize: config.hiddenSize,
            ms: performance.now() - t0,
          };
          return { value, transfer: [value.attentions.data.buffer] };
        } finally {
          for (const t of Object.values(out) as (Tensor | null)[]) t?.dispose();
        }
      },

      async neighbours(input) {
        const { tokenId, k } = input as NeighboursInput;
        if (!Number.isInteger(tokenId) || tokenId < 0 || tokenId >= config.vocabSize) throw new RangeError(`token id ${tokenId} is outside the vocabulary (0..${config.vocabSize - 1})`);
        const count = Math.min(k + 1, config.vocabSize);
        const top = scope(() =>
          noGrad(() => {
            const w = model.bert.embeddings.word_embeddings.weight; // [vocab, hidden]
            const unit = w.div(w.square().sum(-1, true).sqrt().clamp(1e-12)); // rows of norm 1
            const cosine = unit.matmul(unit.narrow(0, tokenId, 1).transpose(0, 1)).reshape(-1); // [vocab]
            return topk(cosine, count, -1);
          }),
        );
        const [values, indices] = await Promise.all([top.values.data(), top.indices.data()]);
        top.values.dispose();
        top.indices.dispose();
        const value: NeighboursResult = {
          token: tokenizer.convertIdsToTokens(tokenId) as string,
          neighbours: Array.from(indices)
            .map((id, i) => ({ id, token: tokenizer.convertIdsToTokens(id) as string, cosine: values[i] }))
            .filter((n) => n.id !== tokenId)
            .slice(0, k),
        };
        return { value };
      },
    };

    return {
      summary: {
        className: `MegatronBertForMaskedLM (checkpoint: ${architectures})`,
        numParameters: model.numParameters(),
        vocabSize: config.vocabSize,
        maskToken: tokenizer.config.maskToken,
        config: [
          ['hidden size', config.hiddenSize],
          ['layers', config.numHiddenLayers],
          ['attention heads', config.numAttentionHeads],
          ['intermediate size', config.intermediateSize],
          ['vocabulary', config.vocabSize],
          ['max positions', config.maxPositionEmbeddings],
          ['position embeddings', config.positionEmbeddingType],
          ['activation', String(config.hiddenAct)],
        ],
      },
      tasks,
      dispose: () => model.dispose(),
    };
  },
};
