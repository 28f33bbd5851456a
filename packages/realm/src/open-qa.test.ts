// Question answering over your own documents: block splitting, index building (batched, with progress,
// incremental, saved and loaded), the openQA pipeline against a brute-force retrieval on the host, the
// pipeline on the open-QA fixture's model (its expected answer), save/load of RealmForOpenQA with its
// index, and the bad-input errors. cpu and webgpu.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, manualSeed, noGrad, type Backend } from '@lm/tensor-gpu';
import { AdamW } from '@lm/layers';
import { findSharedFixtures, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { RealmConfig } from './config.js';
import { RealmEmbedder, RealmForOpenQA } from './modeling.js';
import { progressBar, RealmDocumentIndex, RealmOpenQA, refreshEvery, splitIntoBlocks } from './open-qa.js';
import { RealmRetriever } from './retrieval.js';
import { RealmTokenizer } from './tokenizer.js';

const webgpu = await testWebGPUBackend();
const fixtures = findSharedFixtures(import.meta.url);
const root = mkdtempSync(join(tmpdir(), 'lm-realm-openqa-'));
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  webgpu?.destroy();
});

const WORDS = 'the a is of in and what who where capital france paris city river seine flows through berlin germany cat sat on mat rome old famous tower eiffel europe country lives'.split(' ');
const vocabText = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', ',', '?', ';', ...WORDS].join('\n');
const tokenizer = RealmTokenizer.fromVocab(vocabText);
const DOCS = [
  { title: 'Paris', text: 'Paris is the capital of France. The river Seine flows through Paris. The Eiffel tower is in Paris.' },
  'Berlin is the capital of Germany. Berlin is a city in Europe.',
  'The cat sat on the mat. The cat is old.',
  'Rome is an old city. Rome is famous.',
];

function smallConfig(): RealmConfig {
  return new RealmConfig({
    vocabSize: tokenizer.vocabSize,
    hiddenSize: 32,
    numHiddenLayers: 1,
    numAttentionHeads: 4,
    intermediateSize: 37,
    retrieverProjSize: 16,
    spanHiddenSize: 12,
    maxSpanWidth: 3,
    readerBeamSize: 3,
    readerSeqLen: 40,
    numBlockRecords: 1,
    maxPositionEmbeddings: 64,
    hiddenDropoutProb: 0,
    attentionProbsDropoutProb: 0,
  });
}

describe('splitIntoBlocks', () => {
  it('keeps every block within the wordpiece budget, cutting at sentence ends, each block starting with its title', () => {
    const blocks = splitIntoBlocks(DOCS, tokenizer, { maxBlockTokens: 14 });
    for (const b of blocks) expect(tokenizer.encode(b).inputIds.length).toBeLessThanOrEqual(14);
    expect(blocks[0]).toBe('Paris. Paris is the capital of France.');
    expect(blocks.filter((b) => b.startsWith('Paris. ')).length).toBe(3);
    // Every sentence of the untitled documents is in exactly one block, in order.
    expect(blocks.slice(3).join(' ')).toBe(DOCS.slice(1).join(' '));
  });

  it('splits a sentence longer than a block by words', () => {
    const long = Array.from({ length: 30 }, () => 'cat').join(' ');
    const blocks = splitIntoBlocks([long], tokenizer, { maxBlockTokens: 12 });
    expect(blocks.map((b) => b.split(' ').length)).toEqual([10, 10, 10]);
  });

  it('refuses an empty collection and a tiny budget', () => {
    expect(() => splitIntoBlocks([], tokenizer)).toThrow(/document collection is empty/);
    expect(() => splitIntoBlocks(['x'], tokenizer, { maxBlockTokens: 3 })).toThrow(/maxBlockTokens must be an integer >= 8/);
  });

  it('draws a progress bar', () => {
    expect(progressBar({ done: 5, total: 10 }, 10)).toBe('[#####.....] 5/10 blocks');
  });
});

describe.each([{ name: 'cpu' }, { name: 'webgpu' }])('open QA over own documents on $name', ({ name }) => {
  const backend = (name === 'cpu' ? testCpuBackend() : webgpu) as Backend;
  describe.skipIf(!backend)(name, () => {
    it('builds an index in batches with progress; rows are the embedder output of each block alone', async () => {
      manualSeed(11);
      const embedder = new RealmEmbedder(smallConfig(), { backend });
      embedder.eval();
      const progress: number[] = [];
      const docs = await RealmDocumentIndex.build(embedder, tokenizer, DOCS, { batchSize: 3, maxBlockTokens: 20, onProgress: (p) => progress.push(p.done) });
      const blocks = splitIntoBlocks(DOCS, tokenizer, { maxBlockTokens: 20 });
      expect(docs.records).toEqual(blocks);
      const batches = Array.from({ length: Math.ceil(blocks.length / 3) }, (_, b) => Math.min(3 * (b + 1), blocks.length));
      expect(progress).toEqual(batches);
      expect(progress.at(-1)).toBe(blocks.length);
      const rows = await docs.index.toHost();
      for (const [i, text] of blocks.entries()) {
        const enc = tokenizer.encode(text);
        const alone = noGrad(() => embedder.forward({ inputIds: fromHost(Int32Array.from(enc.inputIds), [1, enc.inputIds.length], 'int32', backend) }).projectedScore);
        const want = await alone.data();
        for (let d = 0; d < 16; d++) expect(Math.abs(rows[i * 16 + d] - want[d])).toBeLessThan(2e-5);
        alone.dispose();
      }
      // Incremental: new blocks are appended after the old ones; ids stay valid.
      const added = await docs.addDocuments(embedder, tokenizer, ['Who lives in Rome? The cat lives in Rome.'], { maxBlockTokens: 20 });
      expect(docs.numBlocks).toBe(blocks.length + added.length);
      expect(docs.records.slice(0, blocks.length)).toEqual(blocks);
      expect(Array.from(await docs.index.toHost()).slice(0, rows.length)).toEqual(Array.from(rows));
      // Saved and loaded: the same records and rows.
      const dir = join(root, `index-${name}`);
      await docs.save(dir);
      const loaded = await RealmDocumentIndex.load(dir, backend);
      expect(loaded.records).toEqual(docs.records);
      expect(Array.from(await loaded.index.toHost())).toEqual(Array.from(await docs.index.toHost()));
      loaded.dispose();
      docs.dispose();
      embedder.dispose();
    });

    it('refreshEvery re-embeds the blocks in place every N steps with the changed embedder', async () => {
      manualSeed(9);
      const embedder = new RealmEmbedder(smallConfig(), { backend });
      embedder.train();
      const docs = await RealmDocumentIndex.build(embedder, tokenizer, DOCS, { maxBlockTokens: 20 });
      const shard = docs.index.shards[0];
      const before = Array.from(await docs.index.toHost());
      // A training step's worth of change: the projection's weights move.
      noGrad(() => embedder.cls.dense.weight.copy_(embedder.cls.dense.weight.mulScalar(-0.5)));
      const refresh = refreshEvery(2, docs, embedder, tokenizer, { batchSize: 2 });
      expect(await refresh(1)).toBe(false);
      expect(Array.from(await docs.index.toHost())).toEqual(before);
      expect(await refresh(2)).toBe(true);
      expect(embedder.training).toBe(true); // restored after embedding in eval mode
      expect(docs.index.shards[0]).toBe(shard); // in place: holders of the index see the new rows
      embedder.eval();
      const fresh = await RealmDocumentIndex.build(embedder, tokenizer, DOCS, { maxBlockTokens: 20 });
      const want = await fresh.index.toHost();
      const got = await docs.index.toHost();
      expect(got.length).toBe(want.length);
      got.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThan(2e-5));
      expect(Math.abs(got[0] - before[0])).toBeGreaterThan(0);
      expect(() => refreshEvery(0, docs, embedder, tokenizer)).toThrow(/every must be a positive integer/);
      fresh.dispose();
      docs.dispose();
      embedder.dispose();
    });

    it('answers a question: top-k blocks by brute force, scores, answer = the decoded span; saved and reloaded gives the same', async () => {
      manualSeed(5);
      const model = new RealmForOpenQA(smallConfig(), { backend });
      model.eval();
      const docs = await RealmDocumentIndex.build(model.embedder, tokenizer, DOCS, { maxBlockTokens: 20 });
      const qa = new RealmOpenQA(model, tokenizer);
      qa.useIndex(docs);
      const question = 'What is the capital of France?';
      const result = await qa.ask(question);
      // Brute force on the host: the question's projection against every row.
      const enc = tokenizer.encode(question);
      const q = noGrad(() => model.embedder.forward({ inputIds: fromHost(Int32Array.from(enc.inputIds), [1, enc.inputIds.length], 'int32', backend) }).projectedScore);
      const qv = await q.data();
      const rows = await docs.index.toHost();
      const scores = docs.records.map((_, r) => Array.from(qv).reduce((s, v, d) => s + v * rows[r * 16 + d], 0));
      const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]).slice(0, 3);
      expect(result.blocks.map((b) => b.id)).toEqual(order);
      result.blocks.forEach((b, i) => {
        expect(Math.abs(b.score - scores[order[i]])).toBeLessThan(1e-4);
        expect(b.text).toBe(docs.records[order[i]]);
      });
      // The span is inside the chosen block's tokens (after the question's [SEP]) and decodes to the answer.
      const pair = tokenizer.encode(tokenizer.decode(enc.inputIds, { skipSpecialTokens: true }), result.blocks[result.span.block].text, { truncation: true, maxLength: 40 });
      const firstSep = pair.inputIds.indexOf(3);
      expect(result.span.startToken).toBeGreaterThan(firstSep);
      expect(result.span.endToken).toBeGreaterThanOrEqual(result.span.startToken);
      expect(result.span.endToken - result.span.startToken).toBeLessThan(3);
      expect(result.answer).toBe(tokenizer.decode(pair.inputIds.slice(result.span.startToken, result.span.endToken + 1), { skipSpecialTokens: true }));
      if (result.span.charStart !== null) expect(result.blocks[result.span.block].text.slice(result.span.charStart, result.span.charEnd!).toLowerCase()).toBe(result.answer);

      // savePretrained writes the index rows as block_emb plus the retriever; fromPretrained answers the same.
      const dir = join(root, `model-${name}`);
      await model.savePretrained(dir);
      expect(JSON.parse(readFileSync(join(dir, 'block_records.json'), 'utf8'))).toEqual(docs.records);
      const reloaded = await RealmOpenQA.fromPretrained(dir, { backend });
      expect(reloaded.model.block_emb.shape).toEqual([docs.numBlocks, 16]);
      const again = await reloaded.ask(question);
      expect(again.answer).toBe(result.answer);
      expect(again.blocks.map((b) => b.id)).toEqual(result.blocks.map((b) => b.id));
      again.blocks.forEach((b, i) => expect(Math.abs(b.score - result.blocks[i].score)).toBeLessThan(1e-5));
      reloaded.model.dispose();
      q.dispose();
      docs.dispose();
      model.dispose();
    });

    it('fine-tunes RealmForOpenQA on a question/answer pair: retriever + reader loss falls, gradients reach both', async () => {
      manualSeed(21);
      const config = smallConfig();
      config.searcherBeamSize = 4; // training retrieves searcher_beam_size blocks, the reader reads reader_beam_size
      config.readerBeamSize = 2;
      const model = new RealmForOpenQA(config, { backend });
      const docs = await RealmDocumentIndex.build(model.embedder, tokenizer, DOCS, { maxBlockTokens: 20 });
      const qa = new RealmOpenQA(model, tokenizer);
      qa.useIndex(docs);
      model.train();
      const question = tokenizer.encode('What is the capital of France?').inputIds;
      const answerIds = [tokenizer.encode('paris', null, { addSpecialTokens: false, returnTokenTypeIds: false }).inputIds];
      const optimizer = new AdamW(model.parameters(), { lr: 3e-3 });
      const losses: number[] = [];
      const retrieverLosses: number[] = [];
      for (let step = 0; step < 8; step++) {
        const ids = fromHost(Int32Array.from(question), [1, question.length], 'int32', backend);
        const out = await model.forward({ inputIds: ids, answerIds });
        expect(out.retriever.retrievedBlockIds.shape).toEqual([4]);
        expect(out.readerOutput.retrieverCorrect!.shape).toEqual([4]);
        // The host copies the forward hands back are the tensors' values.
        expect(out.host.blockIds).toEqual(Array.from(await out.retriever.retrievedBlockIds.data()));
        expect(out.host.answerIds).toEqual(Array.from(await out.predictedAnswerIds.data()));
        expect([out.host.blockIdx, out.host.startPos, out.host.endPos]).toEqual([
          Number((await out.readerOutput.blockIdx.data())[0]),
          Number((await out.readerOutput.startPos.data())[0]),
          Number((await out.readerOutput.endPos.data())[0]),
        ]);
        losses.push(Number((await out.readerOutput.loss!.data())[0]));
        retrieverLosses.push(Number((await out.readerOutput.retrieverLoss!.data())[0]));
        out.readerOutput.loss!.backward();
        if (step === 0) {
          expect(model.embedder.cls.dense.weight.grad).toBeTruthy(); // through the retrieval scores
          expect(model.reader.qa_outputs.dense_output.weight.grad).toBeTruthy();
        }
        optimizer.step();
        optimizer.zeroGrad();
        ids.dispose();
      }
      expect(losses.every(Number.isFinite)).toBe(true);
      // The retriever loss (over the 4 searched blocks) falls from the start; the total, once the reader's
      // 2 blocks hold the answer (step 1 on: before that the reader loss is 0 by the reference's any(correct)), falls too.
      expect(retrieverLosses.at(-1)!).toBeLessThan(retrieverLosses[0]);
      expect(losses.at(-1)!).toBeLessThan(losses[1]);
      docs.dispose();
      model.dispose();
    });

    it('bad input: each a clear error before any work', async () => {
      manualSeed(3);
      const model = new RealmForOpenQA(smallConfig(), { backend });
      model.eval();
      const qa = new RealmOpenQA(model, tokenizer);
      await expect(qa.ask('  ')).rejects.toThrow(/the question is empty/);
      await expect(qa.ask('what?')).rejects.toThrow(/no documents/);
      await expect(RealmDocumentIndex.build(model.embedder, tokenizer, [])).rejects.toThrow(/document collection is empty/);
      // k (reader_beam_size 3) larger than an index of 2 blocks.
      const small = await RealmDocumentIndex.build(model.embedder, tokenizer, ['Paris is old.', 'Rome is old.'], { maxBlockTokens: 20 });
      qa.useIndex(small);
      await expect(qa.ask('what is old?')).rejects.toThrow(/k = 3 \(reader_beam_size\) is larger than the index \(2 blocks\)/);
      // block_emb whose width differs from retriever_proj_size.
      expect(() => model.setBlockEmb(fromHost(new Float32Array(8), [1, 8], 'float32', backend))).toThrow(/block_emb must be \[numBlocks, 16\] \(retriever_proj_size\), got \[1,8\]/);
      // block records whose count differs from block_emb's rows.
      model.setBlockEmb(fromHost(new Float32Array(4 * 16), [4, 16], 'float32', backend));
      model.retriever = new RealmRetriever(['one block', 'two', 'three'], tokenizer);
      const ids = fromHost(Int32Array.from([2, 14, 3]), [1, 3], 'int32', backend);
      await expect(model.forward({ inputIds: ids })).rejects.toThrow(/the retriever has 3 block records but the index \(block_emb\) has 4 rows/);
      await expect(model.forward({ inputIds: fromHost(new Int32Array(0), [1, 0], 'int32', backend) })).rejects.toThrow(/the question is empty/);
      ids.dispose();
      small.dispose();
      model.dispose();
    });

    it.skipIf(!fixtures)('the pipeline on the open-QA fixture model gives its expected answer and blocks', async () => {
      const dir = join(fixtures!, 'realm', 'openqa_end_to_end');
      const qa = await RealmOpenQA.fromPretrained(dir, { backend, tokenizerConfig: { do_lower_case: true } });
      const result = await qa.ask('What is the capital of France?');
      // expected.safetensors: retrieved_block_ids [2, 4, 0], block_idx 0, start = end = 10, predicted_answer_ids [8] ('is').
      expect(result.blocks.map((b) => b.id)).toEqual([2, 4, 0]);
      expect(result.span).toMatchObject({ block: 0, blockId: 2, startToken: 10, endToken: 10 });
      expect(result.answer).toBe('is');
      expect(result.blocks[0].text).toBe('Berlin is the capital of Germany.');
      expect(result.span.charStart).toBe(7);
      qa.model.dispose();
    });
  });
});
