import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBase64 } from '../common.js';
import { generateWasmBytesSource, WASM_BYTES_PATH } from './gen-wasm.js';
import { GEMM_WASM_RELAXED_B64, GEMM_WASM_SIMD_B64 } from './wasm-bytes.js';
import { createGemm, gemmReadyWorkers, type Gemm, type GemmOperand, type GemmOutLayout } from './index.js';

/** Deterministic PRNG (mulberry32). */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  batch: number;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  bcastA?: boolean;
  bcastB?: boolean;
  /** extra elements before the data and extra leading-dimension padding */
  pad?: number;
}

/** Builds an operand for logical [batch, R, C] with the requested layout, filled randomly. */
function makeOperand(rand: () => number, batch: number, R: number, C: number, trans: boolean, bcast: boolean, pad: number) {
  const nb = bcast ? 1 : batch;
  // stored as [nb][R][C] (row stride ld >= C) or transposed [nb][C][R] (ld >= R)
  const ld = (trans ? R : C) + pad;
  const mat = (trans ? C : R) * ld;
  const bstride = mat + pad;
  const offset = 3 * pad;
  const data = new Float32Array(offset + nb * bstride + 1);
  for (let i = 0; i < data.length; i++) data[i] = rand() * 2 - 1;
  const strides: [number, number, number] = trans ? [bcast ? 0 : bstride, 1, ld] : [bcast ? 0 : bstride, ld, 1];
  return { data, offset, strides } satisfies GemmOperand;
}

/** Which arrays live in the engine's shared memory (`g.alloc`, as tensor storage does); `heads`: out strided. */
interface Placement {
  a?: boolean;
  b?: boolean;
  c?: boolean;
  /** C written as attention's head merge: item bt, row i at [i, bt, :] of [M, batch, N] (+ an offset and a gap) */
  heads?: boolean;
}

function placed(g: Gemm, data: Float32Array): Float32Array {
  const p = g.alloc(data.length);
  expect(p).not.toBeNull();
  p!.set(data);
  return p!;
}

/** `place === true`: B allocated in the shared memory (the in-place GEMV cases). */
function check(g: Gemm, c: Case, seed: number, place: Placement | boolean = false) {
  const where: Placement = place === true ? { b: true } : place || {};
  const rand = rng(seed);
  const { batch, M, N, K } = c;
  const pad = c.pad ?? 0;
  const a: GemmOperand = makeOperand(rand, batch, M, K, !!c.transA, !!c.bcastA, pad);
  const b: GemmOperand = makeOperand(rand, batch, K, N, !!c.transB, !!c.bcastB, pad);
  if (where.a) a.data = placed(g, a.data);
  if (where.b) b.data = placed(g, b.data);
  const layout: GemmOutLayout = where.heads ? { offset: 3, strides: [N, batch * N + 2] } : { offset: 0, strides: [M * N, N] };
  const outLength = where.heads ? 3 + M * (batch * N + 2) + 5 : batch * M * N + 5;
  let out: Float32Array = new Float32Array(outLength).fill(Number.NaN);
  if (where.c) out = placed(g, out);
  const written = new Set<number>();
  const at = (bt: number, i: number, j: number) => layout.offset + bt * layout.strides[0] + i * layout.strides[1] + j;
  g.matmul(a, b, out, batch, M, N, K, where.heads ? layout : undefined);
  let worst = 0;
  let worstAt = -1;
  for (let bt = 0; bt < batch; bt++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        let sa = 0;
        for (let k = 0; k < K; k++) {
          const x = a.data[a.offset + bt * a.strides[0] + i * a.strides[1] + k * a.strides[2]];
          const y = b.data[b.offset + bt * b.strides[0] + k * b.strides[1] + j * b.strides[2]];
          s += x * y;
          sa += Math.abs(x * y);
        }
        const got = out[at(bt, i, j)];
        written.add(at(bt, i, j));
        const err = Math.abs(got - s) / (sa + 1e-30);
        if (!(err <= worst)) {
          worst = Number.isNaN(err) ? Infinity : err;
          worstAt = at(bt, i, j);
        }
      }
    }
  }
  expect(worst, `${JSON.stringify(c)} worst rel err at ${worstAt}`).toBeLessThanOrEqual(1e-5);
  // elements outside the output's layout are untouched
  for (let i = 0; i < out.length; i++) if (!written.has(i)) expect(out[i], `element ${i} outside the output`).toBeNaN();
}

const CASES: Case[] = [
  { batch: 1, M: 1, N: 1, K: 1 },
  { batch: 1, M: 1, N: 5, K: 1 },
  { batch: 1, M: 3, N: 1, K: 7 },
  { batch: 2, M: 3, N: 4, K: 0 },
  { batch: 1, M: 7, N: 13, K: 11 },
  { batch: 1, M: 17, N: 19, K: 23 },
  // strip rounds of >= 24 rows pack B into micro-panels: batched (several items per round), broadcast B
  { batch: 3, M: 30, N: 21, K: 40 },
  { batch: 2, M: 25, N: 9, K: 17, bcastB: true, transA: true },
  { batch: 1, M: 37, N: 41, K: 43, transA: true },
  { batch: 1, M: 4, N: 12, K: 256 },
  { batch: 1, M: 5, N: 13, K: 257 },
  { batch: 1, M: 1, N: 300, K: 129 },
  { batch: 1, M: 300, N: 1, K: 129 },
  { batch: 1, M: 64, N: 64, K: 64, transB: true },
  { batch: 1, M: 67, N: 71, K: 73, transA: true, transB: true, pad: 3 },
  { batch: 1, M: 300, N: 257, K: 301 },
  { batch: 1, M: 129, N: 300, K: 65, transB: true, pad: 5 },
  { batch: 1, M: 301, N: 299, K: 520, transA: true, pad: 2 },
  { batch: 3, M: 31, N: 29, K: 37, bcastB: true },
  { batch: 3, M: 31, N: 29, K: 37, bcastA: true, transA: true },
  { batch: 2, M: 45, N: 50, K: 300, bcastA: true, bcastB: true, pad: 1 },
  { batch: 12, M: 128, N: 128, K: 64 },
  { batch: 12, M: 33, N: 64, K: 17, transB: true, pad: 4 },
  { batch: 5, M: 200, N: 100, K: 60, bcastB: true, transB: true },
  { batch: 2, M: 100, N: 1100, K: 40 },
  { batch: 1, M: 530, N: 70, K: 90 },
];

/**
 * Transposed operands. B^T (b.strides = [.., 1, ld]: `x @ W^T`) runs the `dots` kernel on
 * memcpy'd rows of W (one memcpy per block when W is dense); A^T is memcpy'd line by line
 * and transposed by the wasm `transpose` (4x4 tiles + scalar edges) when its lines have
 * >= 16 elements, else gathered in JS. These cover K % 4 tails, M / N not multiples of the
 * padding units, the 16-row threshold, dense vs padded W, offsets and broadcast batches.
 */
const TRANS_CASES: Case[] = [
  // decoding-style x @ W^T
  { batch: 1, M: 1, N: 37, K: 19, transB: true },
  { batch: 1, M: 1, N: 64, K: 16, transB: true },
  { batch: 1, M: 2, N: 33, K: 130, transB: true },
  { batch: 1, M: 3, N: 17, K: 77, transB: true, pad: 3 },
  { batch: 1, M: 5, N: 100, K: 3, transB: true },
  { batch: 1, M: 8, N: 48, K: 64, transB: true },
  { batch: 2, M: 1, N: 50, K: 33, transB: true, bcastB: true },
  { batch: 3, M: 4, N: 21, K: 65, transB: true, pad: 1 },
  // Linear-layer shapes (small)
  { batch: 1, M: 33, N: 70, K: 96, transB: true },
  { batch: 1, M: 16, N: 16, K: 17, transB: true },
  { batch: 1, M: 15, N: 15, K: 15, transB: true },
  { batch: 4, M: 19, N: 23, K: 29, transB: true, bcastB: true, pad: 2 },
  { batch: 4, M: 19, N: 23, K: 29, transB: true, bcastA: true },
  { batch: 12, M: 20, N: 20, K: 16, transB: true, pad: 1 },
  // transposed A (g^T @ x), with and without transposed B
  { batch: 1, M: 16, N: 16, K: 16, transA: true },
  { batch: 1, M: 17, N: 13, K: 18, transA: true },
  { batch: 1, M: 15, N: 40, K: 40, transA: true },
  { batch: 1, M: 61, N: 29, K: 31, transA: true, pad: 3 },
  { batch: 3, M: 35, N: 26, K: 21, transA: true, bcastA: true, pad: 1 },
  { batch: 3, M: 35, N: 26, K: 21, transA: true, bcastB: true },
  { batch: 2, M: 41, N: 39, K: 37, transA: true, transB: true },
  { batch: 2, M: 18, N: 7, K: 90, transA: true, transB: true, bcastB: true, pad: 2 },
];

/**
 * x @ W^T with W in the shared memory: M <= 8 rows run the in-place GEMV (tasks of 16 rows of W read
 * where W lies, the mb = 1 kernel for one row, N % 4 tail columns on the calling thread); more rows
 * and batched W run the blocked `dots` rounds, also on W in place; row-major B is copied as before.
 */
const IN_PLACE_CASES: Case[] = [
  { batch: 1, M: 1, N: 1, K: 1, transB: true },
  { batch: 1, M: 1, N: 3, K: 5, transB: true },
  { batch: 1, M: 1, N: 4, K: 4, transB: true },
  { batch: 1, M: 1, N: 37, K: 19, transB: true, pad: 3 },
  { batch: 1, M: 1, N: 512, K: 512, transB: true },
  { batch: 1, M: 2, N: 33, K: 130, transB: true },
  { batch: 1, M: 3, N: 1001, K: 77, transB: true, pad: 1 },
  { batch: 1, M: 7, N: 66, K: 257, transB: true, transA: true },
  { batch: 1, M: 8, N: 2050, K: 64, transB: true },
  { batch: 1, M: 1, N: 300, K: 5000, transB: true, pad: 2 },
  { batch: 1, M: 9, N: 40, K: 33, transB: true },
  { batch: 2, M: 1, N: 50, K: 33, transB: true, bcastB: true },
  { batch: 1, M: 4, N: 30, K: 20 },
  // M > 8: the dots rounds read W's rows in place (tasks of 16 rows, K split past 4096, batched W)
  { batch: 1, M: 12, N: 70, K: 4101, transB: true },
  { batch: 3, M: 10, N: 45, K: 37, transB: true, pad: 2 },
  { batch: 3, M: 17, N: 29, K: 64, transB: true, bcastB: true, transA: true },
  { batch: 1, M: 530, N: 300, K: 1000, transB: true, pad: 1 },
];

/**
 * A, B and C in the shared memory: the threads read A's rows (contiguous along k), B (W's rows for
 * x @ W^T, row-major rows otherwise) and write C where they lie (C only when M and N fill whole
 * kernel blocks, else through the C buffer). Attention's shapes, and odd ones around the blocks.
 */
const SHARED_CASES: Case[] = [
  { batch: 12, M: 128, N: 128, K: 64, transB: true },
  { batch: 12, M: 128, N: 64, K: 128 },
  { batch: 3, M: 36, N: 16, K: 20 },
  { batch: 3, M: 37, N: 17, K: 20, pad: 2 },
  { batch: 2, M: 30, N: 32, K: 33, transB: true, bcastB: true },
  { batch: 2, M: 31, N: 33, K: 9, transB: true, bcastA: true, pad: 1 },
  { batch: 1, M: 60, N: 24, K: 300, transA: true },
  { batch: 1, M: 510, N: 1032, K: 40 },
  // C in place with M not a multiple of the kernel's rows: the last partial row block goes through the C
  // buffer (K split into two accumulated blocks; transposed A; dots with odd M; M below one row block;
  // two M blocks, the second partial; a batch group)
  { batch: 3, M: 31, N: 32, K: 300 },
  { batch: 2, M: 131, N: 40, K: 70, transA: true },
  { batch: 2, M: 25, N: 48, K: 9, transB: true },
  { batch: 4, M: 5, N: 16, K: 12 },
  { batch: 1, M: 515, N: 64, K: 20 },
  { batch: 96, M: 128, N: 64, K: 13 },
  // strip rounds reading A in place: K split past KC_IN_PLACE (512) in a batch group whose tasks read the next
  // item's A ahead; M split in two blocks for a whole batch group (the second with a partial row block); the
  // column block bounded by the B buffer at kc = 300 of K = 600 (three N blocks, C in place with a partial row
  // block accumulated in the C buffer); C copied out (N % 8 > 0, so kc stays 256)
  { batch: 12, M: 70, N: 64, K: 600 },
  { batch: 3, M: 515, N: 24, K: 520 },
  { batch: 1, M: 40, N: 1024, K: 600 },
  { batch: 2, M: 40, N: 1100, K: 600 },
  // four strips per task (many tasks per thread), the last task of each item with one strip
  { batch: 16, M: 30, N: 40, K: 50 },
];

/**
 * Packing in the tasks (operands in the shared memory): a transposed A is staged into the A block by
 * transpose tasks claimed in the round before (its k lines read where they lie), and each strip task
 * packs its own micro-panel of a row-major B from where B lies, then runs the partial last row block of
 * its columns when C is written in place. Odd M, N, K around the blocks (MC 504, NC 1024, KC 256; the
 * kernel's 6 x 8), tn / nn / nt, padded strides, batch groups, broadcast A or B (a broadcast B shared by
 * a batch group is packed by the calling thread; with one item per round, by the tasks).
 */
const PACK_CASES: Case[] = [
  { batch: 1, M: 128, N: 200, K: 300, transA: true },
  { batch: 1, M: 131, N: 1030, K: 257, pad: 3 },
  { batch: 1, M: 509, N: 64, K: 70, transA: true, pad: 1 },
  { batch: 5, M: 29, N: 24, K: 33, transA: true, bcastA: true },
  { batch: 3, M: 30, N: 17, K: 40, bcastB: true },
  { batch: 2, M: 600, N: 40, K: 100, bcastB: true, pad: 2 },
  { batch: 12, M: 128, N: 64, K: 128 },
  { batch: 4, M: 25, N: 31, K: 300, transA: true, pad: 2 },
  { batch: 2, M: 24, N: 8, K: 5, transA: true, transB: true },
  { batch: 1, M: 7, N: 16, K: 9, transA: true },
  { batch: 3, M: 6, N: 8, K: 20 },
  { batch: 2, M: 127, N: 48, K: 513, transA: true },
  // a dots round (B transposed) that also carries the next round's transpose tasks, with a tail block
  { batch: 1, M: 515, N: 64, K: 100, transA: true, transB: true },
  // x @ W^T from 256 rows and K = 256: strip tasks transpose their panels from W's rows (a last partial
  // strip, K split past 512, batched W, transposed A staged by tasks, several M and N blocks); a broadcast W
  // shared by a batch keeps the dots kernel
  { batch: 1, M: 300, N: 61, K: 300, transB: true },
  { batch: 2, M: 260, N: 40, K: 520, transB: true, pad: 1 },
  { batch: 2, M: 256, N: 24, K: 256, transA: true, transB: true },
  { batch: 1, M: 600, N: 1100, K: 260, transB: true },
  { batch: 3, M: 256, N: 16, K: 300, transB: true, bcastB: true },
];

/** Shapes crossing the MC/NC/KC block limits (multiple rounds per C block). */
const BIG_CASES: Case[] = [
  { batch: 1, M: 531, N: 1045, K: 300, pad: 1 },
  { batch: 2, M: 520, N: 40, K: 530, transA: true, bcastB: true },
  // dots: K split because the A block would not fit (M = 300 -> kc <= 439)
  { batch: 1, M: 300, N: 70, K: 530, transB: true },
  // dots: K > DOTS_KC_MAX (4096) -> two K blocks, W not dense in the copy
  { batch: 1, M: 3, N: 40, K: 4101, transB: true },
  // dots: several W blocks along N (M = 1: 265 rows of K = 1000 per block), dense W
  { batch: 1, M: 1, N: 600, K: 1000, transB: true },
  { batch: 2, M: 2, N: 530, K: 1001, transB: true, bcastB: true, pad: 1 },
  // dots: several blocks along M (> MC_MAX) with transposed A
  { batch: 1, M: 530, N: 50, K: 200, transA: true, transB: true, pad: 2 },
  // transposed A spanning several K blocks and M blocks, row-major B
  { batch: 1, M: 600, N: 30, K: 700, transA: true, pad: 1 },
];

const SHARED_PLACES: Placement[] = [{ a: true, b: true, c: true }, { a: true }, { c: true }, { a: true, b: true, c: true, heads: true }, { heads: true }];
const PACK_PLACES: Placement[] = [{ a: true, b: true, c: true }, { a: true, b: true }, { b: true }, { a: true }, { a: true, b: true, c: true, heads: true }];
const placeName = (p: Placement) => (Object.keys(p) as (keyof Placement)[]).filter((k) => p[k]).join(' + ');

describe('gemm wasm bytes', () => {
  it('wasm-bytes.ts matches the generator output (drift check)', async () => {
    const committed = readFileSync(WASM_BYTES_PATH, 'utf8');
    expect(await generateWasmBytesSource()).toBe(committed);
  });

  it('strip_pf computes what strip does and reads one int per k step from pf', () => {
    let ran = 0;
    for (const b64 of [GEMM_WASM_RELAXED_B64, GEMM_WASM_SIMD_B64]) {
      const memory = new WebAssembly.Memory({ initial: 4, maximum: 65536 });
      const bytes = decodeBase64(b64);
      if (!WebAssembly.validate(bytes)) continue; // relaxed SIMD missing here (simd128 always runs)
      ran++;
      const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports as Record<string, CallableFunction>;
      const f32 = new Float32Array(memory.buffer);
      const i32 = new Int32Array(memory.buffer);
      const rand = rng(7);
      // two panels of 6 rows (lda 40 floats), kc = 33, one 8-wide B panel; C twice (ldc 8 floats)
      const [np, kc, lda] = [2, 33, 40];
      const A = 0, B = 4096, C1 = 8192, C2 = 12288, PF = 16384;
      for (let i = 0; i < np * 6 * lda; i++) f32[A / 4 + i] = rand() * 2 - 1;
      for (let i = 0; i < kc * 8; i++) f32[B / 4 + i] = rand() * 2 - 1;
      for (let i = 0; i < 4096; i++) i32[PF / 4 + i] = i * 3 + 1;
      ex.strip(A, lda * 4, B, 32, C1, 32, np, kc, 0);
      const step = 12;
      const sum = ex.strip_pf(A, lda * 4, B, 32, C2, 32, np, kc, 0, PF, step) as number;
      expect(Array.from(f32.subarray(C2 / 4, C2 / 4 + np * 6 * 8))).toEqual(Array.from(f32.subarray(C1 / 4, C1 / 4 + np * 6 * 8)));
      let want = 0;
      for (let t = 0; t < np * kc; t++) want = (want + i32[(PF + t * step) / 4]) | 0;
      expect(sum).toBe(want);
    }
    expect(ran).toBeGreaterThan(0);
  });
});

const ENGINES: { name: string; opts: Parameters<typeof createGemm>[0]; big: boolean }[] = [
  { name: 'threads=1', opts: { threads: 1 }, big: true },
  { name: 'threads=2', opts: { threads: 2 }, big: true },
  { name: 'simd128 threads=1', opts: { threads: 1, simd: 'simd128' }, big: true },
  { name: 'simd128 threads=2', opts: { threads: 2, simd: 'simd128' }, big: true },
  { name: 'scalar', opts: { simd: 'scalar' }, big: false },
];

for (const eng of ENGINES) {
  describe(`gemm ${eng.name}`, () => {
    let g: Gemm;
    beforeAll(async () => {
      g = createGemm(eng.opts);
      // Workers start asynchronously; wait so the multi-threaded path really is exercised.
      for (let i = 0; i < 6000 && gemmReadyWorkers(g) < g.threads - 1; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
    });
    afterAll(() => g.dispose());

    it('reports its configuration', () => {
      if (eng.opts?.simd === 'scalar') {
        expect(g.simd).toBe('scalar');
        expect(g.threads).toBe(1);
      } else {
        expect(['relaxed-simd', 'simd128']).toContain(g.simd);
        if (eng.opts?.simd === 'simd128') expect(g.simd).toBe('simd128');
        expect(g.threads).toBe(eng.opts?.threads);
        expect(gemmReadyWorkers(g)).toBe(g.threads - 1);
      }
    });

    it('matches a float64 reference on many shapes', () => {
      CASES.forEach((c, i) => check(g, c, 1000 + i));
    });

    it('transposed A / B (dots kernel, wasm transpose)', () => {
      TRANS_CASES.forEach((c, i) => check(g, c, 4000 + i));
    });

    it('x @ W^T with W allocated in the shared memory (in-place GEMV)', () => {
      if (eng.opts?.simd === 'scalar') {
        expect(g.alloc(16)).toBeNull();
        return;
      }
      IN_PLACE_CASES.forEach((c, i) => check(g, c, 5000 + i, true));
    });

    // one test per placement, so that no single test holds its vitest worker for long on a loaded machine
    if (eng.opts?.simd === 'scalar') {
      it('a strided (head-merge) output; no shared memory to read in place', () => {
        SHARED_CASES.slice(2, 6).forEach((c, i) => check(g, c, 6000 + i, { heads: true }));
        expect(g.alloc(16)).toBeNull();
      });
    } else {
      SHARED_PLACES.forEach((p, n) => {
        it(`operands and output in the shared memory, read and written in place; a strided (head-merge) output (${placeName(p)})`, () => {
          SHARED_CASES.forEach((c, i) => check(g, c, 6000 + 100 * n + i, p));
        });
      });
      PACK_PLACES.forEach((p, n) => {
        it(`packs a transposed A and B panels in the tasks, from operands where they lie (${placeName(p)})`, () => {
          PACK_CASES.forEach((c, i) => check(g, c, 7000 + 100 * n + i, p));
        });
      });
    }

    it('rejects a negative or out-of-range output layout', () => {
      const a: GemmOperand = { data: new Float32Array(4), offset: 0, strides: [0, 2, 1] };
      expect(() => g.matmul(a, a, new Float32Array(8), 2, 2, 2, 2, { offset: 0, strides: [2, 4] })).not.toThrow();
      expect(() => g.matmul(a, a, new Float32Array(8), 2, 2, 2, 2, { offset: 1, strides: [2, 4] })).toThrow(/layout writes up to element 8/);
      expect(() => g.matmul(a, a, new Float32Array(8), 2, 2, 2, 2, { offset: 0, strides: [-2, 4] })).toThrow(/non-negative/);
    });

    // The scalar JS engine is too slow for multi-block shapes; it is covered by the cases above.
    if (eng.big) {
      it('matches on shapes spanning several blocks', () => {
        BIG_CASES.forEach((c, i) => check(g, c, 2000 + i));
      });
    }

    it('random shapes', () => {
      const r = rng(42);
      for (let t = 0; t < 30; t++) {
        const pick = (max: number) => 1 + Math.floor(r() * r() * max);
        check(
          g,
          {
            batch: pick(4),
            M: pick(140),
            N: pick(140),
            K: pick(140),
            transA: r() < 0.3,
            transB: r() < 0.3,
            bcastA: r() < 0.2,
            bcastB: r() < 0.2,
            pad: r() < 0.3 ? 2 : 0,
          },
          3000 + t,
        );
      }
    });

    it('K = 0 writes zeros, empty outputs are fine', () => {
      const a: GemmOperand = { data: new Float32Array(1), offset: 0, strides: [0, 0, 0] };
      const out = new Float32Array(6).fill(7);
      g.matmul(a, a, out, 2, 1, 3, 0);
      expect(Array.from(out)).toEqual([0, 0, 0, 0, 0, 0]);
      g.matmul(a, a, out, 0, 4, 4, 4);
      g.matmul(a, a, out, 1, 0, 4, 4);
    });

    it('rejects out-of-bounds operands and short outputs', () => {
      const a: GemmOperand = { data: new Float32Array(4), offset: 0, strides: [0, 2, 1] };
      expect(() => g.matmul(a, a, new Float32Array(4), 1, 2, 2, 2)).not.toThrow();
      expect(() => g.matmul(a, a, new Float32Array(3), 1, 2, 2, 2)).toThrow(RangeError);
      expect(() => g.matmul({ ...a, offset: 1 }, a, new Float32Array(4), 1, 2, 2, 2)).toThrow(RangeError);
    });
  });
}

describe('gemm process lifetime', () => {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const run = (dispose: boolean) => {
    const dir = mkdtempSync(join(tmpdir(), 'gemm-exit-'));
    const script = join(dir, 'exit.mts');
    writeFileSync(
      script,
      `import { createGemm } from ${JSON.stringify(join(here, 'index.ts'))};
const g = createGemm({ threads: 2 });
const n = 200;
const a = { data: new Float32Array(n * n).fill(1), offset: 0, strides: [0, n, 1] };
const out = new Float32Array(n * n);
await new Promise((r) => setTimeout(r, 200));
g.matmul(a, a, out, 1, n, n, n);
if (out[0] !== n) throw new Error('bad result ' + out[0]);
${dispose ? 'g.dispose();' : ''}
console.log('ok', g.threads);
`,
    );
    // The process must exit on its own; the timeout only guards against a hang.
    return execFileSync(process.execPath, ['--import', 'tsx', script], {
      cwd: here,
      timeout: 60_000,
      encoding: 'utf8',
    });
  };
  it('exits after dispose()', () => {
    expect(run(true).trim()).toBe('ok 2');
  });
  it('exits without dispose() (idle workers are unref-ed)', () => {
    expect(run(false).trim()).toBe('ok 2');
  });
});

describe('gemm threads', () => {
  // Regression: a small (single-threaded) call right after a parallel one used to read C while a
  // worker still spinning from the parallel call was computing one of its tasks.
  it('small calls after parallel calls match the single-threaded engine exactly', () => {
    const two = createGemm({ threads: 2 });
    const one = createGemm({ threads: 1 });
    try {
      const r = rng(7);
      const fill = (n: number) => Float32Array.from({ length: n }, () => r() - 0.5);
      const shapes: [number, number, number, number, boolean, boolean][] = [];
      for (const B of [1, 4]) {
        for (const M of [1, 8, 9, 17, 64]) {
          for (const [K, N] of [[64, 64], [64, 256], [256, 64], [64, 298], [16, 9]]) {
            for (const ta of [false, true]) for (const tb of [false, true]) shapes.push([B, M, K, N, ta, tb]);
          }
        }
      }
      let mismatches = 0;
      for (let rep = 0; rep < 8; rep++) {
        for (const [B, M, K, N, ta, tb] of shapes) {
          const a = fill(B * M * K);
          const b = fill(B * K * N);
          const sa: [number, number, number] = ta ? [M * K, 1, M] : [M * K, K, 1];
          const sb: [number, number, number] = tb ? [K * N, 1, K] : [K * N, N, 1];
          const o2 = new Float32Array(B * M * N);
          const o1 = new Float32Array(B * M * N);
          two.matmul({ data: a, offset: 0, strides: sa }, { data: b, offset: 0, strides: sb }, o2, B, M, N, K);
          one.matmul({ data: a, offset: 0, strides: sa }, { data: b, offset: 0, strides: sb }, o1, B, M, N, K);
          if (o2.some((v, i) => v !== o1[i])) mismatches++;
        }
      }
      expect(mismatches).toBe(0);
    } finally {
      two.dispose();
      one.dispose();
    }
  });
});
