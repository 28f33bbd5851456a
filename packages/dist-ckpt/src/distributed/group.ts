// Ranks and the collectives a save or load needs (all-gather and barrier). A real multi-process job
// plugs its own transport in; for tests and single-machine use, `localProcessGroups(n)` simulates n
// ranks in one process (each rank an async task), and `singleProcessGroup()` is the 1-rank case.

/** Where a rank sits in the parallel layout; used to name its files (`tp1_pp0_dp0`). */
export type RankCoords = Readonly<Record<string, number>>;

export interface ProcessGroup {
  /** This rank's index, 0 <= rank < size. */
  readonly rank: number;
  readonly size: number;
  /** Every rank's value, in rank order; every rank must call it (in the same order). */
  allGather<T>(value: T): Promise<T[]>;
  barrier(): Promise<void>;
}

export function singleProcessGroup(): ProcessGroup {
  return {
    rank: 0,
    size: 1,
    allGather: <T>(value: T) => Promise.resolve([value]),
    barrier: () => Promise.resolve(),
  };
}

/**
 * `n` in-process ranks that meet at each collective: the k-th allGather of every rank resolves once
 * all `n` ranks have made their k-th call. `timeoutMs` turns a rank that never arrives (a deadlock in
 * a test) into an error.
 */
export function localProcessGroups(n: number, options: { timeoutMs?: number } = {}): ProcessGroup[] {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`localProcessGroups: bad size ${n}`);
  const rounds: Array<{ values: unknown[]; arrived: number; resolve: Array<(v: unknown[]) => void>; timer?: ReturnType<typeof setTimeout> }> = [];
  const counters = new Array<number>(n).fill(0);
  const timeoutMs = options.timeoutMs ?? 120_000;
  return Array.from({ length: n }, (_, rank) => {
    const group: ProcessGroup = {
      rank,
      size: n,
      allGather<T>(value: T): Promise<T[]> {
        const k = counters[rank]++;
        let round = rounds[k];
        if (!round) {
          round = rounds[k] = { values: new Array<unknown>(n), arrived: 0, resolve: [] };
          round.timer = setTimeout(() => {
            for (const r of round!.resolve) r(undefined as never);
          }, timeoutMs);
          (round.timer as { unref?: () => void }).unref?.();
        }
        round.values[rank] = value;
        round.arrived++;
        const promise = new Promise<unknown[]>((resolve, reject) => {
          round!.resolve.push((v) => (v ? resolve(v) : reject(new Error(`collective #${k} timed out waiting for ${n - round!.arrived} of ${n} ranks`))));
        });
        if (round.arrived === n) {
          clearTimeout(round.timer);
          for (const r of round.resolve) r(round.values.slice());
          delete rounds[k];
        }
        return promise as Promise<T[]>;
      },
      async barrier(): Promise<void> {
        await group.allGather(null);
      },
    };
    return group;
  });
}
