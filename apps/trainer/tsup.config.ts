import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { cli: 'src/cli.ts', bench: 'bench/bench.ts', 't5-fill-rate': 'src/t5-fill-rate.ts' },
  format: ['esm'],
  dts: false,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  // Resolved at run time from node_modules, never bundled.
  external: [/^@lm\//, 'commander', 'webgpu', 'zod', 'yaml', 'cli-progress', 'vega', 'vega-lite', '@resvg/resvg-js'],
});
