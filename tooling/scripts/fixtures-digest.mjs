#!/usr/bin/env node
// Writes .fixtures-digest at the repository root: a digest of the parity fixtures the tests read
// (../shared/fixtures, or $LM_FIXTURES), over every file's path, size and content. turbo.json lists
// the file in the `test` task's inputs, so a changed fixture changes every test hash and turbo runs
// the tests again instead of replaying a cached pass. The root scripts that run `turbo run test` run
// this first; it rewrites the file only when the digest changed.
//
// Usage: node tooling/scripts/fixtures-digest.mjs [--print]   (--print: also print the digest line)
// Finding the fixtures follows findSharedFixtures (@lm/tensor-gpu/testing): $LM_FIXTURES, else the
// first shared/fixtures above the repository root. No fixtures: the digest says so (tests skip them).

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DIGEST_FILE = join(root, '.fixtures-digest');

/** The fixtures folder the tests will read, or null. */
export function findFixtures(env = process.env) {
  if (env.LM_FIXTURES) return resolve(env.LM_FIXTURES);
  for (let dir = root; ; ) {
    const candidate = join(dir, 'shared', 'fixtures');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** sha256 over (relative path, size, sha256 of the bytes) of every file below `dir`, in path order; symlinks followed. */
export function digestFolder(dir) {
  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else if (st.isFile()) files.push({ rel: relative(dir, path).split(sep).join('/'), size: st.size, path });
    }
  };
  walk(dir);
  const all = createHash('sha256');
  let bytes = 0;
  for (const f of files) {
    const content = createHash('sha256').update(readFileSync(f.path)).digest('hex');
    all.update(`${f.rel}\0${f.size}\0${content}\n`);
    bytes += f.size;
  }
  return { sha256: all.digest('hex'), files: files.length, bytes };
}

/** The digest line for the fixtures the tests would read now. */
export function fixturesDigestLine(env = process.env) {
  const dir = findFixtures(env);
  if (!dir || !existsSync(dir)) return 'fixtures: none found (tests that need them skip)\n';
  const { sha256, files, bytes } = digestFolder(dir);
  return `fixtures sha256 ${sha256} files ${files} bytes ${bytes}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = performance.now();
  const line = fixturesDigestLine();
  const previous = existsSync(DIGEST_FILE) ? readFileSync(DIGEST_FILE, 'utf8') : null;
  if (line !== previous) writeFileSync(DIGEST_FILE, line);
  if (process.argv.includes('--print')) {
    process.stdout.write(`${line.trimEnd()} (${(performance.now() - started).toFixed(0)} ms${line === previous ? ', unchanged' : ', written'})\n`);
  }
}
