// Kills a process that is saving (SIGKILL at random moments, during writes, renames and publishing)
// and checks that the last complete checkpoint always loads, consistent, and that leftovers of the
// killed save are never read as data.

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import { shardedObject, shardedTensorFromLocal } from './mapping.js';
import { load, save } from './serialization.js';
import { rng } from './test-helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const tsx = createRequire(import.meta.url).resolve('tsx');
const root = mkdtempSync(join(tmpdir(), 'dist-ckpt-crash-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const PER_RANK = 2_000_000; // 8 MB per rank, 16 MB per save

/**
 * Runs the child until `killAfterMs` past its start-up (past its first completed save with `afterFirstSave`),
 * then SIGKILLs it; returns the last step it reported saved.
 */
function runAndKill(dir: string, firstStep: number, killAfterMs: number, afterFirstSave = false): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', tsx, join(here, 'fixtures', 'crash-child.ts'), dir, String(firstStep), String(PER_RANK)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let timer: ReturnType<typeof setTimeout> | undefined;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (!timer && out.includes(afterFirstSave ? 'saved ' : 'ready\n')) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') return reject(new Error(`child exited with ${code}: ${err}`));
      const saved = [...out.matchAll(/saved (\d+)/g)].map((m) => Number(m[1]));
      resolve(saved.length ? saved[saved.length - 1] : undefined);
    });
  });
}

async function loadStep(dir: string): Promise<number> {
  const w = new Float32Array(2 * PER_RANK);
  const { stateDict } = await load({ w: shardedTensorFromLocal('w', w, null), step: shardedObject('step', null) }, dir);
  const step = stateDict.step as number;
  expect(stateDict.iteration).toBe(step);
  // Every element belongs to the same save: no mix of two checkpoints.
  for (const i of [0, PER_RANK - 1]) expect(w[i]).toBe(step);
  for (const i of [PER_RANK, 2 * PER_RANK - 1]) expect(w[i]).toBe(step + 0.5);
  expect(w.every((v, i) => v === step + (i < PER_RANK ? 0 : 0.5))).toBe(true);
  return step;
}

describe('crash during save', () => {
  it('a SIGKILLed saver always leaves the last complete checkpoint loadable', async () => {
    const dir = join(root, 'ckpt');
    const random = rng(Number(process.env.CRASH_SEED ?? 99));
    let step = 1;
    let lastLoaded: number | undefined;
    const started = Date.now();
    for (let round = 0; round < 8 && Date.now() - started < 25_000; round++) {
      const killAfter = Math.floor(random() * 900);
      // Until one save has completed, the kill waits for it: on a loaded machine a 16 MB save can take
      // longer than the widest kill delay, and every round would then end before any checkpoint exists.
      const lastSaved = await runAndKill(dir, step, killAfter, lastLoaded === undefined);
      if (process.env.CRASH_DEBUG) console.log(killAfter, lastSaved, readdirSync(dir));
      let loaded: number | undefined;
      try {
        loaded = await loadStep(dir);
      } catch (err) {
        // Only acceptable when no save has ever completed.
        expect(lastSaved ?? lastLoaded).toBeUndefined();
        expect(String(err)).toMatch(/not a distributed checkpoint/);
      }
      if (lastSaved !== undefined) {
        // The save that completed last was reported, or completed right before the kill without being reported.
        expect(loaded === lastSaved || loaded === lastSaved + 1).toBe(true);
      } else if (lastLoaded !== undefined) {
        expect(loaded === lastLoaded || loaded === step).toBe(true);
      }
      lastLoaded = loaded ?? lastLoaded;
      step = Math.max(step, (lastSaved ?? step - 1) + 2, (loaded ?? 0) + 1);
    }
    expect(lastLoaded).toBeDefined();
    // A clean save afterwards removes whatever the killed saves left behind.
    await save({ w: shardedTensorFromLocal('w', new Float32Array(2 * PER_RANK).fill(step), null), step: shardedObject('step', step), iteration: step }, dir);
    expect(readdirSync(dir).sort()).toHaveLength(2);
  }, 60_000);
});
