// Seeded random numbers for the data pipeline (shuffling, NSP pairing, masking). Small, fast and with
// a one-number state: mulberry32 for streams, and a murmur3-style mix to derive independent seeds
// from (seed, epoch, index, ...) so a choice depends only on its coordinates, never on how much of the
// stream was read before. Model-side randomness (dropout) uses @lm/tensor-gpu's Philox generator.

/** Mixes any number of non-negative integers into one 32-bit seed (murmur3 finaliser per word). */
export function mixSeed(...values: number[]): number {
  let h = 0x811c9dc5;
  for (const v of values) {
    // Split into two 32-bit words so indices beyond 2^32 still mix.
    for (const w of [v >>> 0, Math.floor(v / 4294967296) >>> 0]) {
      let k = Math.imul(w, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, 0x1b873593);
      h ^= k;
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A uniform number in [0, 1) determined by the coordinates alone. */
export function hashUniform(...values: number[]): number {
  return mixSeed(...values) / 4294967296;
}

/** mulberry32: a 32-bit-state generator, good enough for sampling data and fully reproducible. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Fisher-Yates in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  getState(): number {
    return this.state;
  }

  setState(state: number): void {
    this.state = state >>> 0;
  }
}
