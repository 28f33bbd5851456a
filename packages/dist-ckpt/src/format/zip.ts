// A random-access zip reader over a ByteSource: the end-of-central-directory record (and its ZIP64
// locator and record for archives past 4 GiB / 65535 entries), the central directory, and one local
// header per entry read on first use. STORED entries (all torch.save writes) are read as ranges of the
// file, so a tensor costs one positional read and the archive is never loaded whole. DEFLATE entries
// are inflated with the platform's DecompressionStream('deflate-raw') (whole entry, in memory).
//
// Why not a library: fflate's unzip/unzipSync take the whole archive as one Uint8Array and its
// streaming Unzip walks local headers front to back; neither reads one entry of a multi-GB
// checkpoint by offset. See the package README.

import type { ByteSource } from './byte-source.js';
import { ZipFormatError } from './errors.js';

export interface ZipEntry {
  name: string;
  /** 0 = STORED, 8 = DEFLATE. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

function u64(view: DataView, at: number, file: string, what: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipFormatError(file, `${what} ${v} is beyond 2^53`);
  return Number(v);
}

export class ZipReader {
  private readonly dataOffsets = new Map<string, number>();

  private constructor(
    readonly source: ByteSource,
    readonly entries: ReadonlyMap<string, ZipEntry>,
    /** Names in central-directory order. */
    readonly names: readonly string[],
  ) {}

  static async open(source: ByteSource): Promise<ZipReader> {
    const file = source.name;
    const fail = (msg: string): never => {
      throw new ZipFormatError(file, msg);
    };
    if (source.size < EOCD_SIZE) fail('too small to be a zip archive');
    // The EOCD record sits at the end, followed by a comment of at most 65535 bytes; the ZIP64
    // locator (20 bytes) sits right before it.
    const tailLength = Math.min(source.size, EOCD_SIZE + MAX_COMMENT + 20);
    const tailStart = source.size - tailLength;
    const tail = await source.read(tailStart, tailLength);
    const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let eocd = -1;
    for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + tv.getUint16(i + 20, true) <= tail.length) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) fail('no end-of-central-directory record (not a zip archive, or truncated)');
    const disk = tv.getUint16(eocd + 4, true);
    const cdDisk = tv.getUint16(eocd + 6, true);
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (eocd >= 20 && tv.getUint32(eocd - 20, true) === SIG_ZIP64_LOCATOR) {
      const recordOffset = u64(tv, eocd - 20 + 8, file, 'ZIP64 end-of-central-directory offset');
      if (recordOffset + 56 > source.size) fail('ZIP64 end-of-central-directory record is out of range');
      const rec = await source.read(recordOffset, 56);
      const rv = new DataView(rec.buffer, rec.byteOffset, 56);
      if (rv.getUint32(0, true) !== SIG_ZIP64_EOCD) fail('bad ZIP64 end-of-central-directory signature');
      if (rv.getUint32(16, true) !== 0 || rv.getUint32(20, true) !== 0) fail('multi-disk archives are not supported');
      count = u64(rv, 32, file, 'entry count');
      cdSize = u64(rv, 40, file, 'central directory size');
      cdOffset = u64(rv, 48, file, 'central directory offset');
    } else {
      if (disk !== 0 || cdDisk !== 0) fail('multi-disk archives are not supported');
      if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
        fail('ZIP64 fields are set but the ZIP64 locator is missing');
      }
    }
    if (cdOffset + cdSize > source.size) {
      fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) runs past the end of the ${source.size}-byte file`);
    }
    const cd = await source.read(cdOffset, cdSize);
    const cv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    const entries = new Map<string, ZipEntry>();
    const names: string[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cv.getUint32(p, true) !== SIG_CENTRAL) fail(`bad central directory entry #${i}`);
      const flags = cv.getUint16(p + 8, true);
      const method = cv.getUint16(p + 10, true);
      const crc32 = cv.getUint32(p + 16, true);
      let compressedSize = cv.getUint32(p + 20, true);
      let uncompressedSize = cv.getUint32(p + 24, true);
      const nameLength = cv.getUint16(p + 28, true);
      const extraLength = cv.getUint16(p + 30, true);
      const commentLength = cv.getUint16(p + 32, true);
      let localHeaderOffset = cv.getUint32(p + 42, true);
      const end = p + 46 + nameLength + extraLength + commentLength;
      if (end > cd.length) fail(`central directory entry #${i} runs past the directory`);
      const rawName = cd.subarray(p + 46, p + 46 + nameLength);
      const name = (flags & 0x800 ? utf8 : latin1).decode(rawName);
      // ZIP64 extended information (0x0001): only the fields whose 32-bit value is 0xffffffff, in order.
      let q = p + 46 + nameLength;
      const extraEnd = q + extraLength;
      while (q + 4 <= extraEnd) {
        const id = cv.getUint16(q, true);
        const size = cv.getUint16(q + 2, true);
        if (q + 4 + size > extraEnd) fail(`bad extra field in entry '${name}'`);
        if (id === 0x0001) {
          let r = q + 4;
          const next = (what: string): number => {
            if (r + 8 > q + 4 + size) fail(`ZIP64 extra field of '${name}' lacks the ${what}`);
            const v = u64(cv, r, file, `${what} of '${name}'`);
            r += 8;
            return v;
          };
          if (uncompressedSize === 0xffffffff) uncompressedSize = next('uncompressed size');
          if (compressedSize === 0xffffffff) compressedSize = next('compressed size');
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = next('local header offset');
        }
        q += 4 + size;
      }
      if (flags & 0x1) fail(`entry '${name}' is encrypted`);
      if (method !== 0 && method !== 8) fail(`entry '${name}' uses unsupported compression method ${method}`);
      if (method === 0 && compressedSize !== uncompressedSize) {
        fail(`STORED entry '${name}' has compressed size ${compressedSize} != size ${uncompressedSize}`);
      }
      if (localHeaderOffset + 30 + compressedSize > source.size) {
        fail(`entry '${name}' at offset ${localHeaderOffset} (${compressedSize} bytes) runs past the end of the file`);
      }
      if (entries.has(name)) fail(`duplicate entry '${name}'`);
      entries.set(name, { name, method, flags, crc32, compressedSize, uncompressedSize, localHeaderOffset });
      names.push(name);
      p = end;
    }
    return new ZipReader(source, entries, names);
  }

  get name(): string {
    return this.source.name;
  }

  entry(name: string): ZipEntry | undefined {
    return this.entries.get(name);
  }

  /** Absolute offset of the entry's (stored or compressed) data, from its local header. */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const cached = this.dataOffsets.get(entry.name);
    if (cached !== undefined) return cached;
    const h = await this.source.read(entry.localHeaderOffset, 30);
    const hv = new DataView(h.buffer, h.byteOffset, 30);
    if (hv.getUint32(0, true) !== SIG_LOCAL) {
      throw new ZipFormatError(this.name, `bad local header signature for entry '${entry.name}'`);
    }
    const offset = entry.localHeaderOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
    if (offset + entry.compressedSize > this.source.size) {
      throw new ZipFormatError(this.name, `data of entry '${entry.name}' runs past the end of the file`);
    }
    this.dataOffsets.set(entry.name, offset);
    return offset;
  }

  /**
   * `length` bytes from `offset` within the entry's uncompressed data (default: all of it). STORED
   * entries read just that range.
   */
  async read(entry: ZipEntry, offset = 0, length = entry.uncompressedSize - offset): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > entry.uncompressedSize) {
      throw new ZipFormatError(
        this.name,
        `read [${offset}, ${offset + length}) is outside entry '${entry.name}' (${entry.uncompressedSize} bytes)`,
      );
    }
    const start = await this.dataOffset(entry);
    if (entry.method === 0) return this.source.read(start + offset, length);
    const inflated = await inflateRaw(await this.source.read(start, entry.compressedSize), this.name, entry);
    return inflated.slice(offset, offset + length);
  }

  /** The whole entry, with its CRC-32 checked (for small entries such as data.pkl). */
  async readChecked(entry: ZipEntry): Promise<Uint8Array> {
    const data = await this.read(entry);
    const crc = crc32(data);
    if (crc !== entry.crc32) {
      throw new ZipFormatError(
        this.name,
        `CRC-32 mismatch in entry '${entry.name}' (stored ${hex(entry.crc32)}, computed ${hex(crc)}): corrupted file`,
      );
    }
    return data;
  }
}

function hex(v: number): string {
  return `0x${v.toString(16).padStart(8, '0')}`;
}

async function inflateRaw(data: Uint8Array, file: string, entry: ZipEntry): Promise<Uint8Array> {
  if (typeof DecompressionStream === 'undefined') {
    throw new ZipFormatError(file, `entry '${entry.name}' is deflated and this runtime has no DecompressionStream`);
  }
  try {
    // Read chunk by chunk and stop past the declared size: a deflate bomb never fills memory.
    const reader = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('deflate-raw')).getReader();
    const chunks: Uint8Array[] = [];
    let length = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      length += r.value.length;
      if (length > entry.uncompressedSize) {
        await reader.cancel();
        throw new Error(`inflates past ${entry.uncompressedSize} bytes`);
      }
      chunks.push(r.value);
    }
    if (length !== entry.uncompressedSize) throw new Error(`inflated to ${length} bytes`);
    if (chunks.length === 1) return chunks[0];
    const out = new Uint8Array(length);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  } catch (err) {
    throw new ZipFormatError(
      file,
      `cannot inflate entry '${entry.name}' (${(err as Error).message}; expected ${entry.uncompressedSize} bytes)`,
    );
  }
}

let crcTable: Uint32Array | undefined;

export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
