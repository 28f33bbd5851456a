import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Dawn is a native addon: run it in a child process, not a worker thread.
    pool: 'forks',
  },
});
