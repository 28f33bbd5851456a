// The package's layering, checked on its source: backends sit below ops and autograd (a backend
// never loads ops/, autograd.ts or tensor.ts at runtime), and runtime imports form no cycle except
// the one between tensor.ts and the ops it exposes as methods. Type-only imports are erased by the
// compiler and do not count; neither do dynamic import()s (they load lazily, after the importer).
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = dirname(fileURLToPath(import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

// `import ... from '...'` / `export ... from '...'` statements (possibly over several lines), and bare `import '...'`.
const STATEMENT = /^\s*(import|export)\s+([^;'"]*?)\s*from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;

/** The relative module specifiers a file loads at runtime (type-only imports and re-exports left out). */
function runtimeImports(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(STATEMENT)) {
    if (m[4]) {
      out.push(m[4]);
      continue;
    }
    const clause = m[2];
    if (/^type\s/.test(clause)) continue;
    // `import { type A, type B } from` loads nothing either.
    const braces = clause.match(/^\{([^}]*)\}$/);
    if (braces) {
      const names = braces[1].split(',').map((s) => s.trim()).filter(Boolean);
      if (names.length > 0 && names.every((n) => n.startsWith('type '))) continue;
    }
    out.push(m[3]);
  }
  return out.filter((s) => s.startsWith('.'));
}

const files = sourceFiles(SRC);
const rel = (p: string) => relative(SRC, p).split('\\').join('/');
const graph = new Map<string, string[]>(
  files.map((file) => [
    rel(file),
    runtimeImports(readFileSync(file, 'utf8')).map((spec) => rel(resolve(dirname(file), spec).replace(/\.js$/, '.ts'))),
  ]),
);

/** Every module `from` loads at runtime, with the chain that reaches it. */
function reachable(from: string): Map<string, string[]> {
  const seen = new Map<string, string[]>([[from, [from]]]);
  const queue = [from];
  while (queue.length > 0) {
    const cur = queue.shift()!;
    for (const next of graph.get(cur) ?? []) {
      if (!seen.has(next)) {
        seen.set(next, [...seen.get(cur)!, next]);
        queue.push(next);
      }
    }
  }
  return seen;
}

/** Strongly connected components with more than one module (Tarjan). */
function cycles(edges: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of edges.keys()) if (!idx.has(v)) visit(v);
  return out;
}

describe('import graph', () => {
  it('reads runtime imports and skips type-only ones', () => {
    const src = [
      "import type { A } from './a.js';",
      "import { type B, type C } from './b.js';",
      "import { type D, e } from './d.js';",
      "import {\n  f,\n  g,\n} from './f.js';",
      "export { h } from './h.js';",
      "export type { I } from './i.js';",
      "import './side-effect.js';",
      "import { readFileSync } from 'node:fs';",
    ].join('\n');
    expect(runtimeImports(src)).toEqual(['./d.js', './f.js', './h.js', './side-effect.js']);
  });

  it('resolves every relative import to a source file', () => {
    const missing = [...graph].flatMap(([from, tos]) => tos.filter((t) => !graph.has(t)).map((t) => `${from} -> ${t}`));
    expect(missing).toEqual([]);
  });

  it('backends load no ops/, autograd or tensor code', () => {
    const roots = [...graph.keys()].filter((f) => f.startsWith('backends/') || f === 'backend.ts');
    expect(roots.length).toBeGreaterThan(10);
    const bad: string[] = [];
    for (const root of roots) {
      for (const [mod, chain] of reachable(root)) {
        if (mod.startsWith('ops/') || mod === 'autograd.ts' || mod === 'tensor.ts' || mod === 'memory.ts') bad.push(chain.join(' -> '));
      }
    }
    expect(bad).toEqual([]);
  });

  it('has no import cycle apart from tensor.ts <-> the ops it exposes as methods', () => {
    // Tensor's methods call ops and ops build Tensors: that pair is the one accepted circle. Cut the
    // edges out of tensor.ts and nothing else may form one.
    const cut = new Map([...graph].map(([from, tos]) => [from, from === 'tensor.ts' ? [] : tos]));
    expect(cycles(cut)).toEqual([]);
  });
});
