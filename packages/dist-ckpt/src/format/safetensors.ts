// safetensors, read and written by hand (spec: https://huggingface.co/docs/safetensors, reference:
// huggingface/safetensors safetensors/src/tensor.rs).
//
// Layout: 8-byte little-endian header length N, N bytes of JSON
// `{"__metadata__": {str: str}, name: {dtype, shape, data_offsets: [begin, end]}, ...}` padded with
// spaces to a multiple of 8, then the raw little-endian tensor data; offsets are relative to the end
// of the header, and the tensors must tile the data section exactly (contiguous, no overlap, no gap,
// nothing after the last tensor).

import { bytesSource, toByteSource, type ByteSource, type SourceInput } from './byte-source.js';
import {
  convertBytes,
  DTYPE_ORDER,
  DTYPE_SIZE,
  encodeTensorData,
  isDType,
  numel,
  type DType,
  type ReadAs,
  type TensorDataInput,
} from './dtypes.js';
import { SafetensorsError, TensorNotFoundError } from './errors.js';
import { writeFileAtomic } from './node-fs.js';
import type { Checkpoint, DataFor, ReadTensorOptions, TensorData } from './types.js';

/** The reference implementation's limit on the JSON header (100 MB). */
export const MAX_HEADER_SIZE = 100_000_000;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** [begin, end) relative to the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** N, the JSON header's length in bytes. */
  headerLength: number;
  /** Absolute file offset of the data section (8 + N). */
  dataStart: number;
  /** Tensors in data-offset order. */
  tensors: SafetensorsTensorInfo[];
  /** `__metadata__` (a string map), or {} when absent. */
  metadata: Record<string, string>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads the 8-byte header length: refuses lengths beyond the file or above {@link MAX_HEADER_SIZE}. */
export function parseHeaderLength(file: string, first8: Uint8Array, fileSize: number): number {
  if (fileSize < 8) {
    throw new SafetensorsError(file, `file is ${fileSize} bytes, too small for the 8-byte header length`);
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n + 8n > BigInt(fileSize)) {
    throw new SafetensorsError(
      file,
      `header length ${n} runs past the end of the ${fileSize}-byte file (not a safetensors file, or truncated)`,
    );
  }
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new SafetensorsError(file, `header length ${n} is absurd (the limit is ${MAX_HEADER_SIZE} bytes)`);
  }
  if (n < 2n) throw new SafetensorsError(file, `header length ${n} is too small for a JSON object`);
  return Number(n);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and validates the JSON header (`headerBytes`, N bytes) of a `fileSize`-byte file. Every
 * error names the file and, where there is one, the tensor.
 */
export function parseSafetensorsHeader(file: string, headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  const headerLength = headerBytes.byteLength;
  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch {
    throw new SafetensorsError(file, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SafetensorsError(file, `header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsError(file, 'header is not a JSON object');
  }
  let metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(file, value);
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new SafetensorsError(file, 'header entry is not an object', name);
    }
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isDType(dtype)) {
      throw new SafetensorsError(file, `unknown dtype ${JSON.stringify(dtype)}`, name);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new SafetensorsError(file, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt) || offsets[0] > offsets[1]) {
      throw new SafetensorsError(
        file,
        `data_offsets ${JSON.stringify(offsets)} is not a [begin, end] pair with 0 <= begin <= end`,
        name,
      );
    }
    if (offsets[1] > dataSize) {
      throw new SafetensorsError(
        file,
        `data_offsets [${offsets[0]},${offsets[1]}] run past the end of the data section ` +
          `(${Math.max(dataSize, 0)} bytes): offsets out of range, or the file is truncated`,
        name,
      );
    }
    tensors.push({ name, dtype, shape: shape.slice(), dataOffsets: [offsets[0], offsets[1]] });
  }
  // The reference sorts by offsets and then demands that the tensors tile the data section exactly.
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let end = 0;
  let previous: SafetensorsTensorInfo | undefined;
  for (const t of tensors) {
    const [begin, stop] = t.dataOffsets;
    if (begin < end) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin},${stop}] overlap tensor '${previous?.name}' at [${previous?.dataOffsets.join(',')}]`,
        t.name,
      );
    }
    if (begin > end) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin},${stop}] leave a gap after byte ${end}: tensors must be contiguous`,
        t.name,
      );
    }
    const count = t.shape.reduce((a, d) => a * d, 1);
    const nbytes = count * DTYPE_SIZE[t.dtype];
    if (!Number.isSafeInteger(nbytes) || nbytes !== stop - begin) {
      throw new SafetensorsError(
        file,
        `shape [${t.shape.join(',')}] of ${t.dtype} needs ${nbytes} bytes but data_offsets ` +
          `[${begin},${stop}] hold ${stop - begin}`,
        t.name,
      );
    }
    end = stop;
    previous = t;
  }
  if (end !== dataSize) {
    throw new SafetensorsError(
      file,
      `the tensors cover ${end} bytes of data but the file holds ${dataSize} after the header ` +
        `(${dataSize - end} trailing bytes)`,
    );
  }
  return { headerLength, dataStart, tensors, metadata };
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(file, '__metadata__ must be a map of strings to strings');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') {
      throw new SafetensorsError(file, `__metadata__[${JSON.stringify(k)}] is ${JSON.stringify(v)}, not a string`);
    }
    out[k] = v;
  }
  return out;
}

/** Reads and validates the header of a safetensors source (two small reads). */
export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const first8 = source.size >= 8 ? await source.read(0, 8) : new Uint8Array(0);
  const n = parseHeaderLength(source.name, first8, source.size);
  return parseSafetensorsHeader(source.name, await source.read(8, n), source.size);
}

/** An open safetensors file: the header is parsed, tensors are read one at a time on request. */
export class SafetensorsFile implements Checkpoint {
  readonly format = 'safetensors' as const;
  private readonly byName: Map<string, SafetensorsTensorInfo>;

  private constructor(
    readonly source: ByteSource,
    readonly header: SafetensorsHeader,
    private readonly owned: boolean,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** Opens a path (Node), Blob / File, bytes or ByteSource, and validates its header. */
  static async open(input: SourceInput, options: { name?: string } = {}): Promise<SafetensorsFile> {
    const { source, owned } = await toByteSource(input, options.name);
    return SafetensorsFile.fromSource(source, owned);
  }

  /** Opens a ByteSource; with `owned`, close() (or a failure to open) closes the source. */
  static async fromSource(source: ByteSource, owned = false): Promise<SafetensorsFile> {
    try {
      return new SafetensorsFile(source, await readSafetensorsHeader(source), owned);
    } catch (err) {
      if (owned) await source.close?.();
      throw err;
    }
  }

  get name(): string {
    return this.source.name;
  }

  /** Tensors in file order. */
  get tensors(): readonly SafetensorsTensorInfo[] {
    return this.header.tensors;
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const info = this.byName.get(name);
    if (!info) throw new TensorNotFoundError(this.name, name);
    return info;
  }

  /** The tensor's raw little-endian bytes (one positional read). */
  async readRaw(name: string): Promise<Uint8Array> {
    const { dataOffsets } = this.info(name);
    return this.source.read(this.header.dataStart + dataOffsets[0], dataOffsets[1] - dataOffsets[0]);
  }

  async readTensor<A extends ReadAs = 'host'>(
    name: string,
    options: ReadTensorOptions<A> = {},
  ): Promise<TensorData<DataFor<A>>> {
    const info = this.info(name);
    const bytes = await this.readRaw(name);
    const data = convertBytes(info.dtype, bytes, options.as ?? 'host', { file: this.name, tensor: name });
    return { dtype: info.dtype, shape: info.shape.slice(), data: data as DataFor<A> };
  }

  /** Every tensor in file order, read one at a time. */
  async *entries<A extends ReadAs = 'host'>(
    options: ReadTensorOptions<A> = {},
  ): AsyncGenerator<[string, TensorData<DataFor<A>>]> {
    for (const t of this.header.tensors) yield [t.name, await this.readTensor(t.name, options)];
  }

  async close(): Promise<void> {
    if (this.owned) await this.source.close?.();
  }
}

// ---- writing --------------------------------------------------------------------------------

/** A tensor to write. `data` may be a function, called once when the tensor is written (lazy). */
export interface TensorToWrite {
  dtype: DType;
  shape: readonly number[];
  data: TensorDataInput | (() => TensorDataInput | Promise<TensorDataInput>);
}

export type StateDictInput =
  | ReadonlyMap<string, TensorToWrite>
  | Readonly<Record<string, TensorToWrite>>
  | Iterable<readonly [string, TensorToWrite]>;

export interface SafetensorsWriteOptions {
  /** `__metadata__`, e.g. `{ format: 'pt' }`. */
  metadata?: Record<string, string>;
}

export function stateDictEntries(stateDict: StateDictInput): [string, TensorToWrite][] {
  if (stateDict instanceof Map) return [...(stateDict as ReadonlyMap<string, TensorToWrite>).entries()];
  if (typeof (stateDict as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return [...(stateDict as Iterable<readonly [string, TensorToWrite]>)].map(([k, v]) => [k, v]);
  }
  return Object.entries(stateDict as Record<string, TensorToWrite>);
}

export interface PlannedTensor {
  name: string;
  tensor: TensorToWrite;
  count: number;
  begin: number;
  end: number;
}

export interface SafetensorsPlan {
  /** The 8-byte length followed by the space-padded JSON header. */
  head: Uint8Array;
  tensors: PlannedTensor[];
  /** Total file size. */
  size: number;
}

const utf8Encoder = new TextEncoder();

/** Compares strings by UTF-8 bytes, as Rust's `str::cmp` does. */
function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const x = utf8Encoder.encode(a);
  const y = utf8Encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/**
 * Lays a state dict out as the reference writer does: tensors sorted by dtype (the reference enum
 * order, descending, so wider types come first and stay aligned) then by name; header JSON in that
 * order with `__metadata__` first, padded with spaces to a multiple of 8 bytes.
 */
export function planSafetensors(
  file: string,
  stateDict: StateDictInput,
  options: SafetensorsWriteOptions = {},
): SafetensorsPlan {
  const entries = stateDictEntries(stateDict);
  const seen = new Set<string>();
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new SafetensorsError(file, "'__metadata__' is reserved", name);
    if (seen.has(name)) throw new SafetensorsError(file, 'duplicate tensor name', name);
    seen.add(name);
    if (!isDType(t.dtype)) throw new SafetensorsError(file, `unknown dtype ${JSON.stringify(t.dtype)}`, name);
    if (!Array.isArray(t.shape) || !t.shape.every(isNonNegInt)) {
      throw new SafetensorsError(file, `shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`, name);
    }
  }
  const rank = (d: DType): number => DTYPE_ORDER.indexOf(d);
  entries.sort(([an, a], [bn, b]) => rank(b.dtype) - rank(a.dtype) || compareUtf8(an, bn));
  let offset = 0;
  const planned: PlannedTensor[] = entries.map(([name, tensor]) => {
    const count = numel(tensor.shape);
    const begin = offset;
    offset += count * DTYPE_SIZE[tensor.dtype];
    return { name, tensor, count, begin, end: offset };
  });
  const parts: string[] = [];
  if (options.metadata) {
    const meta = Object.entries(options.metadata).map(([k, v]) => {
      if (typeof v !== 'string') {
        throw new SafetensorsError(file, `__metadata__[${JSON.stringify(k)}] must be a string`);
      }
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${meta.join(',')}}`);
  }
  for (const p of planned) {
    parts.push(
      `${JSON.stringify(p.name)}:{"dtype":"${p.tensor.dtype}","shape":[${p.tensor.shape.join(',')}],` +
        `"data_offsets":[${p.begin},${p.end}]}`,
    );
  }
  const json = utf8Encoder.encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { head, tensors: planned, size: head.length + offset };
}

async function encodePlanned(file: string, p: PlannedTensor): Promise<Uint8Array> {
  const raw = typeof p.tensor.data === 'function' ? await p.tensor.data() : p.tensor.data;
  return encodeTensorData(p.tensor.dtype, p.count, raw, { file, tensor: p.name });
}

/** Serializes a state dict to safetensors bytes in memory (browsers, tests, small dicts). */
export async function serializeSafetensors(
  stateDict: StateDictInput,
  options: SafetensorsWriteOptions = {},
): Promise<Uint8Array> {
  const plan = planSafetensors('<memory>', stateDict, options);
  const out = new Uint8Array(plan.size);
  out.set(plan.head, 0);
  for (const p of plan.tensors) out.set(await encodePlanned('<memory>', p), plan.head.length + p.begin);
  return out;
}

/**
 * Writes a state dict to `path` (Node), atomically: temp file in the same directory, fsync, rename.
 * Tensors are encoded and written one at a time, so lazy `data` functions let a caller stream a
 * model out without holding a second copy of it.
 */
export async function writeSafetensors(
  path: string,
  stateDict: StateDictInput,
  options: SafetensorsWriteOptions = {},
): Promise<void> {
  const plan = planSafetensors(path, stateDict, options);
  await writeFileAtomic(path, async (write) => {
    await write(plan.head);
    for (const p of plan.tensors) await write(await encodePlanned(path, p));
  });
}

/** Opens safetensors bytes already in memory. */
export function openSafetensorsBytes(bytes: ArrayBuffer | Uint8Array, name = '<memory>'): Promise<SafetensorsFile> {
  return SafetensorsFile.open(bytesSource(bytes, name));
}
