// What a stored checkpoint says about its run: the trainer state's fingerprint (model family and
// config, data settings, objective, seed, batch), so a checkpoint written by `lm-train` and dropped on
// the page resumes with the settings it was trained with, and one of another family is refused by name.

import { DistCheckpoint } from '@lm/dist-ckpt';
import { CheckpointError } from '../core/errors.js';
import type { TrainerState } from '../core/loop.js';

export interface RunFingerprint {
  model: { family: string; config: Record<string, unknown>; fromPretrained: string | null };
  data: Record<string, unknown>;
  seed: number;
  objective: string;
  batch: number;
  accum: number;
}

/** The fingerprint of the checkpoint folder `path` (a step-NNNNNNNN of lm-train), or a CheckpointError naming it. */
export async function readFingerprint(path: string): Promise<RunFingerprint> {
  let ckpt: DistCheckpoint;
  try {
    ckpt = await DistCheckpoint.open(path);
  } catch (e) {
    throw new CheckpointError(`checkpoint ${path}: ${(e as Error).message}`);
  }
  try {
    const state = (ckpt.common as { trainer?: TrainerState } | null)?.trainer;
    if (!state?.fingerprint) throw new CheckpointError(`checkpoint ${path}: no trainer state in its metadata (not written by lm-train)`);
    return JSON.parse(state.fingerprint) as RunFingerprint;
  } finally {
    await ckpt.close();
  }
}

/** The dotted config keys a fingerprint fixes (everything an exact resume needs, paths aside). */
export function fingerprintOverrides(f: RunFingerprint): [string, unknown][] {
  const out: [string, unknown][] = [
    ['model.family', f.model.family],
    ['model.config', f.model.config],
    ['objective', f.objective],
    ['seed', f.seed],
    ['training.batchSize', f.batch],
    ['training.gradAccumulation', f.accum],
  ];
  // Checkpoints before the fingerprint left paths out still carry them; the vocabulary size is no config field.
  for (const [k, v] of Object.entries(f.data)) if (!['paths', 'tokenizer', 'vocabSize'].includes(k)) out.push([`data.${k}`, v]);
  return out;
}
