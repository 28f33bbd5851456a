// Locating the shared parity fixtures (`shared/fixtures` beside the repository) from a test file.

interface NodeFs {
  existsSync(path: string): boolean;
}
interface NodePath {
  dirname(p: string): string;
  join(...p: string[]): string;
  resolve(...p: string[]): string;
}
interface NodeUrl {
  fileURLToPath(u: string | URL): string;
}

function builtin<T>(id: string): T {
  const get = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;
  if (!get) throw new Error(`findSharedFixtures needs Node >= 20.16 (process.getBuiltinModule) to load ${id}`);
  return get(id) as T;
}

/**
 * The `shared/fixtures` folder found by walking up from `from` (a file URL such as
 * `import.meta.url`, or a path), or `$LM_FIXTURES`. Returns null when there is none — and throws when
 * `$CI` is set, because CI always has the fixtures and a silent skip would hide a broken setup.
 */
export function findSharedFixtures(from: string | URL): string | null {
  const fs = builtin<NodeFs>('node:fs');
  const path = builtin<NodePath>('node:path');
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
  if (env.LM_FIXTURES) return path.resolve(env.LM_FIXTURES);
  const start = String(from).startsWith('file:') ? builtin<NodeUrl>('node:url').fileURLToPath(from) : String(from);
  let dir = path.dirname(start);
  for (;;) {
    const candidate = path.join(dir, 'shared', 'fixtures');
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  if (env.CI) throw new Error(`shared/fixtures not found above ${start} (CI must have it; or set LM_FIXTURES)`);
  return null;
}
