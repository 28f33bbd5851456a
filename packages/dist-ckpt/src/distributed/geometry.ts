// Boxes of a global tensor and the element runs two pieces share. A piece is a row-major box
// (offset + shape in global coordinates) optionally restricted to a [start, end) range of its
// flattened elements. Intersecting two pieces yields runs: stretches that are contiguous in both
// pieces' flattened storage, so copying between them is a few `set` calls per row at most.

export interface Piece {
  offset: readonly number[];
  shape: readonly number[];
  /** [start, end) within the flattened box; undefined = the whole box. */
  flat?: readonly [number, number];
}

export interface Run {
  /** Element index into the source piece's stored data (relative to its flat start). */
  src: number;
  /** Element index into the destination piece's stored data. */
  dst: number;
  length: number;
}

export function volume(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function pieceSize(p: Piece): number {
  return p.flat ? p.flat[1] - p.flat[0] : volume(p.shape);
}

/** The intersection box of two boxes, or undefined when it is empty. */
export function intersectBoxes(a: Piece, b: Piece): { offset: number[]; shape: number[] } | undefined {
  const offset: number[] = [];
  const shape: number[] = [];
  for (let d = 0; d < a.shape.length; d++) {
    const lo = Math.max(a.offset[d], b.offset[d]);
    const hi = Math.min(a.offset[d] + a.shape[d], b.offset[d] + b.shape[d]);
    if (hi <= lo) return undefined;
    offset.push(lo);
    shape.push(hi - lo);
  }
  return { offset, shape };
}

function strides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  for (let d = shape.length - 1, s = 1; d >= 0; d--) {
    out[d] = s;
    s *= shape[d];
  }
  return out;
}

/**
 * The runs of elements that `src` and `dst` share, in increasing source order, with consecutive runs
 * merged. Both pieces must have the same rank.
 */
export function intersectRuns(src: Piece, dst: Piece): Run[] {
  const box = intersectBoxes(src, dst);
  const runs: Run[] = [];
  if (!box) return runs;
  const n = box.shape.length;
  const ss = strides(src.shape);
  const ds = strides(dst.shape);
  const sFlat = src.flat ?? [0, volume(src.shape)];
  const dFlat = dst.flat ?? [0, volume(dst.shape)];
  const inner = n === 0 ? 1 : box.shape[n - 1];
  const rows = n === 0 ? 1 : volume(box.shape.slice(0, n - 1));
  const index = new Array<number>(Math.max(n - 1, 0)).fill(0);
  for (let row = 0; row < rows; row++) {
    let sPos = 0;
    let dPos = 0;
    for (let d = 0; d < n; d++) {
      const c = (d < n - 1 ? index[d] : 0) + box.offset[d];
      sPos += (c - src.offset[d]) * ss[d];
      dPos += (c - dst.offset[d]) * ds[d];
    }
    // Clip [sPos, sPos + inner) to both flat ranges (the two positions move together).
    const lo = Math.max(sFlat[0] - sPos, dFlat[0] - dPos, 0);
    const hi = Math.min(sFlat[1] - sPos, dFlat[1] - dPos, inner);
    if (hi > lo) {
      const run = { src: sPos + lo - sFlat[0], dst: dPos + lo - dFlat[0], length: hi - lo };
      const prev = runs[runs.length - 1];
      if (prev && prev.src + prev.length === run.src && prev.dst + prev.length === run.dst) prev.length += run.length;
      else runs.push(run);
    }
    for (let k = n - 2; k >= 0; k--) {
      if (++index[k] < box.shape[k]) break;
      index[k] = 0;
    }
  }
  return runs;
}

/** Copies the runs from `src` bytes to `dst` bytes, `elementSize` bytes per element. */
export function copyRuns(runs: readonly Run[], src: Uint8Array, dst: Uint8Array, elementSize: number, srcBase = 0): void {
  for (const r of runs) {
    const a = (r.src - srcBase) * elementSize;
    dst.set(src.subarray(a, a + r.length * elementSize), r.dst * elementSize);
  }
}

/** Whether two pieces (boxes with optional flat ranges) share any element. */
export function piecesOverlap(a: Piece, b: Piece): boolean {
  if (!intersectBoxes(a, b)) return false;
  if (!a.flat && !b.flat) return true;
  return intersectRuns(a, b).length > 0;
}

export function fmtPiece(p: Piece): string {
  return `offset [${p.offset.join(',')}] shape [${p.shape.join(',')}]${p.flat ? ` flat [${p.flat[0]}, ${p.flat[1]})` : ''}`;
}
