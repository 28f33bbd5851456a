// The REALM model classes beyond the parity fixtures: every path to a weight reaches one tensor (ties
// included) after loading, a separate query embedder, the reference's errors, save/load round trips.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { manualSeed, noGrad, tensor } from '@lm/tensor-gpu';
import { findSharedFixtures, testCpuBackend } from '@lm/tensor-gpu/testing';
import { weightPathProblems } from '@lm/layers/testing';
import { RealmConfig } from './config.js';
import { RealmEmbedder, RealmForOpenQA, RealmKnowledgeAugEncoder, RealmReader, RealmScorer, spanCandidates } from './modeling.js';

const backend = testCpuBackend();
const fixtures = findSharedFixtures(import.meta.url);
const root = mkdtempSync(join(tmpdir(), 'lm-realm-modeling-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const ids = (rows: number[][]) => tensor(rows, { dtype: 'int32', backend });

const config = () =>
  new RealmConfig({ vocabSize: 40, hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 24, retrieverProjSize: 8, numCandidates: 2, spanHiddenSize: 8, maxSpanWidth: 2, readerBeamSize: 2, numBlockRecords: 4, maxPositionEmbeddings: 32 });

describe('REALM models', () => {
  it('spanCandidates lists spans by width, then start, as the reference', () => {
    const { starts, ends } = spanCandidates(4, 2);
    expect(Array.from(starts)).toEqual([0, 1, 2, 3, 0, 1, 2]);
    expect(Array.from(ends)).toEqual([0, 1, 2, 3, 1, 2, 3]);
  });

  it.skipIf(!fixtures)('fixture weights load with every path and tie agreeing', async () => {
    const dir = (name: string) => join(fixtures!, 'realm', name);
    const bias = (p: string) => [`${p}cls.predictions.decoder.bias`, `${p}cls.predictions.bias`];
    const embedder = await RealmEmbedder.fromPretrained(dir('embedder'), { backend });
    expect(weightPathProblems(embedder, { tied: [bias('')] })).toEqual([]);
    const scorer = await RealmScorer.fromPretrained(dir('scorer'), { backend });
    expect(scorer.query_embedder).toBe(scorer.embedder);
    expect(scorer.stateDict().get('query_embedder.realm.pooler.dense.weight')).toBe(scorer.stateDict().get('embedder.realm.pooler.dense.weight'));
    expect(weightPathProblems(scorer, { tied: [bias('embedder.'), bias('query_embedder.')] })).toEqual([]);
    const encoder = await RealmKnowledgeAugEncoder.fromPretrained(dir('knowledge_aug_encoder_grads'), { backend });
    expect(weightPathProblems(encoder, { tied: [bias(''), ['cls.predictions.decoder.weight', 'realm.embeddings.word_embeddings.weight']] })).toEqual([]);
    const reader = await RealmReader.fromPretrained(dir('reader_loss'), { backend });
    expect(weightPathProblems(reader, { tied: [bias('')] })).toEqual([]);
    // The reader's and the embedder's MLM decoders are not tied to their embeddings (the reference ties only the encoder's).
    expect(reader.cls.predictions.decoder.weight).not.toBe(reader.realm.embeddings.word_embeddings.weight);
    const openQA = await RealmForOpenQA.fromPretrained(dir('openqa_end_to_end'), { backend });
    expect(openQA.block_emb.shape).toEqual([6, 16]);
    expect(weightPathProblems(openQA, { tied: [bias('embedder.'), bias('reader.')] })).toEqual([]);
    [embedder, scorer, encoder, reader, openQA].forEach((m) => m.dispose());
  });

  it('a separate query embedder scores queries with its own weights; relevance = query . candidate', async () => {
    manualSeed(1);
    const queryEmbedder = new RealmEmbedder(config(), { backend });
    const scorer = new RealmScorer(config(), { backend, queryEmbedder });
    scorer.eval();
    expect(scorer.query_embedder).not.toBe(scorer.embedder);
    const out = noGrad(() => scorer.forward({ inputIds: ids([[2, 5, 6, 3]]), candidateInputIds: tensor([[[2, 7, 3], [2, 8, 3]]], { dtype: 'int32', backend }) }));
    const q = noGrad(() => queryEmbedder.forward({ inputIds: ids([[2, 5, 6, 3]]) }).projectedScore);
    expect(Array.from(await out.queryScore.data())).toEqual(Array.from(await q.data()));
    const c = await out.candidateScore.data();
    const qv = await q.data();
    const rel = await out.relevanceScore.data();
    for (let n = 0; n < 2; n++) expect(Math.abs(rel[n] - Array.from(qv).reduce((s: number, v: number, d: number) => s + v * Number(c[n * 8 + d]), 0))).toBeLessThan(1e-5);
    scorer.dispose();
  });

  it('errors name what is missing, as the reference', () => {
    manualSeed(2);
    const encoder = new RealmKnowledgeAugEncoder(config(), { backend });
    expect(() => encoder.forward({ inputIds: ids([[2, 5, 3]]), labels: ids([[-100, 5, -100]]) })).toThrow(/specify relevanceScore when labels/);
    const reader = new RealmReader(config(), { backend });
    expect(() => reader.forward({ inputIds: ids([[2, 5, 3]]) })).toThrow(/specify relevanceScore/);
    expect(() => reader.forward({ inputIds: ids([[2]]), relevanceScore: tensor([1], { backend }), blockMask: ids([[1]]) })).toThrow(/sequence length \(1\) must be greater than or equal to config.max_span_width \(2\)/);
    const scorer = new RealmScorer(config(), { backend });
    expect(() => scorer.forward({ inputIds: ids([[2, 3]]) })).toThrow(/candidateInputIds or candidateInputsEmbeds/);
    const openQA = new RealmForOpenQA(config(), { backend });
    expect(openQA.searcherBeamSize).toBe(5000); // training (a new module trains, as in torch): searcher_beam_size
    openQA.eval();
    expect(openQA.searcherBeamSize).toBe(2); // eval: reader_beam_size
    [encoder, reader, scorer, openQA].forEach((m) => m.dispose());
  });

  it('savePretrained / fromPretrained round-trips the tied encoder and the open-QA block_emb', async () => {
    manualSeed(4);
    const encoder = new RealmKnowledgeAugEncoder(config(), { backend });
    encoder.eval();
    await encoder.savePretrained(join(root, 'encoder'));
    const back = await RealmKnowledgeAugEncoder.fromPretrained(join(root, 'encoder'), { backend });
    const input = { inputIds: ids([[2, 9, 10, 3]]) };
    expect(Array.from(await noGrad(() => back.forward(input)).logits.data())).toEqual(Array.from(await noGrad(() => encoder.forward(input)).logits.data()));
    expect(back.cls.predictions.decoder.weight).toBe(back.realm.embeddings.word_embeddings.weight);

    const openQA = new RealmForOpenQA(config(), { backend });
    openQA.setBlockEmb(tensor(Array.from({ length: 3 }, (_, r) => Array.from({ length: 8 }, (_, d) => r * 10 + d)), { backend }));
    await openQA.savePretrained(join(root, 'openqa'));
    const loaded = await RealmForOpenQA.fromPretrained(join(root, 'openqa'), { backend });
    expect(loaded.config.numBlockRecords).toBe(3);
    expect(Array.from(await loaded.block_emb.data())).toEqual(Array.from({ length: 24 }, (_, i) => Math.floor(i / 8) * 10 + (i % 8)));
    [encoder, back, openQA, loaded].forEach((m) => m.dispose());
  });
});
