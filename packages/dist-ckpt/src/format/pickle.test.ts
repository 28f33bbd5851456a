import { existsSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { TorchCheckpointError, UnsafePickleError } from './errors.js';
import { PickleTruncatedError, PyCallable, PyDict, PyObject, PySet, PyTuple, unpickle, type PyValue, type UnpickleOptions } from './pickle.js';
import { hex, PickleWriter } from './test-utils.js';
import { torchFindClass } from './torch.js';

// pickle.dumps(obj, protocol=p) from CPython 3, for
// obj = {'a': 1, 'b': -2, 'c': 300, 'd': 70000, 'e': -(2**40), 'f': 2**70, 'g': 1.5, 'h': 'héllo',
//        'j': [1, 2, (3, 4)], 'k': None, 'l': True, 'm': False, 'n': (), 'o': (1,), 'p': (1, 2, 3, 4),
//        'q': {'x': 'y'}, 'u': 'it\'s "q"\n'}; obj['t'] = obj['j']
const PICKLES: Record<number, string> = {
  0: '286470300a56610a70310a49310a7356620a70320a492d320a7356630a70330a493330300a7356640a70340a4937303030300a7356650a70350a4c2d313039393531313632373737364c0a7356660a70360a4c313138303539313632303731373431313330333432344c0a7356670a70370a46312e350a7356680a70380a5668e96c6c6f0a70390a73566a0a7031300a286c7031310a49310a6149320a612849330a49340a747031320a6173566b0a7031330a4e73566c0a7031340a4930310a73566d0a7031350a4930300a73566e0a7031360a287473566f0a7031370a2849310a747031380a7356700a7031390a2849310a49320a49330a49340a747032300a7356710a7032310a28647032320a56780a7032330a56790a7032340a737356750a7032350a5669742773202271225c75303030610a7032360a7356740a7032370a6731310a732e',
  1: '7d71002858010000006171014b0158010000006271024afeffffff58010000006371034d2c0158010000006471044a7011010058010000006571054c2d313039393531313632373737364c0a58010000006671064c313138303539313632303731373431313330333432344c0a5801000000677107473ff80000000000005801000000687108580600000068c3a96c6c6f710958010000006a710a5d710b284b014b02284b034b0474710c6558010000006b710d4e58010000006c710e4930310a58010000006d710f4930300a58010000006e71102958010000006f7111284b017471125801000000707113284b014b024b034b0474711458010000007171157d711658010000007871175801000000797118735801000000757119580900000069742773202271220a711a580100000074711b680b752e',
  2: '80027d71002858010000006171014b0158010000006271024afeffffff58010000006371034d2c0158010000006471044a7011010058010000006571058a060000000000ff58010000006671068a090000000000000000405801000000677107473ff80000000000005801000000687108580600000068c3a96c6c6f710958010000006a710a5d710b284b014b024b034b0486710c6558010000006b710d4e58010000006c710e8858010000006d710f8958010000006e71102958010000006f71114b018571125801000000707113284b014b024b034b0474711458010000007171157d711658010000007871175801000000797118735801000000757119580900000069742773202271220a711a580100000074711b680b752e',
  4: '800495bb000000000000007d94288c0161944b018c0162944afeffffff8c0163944d2c018c0164944a701101008c0165948a060000000000ff8c0166948a090000000000000000408c016794473ff80000000000008c0168948c0668c3a96c6c6f948c016a945d94284b014b024b034b048694658c016b944e8c016c94888c016d94898c016e94298c016f944b0185948c017094284b014b024b034b0474948c0171947d948c0178948c017994738c0175948c0969742773202271220a948c017494680b752e',
  5: '800595bb000000000000007d94288c0161944b018c0162944afeffffff8c0163944d2c018c0164944a701101008c0165948a060000000000ff8c0166948a090000000000000000408c016794473ff80000000000008c0168948c0668c3a96c6c6f948c016a945d94284b014b024b034b048694658c016b944e8c016c94888c016d94898c016e94298c016f944b0185948c017094284b014b024b034b0474948c0171947d948c0178948c017994738c0175948c0969742773202271220a948c017494680b752e',
};

// pickle.dumps(obj, protocol=2) from CPython 3.11 (torch.save's protocol), for a Megatron-LM-like checkpoint:
// od = OrderedDict([('w', 1)]); od._metadata = OrderedDict([('', {'version': 1})])
// obj = {'args': argparse.Namespace(num_layers=2, tokenizer_type='BertWordPieceLowerCase', lr=1.5e-4, fp16=True,
//        ffn_hidden_size=None), 'sd': od, 'rng': (3, (2**31, 2**32-1, 5), None)}
const MEGATRON_LIKE =
  '80027d71002858040000006172677371016361726770617273650a4e616d6573706163650a7102298171037d710428580a0000006e756d5f6c617965727371054b02580e000000746f6b656e697a65725f747970657106581600000042657274576f726450696563654c6f77657243617365710758020000006c727108473f23a92a30553261580400000066703136710988580f00000066666e5f68696464656e5f73697a65710a4e756258020000007364710b63636f6c6c656374696f6e730a4f726465726564446963740a710c2952710d580100000077710e4b01737d710f58090000005f6d657461646174617110680c29527111580000000071127d7113580700000076657273696f6e71144b01737373625803000000726e6771154b038a0500000080008a05ffffffff004b058771164e877117752e';

/** PyValue -> plain JSON-ish JS for comparisons (tuples tagged). */
function plain(v: PyValue): unknown {
  if (v instanceof PyDict) return Object.fromEntries([...v.map].map(([k, x]) => [String(k), plain(x)]));
  if (v instanceof PyObject) return { [v.qualname]: Object.fromEntries([...v.attrs].map(([k, x]) => [k, plain(x)])) };
  if (v instanceof PyTuple) return { tuple: v.items.map(plain) };
  if (v instanceof PySet) return { set: v.items.map(plain) };
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

const load = (bytes: Uint8Array, options: Partial<UnpickleOptions> = {}): PyValue =>
  unpickle(bytes, 0, { file: 'test.pkl', ...options }).value;

describe('unpickler', () => {
  it.each([0, 1, 2, 4, 5])('decodes a CPython protocol-%i pickle', (protocol) => {
    const value = load(hex(PICKLES[protocol]));
    const list = [1, 2, { tuple: [3, 4] }];
    expect(plain(value)).toEqual({
      a: 1,
      b: -2,
      c: 300,
      d: 70000,
      e: -(2 ** 40),
      f: 2n ** 70n,
      g: 1.5,
      h: 'héllo',
      j: list,
      k: null,
      l: true,
      m: false,
      n: { tuple: [] },
      o: { tuple: [1] },
      p: { tuple: [1, 2, 3, 4] },
      q: { x: 'y' },
      u: 'it\'s "q"\n',
      t: list,
    });
    // The memo shares objects, as Python does.
    const d = value as PyDict;
    expect(d.map.get('t')).toBe(d.map.get('j'));
  });

  it('handles sets, frozensets and bytes (protocol 4)', () => {
    // pickle.dumps({'r': {1, 2}, 's': frozenset([3]), 'i': b'\x00\x01'}, protocol=4)
    const v = load(hex('80049523000000000000007d94288c0172948f94284b014b02908c017394284b0391948c0169944302000194752e'));
    expect(plain(v)).toEqual({ r: { set: [1, 2] }, s: { set: [3] }, i: new Uint8Array([0, 1]) });
  });

  it('returns the end offset so pickles can be read back to back', () => {
    const a = new PickleWriter().proto().int(1).stop().bytes();
    const b = new PickleWriter().proto().str('x').stop().bytes();
    const both = new Uint8Array([...a, ...b]);
    const first = unpickle(both, 0, { file: 'f' });
    expect(first).toEqual({ value: 1, end: a.length });
    expect(unpickle(both, first.end, { file: 'f' }).value).toBe('x');
  });

  it('refuses every global by default, and torch refuses all but its allowlist', () => {
    const evil = (module: string, name: string): Uint8Array =>
      new PickleWriter().proto().global(module, name).str('touch /tmp/lm-pwned').raw(0x85).reduce().stop().bytes();
    expect(() => load(evil('os', 'system'))).toThrow(UnsafePickleError);
    for (const [module, name] of [
      ['os', 'system'],
      ['posix', 'system'],
      ['nt', 'system'],
      ['builtins', 'eval'],
      ['builtins', 'exec'],
      ['__builtin__', 'eval'],
      ['builtins', 'getattr'],
      ['builtins', 'set'],
      ['subprocess', 'Popen'],
      ['subprocess', 'check_output'],
      ['torch', 'load'],
      ['torch.serialization', 'load'],
      ['torch._utils', '_rebuild_device_tensor_from_numpy'],
      ['numpy.core.multiarray', '_reconstruct'],
      ['collections', 'defaultdict'],
      ['torch', 'FloatStorage.__class__'],
    ]) {
      let err: unknown;
      try {
        load(evil(module, name), { findClass: torchFindClass('evil.bin') });
      } catch (e) {
        err = e;
      }
      expect(err, `${module}.${name}`).toBeInstanceOf(UnsafePickleError);
      expect((err as UnsafePickleError).global).toBe(`${module}.${name}`);
      expect((err as Error).message).toMatch(new RegExp(`^evil\\.bin: refused pickle global '${module}\\.${name.replace(/[.]/g, '\\.')}'`));
    }
    // STACK_GLOBAL and INST go through the same gate.
    const stackGlobal = new PickleWriter().proto(4).raw(0x8c, 2, ...new TextEncoder().encode('os')).raw(0x8c, 6, ...new TextEncoder().encode('system')).raw(0x93).stop().bytes();
    expect(() => load(stackGlobal, { findClass: torchFindClass('f') })).toThrow(/refused pickle global 'os\.system'/);
    const inst = new Uint8Array([0x28, ...new TextEncoder().encode('ios\nsystem\n'), 0x2e]);
    expect(() => load(inst, { findClass: torchFindClass('f') })).toThrow(/refused pickle global 'os\.system'/);
    expect(existsSync('/tmp/lm-pwned')).toBe(false);
  });

  it("rebuilds a training checkpoint's plain data: Namespace fields, OrderedDict _metadata, ints >= 2^31", () => {
    const value = load(hex(MEGATRON_LIKE), { findClass: torchFindClass('model_optim_rng.pt') }) as PyDict;
    expect(plain(value)).toEqual({
      args: {
        'argparse.Namespace': { num_layers: 2, tokenizer_type: 'BertWordPieceLowerCase', lr: 1.5e-4, fp16: true, ffn_hidden_size: null },
      },
      sd: { w: 1 },
      rng: { tuple: [3, { tuple: [2 ** 31, 2 ** 32 - 1, 5] }, null] },
    });
    expect(value.map.get('args')).toBeInstanceOf(PyObject);
    const sd = value.map.get('sd') as PyDict;
    expect(sd.ordered).toBe(true);
    expect(plain(sd.attrs.get('_metadata') as PyValue)).toEqual({ '': { version: 1 } });
  });

  it('reads torch dtype globals as their names, and refuses other torch attributes', () => {
    const dtype = (name: string): Uint8Array => new PickleWriter().proto().global('torch', name).stop().bytes();
    expect(load(dtype('float16'), { findClass: torchFindClass('f') })).toBe('torch.float16');
    expect(load(dtype('bfloat16'), { findClass: torchFindClass('f') })).toBe('torch.bfloat16');
    for (const name of ['float', 'half', 'device', 'Tensor', 'float16.__class__', 'from_numpy']) {
      expect(() => load(dtype(name), { findClass: torchFindClass('f') }), name).toThrow(/refused pickle global 'torch\./);
    }
  });

  it('gives a Namespace no arguments and no behaviour: a record BUILD fills, nothing else', () => {
    const namespace = () => new PickleWriter().proto().global('argparse', 'Namespace');
    // Namespace('x') (REDUCE with arguments) is not how pickle rebuilds one; refused.
    const withArgs = namespace().str('touch /tmp/lm-pwned').raw(0x85).reduce().stop().bytes();
    expect(() => load(withArgs, { findClass: torchFindClass('f') })).toThrow(/argparse\.Namespace created with 1 arguments/);
    // BUILD state must be a dict of string names.
    const badState = namespace().raw(0x29, 0x81).ints([1]).build().stop().bytes();
    expect(() => load(badState, { findClass: torchFindClass('f') })).toThrow(/BUILD state is not a dict/);
    // A record is not callable: REDUCE on it is refused.
    const callRecord = namespace().raw(0x29, 0x81).str('x').raw(0x85).reduce().stop().bytes();
    expect(() => load(callRecord, { findClass: torchFindClass('f') })).toThrow(/REDUCE of a value that is not an allowed callable/);
    for (const [module, name] of [['argparse', 'ArgumentParser'], ['argparse', '_sys'], ['copyreg', '_reconstructor'], ['builtins', 'object']]) {
      expect(() => load(new PickleWriter().proto().global(module, name).stop().bytes(), { findClass: torchFindClass('f') })).toThrow(UnsafePickleError);
    }
    expect(existsSync('/tmp/lm-pwned')).toBe(false);
  });

  it('only calls the callables the allowlist handed out', () => {
    // REDUCE on a string, BUILD on a list, persistent ids without a loader.
    const reduceStr = new PickleWriter().proto().str('os.system').str('x').raw(0x85).reduce().stop().bytes();
    expect(() => load(reduceStr)).toThrow(/REDUCE of a value that is not an allowed callable/);
    const buildList = new PickleWriter().proto().emptyList().emptyDict().build().stop().bytes();
    expect(() => load(buildList)).toThrow(/BUILD is only allowed on dicts/);
    const persid = new PickleWriter().proto().str('x').binpersid().stop().bytes();
    expect(() => load(persid)).toThrow(/persistent ids are not allowed/);
    const calls: PyValue[][] = [];
    const ok = new PickleWriter().proto().global('m', 'f').ints([1, 2]).reduce().stop().bytes();
    const v = load(ok, {
      findClass: () =>
        new PyCallable('m.f', (args) => {
          calls.push(args);
          return 'called';
        }),
    });
    expect(v).toBe('called');
    expect(calls).toEqual([[1, 2]]);
  });

  it('refuses extension codes, out-of-band buffers and unknown opcodes', () => {
    expect(() => load(new Uint8Array([0x80, 2, 0x82, 1, 0x2e]))).toThrow(/EXT1\/EXT2\/EXT4/);
    expect(() => load(new Uint8Array([0x80, 5, 0x97, 0x2e]))).toThrow(/out-of-band buffers/);
    expect(() => load(new Uint8Array([0x80, 2, 0xff, 0x2e]))).toThrow(/unknown or unsupported opcode 0xff/);
    expect(() => load(new Uint8Array([0x80, 6, 0x2e]))).toThrow(/unsupported pickle protocol/);
  });

  it('reports malformed streams', () => {
    expect(() => load(new Uint8Array([0x80, 2, 0x58, 10, 0, 0, 0, 0x61]))).toThrow(PickleTruncatedError);
    expect(() => load(new Uint8Array([0x80, 2, 0x4b]))).toThrow(/truncated/);
    expect(() => load(new Uint8Array([0x80, 2, 0x2e]))).toThrow(/stack underflow/);
    expect(() => load(new Uint8Array([0x80, 2, 0x68, 5, 0x2e]))).toThrow(/memo key 5 is not defined/);
    expect(() => load(new Uint8Array([0x80, 2, 0x74, 0x2e]))).toThrow(/no MARK/);
    expect(() => load(new Uint8Array([0x80, 2, 0x5d, 0x4b, 1, 0x4b, 2, 0x73, 0x2e]))).toThrow(/not a dict/);
    expect(() => load(new Uint8Array([0x80, 2, 0x4b, 1, 0x2e]), {})).not.toThrow();
    const err = (() => {
      try {
        load(new Uint8Array([0x80, 2, 0x2e]));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(TorchCheckpointError);
    expect((err as Error).message).toMatch(/^test\.pkl: pickle at byte \d+/);
  });

  it('decodes LONG1 / LONG4 / BININT edge values', () => {
    const w = new PickleWriter().proto().mark().int(-1).int(2 ** 31 - 1).int(-(2 ** 31)).int(2 ** 40).int(-(2 ** 40));
    w.raw(0x8a, 0).raw(0x8a, 1, 0xff).raw(0x8b, 2, 0, 0, 0, 0x00, 0x80).tuple().stop();
    expect(plain(load(w.bytes()))).toEqual({ tuple: [-1, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, -(2 ** 40), 0, -1, -32768] });
  });
});
