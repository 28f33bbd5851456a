import { describe, expect, it } from 'vitest';
import { heapOf, SharedHeap } from './heap.js';

const PAGE = 65536;
const heapOfPages = (pages: number) =>
  new SharedHeap(new WebAssembly.Memory({ initial: pages, maximum: 64, shared: true }), PAGE);

describe('SharedHeap', () => {
  it('hands out disjoint blocks above its base and grows the memory as needed', () => {
    const h = heapOfPages(1);
    const a = h.alloc(10)!;
    const b = h.alloc(PAGE / 4)!; // a whole page: the memory must grow
    expect(a.byteOffset).toBe(PAGE);
    expect(b.byteOffset).toBe(PAGE + 64); // blocks are multiples of 64 bytes
    expect(b.length).toBe(PAGE / 4);
    expect(h.memoryBytes()).toBeGreaterThanOrEqual(PAGE + 64 + PAGE);
    a.fill(1);
    b.fill(2);
    expect(a[9]).toBe(1);
    expect(b[0]).toBe(2);
    expect(heapOf(a)).toBe(h);
    expect(heapOf(new Float32Array(4))).toBeUndefined();
    expect(h.liveBytes()).toBe(64 + PAGE);
  });

  it('reuses freed blocks first-fit and merges neighbours', () => {
    const h = heapOfPages(4);
    const a = h.alloc(16)!; // 64 bytes
    const b = h.alloc(32)!; // 128
    const c = h.alloc(16)!; // 64
    const d = h.alloc(16)!;
    h.release(b);
    const e = h.alloc(16)!; // fits in b's block
    expect(e.byteOffset).toBe(b.byteOffset);
    h.release(e);
    h.release(a);
    h.release(c);
    // a + b + c coalesced: 256 bytes at a's offset
    const f = h.alloc(64)!;
    expect(f.byteOffset).toBe(a.byteOffset);
    expect(h.liveBytes()).toBe(256 + 64);
    // releasing the last block lets the next allocation start there
    h.release(d);
    const g = h.alloc(32)!;
    expect(g.byteOffset).toBe(d.byteOffset);
  });

  it('rejects an array it did not hand out, or one given back twice', () => {
    const h = heapOfPages(1);
    const a = h.alloc(4)!;
    expect(() => h.release(new Float32Array(4))).toThrow(/not a block of this heap/);
    h.release(a);
    expect(() => h.release(a)).toThrow(/not a block of this heap/);
  });

  it('returns null when the memory cannot grow, and after dispose', () => {
    const h = heapOfPages(1);
    expect(h.alloc(64 * PAGE)).toBeNull(); // beyond the maximum of 64 pages
    expect(h.alloc(4)).not.toBeNull();
    h.dispose();
    expect(h.alloc(4)).toBeNull();
  });
});
