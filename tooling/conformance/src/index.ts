// @lm/conformance: the parity-fixture runner behind `pnpm conformance`, for programmatic use and tests.

export { runConformance, type CaseResult, type CaseStatus, type RunOptions, type RunSummary } from './run.js';
export { compareOutput, compareValue, toleranceFor, fmtNum, unravel, type CompareInput, type OutputCheck, type Tolerance, type ValueCheck } from './compare.js';
export {
  discoverCases,
  readCaseSpec,
  readCaseConfig,
  readExpected,
  readTensorInputs,
  uploadDType,
  CaseReadError,
  type CaseRef,
  type CaseSpec,
  type DiscoveryProblem,
} from './cases.js';
export { FAMILY_PACKAGES, loadFamilies, familyOf, classTable, RegistryError, type FamilyPackage } from './registry.js';
