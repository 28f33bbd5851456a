// The REALM family: config and collection checks named before any work; the open-QA objective's loss
// against RealmForOpenQA's own training-mode forward (the fixture-checked model) on the same index; the
// index refreshed every N training batches with the current embedder; short runs of both objectives
// through lm-train whose exports load back (RealmOpenQA with its index; RealmEmbedder and
// RealmKnowledgeAugEncoder).

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RealmConfig, RealmDocumentIndex, RealmEmbedder, RealmForOpenQA, RealmKnowledgeAugEncoder, RealmOpenQA, RealmRetriever, RealmTokenizer } from '@lm/realm';
import { fromHost, init, manualSeed, noGrad, scope, stack, type Tensor } from '@lm/tensor-gpu';
import { ConfigError, DataError } from '../core/errors.js';
import { loadConfig, validateConfig } from '../config.js';
import { train } from '../trainer.js';
import { OpenQAObjective, realm } from './realm.js';

const quiet = { print: () => {}, tty: false };

const COUNTRIES = [
  ['veloria', 'mirth', 'dorish', 'zell'],
  ['kastan', 'obel', 'trunish', 'pim'],
  ['moravi', 'sulte', 'dorish', 'kron'],
  ['tessaly', 'brin', 'vaskish', 'lute'],
  ['quorra', 'denna', 'trunish', 'fane'],
  ['palinor', 'rusk', 'vaskish', 'gild'],
];

/** A tiny world: one block per country, three questions each, a fact corpus, and the vocabulary. */
function tinyWorld() {
  const dir = mkdtempSync(join(tmpdir(), 'lm-train-realm-'));
  const blocks = COUNTRIES.map(([c, cap, lang, cur]) => `${c} is a country. its capital is ${cap}. people in ${c} speak ${lang} and pay with the ${cur}.`);
  const qa = COUNTRIES.flatMap(([c, cap, lang, cur]) => [`what is the capital of ${c}? ${cap}`, `which language do people speak in ${c}? ${lang}`, `what is the currency of ${c}? ${cur}`]);
  const facts = COUNTRIES.flatMap(([c, cap, lang, cur]) => [`the capital of ${c} is ${cap}.`, `in ${c} they speak ${lang}.`, `the currency of ${c} is the ${cur}.`]);
  const words = new Set<string>();
  for (const t of [...blocks, ...qa, ...facts]) for (const w of t.match(/[a-z]+/g)!) words.add(w);
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', '?', ...[...words].sort()];
  const paths = { dir, blocks: join(dir, 'block_records.json'), qa: join(dir, 'qa.jsonl'), facts: join(dir, 'facts.txt'), vocab: join(dir, 'vocab.txt') };
  writeFileSync(paths.blocks, JSON.stringify(blocks));
  writeFileSync(paths.qa, qa.map((text) => JSON.stringify({ text })).join('\n'));
  writeFileSync(paths.facts, facts.join('\n\n'));
  writeFileSync(paths.vocab, vocab.join('\n'));
  return { ...paths, records: blocks, vocabText: vocab.join('\n') };
}

const modelConfig = {
  hiddenSize: 16,
  numHiddenLayers: 1,
  numAttentionHeads: 2,
  intermediateSize: 32,
  maxPositionEmbeddings: 40,
  retrieverProjSize: 8,
  spanHiddenSize: 8,
  maxSpanWidth: 2,
  hiddenDropoutProb: 0,
  attentionProbsDropoutProb: 0,
  searcherBeamSize: 4,
  readerBeamSize: 2,
  readerSeqLen: 40,
  numCandidates: 3,
};

function runConfig(w: ReturnType<typeof tinyWorld>, objective: 'openqa' | 'knowledge-mlm', over: { steps?: number; export?: string | null; refreshEvery?: number } = {}) {
  return validateConfig(
    {
      model: { family: 'realm', config: modelConfig },
      objective,
      objectives: { [objective]: { blockRecordsPath: w.blocks, refreshEvery: over.refreshEvery ?? 3 } },
      data: { paths: [objective === 'openqa' ? w.qa : w.facts], tokenizer: w.vocab, seqLength: 40, validationFraction: 0.2, maskProbability: 0.3 },
      training: { steps: over.steps ?? 6, batchSize: 4, lr: 5e-3, warmupSteps: 1, logEvery: 1 },
      checkpointing: { dir: join(w.dir, `ckpt-${objective}`), everySteps: 0, keepLast: 1 },
      eval: { everySteps: 3, batches: 1 },
      output: { metrics: join(w.dir, `${objective}.jsonl`), plot: null, export: over.export ?? null },
      backend: 'cpu',
      seed: 3,
    },
    'test config',
  );
}

describe('realm family', () => {
  it('refuses bad config fields and collection settings by name before any work', async () => {
    const resolve = (overrides: Record<string, unknown>) => realm.resolveConfig({ fromPretrained: null, overrides: { ...modelConfig, ...overrides }, vocabSize: 40 });
    await expect(resolve({ numLayers: 2 })).rejects.toThrow(/model\.config\.numLayers: unknown RealmConfig field/);
    await expect(resolve({ searcherBeamSize: 1 })).rejects.toThrow(/model\.config\.searcherBeamSize: 1 is smaller than readerBeamSize \(2\)/);
    await expect(resolve({ hiddenSize: 15 })).rejects.toThrow(/model\.config\.hiddenSize: 15 is not a multiple of numAttentionHeads \(2\)/);
    await expect(resolve({ vocabSize: 10 })).rejects.toThrow(/model\.config\.vocabSize: 10 is smaller than the tokenizer's 40 ids/);
    const ok = await resolve({});
    expect(ok.maxPositions).toBe(40);

    const w = tinyWorld();
    const tokenizer = await realm.loadTokenizer(w.vocab, { lowercase: true });
    const ctx = (settings: Record<string, unknown>) => ({ tokenizer, backend: null as never, seqLength: 40, maskProbability: 0.15, shortSeqProbability: 0, settings });
    expect(() => realm.objectives.openqa.objective(ctx({}))).toThrow(/objectives\.openqa\.blockRecordsPath: the document collection is required/);
    expect(() => realm.objectives.openqa.objective(ctx({ blockRecordsPath: w.blocks, refreshEvery: 0 }))).toThrow(/objectives\.openqa\.refreshEvery: expected an integer >= 1/);
    expect(() => realm.objectives['knowledge-mlm'].objective(ctx({ blockRecordsPath: w.blocks, k: 3 }))).toThrow(/objectives\.knowledge-mlm\.k: unknown field/);
    expect(() => realm.objectives.openqa.objective(ctx({ blockRecordsPath: join(w.dir, 'none.json') }))).toThrow(DataError);
    const empty = join(w.dir, 'empty.json');
    writeFileSync(empty, '[]');
    expect(() => realm.objectives.openqa.objective(ctx({ blockRecordsPath: empty }))).toThrow(/holds no block records \(the document collection is empty\)/);
    expect(() => realm.objectives.openqa.objective(ctx({ blockRecordsPath: w.blocks, refreshEvery: 'often' }))).toThrow(ConfigError);
  });

  it('reads the block records once for the objective and the model the run builds, and loads a RealmTokenizer', async () => {
    const w = tinyWorld();
    const tokenizer = await realm.loadTokenizer(w.vocab, { lowercase: true });
    expect(tokenizer).toBeInstanceOf(RealmTokenizer);
    expect(tokenizer.encode('the capital of', null, { addSpecialTokens: false }).inputIds).toHaveLength(3);
    const backend = await init('cpu');
    const { config } = await realm.resolveConfig({ fromPretrained: null, overrides: modelConfig, vocabSize: tokenizer.vocabSize });
    for (const name of ['openqa', 'knowledge-mlm'] as const) {
      // The loop hands the objective and createModel the same objectives.<name> settings object.
      const settings = { blockRecordsPath: w.blocks, refreshEvery: 2 };
      writeFileSync(w.blocks, JSON.stringify(w.records));
      const objective = realm.objectives[name].objective({ tokenizer, backend, seqLength: 40, maskProbability: 0.15, shortSeqProbability: 0, settings }) as unknown as { records: readonly string[] };
      expect(objective.records).toEqual(w.records);
      // A file changed after the objective read it is not read again: the model gets the objective's records.
      writeFileSync(w.blocks, JSON.stringify(['another collection']));
      const model = (await realm.objectives[name].createModel(config, { fromPretrained: null, backend, settings })) as unknown as { blockRecords: readonly string[]; module: { dispose(): void } };
      expect(model.blockRecords).toBe(objective.records);
      model.module.dispose();
    }
    writeFileSync(w.blocks, JSON.stringify(w.records));
  });

  it('resolves objective settings named ...Path against the config file, or the working directory on the command line', () => {
    const w = tinyWorld();
    const file = join(w.dir, 'run.yaml');
    writeFileSync(file, `model: { family: realm }\nobjective: openqa\nobjectives: { openqa: { blockRecordsPath: block_records.json, refreshEvery: 4 } }\ndata: { paths: qa.jsonl, tokenizer: vocab.txt }\n`);
    expect(loadConfig({ file }).objectives.openqa).toEqual({ blockRecordsPath: w.blocks, refreshEvery: 4 });
    const over = loadConfig({ file, overrides: [['objectives.openqa.blockRecordsPath', 'other/blocks.json']], cwd: '/work/somewhere' });
    expect(over.objectives.openqa.blockRecordsPath).toBe('/work/somewhere/other/blocks.json');
  });

  it("open-QA loss, exact match and recall equal RealmForOpenQA's own training-mode forward on the same index", async () => {
    const w = tinyWorld();
    const tokenizer = RealmTokenizer.fromVocab(w.vocabText);
    manualSeed(11);
    const config = new RealmConfig({ ...modelConfig, vocabSize: tokenizer.vocabSize, numBlockRecords: w.records.length });
    const model = new RealmForOpenQA(config, { retriever: new RealmRetriever(w.records, tokenizer) });
    const objective = new OpenQAObjective(tokenizer, w.records, { seqLength: 40, refreshEvery: 100, backend: model.block_emb.backend });
    const encode = (text: string) => tokenizer.encode(text, null, { addSpecialTokens: false }).inputIds;
    // 'mirth' is in block 0; 'dorish' in blocks 0 and 2 (two gold blocks); 'nowhere' is in none.
    const cases = [
      ['what is the capital of veloria?', 'mirth'],
      ['which language do people speak in moravi?', 'dorish'],
      ['what is the capital of kastan?', 'obel'],
    ] as const;
    for (const mode of ['train', 'eval'] as const) {
      model.train(mode === 'train');
      const batch = objective.collate(cases.map(([q, a]) => ({ question: encode(q), answer: encode(a) })));
      // The objective (re-)embeds the collection into block_emb before its first batch.
      const keys: string[] = [];
      const packed = scope(() => {
        const out = objective.compute({ module: model, blockRecords: w.records }, batch);
        keys.push(...Object.keys(out.sums));
        return noGrad(() => stack(keys.map((k) => out.sums[k].detach())));
      });
      const values = await packed.data();
      packed.dispose();
      const got = Object.fromEntries(keys.map((k, i) => [k, values[i]]));
      let loss = 0;
      let exact = 0;
      let recall = 0;
      for (const [q, a] of cases) {
        const ids = tokenizer.encode(q).inputIds;
        const out = await model.forward({ inputIds: fromHost(Int32Array.from(ids), [1, ids.length], 'int32'), answerIds: [encode(a)] });
        loss += await out.readerOutput.loss!.item();
        exact += tokenizer.decode(await out.predictedAnswerIds.data()) === a ? 1 : 0;
        recall += (await out.readerOutput.retrieverCorrect!.data()).some((v) => v !== 0) ? 1 : 0;
      }
      expect(got.questions).toBe(3);
      expect(got.lossSum).toBeCloseTo(loss, 4);
      expect(got.exactMatch).toBe(exact);
      expect(got.recall).toBe(recall);
    }
    model.dispose();
  });

  it('re-embeds the collection with the current embedder every refreshEvery training batches', async () => {
    const w = tinyWorld();
    const tokenizer = RealmTokenizer.fromVocab(w.vocabText);
    manualSeed(5);
    const model = new RealmForOpenQA(new RealmConfig({ ...modelConfig, vocabSize: tokenizer.vocabSize, numBlockRecords: w.records.length }));
    model.train();
    const objective = new OpenQAObjective(tokenizer, w.records, { seqLength: 40, refreshEvery: 2, backend: model.block_emb.backend });
    const trainable = { module: model, blockRecords: w.records };
    const batch = objective.collate([{ question: tokenizer.encode('what is the capital of veloria?', null, { addSpecialTokens: false }).inputIds, answer: [tokenizer.convertTokensToIds('mirth')!] }]);
    const seen: Tensor[] = [];
    const refreshed: boolean[] = [];
    for (let b = 0; b < 5; b++) {
      scope(() => objective.compute(trainable, batch).loss.backward());
      refreshed.push(!seen.includes(model.block_emb));
      seen.push(model.block_emb);
      // A step that changes the embedder: the next refresh must see it.
      noGrad(() => {
        for (const p of model.embedder.parameters()) {
          p.copy_(p.addScalar(0.01));
          p.grad = null;
        }
      });
      for (const p of model.reader.parameters()) p.grad = null;
    }
    expect(refreshed).toEqual([true, false, true, false, true]);
    // Evaluation batches never refresh an existing index.
    model.eval();
    noGrad(() => scope(() => objective.compute(trainable, batch)));
    expect(model.block_emb).toBe(seen[4]);
    // The index after batch 4 is the collection as the embedder of that moment embeds it (the package's indexer).
    const blockEmb = await model.block_emb.data();
    noGrad(() => {
      for (const p of model.embedder.parameters()) p.copy_(p.addScalar(-0.01));
    });
    const docs = await RealmDocumentIndex.build(model.embedder, tokenizer, w.records, { batchSize: 4 });
    const expected = await docs.index.toHost();
    expect(blockEmb.length).toBe(expected.length);
    for (let i = 0; i < expected.length; i++) expect(blockEmb[i]).toBeCloseTo(expected[i], 4);
    docs.dispose();
    model.dispose();
  });

  it('trains open-QA with lm-train and exports a folder RealmOpenQA.fromPretrained opens with its index', async () => {
    const w = tinyWorld();
    const exportDir = join(w.dir, 'export-openqa');
    const records: Record<string, number>[] = [];
    const result = await train({ config: runConfig(w, 'openqa', { steps: 6, export: exportDir }), ...quiet, onStep: (r) => records.push(r as Record<string, number>) });
    expect(result.step).toBe(6);
    expect(records.every((r) => Number.isFinite(r.loss) && r.exactMatch >= 0 && r.exactMatch <= 1 && r.recallAtK >= 0 && r.recallAtK <= 1)).toBe(true);
    expect(result.eval).toHaveProperty('exactMatch');

    const qa = await RealmOpenQA.fromPretrained(exportDir);
    const answer = await qa.ask('what is the capital of veloria?');
    expect(answer.blocks).toHaveLength(modelConfig.readerBeamSize);
    for (const b of answer.blocks) expect(b.text).toBe(w.records[b.id]);
    // The exported block_emb is the collection embedded by the exported embedder.
    const loaded = await RealmForOpenQA.fromPretrained<RealmForOpenQA, RealmConfig>(exportDir);
    const docs = await RealmDocumentIndex.build(loaded.embedder, RealmTokenizer.fromVocab(w.vocabText), w.records);
    const [got, expected] = [await loaded.block_emb.data(), await docs.index.toHost()];
    expect(loaded.block_emb.shape).toEqual([w.records.length, modelConfig.retrieverProjSize]);
    for (let i = 0; i < expected.length; i++) expect(got[i]).toBeCloseTo(expected[i], 4);
    docs.dispose();
    loaded.dispose();
  });

  it('warms up the retriever with the inverse cloze task, and open-QA fine-tunes its export', async () => {
    const w = tinyWorld();
    const blocksTxt = join(w.dir, 'blocks.txt');
    writeFileSync(blocksTxt, w.records.map((b) => b.split(/(?<=[.?])\s+/).join('\n')).join('\n\n'));
    const ictDir = join(w.dir, 'export-ict');
    const losses: number[] = [];
    const ict = validateConfig(
      {
        // A wider initialisation than BERT's 0.02, whose blocks start as one point (loss log 6 for ~25 steps).
        model: { family: 'realm', config: { ...modelConfig, initializerRange: 0.2 } },
        objective: 'ict',
        objectives: { ict: { blockRecordsPath: w.blocks, keepProbability: 0.5 } },
        data: { paths: [blocksTxt], tokenizer: w.vocab, seqLength: 40, validationFraction: 0 },
        training: { steps: 40, batchSize: 6, lr: 3e-3, warmupSteps: 1, logEvery: 1 },
        checkpointing: { dir: join(w.dir, 'ckpt-ict'), everySteps: 0, keepLast: 1 },
        eval: { everySteps: 0, batches: 1 },
        output: { metrics: join(w.dir, 'ict.jsonl'), plot: null, export: ictDir },
        backend: 'cpu',
        seed: 3,
      },
      'test config',
    );
    const result = await train({ config: ict, ...quiet, onStep: (r) => losses.push(Number(r.loss)) });
    expect(result.step).toBe(40);
    // Six blocks in a batch: log 6 = 1.79 at the start; the sentences find their blocks.
    expect(losses[0]).toBeGreaterThan(1);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-10))).toBeLessThan(0.9 * mean(losses.slice(0, 10)));
    const warmed = await RealmForOpenQA.fromPretrained<RealmForOpenQA, RealmConfig>(ictDir);
    expect(warmed.block_emb.shape).toEqual([w.records.length, modelConfig.retrieverProjSize]);
    warmed.dispose();
    const tuned = runConfig(w, 'openqa', { steps: 2 });
    const fine = await train({ config: { ...tuned, model: { ...tuned.model, fromPretrained: ictDir } }, ...quiet });
    expect(fine.step).toBe(2);
  });

  it('trains the knowledge-augmented MLM with lm-train (loss falls) and exports the embedder and the encoder', async () => {
    const w = tinyWorld();
    const exportDir = join(w.dir, 'export-mlm');
    const losses: number[] = [];
    const result = await train({ config: runConfig(w, 'knowledge-mlm', { steps: 12, export: exportDir }), ...quiet, onStep: (r) => losses.push(Number(r.loss)) });
    expect(result.step).toBe(12);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-4))).toBeLessThan(mean(losses.slice(0, 4)));
    expect(result.eval).toHaveProperty('maskedTokenAccuracy');
    const embedder = await RealmEmbedder.fromPretrained<RealmEmbedder, RealmConfig>(join(exportDir, 'embedder'));
    const encoder = await RealmKnowledgeAugEncoder.fromPretrained<RealmKnowledgeAugEncoder, RealmConfig>(join(exportDir, 'encoder'));
    expect(embedder.config.retrieverProjSize).toBe(modelConfig.retrieverProjSize);
    expect(encoder.config.numCandidates).toBe(modelConfig.numCandidates);
    const retriever = await RealmRetriever.fromPretrained(exportDir);
    expect(retriever.blockRecords).toEqual(w.records);
    embedder.dispose();
    encoder.dispose();
  });
});
