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
export { conformance } from './conformance.js';
