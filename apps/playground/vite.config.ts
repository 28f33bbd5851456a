import { defineConfig } from 'vite';

export default defineConfig({
  // Relative asset URLs: the built site works from any static server and sub-path.
  base: './',
  build: { outDir: 'dist', target: 'es2022', sourcemap: true },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
