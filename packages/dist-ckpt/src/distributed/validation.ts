// Validation as Megatron-core does it (dist_checkpointing/validation.py): before a save, the main
// replicas of every global tensor must cover it exactly once (no gaps, no overlaps) and every rank
// must agree on its global shape and dtype; ShardedObjects must be unique and complete. On load,
// StrictHandling decides what missing keys (in the checkpoint, requested by no rank) and unexpected
// keys (requested, not in the checkpoint) do.

import { ShardingIntegrityError, StrictLoadError } from './errors.js';
import { fmtPiece, intersectBoxes, intersectRuns, pieceSize, volume, type Piece } from './geometry.js';
import { boxShape, isMainReplica, objectUniqueKey, type ShardedBase, type ShardedObject, type ShardedTensor } from './mapping.js';

/** A sharded leaf as one rank described it (data stripped). */
export interface RankShard<T extends ShardedBase = ShardedBase> {
  rank: number;
  shard: T;
}

export function tensorPiece(t: ShardedTensor): Piece {
  return { offset: t.globalOffset, shape: boxShape(t), flat: t.flattenedRange ?? undefined };
}

function describe({ rank, shard }: RankShard<ShardedTensor>): string {
  return `rank ${rank} ${fmtPiece(tensorPiece(shard))} replica [${shard.replicaId.join(',')}]`;
}

/**
 * Megatron's validate_sharding_integrity over every rank's sharded leaves (`globalMetadata[rank]`).
 * Throws a ShardingIntegrityError naming the key and the offending shards.
 */
export function validateShardingIntegrity(globalMetadata: ReadonlyArray<ReadonlyArray<ShardedBase>>): void {
  const byKey = new Map<string, RankShard[]>();
  globalMetadata.forEach((shards, rank) => {
    for (const shard of shards) {
      const list = byKey.get(shard.key) ?? [];
      list.push({ rank, shard });
      byKey.set(shard.key, list);
    }
  });
  for (const [key, shards] of byKey) {
    const kinds = new Set(shards.map((s) => s.shard.kind));
    if (kinds.size > 1) throw new ShardingIntegrityError(`key '${key}' is a ShardedTensor on some ranks and a ShardedObject on others`, key);
    if (shards[0].shard.kind === 'sharded-tensor') validateTensorKey(key, shards as RankShard<ShardedTensor>[]);
    else validateObjectKey(key, shards as RankShard<ShardedObject>[]);
  }
}

function validateTensorKey(key: string, shards: RankShard<ShardedTensor>[]): void {
  const first = shards[0];
  for (const s of shards) {
    if (s.shard.dtype !== first.shard.dtype) {
      throw new ShardingIntegrityError(
        `tensor '${key}': ranks disagree on the dtype: ${s.shard.dtype} (${describe(s)}) vs ${first.shard.dtype} (${describe(first)})`,
        key,
      );
    }
    if (s.shard.globalShape.join(',') !== first.shard.globalShape.join(',')) {
      throw new ShardingIntegrityError(
        `tensor '${key}': ranks disagree on the global shape: [${s.shard.globalShape.join(',')}] (${describe(s)}) ` +
          `vs [${first.shard.globalShape.join(',')}] (${describe(first)})`,
        key,
      );
    }
  }
  const main = shards.filter((s) => isMainReplica(s.shard.replicaId));
  const pieces = main.map((s) => ({ s, p: tensorPiece(s.shard) }));
  const total = volume(first.shard.globalShape);
  let covered = 0;
  for (let i = 0; i < pieces.length; i++) {
    const a = pieces[i];
    a.p.shape.forEach((n, d) => {
      if (a.p.offset[d] + n > first.shard.globalShape[d]) {
        throw new ShardingIntegrityError(`tensor '${key}': ${describe(a.s)} runs past the global shape [${first.shard.globalShape.join(',')}]`, key);
      }
    });
    covered += pieceSize(a.p);
    for (let j = 0; j < i; j++) {
      const b = pieces[j];
      if (!intersectBoxes(a.p, b.p)) continue;
      if ((!a.p.flat && !b.p.flat) || intersectRuns(a.p, b.p).length > 0) {
        throw new ShardingIntegrityError(
          `tensor '${key}': main replicas overlap: ${describe(b.s)} and ${describe(a.s)} ` +
            '(exactly one copy of each element must have replica id all zeros)',
          key,
        );
      }
    }
  }
  if (covered !== total) {
    throw new ShardingIntegrityError(
      `tensor '${key}': main replicas cover ${covered} of ${total} elements of global shape ` +
        `[${first.shard.globalShape.join(',')}] (a gap: some piece has no replica with id all zeros); main replicas: ` +
        (main.length ? main.map(describe).join('; ') : 'none'),
      key,
    );
  }
}

function validateObjectKey(key: string, shards: RankShard<ShardedObject>[]): void {
  const first = shards[0].shard;
  for (const { rank, shard } of shards) {
    if (shard.globalShape.join(',') !== first.globalShape.join(',')) {
      throw new ShardingIntegrityError(
        `object '${key}': rank ${rank} says grid [${shard.globalShape.join(',')}], another rank [${first.globalShape.join(',')}]`,
        key,
      );
    }
  }
  const seen = new Map<string, number>();
  for (const { rank, shard } of shards) {
    if (!isMainReplica(shard.replicaId)) continue;
    const u = objectUniqueKey(shard);
    if (seen.has(u)) throw new ShardingIntegrityError(`object '${key}': duplicate main replica '${u}' on ranks ${seen.get(u)} and ${rank}`, key);
    seen.set(u, rank);
  }
  const expected = volume(first.globalShape);
  if (seen.size !== expected) {
    throw new ShardingIntegrityError(
      `object '${key}': ${expected - seen.size} of ${expected} pieces have no main replica (present: ${[...seen.keys()].join(', ') || 'none'})`,
      key,
    );
  }
}

// ---- strict handling on load ------------------------------------------------------------------------

/** Megatron's StrictHandling, by value. */
export type StrictHandling =
  /** Unexpected keys fail when they are read (with an error naming the key); missing keys are ignored. */
  | 'assume_ok_unexpected'
  /** Unexpected keys are logged and skipped; missing keys ignored. */
  | 'log_unexpected'
  /** Missing and unexpected keys are logged; unexpected ones skipped. */
  | 'log_all'
  /** Unexpected keys raise before anything is read. */
  | 'raise_unexpected'
  /** Missing or unexpected keys raise before anything is read. */
  | 'raise_all'
  /** Unexpected keys are skipped and returned. */
  | 'return_unexpected'
  /** Missing and unexpected keys are returned; unexpected ones skipped. */
  | 'return_all'
  /** Everything is ignored; unexpected keys skipped. */
  | 'ignore_all';

export const STRICT_HANDLING: readonly StrictHandling[] = [
  'assume_ok_unexpected',
  'log_unexpected',
  'log_all',
  'raise_unexpected',
  'raise_all',
  'return_unexpected',
  'return_all',
  'ignore_all',
];

export function parseStrict(value: string): StrictHandling {
  const v = value.toLowerCase() as StrictHandling;
  if (!STRICT_HANDLING.includes(v)) throw new TypeError(`invalid strict handling '${value}' (one of ${STRICT_HANDLING.join(', ')})`);
  return v;
}

/** Whether the mode needs every rank's requested keys (to know which checkpoint keys nobody asked for). */
export function needsMissingKeys(strict: StrictHandling): boolean {
  return strict === 'log_all' || strict === 'raise_all' || strict === 'return_all' || strict === 'ignore_all';
}

export function mismatchMessage(missing: readonly string[], unexpected: readonly string[]): string {
  const parts: string[] = [];
  if (missing.length) parts.push(`keys in the checkpoint that no rank requested (missing): ${missing.map((k) => `'${k}'`).join(', ')}`);
  if (unexpected.length) parts.push(`requested keys not in the checkpoint (unexpected): ${unexpected.map((k) => `'${k}'`).join(', ')}`);
  return parts.join('; ');
}

/** Applies a StrictHandling mode: raises, logs, or lets the caller return the keys. */
export function handleMismatch(
  strict: StrictHandling,
  missing: string[],
  unexpected: string[],
  log: (message: string) => void,
): { missingKeys: string[]; unexpectedKeys: string[] } {
  const none = { missingKeys: [], unexpectedKeys: [] };
  switch (strict) {
    case 'ignore_all':
      return none;
    case 'raise_unexpected':
    case 'raise_all':
      if (missing.length || unexpected.length) {
        throw new StrictLoadError(`load: ${mismatchMessage(missing, unexpected)}`, missing, unexpected);
      }
      return none;
    case 'log_unexpected':
    case 'log_all':
      if (missing.length || unexpected.length) log(`load: ${mismatchMessage(missing, unexpected)}`);
      return { missingKeys: missing, unexpectedKeys: unexpected };
    default:
      return { missingKeys: missing, unexpectedKeys: unexpected };
  }
}
