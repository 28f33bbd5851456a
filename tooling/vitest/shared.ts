// Test settings every package's vitest config starts from (mergeConfig), made for a busy CI machine
// that runs several packages' suites at once on 2 cores: see docs/decisions/0007-training-checkpoints-and-tests-under-load.md.

import { fileURLToPath } from 'node:url';

export const sharedTestConfig = {
  test: {
    // Dawn (WebGPU) is a native addon: tests run in child processes, not worker threads.
    pool: 'forks' as const,
    // Timeouts sized for a machine 5x slower than an idle one; a hung test still ends.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Closing a Dawn device or a GEMM worker pool under load can pass the 10 s default.
    teardownTimeout: 60_000,
    setupFiles: [fileURLToPath(new URL('./yield-between-tests.mjs', import.meta.url))],
  },
};
