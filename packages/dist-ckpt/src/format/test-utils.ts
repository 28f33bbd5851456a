// Helpers for this package's tests (not exported): the shared fixtures folder, and small writers for
// pickles, zips and torch.save files so tests can build exactly the file they need.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';

import type { ByteSource } from './byte-source.js';
import { crc32 } from './zip.js';

/**
 * The `shared/fixtures/io` folder, found by walking up from this package (it is
 * `../../../shared/fixtures` from packages/dist-ckpt in the monorepo checkout and in CI). Undefined
 * when absent; throws when absent and `CI` is set, so CI never silently skips the fixture tests.
 */
export function findIoFixtures(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'shared', 'fixtures', 'io');
    if (existsSync(join(candidate, 'README.md'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  if (process.env.CI) throw new Error('shared/fixtures/io not found above packages/dist-ckpt, and CI is set');
  return undefined;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function hex(text: string): Uint8Array {
  return new Uint8Array(text.match(/../g)!.map((h) => parseInt(h, 16)));
}

// ---- pickles --------------------------------------------------------------------------------

/** Emits protocol-2 pickle opcodes. */
export class PickleWriter {
  private readonly out: number[] = [];

  raw(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }

  proto(n = 2): this {
    return this.raw(0x80, n);
  }

  str(s: string): this {
    const b = new TextEncoder().encode(s);
    this.raw(0x58, b.length & 0xff, (b.length >> 8) & 0xff, (b.length >> 16) & 0xff, b.length >>> 24);
    this.out.push(...b);
    return this;
  }

  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.raw(0x4a, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff);
    // LONG1, little-endian two's complement
    let v = BigInt(n);
    const bytes: number[] = [];
    for (let i = 0; i < 8; i++) {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
    }
    return this.raw(0x8a, 8, ...bytes);
  }

  global(module: string, name: string): this {
    this.out.push(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
    return this;
  }

  mark(): this {
    return this.raw(0x28);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  emptyList(): this {
    return this.raw(0x5d);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  appends(): this {
    return this.raw(0x65);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  build(): this {
    return this.raw(0x62);
  }
  binpersid(): this {
    return this.raw(0x51);
  }
  none(): this {
    return this.raw(0x4e);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  /** A tuple of small ints. */
  ints(values: number[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.out);
  }
}

export interface TorchTensorSpec {
  name: string;
  storageType?: string;
  key: string;
  /** Elements in the storage. */
  storageNumel: number;
  offset?: number;
  size: number[];
  stride: number[];
  /** Legacy only: (view_key, offset, size) of a storage view. */
  view?: [string, number, number];
  /** Wrap in torch._utils._rebuild_parameter. */
  parameter?: boolean;
}

/** The pickle torch.save writes for a dict of tensors (`legacy`: 6-item persistent ids). */
export function torchPickle(
  tensors: TorchTensorSpec[],
  options: { legacy?: boolean; ordered?: boolean; metadata?: boolean } = {},
): Uint8Array {
  const w = new PickleWriter().proto(2);
  if (options.ordered) w.global('collections', 'OrderedDict').emptyTuple().reduce();
  else w.emptyDict();
  w.mark();
  for (const t of tensors) {
    w.str(t.name);
    if (t.parameter) w.global('torch._utils', '_rebuild_parameter').mark();
    w.global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().str('storage').global('torch', t.storageType ?? 'FloatStorage').str(t.key).str('cpu').int(t.storageNumel);
    if (options.legacy) {
      if (t.view) w.mark().str(t.view[0]).int(t.view[1]).int(t.view[2]).tuple();
      else w.none();
    }
    w.tuple().binpersid();
    w.int(t.offset ?? 0).ints(t.size).ints(t.stride).bool(false);
    w.global('collections', 'OrderedDict').emptyTuple().reduce();
    w.tuple().reduce();
    if (t.parameter) w.bool(true).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
  }
  w.setitems();
  if (options.metadata) {
    w.emptyDict().str('_metadata').global('collections', 'OrderedDict').emptyTuple().reduce();
    w.str('').emptyDict().str('version').int(1).raw(0x73).raw(0x73).raw(0x73).build();
  }
  return w.stop().bytes();
}

// ---- zips -----------------------------------------------------------------------------------

export interface ZipSpec {
  name: string;
  data: Uint8Array;
  /** 0 = STORED (default), 8 = DEFLATE. */
  method?: 0 | 8;
  /** Pretend the entry is this long (zero-filled), with `data` placed at `dataAt` within it. */
  virtualSize?: number;
  dataAt?: number;
  /** Place the local header at this absolute offset (zero gap before). */
  at?: number;
  /** Pad the local header's extra field so the data starts on this alignment (torch uses 64). */
  align?: number;
}

export interface Segment {
  offset: number;
  bytes: Uint8Array;
}

function le(bytes: number, value: number | bigint): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  for (let i = 0; i < bytes; i++) {
    out.push(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

/** Lays out a zip archive as segments (zero-filled between them); `zip64` forces ZIP64 records. */
export function buildZip(specs: ZipSpec[], options: { zip64?: boolean } = {}): { size: number; segments: Segment[] } {
  const segments: Segment[] = [];
  const central: number[][] = [];
  let pos = 0;
  const M = 0xffffffff;
  for (const spec of specs) {
    if (spec.at !== undefined) pos = Math.max(pos, spec.at);
    const method = spec.method ?? 0;
    const payload = method === 8 ? new Uint8Array(deflateRawSync(spec.data)) : spec.data;
    const usize = spec.virtualSize ?? spec.data.length;
    const csize = method === 8 ? payload.length : usize;
    const crc = crc32(spec.data);
    const name = new TextEncoder().encode(spec.name);
    const big = options.zip64 || usize >= M || csize >= M || pos >= M;
    let extra = big ? [...le(2, 1), ...le(2, 16), ...le(8, usize), ...le(8, csize)] : [];
    if (spec.align) {
      const start = pos + 30 + name.length + extra.length;
      const pad = (spec.align - ((start + 4) % spec.align)) % spec.align;
      extra = [...extra, ...le(2, 0x4246), ...le(2, pad), ...new Array<number>(pad).fill(0x5a)];
    }
    const header = [
      ...le(4, 0x04034b50),
      ...le(2, big ? 45 : 20),
      ...le(2, 0x800),
      ...le(2, method),
      ...le(2, 0),
      ...le(2, 0x21),
      ...le(4, crc),
      ...le(4, big ? M : csize),
      ...le(4, big ? M : usize),
      ...le(2, name.length),
      ...le(2, extra.length),
      ...name,
      ...extra,
    ];
    segments.push({ offset: pos, bytes: new Uint8Array(header) });
    const dataStart = pos + header.length;
    segments.push({ offset: dataStart + (spec.dataAt ?? 0), bytes: payload });
    const fields: number[] = [];
    const u = options.zip64 || usize >= M ? (fields.push(...le(8, usize)), M) : usize;
    const c = options.zip64 || csize >= M ? (fields.push(...le(8, csize)), M) : csize;
    const o = options.zip64 || pos >= M ? (fields.push(...le(8, pos)), M) : pos;
    const cextra = fields.length ? [...le(2, 1), ...le(2, fields.length), ...fields] : [];
    central.push([
      ...le(4, 0x02014b50),
      ...le(2, 45),
      ...le(2, fields.length ? 45 : 20),
      ...le(2, 0x800),
      ...le(2, method),
      ...le(2, 0),
      ...le(2, 0x21),
      ...le(4, crc),
      ...le(4, c),
      ...le(4, u),
      ...le(2, name.length),
      ...le(2, cextra.length),
      ...le(2, 0),
      ...le(2, 0),
      ...le(2, 0),
      ...le(4, 0),
      ...le(4, o),
      ...name,
      ...cextra,
    ]);
    pos = dataStart + csize;
  }
  const cdStart = pos;
  const cd = central.flat();
  segments.push({ offset: cdStart, bytes: new Uint8Array(cd) });
  pos += cd.length;
  const big = options.zip64 || cdStart >= M || specs.length >= 0xffff;
  const tail: number[] = [];
  if (big) {
    const recordAt = pos;
    tail.push(
      ...le(4, 0x06064b50),
      ...le(8, 44),
      ...le(2, 45),
      ...le(2, 45),
      ...le(4, 0),
      ...le(4, 0),
      ...le(8, specs.length),
      ...le(8, specs.length),
      ...le(8, cd.length),
      ...le(8, cdStart),
      ...le(4, 0x07064b50),
      ...le(4, 0),
      ...le(8, recordAt),
      ...le(4, 1),
    );
  }
  tail.push(
    ...le(4, 0x06054b50),
    ...le(2, 0),
    ...le(2, 0),
    ...le(2, big ? 0xffff : specs.length),
    ...le(2, big ? 0xffff : specs.length),
    ...le(4, big ? M : cd.length),
    ...le(4, big ? M : cdStart),
    ...le(2, 0),
  );
  segments.push({ offset: pos, bytes: new Uint8Array(tail) });
  return { size: pos + tail.length, segments };
}

/** A zip built by {@link buildZip}, as one buffer (small archives). */
export function makeZip(specs: ZipSpec[], options: { zip64?: boolean } = {}): Uint8Array {
  const { size, segments } = buildZip(specs, options);
  const out = new Uint8Array(size);
  for (const s of segments) out.set(s.bytes, s.offset);
  return out;
}

/** A ByteSource over segments of a (possibly huge, mostly zero) virtual file; counts bytes read. */
export function segmentsSource(name: string, size: number, segments: Segment[]): ByteSource & { bytesRead: number } {
  const source = {
    name,
    size,
    bytesRead: 0,
    read(offset: number, length: number): Promise<Uint8Array> {
      if (offset + length > size) return Promise.reject(new Error(`${name}: read past end`));
      if (length > 1 << 28) return Promise.reject(new Error(`${name}: refusing a ${length}-byte read in a test`));
      source.bytesRead += length;
      const out = new Uint8Array(length);
      for (const s of segments) {
        const a = Math.max(offset, s.offset);
        const b = Math.min(offset + length, s.offset + s.bytes.length);
        if (a < b) out.set(s.bytes.subarray(a - s.offset, b - s.offset), a - offset);
      }
      return Promise.resolve(out);
    },
  };
  return source;
}

/** A torch.save zip holding `pkl` and the given storages. */
export function torchZip(
  pkl: Uint8Array,
  storages: Record<string, Uint8Array>,
  options: { prefix?: string; byteorder?: 'little' | 'big'; zip64?: boolean } = {},
): Uint8Array {
  const prefix = options.prefix ?? 'archive';
  const specs: ZipSpec[] = [{ name: `${prefix}/data.pkl`, data: pkl, align: 64 }];
  if (options.byteorder) specs.push({ name: `${prefix}/byteorder`, data: new TextEncoder().encode(options.byteorder), align: 64 });
  for (const [key, data] of Object.entries(storages)) specs.push({ name: `${prefix}/data/${key}`, data, align: 64 });
  specs.push({ name: `${prefix}/version`, data: new TextEncoder().encode('3\n'), align: 64 });
  return makeZip(specs, { zip64: options.zip64 });
}

/** A legacy (non-zip) torch.save file: magic, protocol, sys info, `pkl`, keys, storages. */
export function torchLegacy(
  pkl: Uint8Array,
  storages: Array<[key: string, numel: number, bytes: Uint8Array]>,
  options: { littleEndian?: boolean } = {},
): Uint8Array {
  const magic = hex('80028a0a6cfc9c46f9206aa850192e');
  const protocol = hex('80024de9032e');
  const sys = new PickleWriter().proto(2).emptyDict().mark();
  sys.str('protocol_version').int(1001).str('little_endian').bool(options.littleEndian ?? true);
  sys.str('type_sizes').emptyDict().mark().str('short').int(2).str('int').int(4).str('long').int(4).setitems();
  sys.setitems().stop();
  const keys = new PickleWriter().proto(2).emptyList().mark();
  for (const [key] of storages) keys.str(key);
  keys.appends().stop();
  const records = storages.map(([, n, bytes]) => {
    const head = new Uint8Array(8);
    new DataView(head.buffer).setBigInt64(0, BigInt(n), options.littleEndian ?? true);
    return concat([head, bytes]);
  });
  return concat([magic, protocol, sys.bytes(), pkl, keys.bytes(), ...records]);
}

export function f32bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}
