import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const BUILTINS = new Set(builtinModules);
/** Built files of the @lm packages (workspace packages/<name>/dist, or node_modules/@lm/<name>/dist). */
const LM_PACKAGE = /[\\/](packages|@lm)[\\/][^\\/]+[\\/]dist[\\/]/;
const PREFIX = '\0node-builtin:';
/** The built-ins the training worker needs for real: files (checkpoints, exports) in memory. */
const SHIMS: Record<string, string> = {
  'fs/promises': fileURLToPath(new URL('./src/train/node/fs-promises.ts', import.meta.url)),
  fs: fileURLToPath(new URL('./src/train/node/fs.ts', import.meta.url)),
  path: fileURLToPath(new URL('./src/train/node/path.ts', import.meta.url)),
};

/**
 * Node built-ins in the browser. The @lm packages reach them through dynamic imports on their Node code
 * paths; the trainer (`apps/trainer/src`, which the training worker runs) imports them statically.
 * Their builds (tsup) drop the `node:` prefix, so the packages' `browser` fields, keyed
 * `node:fs/promises` etc., do not apply. `fs`, `fs/promises` and `path` resolve to a file system in
 * memory (src/train/node/: `lm-train`'s checkpoint store and the family's export write through it);
 * every other built-in to a module whose exports throw a clear error if a browser ever calls them.
 */
function nodeBuiltinsInTheBrowser(): Plugin {
  return {
    name: 'lm:node-builtins',
    enforce: 'pre',
    resolveId(id, importer) {
      const bare = id.startsWith('node:') ? id.slice(5) : id;
      if (!id.startsWith('node:') && !(BUILTINS.has(bare) && importer && LM_PACKAGE.test(importer))) return null;
      return SHIMS[bare] ?? `${PREFIX}${bare}`;
    },
    async load(id) {
      if (!id.startsWith(PREFIX)) return null;
      const name = id.slice(PREFIX.length);
      const message = JSON.stringify(`node:${name} is a Node.js built-in, not available in the browser (a Node-only code path was reached)`);
      // Named exports as Node has them, so that static imports link; each throws when called.
      const names = Object.keys((await import(`node:${name}`)) as object).filter((n) => n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n));
      return [
        `const unavailable = () => { throw new Error(${message}); };`,
        ...names.map((n) => `export const ${n} = unavailable;`),
        'export default new Proxy({}, { get: unavailable });',
      ].join('\n');
    },
  };
}

export default defineConfig({
  // Relative asset URLs: the built site works from any static server and sub-path.
  base: './',
  plugins: [nodeBuiltinsInTheBrowser()],
  // The one Node global the packages' file writers read (temporary file names).
  define: { 'process.pid': '0' },
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
  worker: { format: 'es', plugins: () => [nodeBuiltinsInTheBrowser()] },
  // No COOP/COEP headers on purpose: cross-origin isolation would give the cpu backend of
  // @lm/tensor-gpu SharedArrayBuffer and so its multi-threaded GEMM, which today returns wrong results
  // now and then (see the README). Without isolation it runs on one thread, correctly.
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
