import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { bytesSource } from './byte-source.js';
import { loadStateDict, openCheckpoint } from './checkpoint.js';
import type { DType } from './dtypes.js';
import { TorchCheckpointError } from './errors.js';
import { PyTuple } from './pickle.js';
import { findIoFixtures } from './test-utils.js';
import { TorchCheckpoint } from './torch.js';
import { pyFloat, serializeTorchCheckpoint, torchArchiveName, writeTorchCheckpoint, type TorchSaveValue } from './torch-writer.js';
import { ZipReader } from './zip.js';

const dir = mkdtempSync(join(tmpdir(), 'torch-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function hasPython(): boolean {
  return spawnSync('python3', ['-c', 'import pickletools, zipfile'], { stdio: 'ignore' }).status === 0;
}

/** One tensor of each writable dtype, with values that exercise the edges of the type. */
const everyDType: Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView | number[] }> = {
  f32: { dtype: 'F32', shape: [2, 3], data: new Float32Array([1.5, -2, 3.25, 0, -0, 1e30]) },
  f16: { dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0x7bff]) },
  bf16: { dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f80, 0xc2f7]) },
  f64: { dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -1e300]) },
  i64: { dtype: 'I64', shape: [3], data: new BigInt64Array([-(2n ** 62n), 0n, 2n ** 40n]) },
  i32: { dtype: 'I32', shape: [2, 1], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1]) },
  i16: { dtype: 'I16', shape: [2], data: new Int16Array([-32768, 32767]) },
  i8: { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]) },
  u8: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
  bool: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
  scalar: { dtype: 'F32', shape: [], data: new Float32Array([42]) },
  empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
};

describe('writeTorchCheckpoint', () => {
  it('round-trips nested dicts of every dtype, 0-d and empty tensors through the reader', async () => {
    const file = join(dir, 'roundtrip.pt');
    const obj = { model: { inner: new Map(Object.entries(everyDType)) }, top: everyDType.f32, step: 7 };
    await writeTorchCheckpoint(file, obj);
    const ckpt = await openCheckpoint(file);
    expect(ckpt.format).toBe('torch-zip');
    expect(ckpt.tensors.map((t) => t.name)).toEqual([...Object.keys(everyDType).map((k) => `model.inner.${k}`), 'top']);
    for (const [k, t] of Object.entries(everyDType)) {
      const got = await ckpt.readTensor(`model.inner.${k}`, { as: 'native' });
      expect(got.dtype, k).toBe(t.dtype);
      expect(got.shape, k).toEqual(t.shape);
      expect(Array.from(got.data as ArrayLike<unknown>), k).toEqual(Array.from(t.data as ArrayLike<unknown>));
    }
    await ckpt.close();
  });

  it('writes a Megatron release checkpoint with archive folder = file stem and 64-byte aligned records', async () => {
    const path = join(dir, 'release', 'mp_rank_00');
    mkdirSync(path, { recursive: true });
    const file = join(path, 'model_optim_rng.pt');
    const weight = { dtype: 'F32' as const, shape: [4, 2], data: new Float32Array(8).map((_, i) => i) };
    await writeTorchCheckpoint(file, {
      model: { language_model: { embedding: { word_embeddings: { weight } } } },
      checkpoint_version: pyFloat(3),
    });
    const zip = await ZipReader.open(bytesSource(readFileSync(file), file));
    expect(zip.names).toEqual([
      'model_optim_rng/data.pkl',
      'model_optim_rng/byteorder',
      'model_optim_rng/data/0',
      'model_optim_rng/version',
    ]);
    for (const name of zip.names) {
      const entry = zip.entry(name)!;
      expect(entry.method).toBe(0);
      expect((await zip.dataOffset(entry)) % 64, name).toBe(0);
      await zip.readChecked(entry); // CRC-32 matches
    }
    expect(new TextDecoder().decode(await zip.read(zip.entry('model_optim_rng/version')!))).toBe('3\n');
    expect(new TextDecoder().decode(await zip.read(zip.entry('model_optim_rng/byteorder')!))).toBe('little');
    const sd = await loadStateDict(file);
    expect([...sd.keys()]).toEqual(['model.language_model.embedding.word_embeddings.weight']);
    expect(Array.from(sd.get('model.language_model.embedding.word_embeddings.weight')!.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(torchArchiveName('/a/b/pytorch_model.bin')).toBe('pytorch_model');
    expect(torchArchiveName('x.tar.pt')).toBe('x.tar');
  });

  it('pickles the first tensors byte for byte as torch 1.13 did (shared fixture)', async () => {
    const fixtures = findIoFixtures();
    if (!fixtures) return;
    const ref = await ZipReader.open(bytesSource(readFileSync(join(fixtures, 'pytorch_model.bin'))));
    const refPkl = await ref.read(ref.entry('pytorch_model/data.pkl')!);
    const f32 = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    const ours = await serializeTorchCheckpoint({
      'embeddings.word_embeddings.weight': f32([11, 8]),
      'encoder.layer.0.attention.self.query.weight': f32([8, 8]),
      'encoder.layer.0.attention.self.query.bias': f32([8]),
    });
    const zip = await ZipReader.open(bytesSource(ours));
    expect(zip.names[0]).toBe('archive/data.pkl');
    const pkl = await zip.read(zip.entry('archive/data.pkl')!);
    // Up to and including the third tensor's REDUCE + BINPUT (offset 397), then SETITEMS, STOP.
    expect(Array.from(pkl)).toEqual([...Array.from(refPkl.subarray(0, 397)), 0x75, 0x2e]);
  });

  it('shares one storage between tensors that share a data object (tied weights)', async () => {
    const data = new Float32Array([1, 2, 3, 4]);
    const bytes = await serializeTorchCheckpoint(
      new Map([
        ['a.weight', { dtype: 'F32' as const, shape: [2, 2], data }],
        ['b.weight', { dtype: 'F32' as const, shape: [2, 2], data }],
        ['c', { dtype: 'F32' as const, shape: [4], data: new Float32Array(4) }],
      ]),
    );
    const zip = await ZipReader.open(bytesSource(bytes));
    expect(zip.names.filter((n) => n.includes('/data/'))).toEqual(['archive/data/0', 'archive/data/1']);
    const ckpt = await TorchCheckpoint.open(bytesSource(bytes));
    expect(Array.from((await ckpt.readTensor('b.weight')).data)).toEqual([1, 2, 3, 4]);
  });

  it('writes storage records in sorted key order, as torch does', async () => {
    const obj: Record<string, TorchSaveValue> = {};
    for (let i = 0; i < 12; i++) obj[`t${i}`] = { dtype: 'I32', shape: [1], data: [i] };
    const zip = await ZipReader.open(bytesSource(await serializeTorchCheckpoint(obj)));
    expect(zip.names.filter((n) => n.includes('/data/')).map((n) => n.split('/').pop())).toEqual(
      ['0', '1', '10', '11', '2', '3', '4', '5', '6', '7', '8', '9'],
    );
    const sd = await loadStateDict(bytesSource(await serializeTorchCheckpoint(obj), 'x.bin'));
    expect(Array.from(sd.get('t10')!.data)).toEqual([10]);
  });

  it('is atomic: a failing lazy tensor leaves the previous file intact and no temporary file', async () => {
    const sub = join(dir, 'atomic');
    mkdirSync(sub);
    const file = join(sub, 'model.pt');
    await writeTorchCheckpoint(file, { w: { dtype: 'F32', shape: [1], data: [1] } });
    const before = readFileSync(file);
    await expect(
      writeTorchCheckpoint(file, {
        w: { dtype: 'F32', shape: [1], data: () => Promise.reject(new Error('device lost')) },
      }),
    ).rejects.toThrow('device lost');
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(readdirSync(sub)).toEqual(['model.pt']);
  });

  it('refuses values it cannot pickle, naming the path', async () => {
    await expect(serializeTorchCheckpoint({ a: { b: (() => 1) as unknown as TorchSaveValue } })).rejects.toThrow(
      "<memory>: at 'a.b': cannot pickle a function",
    );
    await expect(serializeTorchCheckpoint({ a: new Date() as unknown as TorchSaveValue })).rejects.toThrow(
      'cannot pickle an instance of Date',
    );
    await expect(serializeTorchCheckpoint({ a: new Float32Array(2) as unknown as TorchSaveValue })).rejects.toThrow(
      'wrap them as a tensor',
    );
    await expect(serializeTorchCheckpoint({ w: { dtype: 'U32', shape: [1], data: [1] } })).rejects.toThrow(
      TorchCheckpointError,
    );
    await expect(serializeTorchCheckpoint({ w: { dtype: 'F32', shape: [3], data: [1] } })).rejects.toThrow(
      "tensor 'w': data has 1 elements but the shape holds 3",
    );
    await expect(serializeTorchCheckpoint({}, { archiveName: 'a/b' })).rejects.toThrow('without slashes');
  });

  it.skipIf(!hasPython())('is a valid zip and pickle to CPython (zipfile, pickletools.dis, a restricted Unpickler)', async () => {
    const file = join(dir, 'model_optim_rng.pt');
    const big = new Float32Array(70_000).map((_, i) => i); // > 65535 bytes: a multi-chunk record
    const keys: Record<string, TorchSaveValue> = {};
    for (let i = 0; i < 1005; i++) keys[`k${i}`] = i; // more than one SETITEMS batch
    await writeTorchCheckpoint(file, {
      model: {
        language_model: new Map<string, TorchSaveValue>([
          ['w', { dtype: 'F32', shape: [2, 35_000], data: big }],
          ['b', { dtype: 'BF16', shape: [], data: new Uint16Array([0x3f80]) }],
          ['ids', { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, -2n, 3n]) }],
          ['mask', { dtype: 'BOOL', shape: [0], data: new Uint8Array(0) }],
        ]),
      },
      checkpoint_version: pyFloat(3),
      ints: [0, 255, 256, 65535, 65536, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 53 - 1, -(2 ** 40)],
      big: [2n ** 64n, -(2n ** 63n), 127n, 128n, -128n, -129n],
      floats: [0.5, -1e-300, Infinity],
      misc: [true, false, null, 'héllo ✓', new PyTuple(['a', 1, 2, 3, 4]), new PyTuple([]), new PyTuple([1])],
      byint: new Map<number, TorchSaveValue>([
        [0, 'zero'],
        [70000, 'big'],
      ]),
      keys,
    });
    const script = String.raw`
import json, pickle, pickletools, sys, zipfile, io, collections
path = sys.argv[1]
z = zipfile.ZipFile(path)
assert z.testzip() is None, 'bad CRC'
prefix = 'model_optim_rng/'
assert z.namelist()[0] == prefix + 'data.pkl', z.namelist()
raw = open(path, 'rb').read()
for info in z.infolist():
    assert info.compress_type == zipfile.ZIP_STORED
    name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], 'little')
    extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], 'little')
    assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename
pkl = z.read(prefix + 'data.pkl')
out = io.StringIO()
pickletools.dis(pkl, out=out)
text = out.getvalue()
assert 'highest protocol among opcodes = 2' in text, text[-200:]
class Storage:
    def __init__(self, name): self.name = name
class Obj(dict): pass
class U(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ('collections', 'OrderedDict'): return collections.OrderedDict
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return lambda storage, offset, size, stride, rg, hooks: Obj({
                'tensor': storage, 'offset': offset, 'size': list(size), 'stride': list(stride),
                'requires_grad': rg, 'hooks': type(hooks).__name__})
        if module == 'torch' and name.endswith('Storage'): return Storage(name)
        raise pickle.UnpicklingError(module + '.' + name)
    def persistent_load(self, pid):
        tag, cls, key, loc, numel = pid
        assert tag == 'storage' and loc == 'cpu'
        data = z.read(prefix + 'data/' + key)
        return Obj({'type': cls.name, 'key': key, 'numel': numel, 'nbytes': len(data)})
obj = U(io.BytesIO(pkl)).load()
def conv(v):
    if isinstance(v, Obj): return {k: conv(x) for k, x in v.items()}
    if isinstance(v, collections.OrderedDict): return {'OrderedDict': [[conv(k), conv(x)] for k, x in v.items()]}
    if isinstance(v, dict): return {'dict': [[conv(k), conv(x)] for k, x in v.items()]}
    if isinstance(v, tuple): return {'tuple': [conv(x) for x in v]}
    if isinstance(v, list): return [conv(x) for x in v]
    if isinstance(v, float): return {'float': repr(v)}
    if isinstance(v, int) and not isinstance(v, bool): return {'int': str(v)}
    return v
print(json.dumps(conv(obj)))
`;
    writeFileSync(join(dir, 'check.py'), script);
    const r = spawnSync('python3', [join(dir, 'check.py'), file], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const obj = JSON.parse(r.stdout) as { dict: [unknown, unknown][] };
    const top = new Map(obj.dict.map(([k, v]) => [k as string, v]));
    const int = (v: number | bigint) => ({ int: String(v) });
    expect(top.get('checkpoint_version')).toEqual({ float: '3.0' });
    expect(top.get('ints')).toEqual([0, 255, 256, 65535, 65536, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 53 - 1, -(2 ** 40)].map(int));
    expect(top.get('big')).toEqual([2n ** 64n, -(2n ** 63n), 127n, 128n, -128n, -129n].map(int));
    expect(top.get('floats')).toEqual([{ float: '0.5' }, { float: '-1e-300' }, { float: 'inf' }]);
    expect(top.get('misc')).toEqual([
      true,
      false,
      null,
      'héllo ✓',
      { tuple: ['a', int(1), int(2), int(3), int(4)] },
      { tuple: [] },
      { tuple: [int(1)] },
    ]);
    expect(top.get('byint')).toEqual({ OrderedDict: [[int(0), 'zero'], [int(70000), 'big']] });
    expect((top.get('keys') as { dict: unknown[] }).dict).toHaveLength(1005);
    const model = top.get('model') as { dict: [string, { OrderedDict: [string, unknown][] }][] };
    expect(model.dict[0][0]).toBe('language_model');
    const lm = new Map(model.dict[0][1].OrderedDict);
    expect(lm.get('w')).toEqual({
      tensor: { type: 'FloatStorage', key: '0', numel: int(70_000), nbytes: int(280_000) },
      offset: int(0),
      size: [int(2), int(35_000)],
      stride: [int(35_000), int(1)],
      requires_grad: false,
      hooks: 'OrderedDict',
    });
    expect(lm.get('b')).toEqual({
      tensor: { type: 'BFloat16Storage', key: '1', numel: int(1), nbytes: int(2) },
      offset: int(0),
      size: [],
      stride: [],
      requires_grad: false,
      hooks: 'OrderedDict',
    });
    expect((lm.get('ids') as { tensor: unknown }).tensor).toEqual({ type: 'LongStorage', key: '2', numel: int(3), nbytes: int(24) });
    expect((lm.get('mask') as { tensor: unknown }).tensor).toEqual({ type: 'BoolStorage', key: '3', numel: int(0), nbytes: int(0) });
    // And our own reader agrees.
    const sd = await loadStateDict(file, { as: 'native' });
    expect(Array.from(sd.get('model.language_model.w')!.data as Float32Array).slice(-2)).toEqual([69_998, 69_999]);
  });
});
