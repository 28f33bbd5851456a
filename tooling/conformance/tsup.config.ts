import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/cli.ts', 'src/index.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  // Resolved at run time from node_modules, never bundled: the model packages are imported by the
  // registry, and the tensors they return must come from the same @lm/tensor-gpu instance.
  external: [/^@lm\//, 'commander', 'webgpu'],
});
