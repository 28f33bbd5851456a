// Training checkpoints: the model's weights, the optimizer's state, and the trainer's state (step,
// data position, RNG, scheduler, loss scale) — everything `--resume` needs to continue exactly.
//
// Behind a small CheckpointStore interface. The store here writes with @lm/dist-ckpt's format layer
// (atomic `writeSafetensors`, `openCheckpoint`); the distributed `save`/`load` of @lm/dist-ckpt can
// replace it without touching the loop. Layout of one checkpoint:
//
//   <dir>/step-00000100/model.safetensors       weights (tied tensors once, as savePretrained)
//                       optimizer.safetensors   optimizer state tensors, `state.<param>.<key>`
//                       trainer_state.json      step, data position, RNG, scheduler, optimizer numbers
//
// A checkpoint is written into `<dir>/.tmp-step-00000100-<pid>/` and renamed into place when
// complete (a directory rename is atomic), so a crash never leaves a half checkpoint under a real
// name, and no existing checkpoint is ever written over: a name that exists is an error. Old ones
// are removed only after the new one is in place.

import { mkdir, readdir, readFile, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { openCheckpoint, writeSafetensors, type TensorToWrite } from '@lm/dist-ckpt';
import type { Tensor } from '@lm/tensor-gpu';
import { CheckpointError } from './errors.js';

export interface CheckpointRef {
  step: number;
  path: string;
}

/** Tensors in host memory, as read back from a checkpoint. */
export interface HostTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface CheckpointPayload<S> {
  /** name -> tensor; the same tensor under several names (tied) is written once. */
  model: Map<string, Tensor>;
  optimizer: Map<string, Tensor>;
  state: S;
}

export interface LoadedCheckpoint<S> {
  ref: CheckpointRef;
  /** Path of the model weights, to open with @lm/dist-ckpt `openCheckpoint` (PreTrainedModel.loadWeights). */
  modelFile: string;
  optimizer: Map<string, HostTensor>;
  state: S;
}

export interface CheckpointStore<S> {
  readonly dir: string;
  /** Complete checkpoints, oldest first. */
  list(): Promise<CheckpointRef[]>;
  save(step: number, payload: CheckpointPayload<S>): Promise<CheckpointRef>;
  load(ref: CheckpointRef): Promise<LoadedCheckpoint<S>>;
  /** Removes all but the newest `keepLast` checkpoints. */
  prune(keepLast: number): Promise<void>;
  /** Removes every checkpoint (and leftover temporary folders). */
  clear(): Promise<void>;
}

const NAME = /^step-(\d{8,})$/;
const STATE_FILE = 'trainer_state.json';

function stepName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

function dtypeOf(t: Tensor): TensorToWrite['dtype'] {
  if (t.dtype === 'float32') return 'F32';
  if (t.dtype === 'float16') return 'F16';
  if (t.dtype === 'int32') return 'I32';
  return 'BOOL';
}

function entries(map: Map<string, Tensor>): [string, TensorToWrite][] {
  const seen = new Set<Tensor>();
  const out: [string, TensorToWrite][] = [];
  for (const [name, t] of map) {
    if (seen.has(t)) continue;
    seen.add(t);
    out.push([name, { dtype: dtypeOf(t), shape: [...t.shape], data: () => t.data() as Promise<Float32Array> }]);
  }
  return out;
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Some filesystems refuse to fsync a directory; the rename is still atomic.
  }
}

export class SafetensorsCheckpointStore<S> implements CheckpointStore<S> {
  constructor(readonly dir: string) {}

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
      if (!m) continue;
      const path = join(this.dir, n);
      if (await stat(join(path, STATE_FILE)).then(() => true, () => false)) refs.push({ step: Number(m[1]), path });
    }
    return refs.sort((a, b) => a.step - b.step);
  }

  async save(step: number, payload: CheckpointPayload<S>): Promise<CheckpointRef> {
    await mkdir(this.dir, { recursive: true });
    const final = join(this.dir, stepName(step));
    if (await stat(final).then(() => true, () => false)) {
      throw new CheckpointError(`checkpoint ${final} already exists; refusing to write over it`);
    }
    const tmp = join(this.dir, `.tmp-${stepName(step)}-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp);
    try {
      await writeSafetensors(join(tmp, 'model.safetensors'), entries(payload.model), { metadata: { format: 'pt' } });
      await writeSafetensors(join(tmp, 'optimizer.safetensors'), entries(payload.optimizer));
      const stateFile = join(tmp, STATE_FILE);
      const h = await open(stateFile, 'w');
      try {
        await h.writeFile(`${JSON.stringify(payload.state, null, 2)}\n`);
        await h.sync();
      } finally {
        await h.close();
      }
      await fsyncDir(tmp);
      await rename(tmp, final);
      await fsyncDir(this.dir);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
    return { step, path: final };
  }

  async load(ref: CheckpointRef): Promise<LoadedCheckpoint<S>> {
    let state: S;
    try {
      state = JSON.parse(await readFile(join(ref.path, STATE_FILE), 'utf8')) as S;
    } catch (e) {
      throw new CheckpointError(`checkpoint ${ref.path}: cannot read ${STATE_FILE}: ${(e as Error).message}`);
    }
    const optimizer = new Map<string, HostTensor>();
    const ckpt = await openCheckpoint(join(ref.path, 'optimizer.safetensors'));
    try {
      for (const info of ckpt.tensors) {
        const { data } = await ckpt.readTensor(info.name);
        optimizer.set(info.name, { shape: [...info.shape], data: data as Float32Array | Int32Array });
      }
    } finally {
      await ckpt.close();
    }
    return { ref, modelFile: join(ref.path, 'model.safetensors'), optimizer, state };
  }

  async prune(keepLast: number): Promise<void> {
    const refs = await this.list();
    for (const r of refs.slice(0, Math.max(0, refs.length - keepLast))) await rm(r.path, { recursive: true, force: true });
  }

  async clear(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const n of names) if (NAME.test(n) || n.startsWith('.tmp-step-')) await rm(join(this.dir, n), { recursive: true, force: true });
  }
}

/** Resolves `--resume` (true: the newest in the store; a path: that checkpoint folder). */
export async function findResume<S>(store: CheckpointStore<S>, resume: string | true): Promise<CheckpointRef> {
  if (resume === true) {
    const refs = await store.list();
    if (refs.length === 0) throw new CheckpointError(`--resume: no checkpoint in ${store.dir}`);
    return refs[refs.length - 1];
  }
  const m = NAME.exec(resume.split(/[\\/]/).filter(Boolean).pop() ?? '');
  if (!m || !(await stat(join(resume, STATE_FILE)).then(() => true, () => false))) {
    throw new CheckpointError(`--resume ${resume}: not a checkpoint folder (expected step-NNNNNNNN with ${STATE_FILE})`);
  }
  return { step: Number(m[1]), path: resume };
}

/** Writes a small text file atomically (temp + rename). */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}
