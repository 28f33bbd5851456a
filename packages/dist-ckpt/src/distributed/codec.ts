// JSON with the few non-JSON values checkpoint state holds: bigints (step counters past 2^53), typed
// arrays (RNG states), Maps, non-finite floats and undefined-free objects. Tagged as one-key objects
// (`{"$bigint": "123"}`); a plain object whose only key starts with '$' is escaped as `{"$object": ...}`.

const TYPED: Record<string, { new (buffer: ArrayBuffer): ArrayBufferView & ArrayLike<unknown> }> = {
  Float32Array,
  Float64Array,
  Int8Array,
  Int16Array,
  Int32Array,
  Uint8Array,
  Uint16Array,
  Uint32Array,
  BigInt64Array,
  BigUint64Array,
};

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function encodeValue(v: unknown, path = ''): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : { $float: String(v) };
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    const name = v.constructor.name;
    if (!TYPED[name]) throw new TypeError(`cannot store a ${name} at '${path}'`);
    return { $typed: name, base64: toBase64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) };
  }
  if (v instanceof Map) return { $map: [...v].map(([k, x], i) => [encodeValue(k, `${path}[${i}]`), encodeValue(x, `${path}.${String(k)}`)]) };
  if (Array.isArray(v)) return v.map((x, i) => encodeValue(x, `${path}.${i}`));
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) throw new TypeError(`cannot store an instance of ${(v as object).constructor?.name} at '${path}'`);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x !== undefined) out[k] = encodeValue(x, path ? `${path}.${k}` : k);
    }
    const keys = Object.keys(out);
    return keys.length === 1 && keys[0].startsWith('$') ? { $object: out } : out;
  }
  throw new TypeError(`cannot store a ${typeof v} at '${path || '<root>'}'`);
}

export function decodeValue(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(decodeValue);
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && typeof o.$float === 'string') return Number(o.$float);
  if (keys.length === 1 && typeof o.$bigint === 'string') return BigInt(o.$bigint);
  if (keys.length === 1 && Array.isArray(o.$map)) {
    return new Map((o.$map as unknown[][]).map(([k, x]) => [decodeValue(k), decodeValue(x)]));
  }
  if (keys.length === 1 && typeof o.$object === 'object' && o.$object !== null) {
    return Object.fromEntries(Object.entries(o.$object as Record<string, unknown>).map(([k, x]) => [k, decodeValue(x)]));
  }
  if (keys.length === 2 && typeof o.$typed === 'string' && typeof o.base64 === 'string') {
    const Ctor = TYPED[o.$typed];
    if (!Ctor) throw new TypeError(`unknown typed array '${o.$typed}'`);
    const bytes = fromBase64(o.base64);
    return new Ctor(bytes.buffer as ArrayBuffer);
  }
  return Object.fromEntries(keys.map((k) => [k, decodeValue(o[k])]));
}
