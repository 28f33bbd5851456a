// Test helpers for packages built on @lm/layers (Node only).
export { describeConfigSuite, fixtureConfigs, type ConfigSuiteSpec, type ConfigClassUnderTest, type TestApi } from './config-suite.js';
export type { ConformanceCase, ConformanceClassRunner, ConformanceFamily } from './conformance.js';
export { readSafetensorsF32, type HostTensor } from './fixtures.js';
export { weightPathProblems, type WeightPathOptions } from './weight-paths.js';
