export { RealmConfig } from './config.js';
export type { RealmConfigFields } from './config.js';
export { RealmError } from './errors.js';
export { RealmTokenizer } from './tokenizer.js';
export type { CandidatesEncodeOptions, CandidatesEncoding } from './tokenizer.js';
export {
  RealmEmbeddings,
  RealmSelfAttention,
  RealmSelfOutput,
  RealmAttention,
  RealmIntermediate,
  RealmOutput,
  RealmLayer,
  RealmEncoder,
  RealmPooler,
  RealmPredictionHeadTransform,
  RealmLMPredictionHead,
  RealmOnlyMLMHead,
  RealmScorerProjection,
  RealmReaderProjection,
  RealmPreTrainedModel,
  RealmBertModel,
  RealmEmbedder,
  RealmScorer,
  RealmKnowledgeAugEncoder,
  RealmReader,
  RealmForOpenQA,
  REALM_CLASSES,
  spanCandidates,
} from './modeling.js';
export type {
  RealmInputs,
  RealmOutputs,
  RealmBertModelOutput,
  RealmEmbedderOutput,
  RealmScorerInputs,
  RealmScorerOutput,
  RealmKnowledgeAugEncoderInputs,
  RealmMaskedLMOutput,
  RealmReaderInputs,
  RealmReaderOutput,
  RealmForOpenQAInputs,
  RealmForOpenQAOutput,
  RealmRetrievalTrace,
} from './modeling.js';
export { RealmRetriever, parseBlockRecords, BLOCK_RECORDS_FILE } from './retrieval.js';
export type { BlockAnswers, RetrievedPairs } from './retrieval.js';
export { RealmBlockIndex } from './block-index.js';
export type { BlockIndexDType, BlockIndexOptions, BlockSearchResult } from './block-index.js';
export { splitIntoBlocks, progressBar, refreshEvery, RealmDocumentIndex, RealmOpenQA, REALM_BLOCK_TOKENS, BLOCK_EMB_FILE } from './open-qa.js';
export type { RealmDocument, SplitOptions, IndexProgress, BuildIndexOptions, RetrievedBlock, OpenQAAnswer } from './open-qa.js';
export { conformance } from './conformance.js';
