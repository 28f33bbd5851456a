// Fast, offline half of the pack test: every published @lm/* package has a README with a runnable
// example block where the pack test looks for it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { extractExample } from '../pack-test.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

describe('extractExample', () => {
  it('takes the first js block under "## Example"', () => {
    const md = '# x\n```js\nnot this\n```\n## Example\n\ntext\n```js\nconsole.log(1);\n```\n```js\nnor this\n```\n';
    expect(extractExample(md)).toBe('console.log(1);\n');
  });
  it('returns null without the heading or the block', () => {
    expect(extractExample('# x\n```js\n1\n```\n')).toBeNull();
    expect(extractExample('## Example\n```sh\nls\n```\n')).toBeNull();
  });
});

describe('README examples of the published packages', () => {
  const dirs = readdirSync(join(root, 'packages')).map((d) => join(root, 'packages', d));
  for (const dir of dirs) {
    if (!existsSync(join(dir, 'package.json'))) continue;
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    if (!pkg.name?.startsWith('@lm/') || pkg.private) continue;
    it(`${pkg.name} ships README.md with an example that imports the package`, () => {
      expect(pkg.files, `${pkg.name} "files"`).toContain('README.md');
      const readme = join(dir, 'README.md');
      expect(existsSync(readme), `${pkg.name} has no README.md`).toBe(true);
      const example = extractExample(readFileSync(readme, 'utf8'));
      expect(example, `${pkg.name}: no \`\`\`js block under "## Example"`).not.toBeNull();
      expect(example).toContain(`from '${pkg.name}'`);
    });
  }
});
