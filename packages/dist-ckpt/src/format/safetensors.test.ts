import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { blobSource, bytesSource, type ByteSource } from './byte-source.js';
import { DTypeConversionError, SafetensorsError, TensorNotFoundError } from './errors.js';
import {
  MAX_HEADER_SIZE,
  SafetensorsFile,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  serializeSafetensors,
  writeSafetensors,
  type TensorToWrite,
} from './safetensors.js';
import { concat } from './test-utils.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dist-ckpt-st-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A safetensors file with the given header object, padded with spaces, and `dataLength` data bytes. */
function rawFile(header: unknown, dataLength: number, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const n = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + n).fill(0x20, 8);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, 8);
  return concat([head, new Uint8Array(dataLength).map((_, i) => i & 0xff)]);
}

function open(bytes: Uint8Array, name = 'test.safetensors'): Promise<SafetensorsFile> {
  return SafetensorsFile.open(bytesSource(bytes, name));
}

describe('safetensors writer matches the reference byte for byte', () => {
  // Expected bytes from huggingface/safetensors safetensors/src/tensor.rs tests.
  it('test_serialization', async () => {
    const out = await serializeSafetensors({
      'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
    });
    expect(Array.from(out)).toEqual([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58,
      34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97,
      95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0,
      0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
  });

  it('test_empty, with and without metadata', async () => {
    expect(Array.from(await serializeSafetensors({}))).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const out = await serializeSafetensors({}, { metadata: { framework: 'pt' } });
    expect(Array.from(out)).toEqual([
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 114,
      97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
  });

  it('test_serialization_forced_alignement: header padded with spaces to 8 bytes', async () => {
    const out = await serializeSafetensors({
      attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
    });
    expect(new DataView(out.buffer).getBigUint64(0, true)).toBe(72n);
    expect(Array.from(out.subarray(8 + 65, 8 + 72))).toEqual([32, 32, 32, 32, 32, 32, 32]);
  });

  it('sorts by dtype (reference enum order, descending) then name; metadata first', async () => {
    const t = (dtype: TensorToWrite['dtype'], n = 1): TensorToWrite => ({ dtype, shape: [n], data: new Uint8Array(n * { F32: 4, F16: 2, I64: 8, BOOL: 1, F64: 8, U8: 1 }[dtype as 'F32']) });
    const file = await open(
      await serializeSafetensors(
        { b: t('F16'), a: t('F16'), flag: t('BOOL'), ids: t('I64'), w: t('F32'), z: t('F64'), u: t('U8') },
        { metadata: { format: 'pt' } },
      ),
    );
    expect(file.tensors.map((x) => x.name)).toEqual(['ids', 'z', 'w', 'a', 'b', 'u', 'flag']);
    const text = new TextDecoder().decode((await serializeSafetensors({ b: t('F32'), a: t('F32') }, { metadata: { format: 'pt' } })).subarray(8));
    expect(text.startsWith('{"__metadata__":{"format":"pt"},"a":')).toBe(true);
    expect(file.metadata).toEqual({ format: 'pt' });
  });
});

describe('safetensors round trips', () => {
  const stateDict: Record<string, TensorToWrite> = {
    f32: { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, 1e-8, -Infinity]) },
    f64: { dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -1]) },
    f16: { dtype: 'F16', shape: [4], data: new Float32Array([1, 0.1, -65504, 2 ** -24]) },
    bf16: { dtype: 'BF16', shape: [3], data: new Float32Array([1, 3.140625, -2]) },
    i64: { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, -(2n ** 40n), 7n]) },
    i64small: { dtype: 'I64', shape: [2, 1], data: [5, -6] },
    i32: { dtype: 'I32', shape: [2], data: new Int32Array([-7, 2 ** 31 - 1]) },
    i16: { dtype: 'I16', shape: [2], data: [-300, 300] },
    i8: { dtype: 'I8', shape: [2], data: [-128, 127] },
    u8: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
    bool: { dtype: 'BOOL', shape: [3], data: [1, 0, 1] },
    scalar: { dtype: 'F32', shape: [], data: new Float32Array([42]) },
    empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    lazy: { dtype: 'F32', shape: [2], data: () => Promise.resolve(new Float32Array([9, 8])) },
  };

  async function check(file: SafetensorsFile): Promise<void> {
    expect((await file.readTensor('f32')).data).toEqual(new Float32Array([1, -2, 3.5, 0, 1e-8, -Infinity]));
    expect(Array.from((await file.readTensor('f64', { as: 'native' })).data as ArrayLike<unknown>)).toEqual([Math.PI, -1]);
    expect(Array.from((await file.readTensor('f16')).data)).toEqual([1, 0.0999755859375, -65504, 2 ** -24]);
    expect(Array.from((await file.readTensor('bf16')).data)).toEqual([1, 3.140625, -2]);
    expect((await file.readTensor('bf16', { as: 'native' })).data).toBeInstanceOf(Uint16Array);
    expect(Array.from((await file.readTensor('i64', { as: 'native' })).data as ArrayLike<unknown>)).toEqual([1n, -(2n ** 40n), 7n]);
    await expect(file.readTensor('i64')).rejects.toThrow(DTypeConversionError);
    await expect(file.readTensor('i64')).rejects.toThrow(/tensor 'i64': I64 value -1099511627776 at flat index 1 is outside the int32 range/);
    expect(Array.from((await file.readTensor('i64', { as: 'float32' })).data)).toEqual([1, -(2 ** 40), 7]);
    const small = await file.readTensor('i64small');
    expect(small.data).toBeInstanceOf(Int32Array);
    expect(Array.from(small.data)).toEqual([5, -6]);
    expect(small.shape).toEqual([2, 1]);
    expect(Array.from((await file.readTensor('i32')).data)).toEqual([-7, 2 ** 31 - 1]);
    expect(Array.from((await file.readTensor('i16')).data)).toEqual([-300, 300]);
    expect(Array.from((await file.readTensor('i8')).data)).toEqual([-128, 127]);
    expect(Array.from((await file.readTensor('u8')).data)).toEqual([0, 255]);
    const b = await file.readTensor('bool');
    expect(b.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(b.data)).toEqual([1, 0, 1]);
    expect(Array.from((await file.readTensor('bool', { as: 'int32' })).data)).toEqual([1, 0, 1]);
    await expect(file.readTensor('f32', { as: 'int32' })).rejects.toThrow(/cannot read F32 data as int32/);
    const s = await file.readTensor('scalar');
    expect(s.shape).toEqual([]);
    expect(Array.from(s.data)).toEqual([42]);
    expect((await file.readTensor('empty')).shape).toEqual([0, 4]);
    expect(Array.from((await file.readTensor('lazy')).data)).toEqual([9, 8]);
    await expect(file.readTensor('missing')).rejects.toThrow(TensorNotFoundError);
    const names: string[] = [];
    for await (const [name] of file.entries({ as: 'native' })) names.push(name);
    expect(names.sort()).toEqual(Object.keys(stateDict).sort());
  }

  it('in memory, from a Blob, and from a file', async () => {
    const bytes = await serializeSafetensors(stateDict, { metadata: { format: 'pt' } });
    expect(bytes.length % 1).toBe(0);
    await check(await open(bytes));
    await check(await SafetensorsFile.open(blobSource(new Blob([bytes as Uint8Array<ArrayBuffer>]), 'blob.safetensors')));
    const path = join(dir, 'round.safetensors');
    await writeSafetensors(path, stateDict, { metadata: { format: 'pt' } });
    expect(new Uint8Array(await readFile(path))).toEqual(bytes);
    const file = await SafetensorsFile.open(path);
    await check(file);
    expect(file.metadata).toEqual({ format: 'pt' });
    await file.close();
    await expect(file.readRaw('f32')).rejects.toThrow(/read after close/);
  });

  it('reads only the header and the requested tensor', async () => {
    const big = new Float32Array(100_000);
    const bytes = await serializeSafetensors({
      big: { dtype: 'F32', shape: [big.length], data: big },
      small: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    });
    const inner = bytesSource(bytes, 'counted.safetensors');
    let read = 0;
    const counted: ByteSource = {
      name: inner.name,
      size: inner.size,
      read(offset, length) {
        read += length;
        return inner.read(offset, length);
      },
    };
    const file = await SafetensorsFile.open(counted);
    await file.readTensor('small');
    expect(read).toBeLessThan(300);
  });

  it('refuses bad state dicts, naming the tensor', async () => {
    await expect(serializeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).rejects.toThrow(
      /tensor 'w': data has 2 elements but the shape holds 3/,
    );
    await expect(serializeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Uint8Array(8) } })).rejects.toThrow(
      /tensor 'w': data has 8 bytes but 3 F32 elements need 12/,
    );
    await expect(serializeSafetensors({ __metadata__: { dtype: 'F32', shape: [], data: [1] } })).rejects.toThrow(/reserved/);
    await expect(serializeSafetensors({ w: { dtype: 'F99' as 'F32', shape: [], data: [1] } })).rejects.toThrow(/unknown dtype/);
    await expect(serializeSafetensors({ w: { dtype: 'F32', shape: [-1], data: [1] } })).rejects.toThrow(/shape \[-1\]/);
    await expect(serializeSafetensors({ w: { dtype: 'I8', shape: [1], data: [300] } })).rejects.toThrow(/not a valid I8/);
    await expect(
      serializeSafetensors([
        ['w', { dtype: 'F32', shape: [], data: [1] }],
        ['w', { dtype: 'F32', shape: [], data: [2] }],
      ]),
    ).rejects.toThrow(/tensor 'w': duplicate tensor name/);
  });
});

describe('atomic writes', () => {
  it('a failure mid-write leaves the previous file intact and no temp file behind', async () => {
    const path = join(dir, 'atomic.safetensors');
    await writeSafetensors(path, { w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    const before = await readFile(path);
    await expect(
      writeSafetensors(path, {
        a: { dtype: 'F32', shape: [1000], data: new Float32Array(1000) },
        b: {
          dtype: 'F32',
          shape: [2],
          data: () => {
            throw new Error('simulated crash while producing tensor b');
          },
        },
      }),
    ).rejects.toThrow(/simulated crash/);
    expect(await readFile(path)).toEqual(before);
    expect((await readdir(dir)).filter((f) => f.includes('.tmp'))).toEqual([]);
    const file = await SafetensorsFile.open(path);
    expect(Array.from((await file.readTensor('w')).data)).toEqual([1, 2]);
    await file.close();
  });

  it('replaces the file when the write succeeds', async () => {
    const path = join(dir, 'replace.safetensors');
    await writeFile(path, 'old content');
    await writeSafetensors(path, { w: { dtype: 'F32', shape: [1], data: [5] } });
    const file = await SafetensorsFile.open(path);
    expect(Array.from((await file.readTensor('w')).data)).toEqual([5]);
    await file.close();
  });
});

describe('safetensors header validation', () => {
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  async function refused(bytes: Uint8Array, message: RegExp): Promise<SafetensorsError> {
    const err = await open(bytes, 'bad.safetensors').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as Error).message).toMatch(/^bad\.safetensors: /);
    expect((err as Error).message).toMatch(message);
    return err as SafetensorsError;
  }

  it('accepts a well-formed file', async () => {
    const file = await open(rawFile(ok, 8));
    expect(file.tensors).toEqual([{ name: 'w', dtype: 'F32', shape: [2], dataOffsets: [0, 8] }]);
  });

  it('file smaller than 8 bytes', async () => {
    await refused(new Uint8Array(5), /too small for the 8-byte header length/);
  });

  it('header length beyond the file, or absurd', async () => {
    const b = rawFile(ok, 8);
    new DataView(b.buffer).setBigUint64(0, 1000n, true);
    await refused(b, /header length 1000 runs past the end of the \d+-byte file/);
    const huge = new Uint8Array(8 + MAX_HEADER_SIZE + 2);
    new DataView(huge.buffer).setBigUint64(0, BigInt(MAX_HEADER_SIZE + 1), true);
    await refused(huge, /header length 100000001 is absurd/);
  });

  it('header not UTF-8, not JSON, not an object', async () => {
    const b = rawFile(ok, 8);
    b[9] = 0xff;
    await refused(b, /not valid UTF-8/);
    await refused(rawFile(null, 0, '{"w": '), /not valid JSON/);
    await refused(rawFile([1, 2], 0), /not a JSON object/);
  });

  it('__metadata__ must be a string map', async () => {
    await refused(rawFile({ __metadata__: { a: 1 }, ...ok }, 8), /__metadata__\["a"\] is 1, not a string/);
    await refused(rawFile({ __metadata__: 'x', ...ok }, 8), /__metadata__ must be a map/);
    expect((await open(rawFile({ __metadata__: null, ...ok }, 8))).metadata).toEqual({});
  });

  it('entries: not an object, unknown dtype, bad shape, bad offsets', async () => {
    await refused(rawFile({ w: 3 }, 0), /tensor 'w': header entry is not an object/);
    await refused(rawFile({ w: { ...ok.w, dtype: 'F99' } }, 8), /tensor 'w': unknown dtype "F99"/);
    await refused(rawFile({ w: { ...ok.w, dtype: undefined } }, 8), /tensor 'w': unknown dtype undefined/);
    await refused(rawFile({ w: { ...ok.w, shape: [2.5] } }, 8), /tensor 'w': shape \[2\.5\] is not a list/);
    await refused(rawFile({ w: { ...ok.w, shape: 'x' } }, 8), /tensor 'w': shape "x"/);
    await refused(rawFile({ w: { ...ok.w, data_offsets: [8, 0] } }, 8), /tensor 'w': data_offsets \[8,0\] is not/);
    await refused(rawFile({ w: { ...ok.w, data_offsets: [0] } }, 8), /tensor 'w': data_offsets \[0\] is not/);
  });

  it('offsets out of range / truncated data', async () => {
    await refused(rawFile({ w: { ...ok.w, data_offsets: [0, 800] } }, 8), /tensor 'w': data_offsets \[0,800\] run past the end/);
    await refused(rawFile(ok, 6), /tensor 'w': data_offsets \[0,8\] run past the end of the data section \(6 bytes\)/);
  });

  it('overlapping and non-contiguous offsets', async () => {
    const two = (a: number[], b: number[]): unknown => ({
      a: { dtype: 'F32', shape: [2], data_offsets: a },
      b: { dtype: 'F32', shape: [2], data_offsets: b },
    });
    await refused(rawFile(two([0, 8], [4, 12]), 12), /tensor 'b': data_offsets \[4,12\] overlap tensor 'a' at \[0,8\]/);
    await refused(rawFile(two([0, 8], [12, 20]), 20), /tensor 'b': data_offsets \[12,20\] leave a gap after byte 8/);
    await refused(rawFile(two([4, 12], [12, 20]), 20), /tensor 'a': data_offsets \[4,12\] leave a gap after byte 0/);
    // Any order in the header is fine as long as the offsets tile the data.
    const file = await open(rawFile(two([8, 16], [0, 8]), 16));
    expect(file.tensors.map((t) => t.name)).toEqual(['b', 'a']);
  });

  it('shape / dtype / byte size mismatch', async () => {
    await refused(rawFile({ w: { ...ok.w, dtype: 'F16' } }, 8), /tensor 'w': shape \[2\] of F16 needs 4 bytes but data_offsets \[0,8\] hold 8/);
  });

  it('trailing bytes after the last tensor', async () => {
    await refused(rawFile(ok, 12), /cover 8 bytes of data but the file holds 12 after the header \(4 trailing bytes\)/);
  });

  it('parseSafetensorsHeader / readSafetensorsHeader are usable on their own', async () => {
    const bytes = rawFile(ok, 8);
    const h = await readSafetensorsHeader(bytesSource(bytes, 'x'));
    expect(h.dataStart).toBe(8 + h.headerLength);
    expect(() => parseSafetensorsHeader('y.safetensors', new TextEncoder().encode('{}'), 14)).toThrow(
      /y\.safetensors: the tensors cover 0 bytes/,
    );
    expect(parseSafetensorsHeader('y.safetensors', new TextEncoder().encode('{}'), 10).tensors).toEqual([]);
  });
});
