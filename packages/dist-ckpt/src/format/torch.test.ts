import { existsSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { bytesSource } from './byte-source.js';
import { loadStateDict, openCheckpoint } from './checkpoint.js';
import { TorchCheckpointError, UnsafePickleError, ZipFormatError } from './errors.js';
import {
  buildZip,
  concat,
  f32bytes,
  makeZip,
  PickleWriter,
  segmentsSource,
  torchLegacy,
  torchPickle,
  torchZip,
  type TorchTensorSpec,
} from './test-utils.js';
import type { TorchCheckpoint } from './torch.js';
import { gatherStrided } from './torch.js';
import { ZipReader } from './zip.js';

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

/** A 4x6 storage 0..23 and tensors viewing it in the ways torch.save keeps views. */
const storage0 = f32bytes(range(24));
const int64Storage = new Uint8Array(new BigInt64Array([5n, -3n, 2n ** 33n, 7n]).buffer);
const specs: TorchTensorSpec[] = [
  { name: 'full', key: '0', storageNumel: 24, size: [4, 6], stride: [6, 1] },
  { name: 'transposed', key: '0', storageNumel: 24, size: [6, 4], stride: [1, 6] },
  { name: 'sliced', key: '0', storageNumel: 24, offset: 6, size: [2, 6], stride: [6, 1] },
  { name: 'column', key: '0', storageNumel: 24, offset: 2, size: [4], stride: [6] },
  { name: 'scalar', key: '0', storageNumel: 24, offset: 23, size: [], stride: [] },
  { name: 'expanded', key: '0', storageNumel: 24, offset: 1, size: [3, 2], stride: [0, 1] },
  { name: 'empty', key: '0', storageNumel: 24, size: [0, 3], stride: [3, 1] },
  { name: 'ids', key: '1', storageType: 'LongStorage', storageNumel: 4, size: [1, 3], stride: [4, 1] },
  { name: 'param', key: '0', storageNumel: 24, size: [2, 2], stride: [1, 6], parameter: true },
];
const want: Record<string, { shape: number[]; data: number[] }> = {
  full: { shape: [4, 6], data: range(24) },
  transposed: { shape: [6, 4], data: range(6).flatMap((c) => range(4).map((r) => r * 6 + c)) },
  sliced: { shape: [2, 6], data: range(12, 6) },
  column: { shape: [4], data: [2, 8, 14, 20] },
  scalar: { shape: [], data: [23] },
  expanded: { shape: [3, 2], data: [1, 2, 1, 2, 1, 2] },
  empty: { shape: [0, 3], data: [] },
  param: { shape: [2, 2], data: [0, 6, 1, 7] },
};

async function checkAll(cp: TorchCheckpoint | Awaited<ReturnType<typeof openCheckpoint>>): Promise<void> {
  for (const [name, w] of Object.entries(want)) {
    const t = await cp.readTensor(name);
    expect(t.shape, name).toEqual(w.shape);
    expect(t.dtype, name).toBe('F32');
    expect(Array.from(t.data), name).toEqual(w.data);
  }
  const ids = await cp.readTensor('ids', { as: 'native' });
  expect(ids.dtype).toBe('I64');
  expect(Array.from(ids.data as ArrayLike<unknown>)).toEqual([5n, -3n, 2n ** 33n]);
  await expect(cp.readTensor('ids')).rejects.toThrow(/tensor 'ids': I64 value 8589934592 at flat index 2 is outside the int32 range/);
}

describe('torch.save zip format', () => {
  it('honours storage offset, size and stride (views, 0-d, expanded, empty, int64, parameters)', async () => {
    const bin = torchZip(torchPickle(specs), { '0': storage0, '1': int64Storage });
    const cp = await openCheckpoint(bin, { name: 'views.bin' });
    expect(cp.format).toBe('torch-zip');
    expect(cp.tensors.map((t) => t.name)).toEqual(specs.map((s) => s.name));
    await checkAll(cp);
  });

  it('reads an OrderedDict with _metadata, any archive name, and ZIP64 records', async () => {
    const pkl = torchPickle(specs, { ordered: true, metadata: true });
    const cp = await openCheckpoint(torchZip(pkl, { '0': storage0, '1': int64Storage }, { prefix: 'my_model', zip64: true }));
    await checkAll(cp);
  });

  it('byte-swaps big-endian checkpoints', async () => {
    const be = new Uint8Array(storage0.length);
    const dv = new DataView(be.buffer);
    range(24).forEach((v) => dv.setFloat32(v * 4, v, false));
    const be64 = new Uint8Array(32);
    [5n, -3n, 2n ** 33n, 7n].forEach((v, i) => new DataView(be64.buffer).setBigInt64(i * 8, v, false));
    await checkAll(await openCheckpoint(torchZip(torchPickle(specs), { '0': be, '1': be64 }, { byteorder: 'big' })));
  });

  it('reads only the records it needs', async () => {
    const big = f32bytes(range(100_000));
    const bin = torchZip(torchPickle([{ name: 'w', key: '0', storageNumel: 100_000, offset: 10, size: [2], stride: [1] }]), { '0': big });
    let read = 0;
    const inner = bytesSource(bin, 'big.bin');
    const cp = await openCheckpoint({ ...inner, read: (o: number, n: number) => ((read += n), inner.read(o, n)) });
    expect(Array.from((await cp.readTensor('w')).data)).toEqual([10, 11]);
    expect(read).toBeLessThan(80_000);
  });

  it('flattens nested dicts and lists of tensors', async () => {
    const w = new PickleWriter().proto().emptyDict().mark().str('model');
    w.emptyDict().mark();
    const inner = torchPickle([{ name: 'a', key: '0', storageNumel: 2, size: [2], stride: [1] }]);
    // Reuse the tensor expression of `inner` (between its SETITEMS mark and the STOP).
    const body = inner.subarray(inner.indexOf(0x28) + 1, inner.length - 2);
    w.raw(...body).setitems().str('epoch').int(3).str('list').emptyList().mark();
    w.raw(...body.subarray(body.indexOf(0x63))).appends();
    w.setitems().stop();
    const cp = await openCheckpoint(torchZip(w.bytes(), { '0': f32bytes([1, 2]) }));
    expect(cp.tensors.map((t) => t.name)).toEqual(['model.a', 'list.0']);
    expect(Array.from((await cp.readTensor('list.0')).data)).toEqual([1, 2]);
  });

  it('opens the one torch.save file a plain zip wraps (an NGC download), stored or deflated, legacy or zip', async () => {
    const pkl = torchPickle([{ name: 'w', key: '0', storageNumel: 24, size: [4, 6], stride: [6, 1] }]);
    const inner = { zip: torchZip(pkl, { '0': storage0 }), legacy: torchLegacy(pkl, [['0', 24, storage0]]) };
    for (const [kind, data] of Object.entries(inner)) {
      for (const method of [0, 8] as const) {
        const tracker = { name: 'latest_checkpointed_iteration.txt', data: new TextEncoder().encode('release'), method };
        const outer = makeZip([tracker, { name: 'release/', data: new Uint8Array(0) }, { name: 'release/mp_rank_00/model_optim_rng.pt', data, method }]);
        const cp = (await openCheckpoint(outer, { name: 'ngc.zip' })) as TorchCheckpoint;
        expect(cp.name, `${kind} ${method}`).toBe('ngc.zip!release/mp_rank_00/model_optim_rng.pt');
        expect(cp.format).toBe(kind === 'zip' ? 'torch-zip' : 'torch-legacy');
        expect(Array.from((await cp.readTensor('w')).data)).toEqual(range(24));
        await cp.close();
      }
    }
    // A zip inside a zip is not opened (one level only: a self-inflating zip must not recurse).
    const nested = makeZip([{ name: 'outer/model.pt', data: makeZip([{ name: 'inner/model.pt', data: inner.zip }]), method: 8 }]);
    await expect(openCheckpoint(nested, { name: 'nested.zip' })).rejects.toThrow(
      /^nested\.zip!outer\/model\.pt: not a torch\.save zip: no 'inner\/data\.pkl' record \(a zip's member must be a torch\.save file, not another zip\)$/,
    );
    // Two wrapped files: no guessing.
    const two = makeZip([{ name: 'a/mp_rank_00/model_optim_rng.pt', data: inner.zip }, { name: 'a/mp_rank_01/model_optim_rng.pt', data: inner.zip }]);
    await expect(openCheckpoint(two, { name: 'tp2.zip' })).rejects.toThrow(
      /^tp2\.zip: not a torch\.save zip: no 'a\/data\.pkl' record; it wraps 2 checkpoint files \(a\/mp_rank_00\/model_optim_rng\.pt, a\/mp_rank_01\/model_optim_rng\.pt\): unzip it and open one$/,
    );
  });

  it('refuses malicious pickles inside an otherwise valid zip, and nothing runs', async () => {
    const evil = new PickleWriter().proto().emptyDict().str('w').global('posix', 'system').str('touch /tmp/lm-pwned').raw(0x85).reduce().raw(0x73).stop().bytes();
    const err = await openCheckpoint(torchZip(evil, {}), { name: 'evil.pt' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafePickleError);
    expect((err as Error).message).toMatch(/^evil\.pt: refused pickle global 'posix\.system'/);
    // A storage type that is not a torch.*Storage.
    const fake = new PickleWriter().proto().emptyDict().str('w').global('torch', 'Tensor').stop().bytes();
    await expect(openCheckpoint(torchZip(fake, {}))).rejects.toThrow(/refused pickle global 'torch\.Tensor'/);
    expect(existsSync('/tmp/lm-pwned')).toBe(false);
  });

  it('refuses views outside their storage, naming the tensor', async () => {
    const bad = torchPickle([{ name: 'w', key: '0', storageNumel: 24, offset: 20, size: [2, 6], stride: [6, 1] }]);
    await expect(openCheckpoint(torchZip(bad, { '0': storage0 }), { name: 'bad.bin' })).rejects.toThrow(
      /^bad\.bin: tensor 'w': view \(offset 20, size \[2,6\], stride \[6,1\]\) reaches element 31 of storage '0', which holds 24/,
    );
  });

  it('refuses missing or short storage records and bad containers', async () => {
    const pkl = torchPickle([{ name: 'w', key: '0', storageNumel: 24, size: [24], stride: [1] }]);
    await expect(openCheckpoint(torchZip(pkl, {}), { name: 'm.bin' })).rejects.toThrow(
      /m\.bin: storage record 'archive\/data\/0' is missing/,
    );
    await expect(openCheckpoint(torchZip(pkl, { '0': storage0.subarray(0, 40) }), { name: 'm.bin' })).rejects.toThrow(
      /has 40 bytes, but 24 F32 elements need 96/,
    );
    const noPkl = makeZip([{ name: 'archive/version', data: new Uint8Array([51]) }]);
    await expect(openCheckpoint(noPkl, { name: 'n.bin' })).rejects.toThrow(/n\.bin: not a torch\.save zip: no 'archive\/data\.pkl'/);
    const notDict = torchZip(new PickleWriter().proto().int(3).stop().bytes(), {});
    await expect(openCheckpoint(notDict)).rejects.toThrow(/not a dict of tensors/);
    const truncatedZip = torchZip(pkl, { '0': storage0 }).subarray(0, 200);
    await expect(openCheckpoint(truncatedZip, { name: 't.bin' })).rejects.toThrow(ZipFormatError);
  });

  it('detects a corrupted data.pkl by its CRC', async () => {
    const bin = torchZip(torchPickle(specs), { '0': storage0, '1': int64Storage });
    const at = bin.indexOf(0x58, 100); // a byte inside data.pkl
    bin[at + 5] ^= 0x20;
    await expect(openCheckpoint(bin, { name: 'c.bin' })).rejects.toThrow(/c\.bin: CRC-32 mismatch in entry 'archive\/data\.pkl'/);
  });
});

describe('torch.save legacy format', () => {
  it('loads tensors, views and storage views', async () => {
    const legacySpecs: TorchTensorSpec[] = [
      ...specs,
      // A storage view: elements [6, 18) of storage '0', seen as a [2, 6] tensor.
      { name: 'viewed', key: '0', storageNumel: 24, size: [2, 6], stride: [6, 1], view: ['v0', 6, 12] },
    ];
    const bin = torchLegacy(torchPickle(legacySpecs, { legacy: true }), [
      ['0', 24, storage0],
      ['1', 4, int64Storage],
    ]);
    const cp = await openCheckpoint(bin, { name: 'legacy.bin' });
    expect(cp.format).toBe('torch-legacy');
    await checkAll(cp);
    expect(Array.from((await cp.readTensor('viewed')).data)).toEqual(range(12, 6));
  });

  it('loads big-endian legacy files', async () => {
    const be = new Uint8Array(96);
    range(24).forEach((v) => new DataView(be.buffer).setFloat32(v * 4, v, false));
    const pkl = torchPickle([specs[1]], { legacy: true });
    const sd = await loadStateDict(torchLegacy(pkl, [['0', 24, be]], { littleEndian: false }));
    expect(Array.from(sd.get('transposed')!.data)).toEqual(want.transposed.data);
  });

  it('refuses truncated files, bad magic, count mismatches and tar checkpoints', async () => {
    const pkl = torchPickle([specs[0]], { legacy: true });
    const good = torchLegacy(pkl, [['0', 24, storage0]]);
    await expect(openCheckpoint(good.subarray(0, good.length - 10), { name: 'cut.bin' })).rejects.toThrow(
      /cut\.bin: truncated: storage '0'/,
    );
    await expect(openCheckpoint(good.subarray(0, 300), { name: 'cut.bin' })).rejects.toThrow(/cut\.bin: truncated/);
    const wrongCount = torchLegacy(pkl, [['0', 23, storage0.subarray(0, 92)]]);
    await expect(openCheckpoint(wrongCount)).rejects.toThrow(/record holds 23 elements, the pickle says 24/);
    const badMagic = concat([new PickleWriter().proto().int(7).stop().bytes(), good.subarray(15)]);
    await expect(openCheckpoint(badMagic, { name: 'x.pt' })).rejects.toThrow(/x\.pt: not a PyTorch checkpoint: bad magic number/);
    const tar = new Uint8Array(1024);
    tar[0] = 0x80;
    tar.set(new TextEncoder().encode('ustar'), 257);
    await expect(openCheckpoint(tar, { name: 'old.pt' })).rejects.toThrow(/tar-based checkpoints/);
  });
});

describe('zip reader', () => {
  it('reads STORED and DEFLATE entries', async () => {
    const text = new TextEncoder().encode('hello hello hello hello'.repeat(20));
    const zip = await ZipReader.open(
      bytesSource(makeZip([{ name: 'a.txt', data: text }, { name: 'b.txt', data: text, method: 8 }]), 'z.zip'),
    );
    expect(zip.names).toEqual(['a.txt', 'b.txt']);
    expect(zip.entry('b.txt')!.compressedSize).toBeLessThan(text.length);
    expect(await zip.readChecked(zip.entry('a.txt')!)).toEqual(text);
    expect(await zip.readChecked(zip.entry('b.txt')!)).toEqual(text);
    expect(await zip.read(zip.entry('b.txt')!, 6, 5)).toEqual(new TextEncoder().encode('hello'));
    await expect(zip.read(zip.entry('a.txt')!, 400, 100)).rejects.toThrow(/outside entry 'a\.txt'/);
  });

  it('stops inflating at the declared size (a deflate bomb is refused, not held in memory)', async () => {
    const bytes = makeZip([{ name: 'bomb.bin', data: new Uint8Array(1 << 20), method: 8 }]);
    // Declare 1000 bytes in the central directory (uncompressed size at offset 24 of its header).
    const cd = bytes.findIndex((_, i) => bytes[i] === 0x50 && bytes[i + 1] === 0x4b && bytes[i + 2] === 0x01 && bytes[i + 3] === 0x02);
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(cd + 24, 1000, true);
    const zip = await ZipReader.open(bytesSource(bytes, 'bomb.zip'));
    expect(zip.entry('bomb.bin')!.uncompressedSize).toBe(1000);
    await expect(zip.readChecked(zip.entry('bomb.bin')!)).rejects.toThrow(/bomb\.zip: cannot inflate entry 'bomb\.bin' \(inflates past 1000 bytes; expected 1000 bytes\)/);
  });

  it('refuses archives without an end record and truncated directories', async () => {
    await expect(ZipReader.open(bytesSource(new Uint8Array(100), 'e.zip'))).rejects.toThrow(/e\.zip: no end-of-central-directory/);
    const z = makeZip([{ name: 'a', data: new Uint8Array(10) }]);
    const dv = new DataView(z.buffer);
    dv.setUint32(z.length - 6, 5000, true); // central directory offset
    await expect(ZipReader.open(bytesSource(z, 'd.zip'))).rejects.toThrow(/central directory .* runs past the end/);
  });

  it('reads a >4 GiB ZIP64 torch checkpoint by offset, without loading it', async () => {
    // A 6 GB storage (1.5e9 float32) whose last elements hold data, followed by a second storage
    // whose local header sits beyond 4 GiB: ZIP64 sizes, offsets and end records are all needed.
    const numel = 1_500_000_000;
    const tail = f32bytes([1, 2, 3, 4]);
    const pkl = torchPickle([
      { name: 'big.tail', key: '0', storageNumel: numel, offset: numel - 4, size: [2, 2], stride: [1, 2] },
      { name: 'after', key: '1', storageNumel: 2, size: [2], stride: [1] },
    ]);
    const { size, segments } = buildZip([
      { name: 'archive/data.pkl', data: pkl, align: 64 },
      { name: 'archive/data/0', data: tail, virtualSize: numel * 4, dataAt: numel * 4 - 16, align: 64 },
      { name: 'archive/data/1', data: f32bytes([5, 6]), align: 64 },
      { name: 'archive/version', data: new TextEncoder().encode('3\n'), align: 64 },
    ]);
    expect(size).toBeGreaterThan(2 ** 32);
    const source = segmentsSource('huge.bin', size, segments);
    const zip = await ZipReader.open(source);
    expect(zip.entry('archive/data/0')!.uncompressedSize).toBe(numel * 4);
    expect(zip.entry('archive/data/1')!.localHeaderOffset).toBeGreaterThan(2 ** 32);
    const cp = await openCheckpoint(source);
    expect(cp.info('big.tail')).toEqual({ name: 'big.tail', dtype: 'F32', shape: [2, 2] });
    expect(Array.from((await cp.readTensor('big.tail')).data)).toEqual([1, 3, 2, 4]);
    expect(Array.from((await cp.readTensor('after')).data)).toEqual([5, 6]);
    expect(source.bytesRead).toBeLessThan(200_000);
  });
});

describe('gatherStrided', () => {
  it('handles 1-, 2-, 4- and 8-byte elements', () => {
    for (const size of [1, 2, 4, 8]) {
      const span = new Uint8Array(6 * size).map((_, i) => i);
      const out = gatherStrided(span, size, [3, 2], [1, 3]);
      const order = [0, 3, 1, 4, 2, 5];
      const expected = order.flatMap((e) => range(size, e * size));
      expect(Array.from(out), `size ${size}`).toEqual(expected);
    }
  });

  it('handles 3-d permutations', () => {
    // A [2,3,4] contiguous tensor permuted to [4,2,3] (strides [1,12,4]).
    const span = new Uint8Array(24).map((_, i) => i);
    const out = gatherStrided(span, 1, [4, 2, 3], [1, 12, 4]);
    const expected: number[] = [];
    for (let a = 0; a < 4; a++) for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) expected.push(a + 12 * b + 4 * c);
    expect(Array.from(out)).toEqual(expected);
  });
});

describe('TorchCheckpoint errors are TorchCheckpointErrors', () => {
  it('names the file', async () => {
    const err = await openCheckpoint(torchZip(new PickleWriter().proto().emptyList().stop().bytes(), {}), { name: 'l.bin' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TorchCheckpointError);
    expect((err as TorchCheckpointError).file).toBe('l.bin');
  });
});
