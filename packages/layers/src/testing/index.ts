// Test helpers for packages built on @lm/layers (Node only).
export { describeConfigSuite, fixtureConfigs, type ConfigSuiteSpec, type ConfigClassUnderTest, type TestApi } from './config-suite.js';
export type { ConformanceCase, ConformanceClassRunner, ConformanceFamily } from './conformance.js';
export { safetensorsF32, type HostTensor } from './fixtures.js';
export { weightPathProblems, type WeightPathOptions } from './weight-paths.js';
export type { ConformanceOutput, ConformanceOutputs, HostOutput } from './conformance.js';
export { isExpectationField } from './conformance.js';
export { camelCase, snakeCase, caseInputTensor, flattenModelOutputs, parameterGradients, type NestedNumbers } from './model-cases.js';
export {
  conformance,
  runTokenizerCase,
  bertCaseTokenizer,
  slowCaseTokenizer,
  type SlowCaseTokenizerLike,
  bertCallOptions,
  wordPieceCaseRunner,
  wordPieceTokenizerForCase,
  runSentencePieceProcessorCase,
  sentencePieceCaseFiles,
  caseItems,
  callOptions,
  hostOutput,
  numericOutputs,
  readExpectedOutputs,
  snakeKeys,
  BERT_CALL_KWARGS,
  TokenizerCaseError,
  type CaseTokenizer,
  type WordPieceClass,
} from './tokenizer-cases.js';
export { fixtureCasesOf, readConformanceCase, tokenizerCaseResults } from './tokenizer-fixture-cases.js';
