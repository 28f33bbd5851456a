// node:fs for the Node-only test helpers, fetched at call time through `process.getBuiltinModule`, so
// that importing `@lm/layers/testing` (which family packages do for their `conformance` export) pulls
// no Node built-in into a browser bundle.

export interface NodeFs {
  existsSync(p: string): boolean;
  readdirSync(p: string): string[];
  readFileSync(p: string, enc: 'utf8'): string;
}

export function nodeFs(): NodeFs {
  return (globalThis as unknown as { process: { getBuiltinModule(id: string): NodeFs } }).process.getBuiltinModule('node:fs');
}
