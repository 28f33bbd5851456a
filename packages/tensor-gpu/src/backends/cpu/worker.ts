/**
 * The CPU backend's workers are started inline from source text (no worker file path
 * has to survive bundling); see gemm/worker-body.ts. This entry only re-exports the
 * worker source for tooling that wants to inspect or host it as a file.
 */
export { gemmWorkerSource } from './gemm/worker-body.js';
