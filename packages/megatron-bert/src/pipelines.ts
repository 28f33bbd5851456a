// The fill-mask pipeline: text with [MASK] -> the most likely tokens for each mask, with probabilities.
// Mirrors Hugging Face transformers `pipelines/fill_mask.py` (`FillMaskPipeline`: preprocess, forward,
// postprocess): softmax over the vocabulary at each mask position, top-k, each candidate's token id,
// its decoded string and the input with the mask replaced (pads dropped; special tokens skipped when the
// text has a single mask, kept when it has several so the other masks stay visible).

import { fromHost, noGrad, scope, tensor, topk, type Tensor } from '@lm/tensor-gpu';
import type { BertTokenizer } from '@lm/layers';
import type { MegatronBertForMaskedLM, MegatronBertForPreTraining } from './modeling.js';

export interface FillMaskOptions {
  /** Candidates per mask (default 5; capped at the number of targets when targets are given). */
  topK?: number;
  /** Score only these tokens (vocabulary entries, e.g. ['paris', 'london']). */
  targets?: readonly string[];
}

/** One candidate for one mask. */
export interface FillMaskCandidate {
  /** Probability of the token at this mask. */
  score: number;
  /** Token id. */
  token: number;
  /** The token decoded on its own. */
  tokenStr: string;
  /** The input with this mask replaced by the token. */
  sequence: string;
}

/** A masked-LM model: MegatronBertForMaskedLM, or MegatronBertForPreTraining (its MLM head). */
export type FillMaskModel = MegatronBertForMaskedLM | MegatronBertForPreTraining;

/**
 * Fills every `[MASK]` in `text`: one list of `topK` candidates per mask, in the order the masks appear
 * (a text with one mask gives `[candidates]`).
 */
export async function fillMask(model: FillMaskModel, tokenizer: BertTokenizer, text: string, options: FillMaskOptions = {}): Promise<FillMaskCandidate[][]> {
  const maskId = tokenizer.maskTokenId;
  if (maskId === null) throw new TypeError('fillMask: the tokenizer has no mask token');
  const encoding = tokenizer.encode(text);
  const inputIds = encoding.inputIds;
  const maskedIndex = inputIds.flatMap((id, i) => (id === maskId ? [i] : []));
  if (maskedIndex.length === 0) throw new TypeError(`fillMask: no mask token (${tokenizer.config.maskToken}) found in the input "${text}"`);

  let targetIds: number[] | null = null;
  if (options.targets) {
    targetIds = options.targets.map((t) => {
      const id = tokenizer.vocab.get(t) ?? tokenizer.convertTokensToIds(tokenizer.tokenize(t))[0];
      if (id === undefined) throw new TypeError(`fillMask: target "${t}" is not in the vocabulary`);
      return id;
    });
  }
  const topK = Math.min(options.topK ?? 5, targetIds ? targetIds.length : Infinity);

  const backend = model.getInputEmbeddings().weight.backend;
  const { values, predictions } = scope(() =>
    noGrad(() => {
      const ids = tensor([inputIds], { dtype: 'int32', backend }); // [1, seq]
      const forward = {
        inputIds: ids,
        attentionMask: tensor([encoding.attentionMask ?? inputIds.map(() => 1)], { dtype: 'int32', backend }),
        tokenTypeIds: tensor([encoding.tokenTypeIds ?? inputIds.map(() => 0)], { dtype: 'int32', backend }),
      };
      const out = model.forward(forward);
      const logits: Tensor = 'logits' in out ? out.logits : out.predictionLogits; // [1, seq, vocab]
      const at = fromHost(Int32Array.from(maskedIndex), [maskedIndex.length], 'int32', backend);
      let probs = logits.select(0, 0).indexSelect(0, at).softmax(-1); // [masks, vocab]
      if (targetIds) probs = probs.indexSelect(1, fromHost(Int32Array.from(targetIds), [targetIds.length], 'int32', backend)); // [masks, targets]
      const top = topk(probs, topK, -1); // [masks, topK]
      return { values: top.values, predictions: top.indices };
    }),
  );
  const [scores, picked] = await Promise.all([values.data(), predictions.data()]);
  values.dispose();
  predictions.dispose();

  const singleMask = maskedIndex.length === 1;
  const padId = tokenizer.padTokenId;
  return maskedIndex.map((position, i) =>
    Array.from({ length: topK }, (_, j) => {
      const k = i * topK + j;
      const token = targetIds ? targetIds[picked[k]] : picked[k];
      const tokens = inputIds.map((id, t) => (t === position ? token : id)).filter((id) => id !== padId);
      return {
        score: scores[k],
        token,
        tokenStr: tokenizer.decode([token]),
        // One mask: readable text without [CLS]/[SEP]; several: keep special tokens so the other masks show.
        sequence: tokenizer.decode(tokens, { skipSpecialTokens: singleMask }),
      };
    }),
  );
}
