#!/usr/bin/env node
// The test command's conformance step (`turbo run test:conformance`, part of `pnpm run test:all`):
// runs the built CLI on every family listed in families.json, once per listed backend, and exits
// non-zero if any run fails. An empty list runs nothing and says so. Without ../shared/fixtures the
// step is skipped (an error under CI, as in findSharedFixtures). Without a WebGPU adapter the webgpu
// runs are skipped, unless LM_REQUIRE_WEBGPU=1, which makes that a failure.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findSharedFixtures, webgpuRequired } from '@lm/tensor-gpu/testing';

const here = dirname(fileURLToPath(import.meta.url));
const log = (msg) => console.log(`[conformance] ${msg}`);
const EXIT_NO_BACKEND = 3; // dist/cli.js: the requested backend is not available

const { families = [], backends = ['cpu'] } = JSON.parse(readFileSync(join(here, 'families.json'), 'utf8'));
if (families.length === 0) {
  log('no families enabled in tooling/conformance/families.json: nothing ran');
  process.exit(0);
}
const fixtures = findSharedFixtures(import.meta.url);
if (!fixtures) {
  log(`shared/fixtures not found (set LM_FIXTURES): skipped ${families.join(', ')}`);
  process.exit(0);
}
const cli = join(here, 'dist', 'cli.js');
if (!existsSync(cli)) {
  log(`${cli} is missing: run \`pnpm build\` first`);
  process.exit(1);
}

const dirs = families.map((f) => join(fixtures, f));
const failed = [];
for (const backend of backends) {
  log(`${families.join(', ')} on ${backend}`);
  const r = spawnSync(process.execPath, [cli, '--backend', backend, ...dirs], { stdio: 'inherit' });
  if (r.status === 0) continue;
  if (r.status === EXIT_NO_BACKEND && backend === 'webgpu' && !webgpuRequired()) {
    log('skipped webgpu: no usable adapter (LM_REQUIRE_WEBGPU=1 makes this a failure)');
    continue;
  }
  failed.push(backend);
}
if (failed.length) {
  log(`FAILED on ${failed.join(', ')}`);
  process.exit(1);
}
log(`all passed (${families.join(', ')} on ${backends.join(', ')})`);
