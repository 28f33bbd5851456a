import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTinyCorpus } from '../test-helpers.js';
import { CorpusData } from '../core/data.js';
import { Rng } from '../core/rng.js';
import { IGNORE_INDEX, maskTokens, replacementIds } from '../objectives/masking.js';
import { MaskedLMObjective, type MaskedLMBatch as Batch, type PairExample } from '../objectives/mlm-nsp.js';
import { DataError, corpusSource, listCorpus, readDocuments } from './sources.js';
import { loadWordPieceTokenizer } from './tokenizer.js';

const corpus = makeTinyCorpus(6);
const tokenizer = await loadWordPieceTokenizer(corpus.vocab, { lowercase: true });

interface PretrainingDataOptions {
  paths: string[];
  format: 'auto';
  jsonlField: string;
  seqLength: number;
  maskProbability: number;
  shortSeqProbability: number;
  validationFraction: number;
  shuffleBuffer: number;
  seed: number;
  nextSentencePrediction: boolean;
}

/** The masked-LM (+NSP) objective's data over the tiny corpus, as the trainer builds it. */
async function open(over: Partial<PretrainingDataOptions> = {}): Promise<CorpusData<PairExample, Batch>> {
  const o = options(over);
  const objective = new MaskedLMObjective(tokenizer, o);
  const encode = (text: string) => tokenizer.encode(text, null, { addSpecialTokens: false }).inputIds;
  return new CorpusData(await corpusSource(o.paths, o.format, o.jsonlField), objective, { encode, validationFraction: o.validationFraction, shuffleBuffer: o.shuffleBuffer, seed: o.seed });
}

function options(over: Partial<PretrainingDataOptions> = {}): PretrainingDataOptions {
  return {
    paths: [corpus.corpus],
    format: 'auto',
    jsonlField: 'text',
    seqLength: 24,
    maskProbability: 0.15,
    shortSeqProbability: 0.1,
    validationFraction: 0.2,
    shuffleBuffer: 1000,
    seed: 3,
    nextSentencePrediction: true,
    ...over,
  };
}

async function take(data: CorpusData<PairExample, Batch>, n: number, batchSize = 4): Promise<Batch[]> {
  const it = data.trainBatches(batchSize);
  const out: Batch[] = [];
  for (let i = 0; i < n; i++) out.push(await it.next());
  await it.close();
  return out;
}

describe('BERT masking', () => {
  const special = new Set([0, 1, 2, 3, 4]);
  const opts = { probability: 0.15, maskTokenId: 4, specialIds: special, replacementIds: replacementIds(1000, special) };

  it('predicts round(15%) of the non-special tokens: 80% [MASK], 10% random, 10% unchanged', () => {
    const rng = new Rng(1);
    const counts = { chosen: 0, mask: 0, random: 0, same: 0, candidates: 0 };
    const problems: string[] = [];
    for (let r = 0; r < 3000; r++) {
      // [CLS] 40 tokens [SEP] 19 tokens [SEP] [PAD]...
      const ids = Int32Array.from([2, ...Array.from({ length: 40 }, (_, i) => 5 + ((r * 41 + i) % 990)), 3, ...Array.from({ length: 19 }, (_, i) => 5 + i), 3, 0, 0]);
      const { inputIds, labels } = maskTokens(ids, rng, opts);
      counts.candidates += 59;
      for (let i = 0; i < ids.length; i++) {
        if (labels[i] === IGNORE_INDEX) {
          if (inputIds[i] !== ids[i]) problems.push(`row ${r} pos ${i}: changed without a label`);
          continue;
        }
        if (special.has(ids[i]) || labels[i] !== ids[i]) problems.push(`row ${r} pos ${i}: bad label ${labels[i]} for ${ids[i]}`);
        counts.chosen++;
        if (inputIds[i] === 4) counts.mask++;
        else if (inputIds[i] === ids[i]) counts.same++;
        else counts.random++;
      }
    }
    expect(problems).toEqual([]);
    expect(counts.chosen / counts.candidates).toBeCloseTo(9 / 59, 5); // round(59 * 0.15) = 9 per row
    expect(counts.mask / counts.chosen).toBeGreaterThan(0.78);
    expect(counts.mask / counts.chosen).toBeLessThan(0.82);
    // "unchanged" includes random draws of the same id (1 in 995), so both sit near 10%.
    expect(counts.random / counts.chosen).toBeGreaterThan(0.085);
    expect(counts.random / counts.chosen).toBeLessThan(0.115);
    expect(counts.same / counts.chosen).toBeGreaterThan(0.085);
    expect(counts.same / counts.chosen).toBeLessThan(0.115);
  });

  it('never masks special tokens, nor draws them as random replacements; a row of specials has no labels', () => {
    const rng = new Rng(2);
    for (let r = 0; r < 500; r++) {
      const ids = Int32Array.from([2, 5, 6, 3, 7, 3, 0, 0]);
      const { inputIds, labels } = maskTokens(ids, rng, { ...opts, probability: 0.9 });
      for (const i of [0, 3, 5, 6, 7]) expect(labels[i]).toBe(IGNORE_INDEX);
      for (const i of [1, 2, 4]) if (inputIds[i] !== 4) expect(special.has(inputIds[i])).toBe(false);
    }
    expect(Array.from(maskTokens(Int32Array.from([2, 3, 0]), rng, opts).labels)).toEqual([-100, -100, -100]);
  });
});

describe('corpus streaming', () => {
  it('walks a folder of files in name order, one document per blank-line block', async () => {
    const files = await listCorpus([corpus.corpus], 'auto');
    expect(files.map((f) => f.path.split('/').pop())).toEqual(['a-countries.txt', 'b-animals.txt']);
    const docs = [];
    for await (const d of readDocuments(files, 'text')) docs.push(d);
    expect(docs).toHaveLength(6 * 6 + 4 * 6);
    expect(docs[0]).toMatchObject({ file: 0, ordinal: 0 });
    expect(docs[0].sentences[0]).toBe('the capital of france is paris .');
    expect(docs[36]).toMatchObject({ file: 1, ordinal: 0 });
  });

  it('reads JSONL documents (sentences split at . ! ?) and names the line of a bad record', async () => {
    const dir = join(corpus.dir, 'jsonl');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'docs.jsonl'), `${JSON.stringify({ text: 'the dog says woof. the cat says meow!' })}\n\n${JSON.stringify({ text: 'cow says moo' })}\n`);
    writeFileSync(join(dir, 'ignored.csv'), 'a,b\n');
    const files = await listCorpus([dir], 'auto');
    expect(files).toHaveLength(1);
    const docs = [];
    for await (const d of readDocuments(files, 'text')) docs.push(d.sentences);
    expect(docs).toEqual([['the dog says woof.', 'the cat says meow!'], ['cow says moo']]);
    writeFileSync(join(dir, 'bad.jsonl'), '{"text": "ok"}\n{"body": "x"}\n');
    const bad = await listCorpus([join(dir, 'bad.jsonl')], 'auto');
    await expect(async () => {
      for await (const _ of readDocuments(bad, 'text'));
    }).rejects.toThrow(/bad\.jsonl:2: expected an object with a string field "text"/);
  });

  it('a missing path or a corpus without text is a DataError', async () => {
    await expect(listCorpus([join(corpus.dir, 'nope.txt')], 'auto')).rejects.toThrow(DataError);
    const empty = join(corpus.dir, 'empty.txt');
    writeFileSync(empty, '');
    await expect(open({ paths: [empty] })).rejects.toThrow(/the corpus is empty/);
    const blank = join(corpus.dir, 'blank.txt');
    writeFileSync(blank, '\n\n   \n');
    const data = await open({ paths: [blank] });
    await expect(take(data, 1)).rejects.toThrow(/the training split has no examples/);
  });
});

describe('masked-LM (+NSP) batches', () => {
  it('are [CLS] A [SEP] B [SEP] pairs with token types, padding and both NSP labels', async () => {
    const data = await open();
    const batches = await take(data, 8);
    const labels = new Set<number>();
    for (const b of batches) {
      expect(b.inputIds).toHaveLength(4 * 24);
      for (let r = 0; r < b.batchSize; r++) {
        const row = (a: Int32Array) => Array.from(a.subarray(r * 24, (r + 1) * 24));
        const mask = row(b.attentionMask);
        const len = mask.filter((m) => m === 1).length;
        const ids = row(b.inputIds);
        const original = ids.map((id, i) => (row(b.labels)[i] === IGNORE_INDEX ? id : row(b.labels)[i]));
        expect(original[0]).toBe(tokenizer.clsTokenId);
        expect(original[len - 1]).toBe(tokenizer.sepTokenId);
        const firstSep = original.indexOf(tokenizer.sepTokenId!);
        expect(firstSep).toBeGreaterThan(1);
        expect(firstSep).toBeLessThan(len - 2);
        expect(row(b.tokenTypeIds)).toEqual(ids.map((_, i) => (i > firstSep && i < len ? 1 : 0)));
        expect(ids.slice(len).every((id) => id === tokenizer.padTokenId)).toBe(true);
        expect(row(b.labels).slice(len).every((l) => l === IGNORE_INDEX)).toBe(true);
        labels.add(b.nextSentenceLabel[r]);
      }
      expect(b.maskedTokens).toBeGreaterThan(0);
    }
    expect([...labels].sort()).toEqual([0, 1]);
  });

  it('are deterministic for a seed and differ between seeds', async () => {
    const a = await take(await open(), 6);
    const b = await take(await open(), 6);
    const c = await take(await open({ seed: 4 }), 6);
    expect(a).toEqual(b);
    expect(a.map((x) => Array.from(x.inputIds))).not.toEqual(c.map((x) => Array.from(x.inputIds)));
  });

  it('resume from a position continues exactly, across epochs', async () => {
    const data = await open();
    const all = await take(data, 60); // several epochs of this tiny corpus
    const it = data.trainBatches(4);
    for (let i = 0; i < 37; i++) await it.next();
    const position = it.position;
    await it.close();
    expect(position.epoch).toBeGreaterThan(0);
    const resumed = data.trainBatches(4, position);
    for (let i = 37; i < 60; i++) expect(await resumed.next()).toEqual(all[i]);
    await resumed.close();
  });

  it('hold out a validation split of whole documents, disjoint from training, with fixed masks', async () => {
    const data = await open({ validationFraction: 0.3 });
    const files = await listCorpus([corpus.corpus], 'auto');
    let held = 0;
    let total = 0;
    for await (const d of readDocuments(files, 'text')) {
      total++;
      if (data.isValidation(d)) held++;
    }
    expect(held / total).toBeGreaterThan(0.1);
    expect(held / total).toBeLessThan(0.5);
    const v1 = await data.validationBatches(3, 4);
    const v2 = await data.validationBatches(3, 4);
    expect(v1.length).toBeGreaterThan(0);
    expect(v1).toEqual(v2);
    const none = await open({ validationFraction: 0 });
    expect(await none.validationBatches(3, 4)).toEqual([]);
  });

  it('without NSP, B always follows A (label 0)', async () => {
    const data = await open({ nextSentencePrediction: false });
    for (const b of await take(data, 5)) expect(Array.from(b.nextSentenceLabel).every((l) => l === 0)).toBe(true);
  });
});
