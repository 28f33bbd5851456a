import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/cli.ts'],
  format: ['esm'],
  dts: false,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  // Resolved at run time from node_modules, never bundled.
  external: ['@lm/tensor-gpu', 'commander', 'webgpu'],
});
