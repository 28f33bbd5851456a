// REALM in the inference worker: builds RealmForOpenQA with its retriever (block records, tokenizer) from
// the files and answers questions with the package's RealmOpenQA pipeline over a RealmDocumentIndex that
// starts as the bundled block_emb and grows with the documents the page adds (embedded here, batch by
// batch, with progress posted back).
import { BLOCK_RECORDS_FILE, REALM_BLOCK_TOKENS, RealmBlockIndex, RealmDocumentIndex, RealmForOpenQA, RealmOpenQA, RealmRetriever } from '@lm/realm';
import { ModelFilesError, pretrainedFiles, tokenizerFiles } from '../files.js';
import type { FamilyRuntime, LoadedModel } from '../types.js';
import type { AddDocumentsInput, AddDocumentsResult, AskInput, AskResult, IndexProgressMessage } from './tasks.js';

export const realmRuntime: FamilyRuntime = {
  modelType: 'realm',
  async load({ files, config: rawConfig, backend, progress }): Promise<LoadedModel> {
    const recordsFile = files.find((f) => f.name === BLOCK_RECORDS_FILE);
    if (!recordsFile) throw new ModelFilesError(`no ${BLOCK_RECORDS_FILE} among the files (${files.map((f) => f.name).join(', ')}): REALM's retriever needs the block records`);
    progress({ stage: 'tokenizer', message: `RealmRetriever.fromPretrained: ${BLOCK_RECORDS_FILE} and the tokenizer` });
    const texts: Record<string, string> = {};
    for (const file of [recordsFile, ...tokenizerFiles(files)]) texts[file.name] = await file.text();
    const retriever = await RealmRetriever.fromPretrained(texts);
    progress({ stage: 'weights', message: 'RealmForOpenQA.fromPretrained: reading the weights and block_emb' });
    const model = await RealmForOpenQA.fromPretrained(pretrainedFiles(files), { backend, modelOptions: { retriever } });
    const config = model.config;
    const tokenizer = retriever.tokenizer;

    // The searchable index: block_emb's rows with the bundled records; added documents are appended.
    let docs: RealmDocumentIndex;
    try {
      const [rows, dim] = model.block_emb.shape;
      const data = Float32Array.from(await model.block_emb.data());
      docs = new RealmDocumentIndex(retriever.blockRecords, RealmBlockIndex.fromHost(data, rows, dim, backend));
    } catch (err) {
      model.dispose();
      throw err;
    }
    const bundledBlocks = docs.numBlocks;
    const qa = new RealmOpenQA(model, tokenizer);
    qa.useIndex(docs);
    // Blocks of added documents: at most half the reader's input, which pairs the question with a block.
    const maxBlockTokens = Math.min(REALM_BLOCK_TOKENS, Math.floor(config.readerSeqLen / 2));
    const architectures = Array.isArray(rawConfig.architectures) ? rawConfig.architectures.join(', ') : 'not given';

    const tasks: LoadedModel['tasks'] = {
      async ask(input) {
        const { question } = input as AskInput;
        const t0 = performance.now();
        const out = await qa.ask(question);
        const value: AskResult = {
          question,
          answer: out.answer,
          blocks: out.blocks.map((b) => ({ ...b, source: b.id < bundledBlocks ? 'bundled' : 'added' })),
          span: { block: out.span.block, charStart: out.span.charStart, charEnd: out.span.charEnd },
          numBlocks: docs.numBlocks,
          ms: performance.now() - t0,
        };
        return { value };
      },

      async addDocuments(input, emit) {
        const { documents } = input as AddDocumentsInput;
        const t0 = performance.now();
        const added = await docs.addDocuments(model.embedder, tokenizer, documents, {
          maxBlockTokens,
          batchSize: 4,
          onProgress: (p) => emit({ done: p.done, total: p.total } satisfies IndexProgressMessage),
        });
        qa.useIndex(docs); // the retriever reads the new records too
        const value: AddDocumentsResult = { added: added.length, numBlocks: docs.numBlocks, ms: performance.now() - t0 };
        return { value };
      },
    };

    return {
      summary: {
        className: `RealmForOpenQA (checkpoint: ${architectures})`,
        numParameters: model.numParameters(),
        vocabSize: config.vocabSize,
        maskToken: null, // no fill-mask task here
        config: [
          ['hidden size', config.hiddenSize],
          ['layers', config.numHiddenLayers],
          ['attention heads', config.numAttentionHeads],
          ['retriever projection', config.retrieverProjSize],
          ['blocks in the index', bundledBlocks],
          ['blocks read per question', config.readerBeamSize],
          ['max answer span', config.maxSpanWidth],
          ['reader input length', config.readerSeqLen],
          ['vocabulary', config.vocabSize],
        ],
      },
      tasks,
      dispose: () => {
        docs.dispose();
        model.dispose();
      },
    };
  },
};
