/**
 * Tensor storage inside the GEMM's shared WebAssembly memory (decision 0015).
 *
 * Large float storages are carved out of the memory the GEMM's threads already share, above its
 * fixed scratch area, so the wasm kernels on every thread can read a weight where it lies (the
 * in-place GEMV of decoding streams each weight once, on all threads, with no copy). The memory only
 * grows; freed blocks return to a first-fit free list (coalesced with their neighbours). A storage
 * that is never freed is returned when its array is garbage-collected. When the memory cannot grow
 * (the 4 GiB of a wasm32 memory), `alloc` returns null and the caller uses an ordinary array.
 */

/** Blocks are multiples of this many bytes (and aligned to it). */
const GRAIN = 64;
const PAGE = 65536;
/**
 * Bytes kept allocated past the last block: the GEMM's kernels read whole tasks of 16 rows of a weight
 * in place, so the last task of a weight may read up to 15 rows past its end (into the next block or
 * this guard, never outside the memory; those results land in C's padding).
 */
export const HEAP_GUARD_BYTES = 1 << 20;

const owners = new WeakMap<Float32Array, SharedHeap>();

/**
 * The GEMM's thread pool seen from the row kernels (simd/rows.ts): runs a round of row tasks over
 * operands in this memory (byte addresses), on every thread when `parallel`.
 */
export interface RowRunner {
  readonly threads: number;
  runRows(op: number, rows: number, per: number, len: number, ptrs: readonly number[], steps: readonly number[], f: number, parallel: boolean): void;
}

/** The heap an array was allocated from, if any. */
export function heapOf(a: Float32Array): SharedHeap | undefined {
  return owners.get(a);
}

export class SharedHeap {
  /** Free blocks [byte offset, bytes], sorted by offset, never adjacent (merged on free). */
  private readonly freeList: [number, number][] = [];
  /** First byte past the last block ever handed out. */
  private top: number;
  private readonly sizes = new Map<number, number>(); // byte offset -> bytes, for live blocks
  private readonly collected: FinalizationRegistry<number> | null;
  private disposed = false;
  /** The pool that runs row kernels over this memory (set by the GEMM when it has the row module). */
  rows: RowRunner | null = null;

  constructor(
    readonly memory: WebAssembly.Memory,
    readonly base: number,
  ) {
    this.top = base;
    this.collected =
      typeof FinalizationRegistry === 'undefined' ? null : new FinalizationRegistry((off) => this.releaseAt(off));
  }

  /** Bytes in live blocks (tests). */
  liveBytes(): number {
    let n = 0;
    for (const b of this.sizes.values()) n += b;
    return n;
  }

  /** Bytes of the memory (tests). */
  memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** A Float32Array of `length` floats inside the memory (contents unspecified), or null when it cannot grow. */
  alloc(length: number): Float32Array | null {
    if (this.disposed) return null;
    const bytes = Math.max(GRAIN, Math.ceil((length * 4) / GRAIN) * GRAIN);
    let off = -1;
    const fl = this.freeList;
    for (let i = 0; i < fl.length; i++) {
      const [o, n] = fl[i];
      if (n < bytes) continue;
      off = o;
      if (n === bytes) fl.splice(i, 1);
      else fl[i] = [o + bytes, n - bytes];
      break;
    }
    if (off < 0) {
      // extend: a free block that ends at the top is reused as the start of the new block
      const last = fl[fl.length - 1];
      const start = last && last[0] + last[1] === this.top ? last[0] : this.top;
      const need = start + bytes + HEAP_GUARD_BYTES - this.memory.buffer.byteLength;
      if (need > 0) {
        try {
          this.memory.grow(Math.ceil(need / PAGE));
        } catch {
          return null;
        }
      }
      if (start !== this.top) fl.pop();
      off = start;
      this.top = start + bytes;
    }
    this.sizes.set(off, bytes);
    // a view of the grown buffer (a shared memory's old buffers keep their old length)
    const a = new Float32Array(this.memory.buffer, off, length);
    owners.set(a, this);
    this.collected?.register(a, off, a);
    return a;
  }

  /** Returns an array's block to the free list; the array must not be used afterwards. */
  release(a: Float32Array): void {
    if (owners.get(a) !== this) throw new Error('SharedHeap.release: the array is not a block of this heap');
    owners.delete(a);
    this.collected?.unregister(a);
    this.releaseAt(a.byteOffset);
  }

  private releaseAt(off: number): void {
    const bytes = this.sizes.get(off);
    if (bytes === undefined) return;
    this.sizes.delete(off);
    const fl = this.freeList;
    let lo = 0;
    let hi = fl.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (fl[mid][0] < off) lo = mid + 1;
      else hi = mid;
    }
    let size = bytes;
    const prev = fl[lo - 1];
    const next = fl[lo];
    if (next && off + bytes === next[0]) {
      size += next[1];
      fl.splice(lo, 1);
    }
    if (prev && prev[0] + prev[1] === off) {
      prev[1] += size;
    } else fl.splice(lo, 0, [off, size]);
  }

  /** Stops handing out blocks (the engine was disposed); live arrays stay valid. */
  dispose(): void {
    this.disposed = true;
    this.rows = null;
  }
}
