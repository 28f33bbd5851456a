// Test utilities shared by every @lm package: deterministic inputs, the op-case table, gradcheck and
// cross-backend comparison.

export { seededRandom, hostInput, makeInput, type InputSpec } from './inputs.js';
export { OP_CASES, type OpCase } from './op-cases.js';
export { gradcheck, compareArrays, type GradcheckResult } from './gradcheck.js';
export { testWebGPUBackend, testCpuBackend, webgpuRequired, withoutFusedKernels } from './backends.js';
export { findSharedFixtures } from './fixtures.js';
