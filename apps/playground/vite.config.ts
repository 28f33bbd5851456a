import { builtinModules } from 'node:module';
import { defineConfig, type Plugin } from 'vite';

const BUILTINS = new Set(builtinModules);
/** Files of the @lm packages, in the workspace (packages/<name>/dist) or installed (node_modules/@lm/<name>). */
const LM_PACKAGE = /[\\/](packages|@lm)[\\/][^\\/]+[\\/]dist[\\/]/;
const PREFIX = '\0node-builtin:';

/**
 * The @lm packages reach Node built-ins (fs/promises, path, url, zlib) only on Node code paths, through
 * dynamic imports. Their builds (tsup) drop the `node:` prefix, so the packages' `browser` fields, keyed
 * `node:fs/promises` etc., do not apply, and Vite would stub each one with a warning. This resolves them
 * to a module that throws a clear error if a browser ever gets there: the dynamic import rejects with it.
 */
function nodeBuiltinsUnavailable(): Plugin {
  return {
    name: 'lm:node-builtins-unavailable',
    enforce: 'pre',
    resolveId(id, importer) {
      const bare = id.startsWith('node:') ? id.slice(5) : id;
      if (id.startsWith('node:') || (BUILTINS.has(bare) && importer && LM_PACKAGE.test(importer))) return `${PREFIX}${bare}`;
      return null;
    },
    load(id) {
      if (!id.startsWith(PREFIX)) return null;
      const name = id.slice(PREFIX.length);
      return `throw new Error(${JSON.stringify(`node:${name} is a Node.js built-in, not available in the browser (a Node-only code path of an @lm package was reached)`)});\n`;
    },
  };
}

export default defineConfig({
  // Relative asset URLs: the built site works from any static server and sub-path.
  base: './',
  plugins: [nodeBuiltinsUnavailable()],
  build: {
    outDir: 'dist',
    target: 'es2022',
    sourcemap: true,
  },
  // Keep class and function names: the @lm packages build error names and messages from them
  // (`this.name = new.target.name` in @lm/dist-ckpt, `${this.constructor.name}.fromPretrained` in
  // @lm/layers), and the page shows those as they are. Identifiers stay unminified so that esbuild's
  // `__name` helper keeps its name: the cpu backend's GEMM threads run a function serialized with
  // toString() into a Blob worker, which defines a `__name` shim for exactly this case.
  esbuild: { keepNames: true, minifyIdentifiers: false },
  // The inference worker is a module worker and loads each model family's code on demand.
  worker: { format: 'es', plugins: () => [nodeBuiltinsUnavailable()] },
  // No COOP/COEP headers on purpose: cross-origin isolation would give the cpu backend of
  // @lm/tensor-gpu SharedArrayBuffer and so its multi-threaded GEMM, which today returns wrong results
  // now and then (see the README). Without isolation it runs on one thread, correctly.
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
