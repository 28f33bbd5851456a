// The word embeddings and the output head held in 16 bits (the cpu backend widens float tensors to
// float32, so ChatGLM-6B's two 130528 x 4096 tables would take 2 x 2.1 GB). THUDM publishes them in
// float16 (also in the int4 / int8 checkpoints), so the values are float16-exact and packing them loses
// nothing; its checkpoints hold equal values under `transformer.word_embeddings.weight` and
// `lm_head.weight`, and then both modules read one packed table (1.07 GB).
//
// The table is int32 [vocab, hidden / 2]: float16 pairs, the layout of quantizedMatmul's bits 16. The
// head is a weight-only matmul over it (decoded in registers); the lookup gathers the rows of the ids
// and widens them.

import { cpu, dequantizeWeight, empty, fromHost, indexSelect, noGrad, packFloat16Rows, quantizedMatmul, quantizedRowWords, randn, roundToFloat16, type Backend, type Tensor } from '@lm/tensor-gpu';
import { isInitSkipped, Module } from '@lm/layers';

/** A row scale of ones (the kernels' layout has one; a float16 table's rows are not scaled). */
function ones(n: number, like: Tensor): Tensor {
  return fromHost(new Float32Array(n).fill(1), [n], 'float32', like.backend);
}

function checkTable(name: string, table: Tensor, rows: number, cols: number): void {
  const words = quantizedRowWords(16, cols);
  if (table.dtype !== 'int32' || table.rank !== 2 || table.shape[0] !== rows || table.shape[1] !== words) {
    throw new RangeError(`${name}: the table must be int32 [${rows}, ${words}] (float16 pairs), got ${table.dtype} [${table.shape.join(',')}]`);
  }
}

/** Rows of a table read, packed or written at a time (a few MB of host copies, never the whole table). */
export const FLOAT16_BLOCK_ROWS = 4096;

/**
 * A new table int32 [rows, cols / 2]: left unwritten when init is skipped (loading fills it in place,
 * so the cpu backend's pages are touched once), else torch's Embedding default N(0, 1) rounded to float16.
 */
export function float16Table(rows: number, cols: number, backend?: Backend): Tensor {
  const rowWords = quantizedRowWords(16, cols);
  const table = empty([rows, rowWords], { dtype: 'int32', backend });
  if (isInitSkipped()) return table;
  for (let r0 = 0; r0 < rows; r0 += FLOAT16_BLOCK_ROWS) {
    const n = Math.min(FLOAT16_BLOCK_ROWS, rows - r0);
    const drawn = randn([n, cols], { backend: cpu() }); // drawn on the host: this runs in constructors (sync)
    const values = Float32Array.from(drawn.dataSync() as Float32Array, roundToFloat16);
    drawn.dispose();
    writeRows(table, r0, packFloat16Rows(values, n, cols));
  }
  return table;
}

/** Writes packed words (whole rows) into table rows r0.. in place. */
export function writeRows(table: Tensor, r0: number, words: Int32Array): void {
  const n = words.length / table.shape[1];
  const block = fromHost(words, [n, table.shape[1]], 'int32', table.backend);
  const view = table.narrow(0, r0, n); // [n, cols / 2], a view of the table's storage
  noGrad(() => view.copy_(block));
  if (view !== table) view.dispose();
  block.dispose();
}

/** A packed table's values as float16 bits [rows, cols] (the layout THUDM's checkpoints store). */
export async function float16TableBits(table: Tensor, rows: number, cols: number): Promise<Uint16Array> {
  const words = (await table.data()) as Int32Array;
  const halves = new Uint16Array(words.buffer, words.byteOffset, words.length * 2);
  const rowHalves = quantizedRowWords(16, cols) * 2;
  if (rowHalves === cols) return halves;
  const out = new Uint16Array(rows * cols); // odd cols: each row's last word holds one value and padding
  for (let r = 0; r < rows; r++) out.set(halves.subarray(r * rowHalves, r * rowHalves + cols), r * cols);
  return out;
}

/** A frozen float16 table [rows, cols] held as `weight` (int32 float16 pairs): what both modules below share. */
export abstract class Float16Table extends Module {
  declare weight: Tensor;

  constructor(
    name: string,
    table: Tensor,
    /** The table's rows and columns (of values, not of packed words): the checkpoint's shape. */
    readonly rows: number,
    readonly cols: number,
  ) {
    super();
    checkTable(name, table, rows, cols);
    this.registerBuffer('weight', table);
  }
}

/** `Embedding` over a float16 table: ids of any shape -> [...ids.shape, embeddingDim] float32. Frozen. */
export class Float16Embedding extends Float16Table {
  constructor(
    table: Tensor,
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
  ) {
    super('Float16Embedding', table, numEmbeddings, embeddingDim);
  }

  forward(ids: Tensor): Tensor {
    return noGrad(() => {
      const flat = ids.reshape(-1); // [n]
      const rows = indexSelect(this.weight, 0, flat); // [n, hidden / 2] float16 pairs
      const scale = ones(flat.size, rows);
      const out = dequantizeWeight(rows, scale, { bits: 16, inFeatures: this.embeddingDim }); // [n, hidden]
      [flat, rows, scale].forEach((t) => t.dispose());
      const shaped = out.reshape(...ids.shape, this.embeddingDim); // [...ids, hidden]
      if (shaped !== out) out.dispose();
      return shaped;
    });
  }
}

/** A bias-free `Linear` over a float16 table [out, in]: x [..., in] -> [..., out]. Frozen (gradients reach x). */
export class Float16Linear extends Float16Table {
  declare weight_scale: Tensor;

  constructor(
    table: Tensor,
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    super('Float16Linear', table, outFeatures, inFeatures);
    this.registerBuffer('weight_scale', ones(outFeatures, table), { persistent: false });
  }

  forward(x: Tensor): Tensor {
    return quantizedMatmul(x, this.weight, this.weight_scale, { bits: 16, inFeatures: this.inFeatures });
  }
}
