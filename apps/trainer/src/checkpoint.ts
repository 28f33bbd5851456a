// Training checkpoints: the model's weights, the optimizer's state, and the trainer's state (step,
// data position, RNG, scheduler, loss scale) — everything `--resume` needs to continue exactly.
//
// Each checkpoint is an @lm/dist-ckpt distributed checkpoint (Megatron-core's dist_checkpointing
// layout), so it reshards: `lm-ckpt inspect` lists it, `load` reads it under another tensor-parallel
// layout, `consolidateToHuggingFace({ prefix: 'model.' })` turns it into a Hugging Face folder.
//
//   <dir>/step-00000100/latest.json                      pointer, written last (atomic rename)
//                       ckpt-<id>/metadata.json          every tensor's shards + the trainer state
//                       ckpt-<id>/rank0.safetensors      the data
//
// Keys: `model.<parameter name>` (float32 weights; tied tensors once, the others as replicas, as
// Megatron does), `optimizer.<state key>.<parameter name>` (AdamW's exp_avg / exp_avg_sq, sharded
// like their parameter), and the trainer state as common (plain) state under `trainer`.
//
// dist-ckpt writes into a temporary folder, renames it and then publishes `latest.json`, so a crash
// or SIGKILL at any moment never leaves a checkpoint that looks complete but is not; a step folder
// without `latest.json` is a leftover, ignored by `list()` and removed by the next save. No complete
// checkpoint is ever written over: a step that exists is an error. Old ones are removed only after
// the new one is published.

import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DistCheckpoint, load, moduleShardedStateDict, resolveCheckpoint, save, type StateDictEntry } from '@lm/dist-ckpt';
import type { Tensor } from '@lm/tensor-gpu';
import { CheckpointError } from './core/errors.js';
import type { CheckpointPayload, CheckpointRef, CheckpointStore, HostTensor, LoadedCheckpoint } from './core/ports.js';

export type { CheckpointRef, HostTensor };

const NAME = /^step-(\d{8,})$/;
const MODEL_PREFIX = 'model.';
const OPTIMIZER_PREFIX = 'optimizer.';
/** A single process: tensor-parallel rank 0 of 1 (the keys and boxes are the global ones). */
const LAYOUT = { tpRank: 0, tpSize: 1 };

function stepName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

async function isComplete(path: string): Promise<boolean> {
  try {
    await resolveCheckpoint(path);
    return true;
  } catch {
    return false;
  }
}

/** The loop's checkpoint store over folders of @lm/dist-ckpt checkpoints. */
export class DistCheckpointStore<S> implements CheckpointStore<S, Tensor> {
  constructor(readonly dir: string) {}

  /** Complete checkpoints (published `latest.json`), oldest first. */
  async list(): Promise<CheckpointRef[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const refs: CheckpointRef[] = [];
    for (const n of names) {
      const m = NAME.exec(n);
      if (m && (await isComplete(join(this.dir, n)))) refs.push({ step: Number(m[1]), path: join(this.dir, n) });
    }
    return refs.sort((a, b) => a.step - b.step);
  }

  async save(step: number, payload: CheckpointPayload<S, Tensor>): Promise<CheckpointRef> {
    const path = join(this.dir, stepName(step));
    if (await isComplete(path)) throw new CheckpointError(`checkpoint ${path} already exists; refusing to write over it`);
    // A folder without latest.json is what a killed save leaves behind.
    await rm(path, { recursive: true, force: true });
    const sharded = {
      model: moduleShardedStateDict(payload.model as ReadonlyMap<string, StateDictEntry>, LAYOUT, { keyPrefix: MODEL_PREFIX }),
      optimizer: moduleShardedStateDict(payload.optimizer as ReadonlyMap<string, StateDictEntry>, LAYOUT, { keyPrefix: OPTIMIZER_PREFIX }),
      trainer: payload.state,
    };
    try {
      await save(sharded, path);
    } catch (e) {
      await rm(path, { recursive: true, force: true });
      throw new CheckpointError(`checkpoint ${path}: ${(e as Error).message}`);
    }
    return { step, path };
  }

  /**
   * Fills `model` (parameter name -> tensor, e.g. the model's stateDict()) in place from the
   * checkpoint and returns the optimizer tensors and the trainer state. Everything is read and
   * checked before anything is copied: a missing or extra weight, a shape that differs, a missing or
   * truncated shard file is an error naming it, and the model is left as it was.
   */
  async load(ref: CheckpointRef, model: ReadonlyMap<string, Tensor>): Promise<LoadedCheckpoint<S>> {
    let ckpt: DistCheckpoint;
    try {
      ckpt = await DistCheckpoint.open(ref.path);
    } catch (e) {
      throw new CheckpointError(`checkpoint ${ref.path}: ${(e as Error).message}`);
    }
    const optimizer = new Map<string, HostTensor>();
    const problems: string[] = [];
    try {
      const common = ckpt.common as { trainer?: S } | null;
      if (!common?.trainer) throw new CheckpointError(`checkpoint ${ref.path}: no trainer state in its metadata (not written by lm-train)`);
      const wanted = new Set([...model.keys()].map((k) => MODEL_PREFIX + k));
      for (const key of ckpt.tensorKeys) {
        if (key.startsWith(MODEL_PREFIX) && !wanted.has(key)) problems.push(`'${key.slice(MODEL_PREFIX.length)}' is in the checkpoint but not in the model`);
      }
      const optimizerEntries = new Map<string, StateDictEntry>();
      for (const key of ckpt.tensorKeys) {
        if (!key.startsWith(OPTIMIZER_PREFIX)) continue;
        const meta = ckpt.tensor(key);
        const name = key.slice(OPTIMIZER_PREFIX.length);
        const data = new Float32Array(meta.shape.reduce((a, b) => a * b, 1));
        optimizerEntries.set(name, { dtype: 'F32', shape: meta.shape, data });
        optimizer.set(name, { shape: [...meta.shape], data });
      }
      if (problems.length) throw new CheckpointError(`checkpoint ${ref.path} does not fit the model: ${problems.join('; ')}`);
      const sharded = {
        model: moduleShardedStateDict(model as ReadonlyMap<string, StateDictEntry>, LAYOUT, { keyPrefix: MODEL_PREFIX }),
        optimizer: moduleShardedStateDict(optimizerEntries, LAYOUT, { keyPrefix: OPTIMIZER_PREFIX }),
      };
      const result = await load(sharded, ref.path, { strict: 'return_unexpected' });
      if (result.unexpectedKeys.length) {
        const names = result.unexpectedKeys.map((k) => (k.startsWith(MODEL_PREFIX) ? k.slice(MODEL_PREFIX.length) : k));
        throw new CheckpointError(`checkpoint ${ref.path} does not fit the model: not in the checkpoint: ${names.join(', ')}`);
      }
      return { ref, optimizer, state: common.trainer };
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError(`checkpoint ${ref.path}: ${(e as Error).message}`);
    } finally {
      await ckpt.close();
    }
  }

  /** Removes all but the newest `keepLast` checkpoints. */
  async prune(keepLast: number): Promise<void> {
    const refs = await this.list();
    for (const r of refs.slice(0, Math.max(0, refs.length - keepLast))) await rm(r.path, { recursive: true, force: true });
  }

  /** Removes every checkpoint, complete or not. */
  async clear(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const n of names) if (NAME.test(n)) await rm(join(this.dir, n), { recursive: true, force: true });
  }
}

/** Resolves `--resume` (true: the newest in the store; a path: that checkpoint folder). */
export async function findResume<S>(store: DistCheckpointStore<S>, resume: string | true): Promise<CheckpointRef> {
  if (resume === true) {
    const refs = await store.list();
    if (refs.length === 0) throw new CheckpointError(`--resume: no complete checkpoint in ${store.dir}`);
    return refs[refs.length - 1];
  }
  const m = NAME.exec(resume.split(/[\\/]/).filter(Boolean).pop() ?? '');
  if (!m || !(await stat(resume).then((s) => s.isDirectory(), () => false)) || !(await isComplete(resume))) {
    throw new CheckpointError(`--resume ${resume}: not a complete checkpoint folder (expected step-NNNNNNNN holding a published latest.json)`);
  }
  return { step: Number(m[1]), path: resume };
}

/**
 * The run's store and where it resumes from: `resume` true is the newest checkpoint, a string that
 * folder; without it, existing checkpoints are an error unless `overwrite` (they are removed later,
 * once the model is built).
 */
export async function openStore<S>(
  checkpointing: { dir: string; overwrite: boolean },
  resume: string | true | null,
): Promise<{ store: DistCheckpointStore<S>; resumeFrom: CheckpointRef | null }> {
  const store = new DistCheckpointStore<S>(checkpointing.dir);
  if (resume) return { store, resumeFrom: await findResume(store, resume) };
  const existing = await store.list();
  if (existing.length && !checkpointing.overwrite) {
    throw new CheckpointError(
      `checkpointing.dir: ${checkpointing.dir} already holds ${existing.length} checkpoint(s) (newest: step ${existing[existing.length - 1].step}); ` +
        'pass --resume to continue from them, choose another checkpointing.dir, or set checkpointing.overwrite: true to replace them',
    );
  }
  return { store, resumeFrom: null };
}
