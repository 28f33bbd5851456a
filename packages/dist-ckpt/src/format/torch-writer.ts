// Writing `torch.save` files (the zip container of torch >= 1.6), so checkpoints that PyTorch tools
// expect (`pytorch_model.bin`, Megatron's `mp_rank_00/model_optim_rng.pt`) can be produced without
// Python. Reference: torch/serialization.py `_save` and caffe2/serialize/inline_container.cc.
//
// Layout, as torch writes it:
//   <archive>/data.pkl     the object, pickled with protocol 2; each tensor is
//                          torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
//                          whose storage is the persistent id ('storage', torch.FloatStorage, key, 'cpu', numel)
//   <archive>/byteorder    "little"
//   <archive>/data/<key>   one raw little-endian storage per key ('0', '1', ... in pickling order; records
//                          written in sorted key order)
//   <archive>/version      "3\n"
// Every record is STORED (uncompressed) and its data starts on a 64-byte boundary: the local header's
// extra field carries an 'FB' padding block, as torch's writer does. Archives past 4 GiB get ZIP64
// records. `<archive>` is the file name without its extension (`model_optim_rng`), as in torch.

import { DTYPE_SIZE, encodeTensorData, isDType, numel, type DType } from './dtypes.js';
import { TorchCheckpointError } from './errors.js';
import { writeFileAtomic } from './node-fs.js';
import { PyTuple } from './pickle.js';
import type { TensorToWrite } from './safetensors.js';
import { crc32 } from './zip.js';

/** dtype -> the `torch.<X>Storage` class torch pickles for it. */
export const DTYPE_TORCH_STORAGE: Readonly<Partial<Record<DType, string>>> = {
  F32: 'FloatStorage',
  F16: 'HalfStorage',
  BF16: 'BFloat16Storage',
  F64: 'DoubleStorage',
  I64: 'LongStorage',
  I32: 'IntStorage',
  I16: 'ShortStorage',
  I8: 'CharStorage',
  U8: 'ByteStorage',
  BOOL: 'BoolStorage',
};

/** A Python float (`3.0`); a plain JS number that is an integer is pickled as a Python int. */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** Marks a number as a Python float: `{ checkpoint_version: pyFloat(3) }` pickles `3.0`. */
export function pyFloat(value: number): PyFloat {
  return new PyFloat(value);
}

/**
 * What `writeTorchCheckpoint` accepts: tensors (`{ dtype, shape, data }`, `data` may be a lazy
 * function), numbers (integers -> int, others -> float; `pyFloat(3)` forces a float), bigints, strings,
 * booleans, null, arrays (lists), `PyTuple`s (tuples), plain objects (dicts) and Maps
 * (`collections.OrderedDict`; string, integer or bigint keys).
 */
export type TorchSaveValue =
  | TensorToWrite
  | number
  | bigint
  | string
  | boolean
  | null
  | PyFloat
  | PyTuple
  | readonly TorchSaveValue[]
  | ReadonlyMap<string | number | bigint, TorchSaveValue>
  | { readonly [key: string]: TorchSaveValue };

export interface TorchWriteOptions {
  /**
   * The archive's top-level folder. Default: the file name up to its last '.' (torch's rule:
   * `model_optim_rng.pt` -> `model_optim_rng`); `'archive'` for in-memory serialization.
   */
  archiveName?: string;
}

/** torch's archive name for a path: the last component without its extension. */
export function torchArchiveName(path: string): string {
  const base = path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base || 'archive';
}

function isTensorLike(v: unknown): v is TensorToWrite {
  if (typeof v !== 'object' || v === null || v instanceof Map || Array.isArray(v)) return false;
  const t = v as Record<string, unknown>;
  return isDType(t.dtype) && Array.isArray(t.shape) && 'data' in t;
}

// ---- pickling (protocol 2, as CPython's pickler writes it) ----------------------------------------

const utf8 = new TextEncoder();
const BATCH = 1000;

interface StoragePlan {
  key: string;
  dtype: DType;
  numel: number;
  /** The first tensor using this storage (its data is what gets written). */
  tensor: TensorToWrite;
  name: string;
}

class Pickler {
  private chunks: Uint8Array[] = [];
  private buf = new Uint8Array(1 << 16);
  private pos = 0;
  private memoCount = 0;
  private readonly memo = new Map<string, number>();
  readonly storages: StoragePlan[] = [];
  private readonly storageByData = new Map<unknown, StoragePlan[]>();

  constructor(private readonly file: string) {}

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.chunks.push(this.buf.subarray(0, this.pos));
    this.buf = new Uint8Array(Math.max(1 << 16, n));
    this.pos = 0;
  }

  private byte(...bytes: number[]): void {
    this.ensure(bytes.length);
    for (const b of bytes) this.buf[this.pos++] = b;
  }

  private bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  private u32(n: number): void {
    this.byte(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }

  result(): Uint8Array {
    this.chunks.push(this.buf.subarray(0, this.pos));
    const total = this.chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(total);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }

  /** BINPUT / LONG_BINPUT the object on top of the stack; `key` memoizes it for later BINGETs. */
  private put(key?: string): void {
    const i = this.memoCount++;
    if (key !== undefined) this.memo.set(key, i);
    if (i < 256) this.byte(0x71, i);
    else {
      this.byte(0x72);
      this.u32(i);
    }
  }

  /** BINGET / LONG_BINGET when `key` is memoized; false otherwise. */
  private get(key: string): boolean {
    const i = this.memo.get(key);
    if (i === undefined) return false;
    if (i < 256) this.byte(0x68, i);
    else {
      this.byte(0x6a);
      this.u32(i);
    }
    return true;
  }

  proto(): void {
    this.byte(0x80, 2);
  }

  stop(): void {
    this.byte(0x2e);
  }

  global(module: string, name: string): void {
    const key = `g:${module}\n${name}`;
    if (this.get(key)) return;
    this.byte(0x63);
    this.bytes(utf8.encode(`${module}\n${name}\n`));
    this.put(key);
  }

  str(s: string): void {
    const key = `s:${s}`;
    if (this.get(key)) return;
    const b = utf8.encode(s);
    this.byte(0x58);
    this.u32(b.length);
    this.bytes(b);
    this.put(key);
  }

  int(n: number | bigint): void {
    if (typeof n === 'number' && Number.isSafeInteger(n)) {
      if (n >= 0 && n < 256) return this.byte(0x4b, n);
      if (n >= 0 && n < 65536) return this.byte(0x4d, n & 0xff, n >>> 8);
      if (n >= -(2 ** 31) && n < 2 ** 31) {
        this.byte(0x4a);
        return this.u32(n >>> 0);
      }
    }
    // LONG1: minimal little-endian two's complement (pickle.encode_long).
    let v = BigInt(n);
    if (v >= -(2n ** 31n) && v < 2n ** 31n) return this.int(Number(v));
    const out: number[] = [];
    const negative = v < 0n;
    for (;;) {
      out.push(Number(v & 0xffn));
      v >>= 8n;
      const top = out[out.length - 1];
      if ((!negative && v === 0n && top < 0x80) || (negative && v === -1n && top >= 0x80)) break;
    }
    this.byte(0x8a, out.length, ...out);
  }

  float(x: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, false);
    this.byte(0x47);
    this.bytes(b);
  }

  /** A tuple of already-known item writers: TUPLE1/2/3 for short tuples, MARK ... TUPLE otherwise. */
  private tuple(items: Array<() => void>): void {
    if (items.length === 0) return this.byte(0x29);
    if (items.length <= 3) {
      for (const item of items) item();
      this.byte(0x84 + items.length);
    } else {
      this.byte(0x28);
      for (const item of items) item();
      this.byte(0x74);
    }
    this.put();
  }

  private ints(values: readonly number[]): void {
    this.tuple(values.map((v) => () => this.int(v)));
  }

  private dictItems(entries: Array<[TorchSaveValue | string | number | bigint, TorchSaveValue]>, path: string, depth: number): void {
    for (let i = 0; i < entries.length; i += BATCH) {
      const batch = entries.slice(i, i + BATCH);
      if (batch.length > 1) this.byte(0x28);
      for (const [k, v] of batch) {
        const keyName = String(k);
        this.value(k as TorchSaveValue, path, depth + 1, true);
        this.value(v, path ? `${path}.${keyName}` : keyName, depth + 1);
      }
      this.byte(batch.length > 1 ? 0x75 : 0x73);
    }
  }

  value(v: TorchSaveValue, path: string, depth: number, isKey = false): void {
    const fail = (msg: string): never => {
      throw new TorchCheckpointError(this.file, `${path ? `at '${path}': ` : ''}${msg}`);
    };
    if (depth > 64) fail('objects nested more than 64 levels deep');
    if (v === null) return this.byte(0x4e);
    switch (typeof v) {
      case 'boolean':
        return this.byte(v ? 0x88 : 0x89);
      case 'string':
        return this.str(v);
      case 'bigint':
        return this.int(v);
      case 'number':
        return Number.isSafeInteger(v) ? this.int(v) : this.float(v);
      case 'object':
        break;
      default:
        return fail(`cannot pickle a ${typeof v}`);
    }
    if (isKey && !(v instanceof PyTuple)) fail('dict keys must be strings, integers, bigints or tuples');
    if (v instanceof PyFloat) return this.float(v.value);
    if (v instanceof PyTuple) return this.tuple(v.items.map((item) => () => this.value(item as TorchSaveValue, path, depth + 1)));
    if (Array.isArray(v)) {
      this.byte(0x5d);
      this.put();
      const items = v as readonly TorchSaveValue[];
      for (let i = 0; i < items.length; i += BATCH) {
        const batch = items.slice(i, i + BATCH);
        if (batch.length > 1) this.byte(0x28);
        batch.forEach((item, j) => this.value(item, `${path}.${i + j}`, depth + 1));
        this.byte(batch.length > 1 ? 0x65 : 0x61);
      }
      return;
    }
    if (v instanceof Map) {
      this.global('collections', 'OrderedDict');
      this.byte(0x29, 0x52);
      this.put();
      return this.dictItems([...(v as ReadonlyMap<string | number | bigint, TorchSaveValue>).entries()], path, depth);
    }
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
      return fail('raw typed arrays cannot be pickled; wrap them as a tensor { dtype, shape, data }');
    }
    if (isTensorLike(v)) return this.tensor(v, path);
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) fail(`cannot pickle an instance of ${(v as object).constructor?.name}`);
    this.byte(0x7d);
    this.put();
    this.dictItems(Object.entries(v as Record<string, TorchSaveValue>), path, depth);
  }

  private storageFor(t: TensorToWrite, name: string, count: number): StoragePlan {
    // Tensors that share their data object (tied weights) share one storage, as in torch.
    const candidates = this.storageByData.get(t.data) ?? [];
    const shared = candidates.find((s) => s.dtype === t.dtype && s.numel === count);
    if (shared) return shared;
    const plan: StoragePlan = { key: String(this.storages.length), dtype: t.dtype, numel: count, tensor: t, name };
    this.storages.push(plan);
    candidates.push(plan);
    this.storageByData.set(t.data, candidates);
    return plan;
  }

  private tensor(t: TensorToWrite, name: string): void {
    if (!isDType(t.dtype)) throw new TorchCheckpointError(this.file, `unknown dtype ${JSON.stringify(t.dtype)}`, name);
    const storageClass = DTYPE_TORCH_STORAGE[t.dtype];
    if (!storageClass) {
      throw new TorchCheckpointError(this.file, `dtype ${t.dtype} has no torch storage type that torch.load accepts`, name);
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new TorchCheckpointError(this.file, `shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`, name);
    }
    const count = numel(t.shape);
    const storage = this.storageFor(t, name, count);
    // torch's contiguous strides: stride[i] = prod(max(size[j], 1) for j > i).
    const stride = new Array<number>(t.shape.length);
    for (let d = t.shape.length - 1, s = 1; d >= 0; d--) {
      stride[d] = s;
      s *= Math.max(t.shape[d], 1);
    }
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.byte(0x28); // MARK (the argument tuple)
    this.byte(0x28); // MARK (the persistent id)
    this.str('storage');
    this.global('torch', storageClass);
    this.str(storage.key);
    this.str('cpu');
    this.int(storage.numel);
    this.byte(0x74);
    this.put();
    this.byte(0x51); // BINPERSID
    this.int(0); // storage offset
    this.ints(t.shape);
    this.ints(stride);
    this.byte(0x89); // requires_grad = False
    this.global('collections', 'OrderedDict'); // backward_hooks = OrderedDict()
    this.byte(0x29, 0x52);
    this.put();
    this.byte(0x74);
    this.put();
    this.byte(0x52); // REDUCE
    this.put();
  }
}

/** Pickles `obj` as torch.save does; returns the pickle and the storages it refers to. */
function pickleForTorch(file: string, obj: TorchSaveValue): { pickle: Uint8Array; storages: StoragePlan[] } {
  const p = new Pickler(file);
  p.proto();
  p.value(obj, '', 0);
  p.stop();
  return { pickle: p.result(), storages: p.storages };
}

// ---- the zip container ----------------------------------------------------------------------------

const ALIGN = 64;
const U32_MAX = 0xffffffff;

function le(view: DataView, at: number, bytes: 2 | 4 | 8, value: number): void {
  if (bytes === 2) view.setUint16(at, value, true);
  else if (bytes === 4) view.setUint32(at, value, true);
  else view.setBigUint64(at, BigInt(value), true);
}

interface WrittenRecord {
  name: Uint8Array;
  utf8Name: boolean;
  crc: number;
  size: number;
  offset: number;
}

/** Lays out STORED records one after another, each data section 64-byte aligned (torch's getPadding). */
class ZipLayout {
  position = 0;
  readonly records: WrittenRecord[] = [];

  /** The local header (with ZIP64 and 'FB' padding extras) for a record about to start at `position`. */
  localHeader(name: string, size: number, crc: number): Uint8Array {
    const nameBytes = utf8.encode(name);
    // eslint-disable-next-line no-control-regex
    const utf8Name = /[^\x00-\x7f]/.test(name);
    const offset = this.position;
    const zip64 = size >= U32_MAX || offset >= U32_MAX;
    const zip64Length = zip64 ? 20 : 0;
    const start = offset + 30 + nameBytes.length + zip64Length + 4;
    const pad = (ALIGN - (start % ALIGN)) % ALIGN;
    const header = new Uint8Array(30 + nameBytes.length + zip64Length + 4 + pad);
    const v = new DataView(header.buffer);
    le(v, 0, 4, 0x04034b50);
    le(v, 4, 2, zip64 ? 45 : 20); // version needed
    le(v, 6, 2, utf8Name ? 0x800 : 0); // flags
    le(v, 8, 2, 0); // STORED
    le(v, 10, 2, 0); // time
    le(v, 12, 2, 0); // date
    le(v, 14, 4, crc);
    le(v, 18, 4, zip64 ? U32_MAX : size);
    le(v, 22, 4, zip64 ? U32_MAX : size);
    le(v, 26, 2, nameBytes.length);
    le(v, 28, 2, zip64Length + 4 + pad);
    header.set(nameBytes, 30);
    let q = 30 + nameBytes.length;
    if (zip64) {
      le(v, q, 2, 0x0001);
      le(v, q + 2, 2, 16);
      le(v, q + 4, 8, size);
      le(v, q + 12, 8, size);
      q += 20;
    }
    le(v, q, 2, 0x4246); // 'FB'
    le(v, q + 2, 2, pad);
    header.fill(0x5a, q + 4); // 'Z'
    this.records.push({ name: nameBytes, utf8Name, crc, size, offset });
    this.position += header.length + size;
    return header;
  }

  /** Central directory and end records (ZIP64 when needed). */
  finish(): Uint8Array {
    const parts: Uint8Array[] = [];
    const cdStart = this.position;
    for (const r of this.records) {
      const fields: number[] = [];
      if (r.size >= U32_MAX) fields.push(r.size, r.size);
      if (r.offset >= U32_MAX) fields.push(r.offset);
      const extraLength = fields.length ? 4 + 8 * fields.length : 0;
      const e = new Uint8Array(46 + r.name.length + extraLength);
      const v = new DataView(e.buffer);
      le(v, 0, 4, 0x02014b50);
      le(v, 4, 2, 45); // version made by
      le(v, 6, 2, fields.length ? 45 : 20); // version needed
      le(v, 8, 2, r.utf8Name ? 0x800 : 0);
      le(v, 10, 2, 0);
      le(v, 12, 2, 0);
      le(v, 14, 2, 0);
      le(v, 16, 4, r.crc);
      le(v, 20, 4, r.size >= U32_MAX ? U32_MAX : r.size);
      le(v, 24, 4, r.size >= U32_MAX ? U32_MAX : r.size);
      le(v, 28, 2, r.name.length);
      le(v, 30, 2, extraLength);
      // comment length, disk number, internal and external attributes: 0
      le(v, 42, 4, r.offset >= U32_MAX ? U32_MAX : r.offset);
      e.set(r.name, 46);
      if (fields.length) {
        const q = 46 + r.name.length;
        le(v, q, 2, 0x0001);
        le(v, q + 2, 2, 8 * fields.length);
        fields.forEach((f, i) => le(v, q + 4 + 8 * i, 8, f));
      }
      parts.push(e);
    }
    const cdSize = parts.reduce((n, p) => n + p.length, 0);
    const count = this.records.length;
    const zip64 = count >= 0xffff || cdStart >= U32_MAX || cdSize >= U32_MAX;
    if (zip64) {
      const recordAt = cdStart + cdSize;
      const z = new Uint8Array(56 + 20);
      const v = new DataView(z.buffer);
      le(v, 0, 4, 0x06064b50);
      le(v, 4, 8, 44);
      le(v, 12, 2, 45);
      le(v, 14, 2, 45);
      le(v, 24, 8, count);
      le(v, 32, 8, count);
      le(v, 40, 8, cdSize);
      le(v, 48, 8, cdStart);
      le(v, 56, 4, 0x07064b50);
      le(v, 64, 8, recordAt);
      le(v, 72, 4, 1);
      parts.push(z);
    }
    const end = new Uint8Array(22);
    const v = new DataView(end.buffer);
    le(v, 0, 4, 0x06054b50);
    le(v, 8, 2, zip64 ? 0xffff : count);
    le(v, 10, 2, zip64 ? 0xffff : count);
    le(v, 12, 4, zip64 ? U32_MAX : cdSize);
    le(v, 16, 4, zip64 ? U32_MAX : cdStart);
    parts.push(end);
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

type Crc = (data: Uint8Array) => number;

/** Writes every record of the archive through `write`, encoding one storage at a time. */
async function produceTorchZip(
  file: string,
  obj: TorchSaveValue,
  archiveName: string,
  write: (bytes: Uint8Array) => Promise<void>,
  crc: Crc,
): Promise<void> {
  if (!archiveName || /[/\\]/.test(archiveName)) {
    throw new TorchCheckpointError(file, `archive name ${JSON.stringify(archiveName)} must be a non-empty name without slashes`);
  }
  const { pickle, storages } = pickleForTorch(file, obj);
  const zip = new ZipLayout();
  const record = async (name: string, data: Uint8Array): Promise<void> => {
    await write(zip.localHeader(`${archiveName}/${name}`, data.byteLength, crc(data)));
    if (data.byteLength > 0) await write(data);
  };
  await record('data.pkl', pickle);
  await record('byteorder', utf8.encode('little'));
  const sorted = storages.slice().sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const s of sorted) {
    const raw = typeof s.tensor.data === 'function' ? await s.tensor.data() : s.tensor.data;
    const bytes = encodeTensorData(s.dtype, s.numel, raw, { file, tensor: s.name });
    if (bytes.byteLength !== s.numel * DTYPE_SIZE[s.dtype]) {
      throw new TorchCheckpointError(file, `encoded ${bytes.byteLength} bytes for ${s.numel} ${s.dtype} elements`, s.name);
    }
    await record(`data/${s.key}`, bytes);
  }
  await record('version', utf8.encode('3\n'));
  await write(zip.finish());
}

/**
 * Serializes `obj` to torch.save zip bytes in memory (browsers, tests, small objects). The archive
 * folder defaults to `'archive'` (what torch uses when saving to a buffer).
 */
export async function serializeTorchCheckpoint(obj: TorchSaveValue, options: TorchWriteOptions = {}): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  await produceTorchZip('<memory>', obj, options.archiveName ?? 'archive', async (b) => void parts.push(b.slice()), crc32);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Writes `obj` to `path` (Node) in the torch.save zip format that `torch.load` reads, atomically
 * (temporary file in the same folder, fsync, rename): a failure or a crash leaves any previous file
 * intact. Storages are encoded and written one at a time, so lazy tensor `data` functions stream a
 * model out. Maps pickle as `collections.OrderedDict`, plain objects as `dict`.
 *
 * ```ts
 * await writeTorchCheckpoint('release/mp_rank_00/model_optim_rng.pt', {
 *   model: { language_model: { ... } },
 *   checkpoint_version: pyFloat(3),
 * });
 * ```
 */
export async function writeTorchCheckpoint(path: string, obj: TorchSaveValue, options: TorchWriteOptions = {}): Promise<void> {
  const zlib = (await import('node:zlib')) as { crc32?: (data: Uint8Array) => number };
  const crc: Crc = typeof zlib.crc32 === 'function' ? (d) => (zlib.crc32 as (d: Uint8Array) => number)(d) >>> 0 : crc32;
  const archiveName = options.archiveName ?? torchArchiveName(path);
  await writeFileAtomic(path, (write) => produceTorchZip(path, obj, archiveName, write, crc));
}
