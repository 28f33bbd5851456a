// The loop runs in a browser worker too: nothing it imports may reach Node. This walks the relative
// imports from the core's modules and the objectives (what a worker loads) and fails on any `node:*`
// import or any package outside the allowed ones.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Packages the core may import: the engine and the layers (both browser-safe). */
const ALLOWED_PACKAGES = ['@lm/tensor-gpu', '@lm/layers'];

/** Value imports and re-exports of a file (`import type` is erased and never loaded). */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(?!type\s)[^'"]*?from\s+'([^']+)'|^import\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/gm)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** Every file reachable from `entries` through relative value imports, with what it imports from outside. */
function reachable(entries: string[]): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const todo = [...entries];
  while (todo.length) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    const external: string[] = [];
    for (const spec of imports(file)) {
      if (spec.startsWith('.')) todo.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else external.push(spec);
    }
    seen.set(file, external);
  }
  return seen;
}

const entryFiles = (dir: string) =>
  readdirSync(join(src, dir))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => join(src, dir, f));

describe('the training core does not depend on Node', () => {
  it('core/ and objectives/ reach no node:* module and no package beyond @lm/tensor-gpu and @lm/layers', () => {
    const files = reachable([...entryFiles('core'), ...entryFiles('objectives')]);
    expect(files.size).toBeGreaterThan(8);
    const problems: string[] = [];
    for (const [file, external] of files) {
      const rel = file.slice(src.length + 1);
      if (!rel.startsWith('core/') && !rel.startsWith('objectives/')) problems.push(`${rel}: outside core/ and objectives/`);
      for (const spec of external) if (!ALLOWED_PACKAGES.includes(spec)) problems.push(`${rel} imports '${spec}'`);
    }
    expect(problems).toEqual([]);
  });

  it('the check sees a node import where there is one (the Node adapters)', () => {
    const files = reachable([join(src, 'trainer.ts')]);
    const nodeImports = [...files].filter(([, ext]) => ext.some((s) => s.startsWith('node:'))).map(([f]) => f.slice(src.length + 1));
    expect(nodeImports).toEqual(expect.arrayContaining(['trainer.ts', 'checkpoint.ts', 'metrics.ts', 'data/sources.ts']));
  });
});
