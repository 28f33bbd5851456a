import { describe, expect, it } from 'vitest';
import { manualSeed, scope, tensor } from '@lm/tensor-gpu';
import { AdamW, BertTokenizer } from '@lm/layers';
import { testCpuBackend } from '@lm/tensor-gpu/testing';
import { MegatronBertConfig } from './config.js';
import { MegatronBertForMaskedLM } from './modeling.js';
import { fillMask } from './pipelines.js';

const backend = testCpuBackend();
const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'cat', 'sat', 'on', 'mat', 'dog', 'ran', '.'];
const tokenizer = BertTokenizer.fromVocab(vocab.join('\n'), { doLowerCase: true });

function tinyModel(): MegatronBertForMaskedLM {
  manualSeed(0);
  const config = new MegatronBertConfig({ vocabSize: tokenizer.vocabSize, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 64, maxPositionEmbeddings: 32 });
  return new MegatronBertForMaskedLM(config, { backend });
}

describe('fillMask', () => {
  it('ranks candidates by probability and fills the mask (after a little MLM training)', async () => {
    const model = tinyModel().train();
    const sentence = tokenizer.encode('the cat sat on the mat .').inputIds;
    const masked = sentence.map((id) => (id === tokenizer.vocab.get('mat') ? tokenizer.maskTokenId! : id));
    const labels = sentence.map((id, i) => (masked[i] === id ? -100 : id));
    const optimizer = new AdamW(model.parameters(), { lr: 3e-3 });
    for (let step = 0; step < 30; step++) {
      scope(() => {
        model.forward({ inputIds: tensor([masked], { dtype: 'int32', backend }), labels: tensor([labels], { dtype: 'int32', backend }) }).loss!.backward();
        optimizer.step();
        optimizer.zeroGrad();
      });
    }
    model.eval();
    const [candidates] = await fillMask(model, tokenizer, 'The cat sat on the [MASK].', { topK: 3 });
    expect(candidates).toHaveLength(3);
    expect(candidates[0]).toMatchObject({ tokenStr: 'mat', token: tokenizer.vocab.get('mat'), sequence: 'the cat sat on the mat.' });
    expect(candidates[0].score).toBeGreaterThan(candidates[1].score);
    expect(candidates[1].score).toBeGreaterThanOrEqual(candidates[2].score);

    const both = await fillMask(model, tokenizer, 'the [MASK] sat on the [MASK] .', { topK: 2 });
    expect(both).toHaveLength(2);
    // Several masks: special tokens stay, so the other mask is visible.
    expect(both[1][0].sequence).toMatch(/^\[CLS\] the \[MASK\] sat on the \w+\. \[SEP\]$/);

    const targeted = await fillMask(model, tokenizer, 'the cat sat on the [MASK] .', { targets: ['dog', 'mat'], topK: 5 });
    expect(targeted[0].map((c) => c.tokenStr)).toEqual(['mat', 'dog']);
    await expect(fillMask(model, tokenizer, 'no mask here')).rejects.toThrow(/no mask token/);
    model.dispose();
  });
});
