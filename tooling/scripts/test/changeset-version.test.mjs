// Proves the changesets setup works: in a temporary copy of the repository (the real tree is never
// touched), add a changeset bumping every published @lm/* package, run `changeset version`, and
// check that each @lm/* version went up, each got a CHANGELOG.md, and private apps did not move.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SKIP = new Set(['node_modules', '.git', 'dist', '.turbo', 'artifacts', 'coverage']);

function workspacePackages(base) {
  return ['packages', 'apps', 'tooling'].flatMap((group) =>
    existsSync(join(base, group))
      ? readdirSync(join(base, group))
          .map((d) => join(base, group, d))
          .filter((d) => existsSync(join(d, 'package.json')))
          .map((d) => ({ dir: d, pkg: JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')) }))
      : [],
  );
}

const copy = mkdtempSync(join(tmpdir(), 'lm-changeset-'));
afterAll(() => rmSync(copy, { recursive: true, force: true }));

describe('pnpm changeset version', () => {
  it('bumps every published @lm/* package and leaves private packages alone', () => {
    cpSync(root, copy, { recursive: true, filter: (src) => !SKIP.has(basename(src)) });
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir');

    const before = workspacePackages(copy);
    const published = before.filter(({ pkg }) => pkg.name.startsWith('@lm/') && !pkg.private);
    expect(published.length).toBeGreaterThan(0);
    writeFileSync(
      join(copy, '.changeset', 'zz-version-test.md'),
      `---\n${published.map(({ pkg }) => `"${pkg.name}": patch`).join('\n')}\n---\n\nVersion test.\n`,
    );

    const bin = join(root, 'node_modules', '@changesets', 'cli', 'bin.js');
    execFileSync(process.execPath, [bin, 'version'], { cwd: copy, stdio: 'pipe', env: { ...process.env, CI: '1' } });

    const after = new Map(workspacePackages(copy).map(({ dir, pkg }) => [dir, pkg]));
    for (const { dir, pkg } of before) {
      const now = after.get(dir);
      if (pkg.name.startsWith('@lm/') && !pkg.private) {
        expect([pkg.name, cmpSemver(now.version, pkg.version) > 0]).toEqual([pkg.name, true]);
        expect(existsSync(join(dir, 'CHANGELOG.md')), `${pkg.name} CHANGELOG.md`).toBe(true);
      } else {
        expect([pkg.name, now.version]).toEqual([pkg.name, pkg.version]);
      }
    }
    const left = readdirSync(join(copy, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md');
    expect(left).toEqual([]);
  });
});

function cmpSemver(a, b) {
  const pa = a.split(/[.-]/).map(Number);
  const pb = b.split(/[.-]/).map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}
