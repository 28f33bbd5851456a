// The fixtures digest that turbo's `test` hashes (tooling/scripts/fixtures-digest.mjs): it must move
// when any fixture byte, size or name changes, and stay put when nothing did.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { digestFolder, findFixtures, fixturesDigestLine } from '../fixtures-digest.mjs';

const dir = mkdtempSync(join(tmpdir(), 'lm-fixtures-digest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fixtures digest', () => {
  mkdirSync(join(dir, 'family', 'case'), { recursive: true });
  writeFileSync(join(dir, 'family', 'case', 'expected.safetensors'), Buffer.from([1, 2, 3, 4]));
  writeFileSync(join(dir, 'family', 'CASES.md'), 'cases');

  it('counts files and bytes, and is stable', () => {
    const a = digestFolder(dir);
    expect(a).toMatchObject({ files: 2, bytes: 9 });
    expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(digestFolder(dir).sha256).toBe(a.sha256);
  });

  it('changes with one byte, a rename or a new file', () => {
    const before = digestFolder(dir).sha256;
    writeFileSync(join(dir, 'family', 'case', 'expected.safetensors'), Buffer.from([1, 2, 3, 5]));
    const byte = digestFolder(dir).sha256;
    expect(byte).not.toBe(before);
    renameSync(join(dir, 'family', 'CASES.md'), join(dir, 'family', 'README.md'));
    const renamed = digestFolder(dir).sha256;
    expect(renamed).not.toBe(byte);
    writeFileSync(join(dir, 'family', 'new.json'), '');
    expect(digestFolder(dir).sha256).not.toBe(renamed);
  });

  it('reads $LM_FIXTURES first, and says when there are no fixtures', () => {
    expect(findFixtures({ LM_FIXTURES: dir })).toBe(dir);
    expect(fixturesDigestLine({ LM_FIXTURES: dir })).toBe(`fixtures sha256 ${digestFolder(dir).sha256} files 3 bytes 9\n`);
    expect(fixturesDigestLine({ LM_FIXTURES: join(dir, 'missing') })).toMatch(/^fixtures: none found/);
  });
});
