import { existsSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { TorchCheckpointError, UnsafePickleError } from './errors.js';
import { PickleTruncatedError, PyCallable, PyDict, PySet, PyTuple, unpickle, type PyValue, type UnpickleOptions } from './pickle.js';
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

/** PyValue -> plain JSON-ish JS for comparisons (tuples tagged). */
function plain(v: PyValue): unknown {
  if (v instanceof PyDict) return Object.fromEntries([...v.map].map(([k, x]) => [String(k), plain(x)]));
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
