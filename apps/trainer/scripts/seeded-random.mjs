// The seeded random numbers of the data scripts (make-corpus.mjs, make-realm-data.mjs): mulberry32, the
// generator of the trainer's src/core/rng.ts, so the generated data are the same on every run. Plain
// JavaScript so the scripts run with node alone, before anything is built.

/** A uniform number generator in [0, 1) from a 32-bit seed: each call advances one step. */
export function mulberry32(seed) {
  let state = seed >>> 0;
  return function rand() {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
