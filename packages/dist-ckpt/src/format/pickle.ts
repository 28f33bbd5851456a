// A restricted unpickler (pickle protocols 0-5, the opcodes torch.save and Python 2/3 pickles use).
//
// Nothing here can run code: the unpickler builds plain JS values, and every GLOBAL / STACK_GLOBAL /
// INST is resolved through `findClass`, which the caller restricts to an allowlist and which refuses
// everything else loudly (the default refuses every global). REDUCE / NEWOBJ / OBJ can only call the
// `PyCallable`s that `findClass` handed out; BUILD only sets attributes on dicts and on the plain records
// (`PyObject`) those callables return. Extension codes and out-of-band buffers are refused.
//
// Opcode reference: CPython Lib/pickletools.py.

import { TorchCheckpointError, UnsafePickleError } from './errors.js';

/** A Python tuple (kept distinct from a list). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** A Python dict or OrderedDict; `attrs` holds what BUILD set on it (e.g. `_metadata`). */
export class PyDict {
  readonly map = new Map<unknown, PyValue>();
  readonly attrs = new Map<string, PyValue>();
  constructor(readonly ordered = false) {}
}

/**
 * An instance rebuilt as plain data: its class name and the fields BUILD set (e.g. an
 * `argparse.Namespace`, which Megatron-LM saves as `args`). Nothing of the class runs.
 */
export class PyObject {
  readonly attrs = new Map<string, PyValue>();
  constructor(readonly qualname: string) {}
}

/** A Python set or frozenset. */
export class PySet {
  constructor(
    readonly items: PyValue[],
    readonly frozen = false,
  ) {}
}

/** A global the allowlist hands out that REDUCE / NEWOBJ may call. */
export class PyCallable {
  constructor(
    readonly qualname: string,
    readonly call: (args: PyValue[]) => PyValue,
  ) {}
}

/** A global the allowlist hands out as a plain marker (e.g. `torch.FloatStorage`); not callable. */
export class PyClassRef {
  constructor(
    readonly qualname: string,
    readonly payload: unknown = undefined,
  ) {}
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PySet
  | PyObject
  | PyCallable
  | PyClassRef
  | { readonly kind: string };

export interface UnpickleOptions {
  /** For error messages. */
  file: string;
  /** Resolves a global; must throw (UnsafePickleError) for anything not allowed. Default: refuse all. */
  findClass?: (module: string, name: string) => PyValue;
  /** BINPERSID / PERSID. Default: refuse. */
  persistentLoad?: (pid: PyValue) => PyValue;
}

/** Thrown when the pickle runs past the end of the given bytes (the caller may retry with more). */
export class PickleTruncatedError extends TorchCheckpointError {}


const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

/**
 * Unpickles one pickle starting at `start` in `bytes`. Returns the value and the offset just past
 * its STOP opcode.
 */
export function unpickle(bytes: Uint8Array, start: number, options: UnpickleOptions): { value: PyValue; end: number } {
  const { file } = options;
  const findClass =
    options.findClass ??
    ((module: string, name: string): PyValue => {
      throw new UnsafePickleError(file, `${module}.${name}`);
    });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = start;
  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();

  const fail = (msg: string): never => {
    throw new TorchCheckpointError(file, `pickle at byte ${pos}: ${msg}`);
  };
  const need = (n: number): void => {
    if (pos + n > bytes.length) {
      throw new PickleTruncatedError(file, `pickle data truncated at byte ${pos} (needs ${n} more bytes)`);
    }
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++];
  };
  const u16 = (): number => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = (): number => {
    need(4);
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} is too large`);
    return Number(v);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const line = (): string => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0) throw new PickleTruncatedError(file, `pickle data truncated at byte ${pos} (unterminated line)`);
    const s = latin1.decode(bytes.subarray(pos, nl));
    pos = nl + 1;
    return s.endsWith('\r') ? s.slice(0, -1) : s;
  };
  const pop = (): PyValue => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) fail('stack underflow');
    return stack.pop() as PyValue;
  };
  const top = (): PyValue => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) fail('no MARK to pop to');
    return stack.splice(m as number);
  };
  const push = (v: PyValue): void => {
    stack.push(v);
  };
  const memoGet = (i: number): PyValue => {
    if (!memo.has(i)) fail(`memo key ${i} is not defined`);
    return memo.get(i) as PyValue;
  };
  const decodeLong = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const parseIntText = (s: string): number | bigint => {
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (!/^[-+]?\d+$/.test(t)) fail(`bad integer literal ${JSON.stringify(s)}`);
    const b = BigInt(t);
    return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  };
  const callable = (f: PyValue, what: string): PyCallable => {
    if (!(f instanceof PyCallable)) fail(`${what} of a value that is not an allowed callable`);
    return f as PyCallable;
  };
  const argsOf = (t: PyValue, what: string): PyValue[] => {
    if (t instanceof PyTuple) return t.items;
    if (Array.isArray(t)) return t;
    return fail(`${what} arguments are not a tuple`);
  };
  const setItems = (d: PyValue, items: PyValue[]): void => {
    if (!(d instanceof PyDict)) fail('SETITEM(S) on a value that is not a dict');
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (d as PyDict).map.set(dictKey(items[i]), items[i + 1]);
  };
  const dictKey = (k: PyValue): unknown => {
    if (k instanceof PyTuple) return k; // compared by identity; torch never keys by tuple
    return k;
  };
  const appendItems = (l: PyValue, items: PyValue[]): void => {
    if (Array.isArray(l)) l.push(...items);
    else if (l instanceof PySet && !l.frozen) l.items.push(...items);
    else fail('APPEND(S) / ADDITEMS on a value that is not a list or set');
  };
  const build = (obj: PyValue, state: PyValue): void => {
    let dictState = state;
    let slotState: PyValue = null;
    if (state instanceof PyTuple && state.items.length === 2) [dictState, slotState] = state.items;
    if (!(obj instanceof PyDict) && !(obj instanceof PyObject)) {
      fail('BUILD is only allowed on dicts (OrderedDict attributes) and plain records (argparse.Namespace fields)');
    }
    for (const s of [dictState, slotState]) {
      if (s === null) continue;
      if (!(s instanceof PyDict)) fail('BUILD state is not a dict');
      for (const [k, v] of (s as PyDict).map) {
        if (typeof k !== 'string') fail('BUILD attribute name is not a string');
        (obj as PyDict | PyObject).attrs.set(k as string, v);
      }
    }
  };

  for (;;) {
    const opPos = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('unsupported pickle protocol');
        break;
      case 0x95: // FRAME: framing is transparent to an in-memory reader
        u64();
        break;
      case 0x2e: {
        // STOP
        const value = pop();
        return { value, end: pos };
      }
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length > 0 && stack.length === marks[marks.length - 1]) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x49: {
        // INT (text); I01 / I00 are booleans
        const s = line();
        if (s === '01') push(true);
        else if (s === '00') push(false);
        else push(parseIntText(s));
        break;
      }
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x4c: // LONG (text)
        push(parseIntText(line()));
        break;
      case 0x8a: // LONG1
        push(decodeLong(take(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) fail('negative LONG4 length');
        push(decodeLong(take(n)));
        break;
      }
      case 0x47: {
        // BINFLOAT (big-endian)
        need(8);
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const v = Number(line());
        push(v);
        break;
      }
      case 0x58: // BINUNICODE
        push(utf8.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8.decode(take(u64())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text)
        push(line().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string, b: string) =>
          String.fromCodePoint(parseInt(a ?? b, 16)),
        ));
        break;
      case 0x54: {
        // BINSTRING (Python 2 str; decoded like torch's encoding='utf-8' would, falling back to latin1)
        const n = i32();
        if (n < 0) fail('negative BINSTRING length');
        push(decodeStr(take(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        push(decodeStr(take(u8())));
        break;
      case 0x53: // STRING (text, a quoted Python literal)
        push(unquote(line(), fail));
        break;
      case 0x42: // BINBYTES
        push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        push(take(u64()).slice());
        break;
      case 0x7d: // EMPTY_DICT
        push(new PyDict());
        break;
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x6c: // LIST
        push(popMark());
        break;
      case 0x29: // EMPTY_TUPLE
        push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b, c]));
        break;
      }
      case 0x8f: // EMPTY_SET
        push(new PySet([]));
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x91: // FROZENSET
        push(new PySet(popMark(), true));
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x70: // PUT (text)
        memo.set(Number(parseIntText(line())), top());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x67: // GET (text)
        push(memoGet(Number(parseIntText(line()))));
        break;
      case 0x68: // BINGET
        push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        push(memoGet(u32()));
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        push(findClass(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL operands are not strings');
        push(findClass(module as string, name as string));
        break;
      }
      case 0x69: {
        // INST: module and name lines, then call the class with the marked items
        const module = line();
        const name = line();
        const cls = findClass(module, name);
        push(callable(cls, 'INST').call(popMark()));
        break;
      }
      case 0x6f: {
        // OBJ
        const items = popMark();
        if (items.length === 0) fail('OBJ without a class');
        push(callable(items[0], 'OBJ').call(items.slice(1)));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const f = pop();
        push(callable(f, 'REDUCE').call(argsOf(args, 'REDUCE')));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = pop();
        push(callable(cls, 'NEWOBJ').call(argsOf(args, 'NEWOBJ')));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX: only without keyword arguments
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof PyDict) || kwargs.map.size > 0) fail('NEWOBJ_EX with keyword arguments');
        push(callable(cls, 'NEWOBJ_EX').call(argsOf(args, 'NEWOBJ_EX')));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        build(top(), state);
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail('persistent ids are not allowed here');
        push(options.persistentLoad!(pid));
        break;
      }
      case 0x50: {
        // PERSID (text)
        const pid = line();
        if (!options.persistentLoad) fail('persistent ids are not allowed here');
        push(options.persistentLoad!(pid));
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84:
        pos = opPos;
        return fail('extension-registry opcodes (EXT1/EXT2/EXT4) are refused');
      case 0x97:
      case 0x98:
        pos = opPos;
        return fail('out-of-band buffers (NEXT_BUFFER / READONLY_BUFFER) are refused');
      default:
        pos = opPos;
        return fail(`unknown or unsupported opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

function decodeStr(b: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return latin1.decode(b);
  }
}

/** A Python 2 `repr()` string literal, as protocol 0's STRING opcode stores it. */
function unquote(s: string, fail: (msg: string) => never): string {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) fail(`bad STRING literal ${s}`);
  const body = s.slice(1, -1);
  const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
  return body.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_m, e: string) =>
    e[0] === 'x' && e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16)) : (simple[e] ?? `\\${e}`),
  );
}
