// Constants shared by the WebAssembly SIMD weight-only matmul generator (gen-quant.ts, build time) and
// its runtime (quant.ts): the formats and how many columns one 16-byte block of each decodes to.

export type QuantFormat = 'q8' | 'q4' | 'h16';

/** Columns decoded from one 16-byte block. */
export const COLS_PER_BLOCK: Record<QuantFormat, number> = { q8: 16, q4: 32, h16: 8 };
/** Rows of x one gemv call serves (the caller groups larger M). */
export const GEMV_MAX_ROWS = 4;

/**
 * The q4 gemv's column order inside a 32-column block: position 4j + i holds column 8i + (j ^ 1) (lane i
 * of the vector decoded from nibble j of each 32-bit word; the even column is the byte's high nibble).
 */
export const Q4_GEMV_ORDER: readonly number[] = Array.from({ length: 32 }, (_, p) => 8 * (p & 3) + ((p >> 2) ^ 1));
