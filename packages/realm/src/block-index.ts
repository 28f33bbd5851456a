// RealmBlockIndex: REALM's evidence-block embeddings (`block_emb`, [numBlocks, retrieverProjSize]) held
// on the backend for maximum-inner-product search, and the top-k search itself.
//
// Layout: the rows are split into shards, each one tensor no larger than the backend's storage binding
// limit (`maxBindingBytes`: 128 MiB on SwiftShader, often 2 GiB on hardware), so an index larger than one
// binding still lives on the device; rows are stored in float32 or float16. A search is one
// `matmulTopk` (@lm/tensor-gpu) over the shards: the fused inner product + top-k scores a tile of rows
// at a time and folds it into a running top k per query, so the [queries, numBlocks] score matrix never
// exists (cpu: a [queries, tileRows] scratch of at most 4 MiB; webgpu: scores stay in registers, only
// [queries, 64, k] running lists). Order: best first, ties to the smaller block id, as torch.topk.

import { cast, concat, fromHost, matmulTopk, noGrad, scope, ShapeError, type Backend, type Tensor } from '@lm/tensor-gpu';
import { RealmError } from './errors.js';

export type BlockIndexDType = 'float32' | 'float16';

export interface BlockIndexOptions {
  /** Storage of the rows; float16 halves the memory (scores are still accumulated in float32). Default float32. */
  dtype?: BlockIndexDType;
  /** Largest shard in bytes; default the backend's maxBindingBytes (at most 1 GiB). */
  maxShardBytes?: number;
  /** Rows scored at once by `search`; default: the backend kernel's choice (matmulTopk's tileRows). */
  tileRows?: number;
}

export interface BlockSearchResult {
  /** [queries, k] float32 inner products, best first. */
  scores: Tensor;
  /** [queries, k] int32 block ids. */
  indices: Tensor;
}

const MAX_DEFAULT_SHARD_BYTES = 1 << 30;

export class RealmBlockIndex {
  readonly dim: number;
  readonly dtype: BlockIndexDType;
  readonly backend: Backend;
  readonly maxShardRows: number;
  /** Rows per tile when set; null: chosen per search from the number of queries. */
  readonly tileRows: number | null;
  /** [rows_i, dim] each; their rows, in order, are the index's blocks. */
  readonly shards: Tensor[] = [];

  constructor(dim: number, backend: Backend, options: BlockIndexOptions = {}) {
    if (!Number.isInteger(dim) || dim <= 0) throw new RealmError(`RealmBlockIndex: the embedding width must be a positive integer, got ${dim}`);
    this.dim = dim;
    this.backend = backend;
    this.dtype = options.dtype ?? 'float32';
    if (this.dtype !== 'float32' && this.dtype !== 'float16') throw new RealmError(`RealmBlockIndex: dtype must be float32 or float16, got ${String(this.dtype)}`);
    if (this.dtype === 'float16' && !backend.supportsFloat16) {
      throw new RealmError(`RealmBlockIndex: float16 storage needs a backend with float16 support (WebGPU: the 'shader-f16' feature), which ${backend.name} here lacks; use float32`);
    }
    const rowBytes = dim * (this.dtype === 'float16' ? 2 : 4);
    const shardBytes = options.maxShardBytes ?? Math.min(backend.maxBindingBytes, MAX_DEFAULT_SHARD_BYTES);
    this.maxShardRows = Math.floor(shardBytes / rowBytes);
    if (this.maxShardRows < 1) throw new RealmError(`RealmBlockIndex: maxShardBytes ${shardBytes} holds no row of ${rowBytes} bytes`);
    this.tileRows = options.tileRows ?? null;
    if (this.tileRows !== null && (!Number.isInteger(this.tileRows) || this.tileRows < 1)) throw new RealmError(`RealmBlockIndex: tileRows must be a positive integer, got ${this.tileRows}`);
  }

  /** An index holding a copy of blockEmb [numBlocks, dim] (float32 or float16). */
  static fromTensor(blockEmb: Tensor, options: BlockIndexOptions = {}): RealmBlockIndex {
    if (blockEmb.rank !== 2) throw new ShapeError(`RealmBlockIndex.fromTensor: block_emb must be [numBlocks, dim], got [${blockEmb.shape.join(',')}]`);
    const index = new RealmBlockIndex(blockEmb.shape[1], blockEmb.backend, options);
    index.add(blockEmb);
    return index;
  }

  /**
   * An index over blockEmb [numBlocks, dim] itself when it can be one shard as it is (float32 index,
   * contiguous, within the shard limit): no copy, the caller keeps ownership (`dispose` leaves it, and
   * `write` writes into it); otherwise a copy, as `fromTensor`. RealmForOpenQA searches its block_emb
   * buffer this way, so the index is not held twice.
   */
  static over(blockEmb: Tensor, options: BlockIndexOptions = {}): RealmBlockIndex {
    if (blockEmb.rank !== 2) throw new ShapeError(`RealmBlockIndex.over: block_emb must be [numBlocks, dim], got [${blockEmb.shape.join(',')}]`);
    const index = new RealmBlockIndex(blockEmb.shape[1], blockEmb.backend, options);
    if (blockEmb.dtype === index.dtype && blockEmb.isContiguous && blockEmb.shape[0] >= 1 && blockEmb.shape[0] <= index.maxShardRows) {
      index.shards.push(blockEmb);
      index.borrowed = blockEmb;
    } else index.add(blockEmb);
    return index;
  }

  /** The caller's tensor used as the first shard (see `over`): never disposed here. */
  private borrowed: Tensor | null = null;

  /** An index from host rows (row-major [numBlocks, dim]). */
  static fromHost(data: Float32Array, numBlocks: number, dim: number, backend: Backend, options: BlockIndexOptions = {}): RealmBlockIndex {
    if (data.length !== numBlocks * dim) throw new ShapeError(`RealmBlockIndex.fromHost: ${data.length} values are not ${numBlocks} x ${dim}`);
    const index = new RealmBlockIndex(dim, backend, options);
    index.addHost(data);
    return index;
  }

  get numBlocks(): number {
    return this.shards.reduce((n, s) => n + s.shape[0], 0);
  }

  /** Bytes the backend holds for the rows (the cpu backend keeps float16 rows widened to float32, so 4 per value there). */
  get bytes(): number {
    return this.shards.reduce((n, s) => n + s.storage.byteLength, 0);
  }

  /** Appends rows [n, dim] (copied; the caller keeps its tensor). */
  add(rows: Tensor): void {
    if (rows.rank !== 2 || rows.shape[1] !== this.dim) {
      throw new ShapeError(`RealmBlockIndex.add: rows must be [n, ${this.dim}] (the index width), got [${rows.shape.join(',')}]`);
    }
    if (rows.backend !== this.backend) throw new RealmError('RealmBlockIndex.add: the rows are on another backend than the index');
    noGrad(() => {
      for (let start = 0; start < rows.shape[0]; ) {
        const last = this.shards.at(-1);
        const room = last ? this.maxShardRows - last.shape[0] : 0;
        if (room > 0) {
          const n = Math.min(room, rows.shape[0] - start);
          const grown = scope(() => concat([last!, this.stored(rows.slice(0, start, start + n))], 0));
          if (last === this.borrowed) this.borrowed = null;
          else last!.dispose();
          this.shards[this.shards.length - 1] = grown;
          start += n;
        } else {
          const n = Math.min(this.maxShardRows, rows.shape[0] - start);
          this.shards.push(scope(() => this.stored(rows.slice(0, start, start + n)).contiguous()));
          start += n;
        }
      }
    });
  }

  /** Overwrites rows [start, start + n) with rows [n, dim] (in place: searches and holders see the new values). */
  write(start: number, rows: Tensor): void {
    const n = rows.shape[0];
    if (rows.rank !== 2 || rows.shape[1] !== this.dim) {
      throw new ShapeError(`RealmBlockIndex.write: rows must be [n, ${this.dim}] (the index width), got [${rows.shape.join(',')}]`);
    }
    if (!Number.isInteger(start) || start < 0 || start + n > this.numBlocks) {
      throw new RealmError(`RealmBlockIndex.write: rows ${start}..${start + n - 1} are outside the index (${this.numBlocks} blocks)`);
    }
    noGrad(() => {
      let offset = 0;
      for (const shard of this.shards) {
        const from = Math.max(start, offset);
        const to = Math.min(start + n, offset + shard.shape[0]);
        if (from < to) {
          scope(() => {
            const target = shard.slice(0, from - offset, to - offset);
            target.copy_(rows.slice(0, from - start, to - start));
          });
        }
        offset += shard.shape[0];
      }
    });
  }

  /** Appends host rows (row-major [n, dim]), uploading one shard's worth at a time. */
  addHost(data: Float32Array): void {
    if (data.length % this.dim !== 0) throw new ShapeError(`RealmBlockIndex.addHost: ${data.length} values are not a whole number of rows of ${this.dim}`);
    const rows = data.length / this.dim;
    for (let start = 0; start < rows; start += this.maxShardRows) {
      const n = Math.min(this.maxShardRows, rows - start);
      const t = fromHost(data.subarray(start * this.dim, (start + n) * this.dim), [n, this.dim], 'float32', this.backend);
      this.add(t);
      t.dispose();
    }
  }

  private stored(rows: Tensor): Tensor {
    return rows.dtype === this.dtype ? rows.clone() : cast(rows, this.dtype);
  }

  /**
   * The k best blocks for each query by inner product. queries [q, dim] (or [dim]); k in 1..numBlocks.
   * No gradient flows (the index is not trained).
   */
  search(queries: Tensor, k: number): BlockSearchResult {
    const q2 = queries.rank === 1 ? queries.reshape(1, -1) : queries;
    if (q2.rank !== 2 || q2.shape[1] !== this.dim) {
      throw new ShapeError(`RealmBlockIndex.search: queries must be [q, ${this.dim}] (the index width), got [${queries.shape.join(',')}]`);
    }
    const total = this.numBlocks;
    if (total === 0) throw new RealmError('RealmBlockIndex.search: the index is empty');
    if (!Number.isInteger(k) || k < 1 || k > total) throw new RealmError(`RealmBlockIndex.search: k = ${k} must be an integer in 1..${total} (the number of blocks)`);
    return noGrad(() =>
      scope(() => {
        const q = q2.dtype === 'float32' ? q2 : q2.toFloat();
        const top = matmulTopk(q, this.shards, k, this.tileRows === null ? {} : { tileRows: this.tileRows });
        return { scores: top.values, indices: top.indices };
      }),
    );
  }

  /** Rows [ids.length, dim] (float32) of the given block ids, in that order. */
  rows(ids: readonly number[]): Tensor {
    const total = this.numBlocks;
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= total) throw new RealmError(`RealmBlockIndex.rows: block id ${id} is outside 0..${total - 1}`);
    return scope(() => {
      const parts: Tensor[] = [];
      const order: number[] = [];
      let offset = 0;
      for (const shard of this.shards) {
        const local: number[] = [];
        ids.forEach((id, i) => {
          if (id >= offset && id < offset + shard.shape[0]) {
            local.push(id - offset);
            order.push(i);
          }
        });
        if (local.length) parts.push(shard.indexSelect(0, fromHost(Int32Array.from(local), [local.length], 'int32', this.backend)));
        offset += shard.shape[0];
      }
      const grouped = (parts.length === 1 ? parts[0] : concat(parts, 0)).toFloat(); // shard order
      const inverse = new Int32Array(ids.length);
      order.forEach((i, j) => (inverse[i] = j));
      return grouped.indexSelect(0, fromHost(inverse, [ids.length], 'int32', this.backend));
    });
  }

  /** Every row as one float32 host array [numBlocks * dim] (for saving). */
  async toHost(): Promise<Float32Array> {
    const out = new Float32Array(this.numBlocks * this.dim);
    let offset = 0;
    for (const shard of this.shards) {
      const f = shard.dtype === 'float32' ? shard : noGrad(() => shard.toFloat());
      out.set(await f.data() as Float32Array, offset);
      if (f !== shard) f.dispose();
      offset += shard.size;
    }
    return out;
  }

  dispose(): void {
    for (const s of this.shards) if (s !== this.borrowed) s.dispose();
    this.borrowed = null;
    this.shards.length = 0;
  }
}
