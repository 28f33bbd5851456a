// Packed causal LM: the corpus as one stream cut into full blocks (sentences joined by the tokenizer's
// newline, documents ended by eos, the short tail dropped), and a short Reformer run on 64-character
// blocks with the character tokenizer: bits per token reported, the export read back by
// ReformerModelWithLMHead.fromPretrained and CharTokenizer.fromPretrained.

import { readFileSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BertTokenizer } from '@lm/layers';
import { CharTokenizer, ReformerModelWithLMHead } from '@lm/reformer';
import { noGrad, tensor } from '@lm/tensor-gpu';
import type { TokenizedDocument } from '../core/objective.js';
import { makeTinyCorpus, tinyConfig } from '../test-helpers.js';
import { train } from '../trainer.js';
import { PackedCausalLMObjective } from './packed-causal-lm.js';

async function* docs(...ds: number[][][]): AsyncGenerator<TokenizedDocument> {
  for (const [id, sentences] of ds.entries()) yield { id, sentences };
}

async function collect(gen: AsyncGenerator<Int32Array>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const x of gen) out.push([...x]);
  return out;
}

describe('packed causal LM', () => {
  it('cuts the stream of documents into full blocks: newline between sentences, eos after each document, tail dropped', async () => {
    const tok = CharTokenizer.fromTexts(['ab\n']); // <pad> 0, <unk> 1, </s> 2, \n 3, a 4, b 5
    const objective = new PackedCausalLMObjective(tok, { seqLength: 3 });
    expect(objective.sentenceSeparator).toEqual([3]);
    // a b \n b </s> | a </s> a a </s> -> [a b \n] [b </s> a] [</s> a a], tail [</s>] dropped
    expect(await collect(objective.examples(docs([[4, 5], [5]], [[4]], [[4, 4]])))).toEqual([
      [4, 5, 3],
      [5, 2, 4],
      [2, 4, 4],
    ]);
    const batch = objective.collate([Int32Array.from([4, 5, 3])]);
    expect([...batch.labels]).toEqual([5, 3, -100]);
    expect([...batch.attentionMask]).toEqual([1, 1, 1]);
    expect(objective.summarize({ lossSum: 2 * Math.LN2, count: 2, correct: 1 }).bitsPerToken).toBeCloseTo(1, 12);
  });

  it('frames documents with [CLS] / [SEP] and no separator under WordPiece (newlines are whitespace there)', async () => {
    const tok = BertTokenizer.fromVocab(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'b'].join('\n'));
    const objective = new PackedCausalLMObjective(tok, { seqLength: 4 });
    expect(objective.sentenceSeparator).toEqual([]);
    expect(await collect(objective.examples(docs([[5], [6]], [[6, 6]])))).toEqual([[2, 5, 6, 3], [2, 6, 6, 3]]);
  });

  it('trains a character-level Reformer on packed blocks and exports a model and tokenizer that load back', async () => {
    const c = makeTinyCorpus();
    const texts = readdirSync(c.corpus).map((f) => readFileSync(join(c.corpus, f), 'utf8'));
    const chars = join(c.dir, 'chars');
    mkdirSync(chars);
    for (const [name, text] of Object.entries(CharTokenizer.fromTexts(texts).save())) writeFileSync(join(chars, name), text);
    const exportDir = join(c.dir, 'export');
    const losses: number[] = [];
    const config = tinyConfig(c, {
      model: {
        family: 'reformer',
        config: {
          hiddenSize: 16,
          numAttentionHeads: 2,
          attentionHeadSize: 8,
          feedForwardSize: 32,
          attnLayers: ['local', 'lsh'],
          axialPosShape: [8, 8],
          axialPosEmbdsDim: [8, 8],
          maxPositionEmbeddings: 64,
          localAttnChunkLength: 16,
          lshAttnChunkLength: 16,
          numBuckets: 4,
          numHashes: 2,
          hiddenDropoutProb: 0,
          hashSeed: 3,
        },
      },
      objective: 'packed-causal-lm',
      data: { tokenizer: join(chars, 'vocab.json'), seqLength: 64 },
      training: { steps: 12, batchSize: 4, lr: 1e-2, warmupSteps: 1 },
      eval: { everySteps: 12, batches: 1 },
      output: { export: exportDir, prompts: ['the cow'] },
    });
    const result = await train({ config, print: () => {}, tty: false, onStep: (r) => losses.push(Number(r.loss)) });
    expect(result.step).toBe(12);
    expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.9); // 3.37 -> 2.86 here
    expect(result.eval!.bitsPerToken).toBeCloseTo(result.eval!.loss / Math.LN2, 6);
    expect(result.evalSummary).toMatch(/bits per token/);
    // Two lines per prompt, greedy then sampled (newlines shown as \n); no 16 characters repeat in the sample.
    expect(result.showcase).toHaveLength(2);
    expect(result.showcase[0]).toMatch(/^greedy: {2}the cow -> [^\n]*$/);
    expect(result.showcase[1]).toMatch(/^sampled: the cow -> [^\n]*$/);
    const sampled = result.showcase[1].slice('sampled: '.length).replace(' -> ', '').replaceAll('\\n', '\n');
    const grams = Array.from({ length: Math.max(0, sampled.length - 15) }, (_, i) => sampled.slice(i, i + 16));
    expect(new Set(grams).size).toBe(grams.length);

    const tokenizer = await CharTokenizer.fromPretrained(exportDir);
    const ids = tokenizer.encode('the cow says moo .\n').inputIds;
    expect(tokenizer.decode(ids)).toBe('the cow says moo .\n');
    expect(JSON.parse(readFileSync(join(exportDir, 'tokenizer_config.json'), 'utf8')).model_max_length).toBe(64);
    const loaded = await ReformerModelWithLMHead.fromPretrained(exportDir);
    const logits = noGrad(() => loaded.forward({ inputIds: tensor([ids], { dtype: 'int32' }) }).logits);
    expect(logits.shape).toEqual([1, ids.length, tokenizer.vocabSize]);
    loaded.dispose();
  });
});
