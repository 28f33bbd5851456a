#!/usr/bin/env node
// The pack test: every published @lm/* package is packed with `pnpm pack` (as it would be published),
// all tarballs are installed together with npm into a fresh project OUTSIDE the workspace, and each
// package is imported (every `exports` entry) and its README example (the first ```js block under
// "## Example") is run with node. Catches packages that lean on workspace-only paths, on
// devDependencies, on files missing from `files`, or on the monorepo's build tree.
//
// Needs the packages built first (`pnpm build`) and the npm registry for third-party dependencies.
// LM_KEEP_PACK_DIR=1 keeps the temporary project for inspection.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const log = (msg) => console.log(`[pack-test] ${msg}`);

/** The first ```js / ```mjs block after a "## Example" heading, or null. */
export function extractExample(readme) {
  const lines = readme.split('\n');
  const start = lines.findIndex((l) => /^##\s+Example\b/.test(l));
  if (start === -1) return null;
  const open = lines.findIndex((l, i) => i > start && /^```(js|javascript|mjs)\s*$/.test(l.trim()));
  if (open === -1) return null;
  const close = lines.findIndex((l, i) => i > open && l.trim() === '```');
  if (close === -1) return null;
  return lines.slice(open + 1, close).join('\n') + '\n';
}

function publishedPackages() {
  const dir = join(root, 'packages');
  return readdirSync(dir)
    .map((name) => join(dir, name))
    .filter((d) => existsSync(join(d, 'package.json')))
    .map((d) => ({ dir: d, pkg: JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')) }))
    .filter(({ pkg }) => pkg.name?.startsWith('@lm/') && !pkg.private)
    .sort((a, b) => a.pkg.name.localeCompare(b.pkg.name));
}

/** The environment for npm/node in the fresh project: nothing inherited from pnpm's run. */
function cleanEnv() {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^(npm_|PNPM_|pnpm_)/i.test(key) && key.toLowerCase() !== 'npm_config_registry') delete env[key];
  }
  delete env.NODE_PATH;
  return env;
}

function main() {
  const packages = publishedPackages();
  if (packages.length === 0) throw new Error('no @lm/* packages found under packages/');
  const unbuilt = packages.filter(({ dir }) => !existsSync(join(dir, 'dist')));
  if (unbuilt.length) {
    throw new Error(`not built (run \`pnpm build\` first): ${unbuilt.map(({ pkg }) => pkg.name).join(', ')}`);
  }

  const work = mkdtempSync(join(tmpdir(), 'lm-pack-test-'));
  if (!relative(root, work).startsWith('..')) throw new Error(`temporary dir ${work} is inside the workspace`);
  const tarballs = join(work, 'tarballs');
  const app = join(work, 'app');
  mkdirSync(tarballs);
  mkdirSync(app);
  log(`packing ${packages.length} packages into ${tarballs}`);

  const files = [];
  for (const { dir, pkg } of packages) {
    const before = new Set(readdirSync(tarballs));
    execFileSync('pnpm', ['pack', '--pack-destination', tarballs], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    const made = readdirSync(tarballs).filter((f) => !before.has(f));
    if (made.length !== 1) throw new Error(`pnpm pack in ${dir} made ${made.length} files`);
    files.push(join(tarballs, made[0]));
    log(`  ${pkg.name} -> ${made[0]}`);
  }

  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'lm-pack-test-app', version: '0.0.0', private: true, type: 'module' }, null, 2),
  );
  log(`npm install (fresh project at ${app})`);
  const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...files], {
    cwd: app,
    env: cleanEnv(),
    stdio: 'inherit',
  });
  if (install.status !== 0) throw new Error(`npm install of the tarballs failed (exit ${install.status})`);

  let passed = 0;
  const failures = [];
  const run = (label, file) => {
    const r = spawnSync(process.execPath, [file], { cwd: app, env: cleanEnv(), encoding: 'utf8', timeout: 180_000 });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
    if (r.status === 0) {
      passed++;
      log(`PASS ${label}`);
    } else {
      failures.push(label);
      log(`FAIL ${label} (exit ${r.status ?? r.signal})\n${out.split('\n').map((l) => `    ${l}`).join('\n')}`);
    }
  };

  for (const { pkg } of packages) {
    const installed = join(app, 'node_modules', ...pkg.name.split('/'));
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    const subpaths = Object.keys(manifest.exports ?? { '.': null }).filter((s) => s !== './package.json' && !s.includes('*'));
    const importFile = join(app, `import-${pkg.name.replace('@lm/', '')}.mjs`);
    writeFileSync(
      importFile,
      subpaths
        .map((s, i) => `import * as m${i} from '${s === '.' ? pkg.name : pkg.name + s.slice(1)}';\n` +
          `if (Object.keys(m${i}).length === 0) throw new Error('${pkg.name}${s.slice(1)} exports nothing');\n`)
        .join(''),
    );
    run(`${pkg.name}: import ${subpaths.join(', ')}`, importFile);

    const readmePath = join(installed, 'README.md');
    if (!existsSync(readmePath)) {
      failures.push(`${pkg.name}: README example`);
      log(`FAIL ${pkg.name}: README example (README.md is not in the tarball; add it to "files")`);
      continue;
    }
    const example = extractExample(readFileSync(readmePath, 'utf8'));
    if (!example) {
      failures.push(`${pkg.name}: README example`);
      log(`FAIL ${pkg.name}: README example (no \`\`\`js block under a "## Example" heading)`);
      continue;
    }
    const exampleFile = join(app, `example-${pkg.name.replace('@lm/', '')}.mjs`);
    writeFileSync(exampleFile, example);
    run(`${pkg.name}: README example`, exampleFile);
  }

  if (process.env.LM_KEEP_PACK_DIR) log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
  console.log(`${passed} passed, ${failures.length} failed`);
  return failures.length === 0 ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main();
  } catch (err) {
    console.error(`[pack-test] ${err instanceof Error ? err.message : err}`);
    console.log('0 passed, 1 failed');
    process.exitCode = 1;
  }
}
