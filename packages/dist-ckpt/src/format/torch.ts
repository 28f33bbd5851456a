// PyTorch checkpoints (`pytorch_model.bin`, `.pt`, `.pth`), both containers torch.save writes:
//
// - zip (torch >= 1.6): `<archive>/data.pkl` (the pickled object), `<archive>/data/<key>` (one STORED
//   entry per storage, 64-byte aligned), `<archive>/version`, optionally `<archive>/byteorder`;
// - legacy: five pickles back to back (magic number, protocol version, sys info, the object, the
//   sorted storage keys), then for each key an int64 element count and the raw storage bytes.
//
// In both, the object's tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
// ...)` calls whose storage is a persistent id. We unpickle with an allowlist of exactly those globals
// (see torchFindClass), record each tensor as a view (storage, offset, size, stride), and read the
// data later, gathering strided views into contiguous row-major bytes. What a training checkpoint keeps
// beside its tensors (Megatron-LM's `args` Namespace, `checkpoint_version`, rng states) is rebuilt as
// plain data and kept in `TorchCheckpoint.root`.

import { bytesSource, type ByteSource } from './byte-source.js';
import { byteswapInPlace, convertBytes, DTYPE_SIZE, numel, type DType, type ReadAs } from './dtypes.js';
import { TensorNotFoundError, TorchCheckpointError, UnsafePickleError } from './errors.js';
import {
  PickleTruncatedError,
  PyCallable,
  PyClassRef,
  PyDict,
  PyObject,
  PyTuple,
  unpickle,
  type PyValue,
} from './pickle.js';
import type { Checkpoint, DataFor, ReadTensorOptions, TensorData, TensorInfo } from './types.js';
import { ZipReader, type ZipEntry } from './zip.js';

/** `torch.<X>Storage` -> dtype. */
export const TORCH_STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/**
 * `torch.<name>` dtypes, which pickle as globals (`args.params_dtype` in a Megatron-LM checkpoint). Each
 * comes back as its name, `'torch.float16'`, as `str(torch.float16)` prints it.
 */
export const TORCH_DTYPE_NAMES: ReadonlySet<string> = new Set([
  'float16', 'float32', 'float64', 'bfloat16', 'complex32', 'complex64', 'complex128',
  'uint8', 'uint16', 'uint32', 'uint64', 'int8', 'int16', 'int32', 'int64', 'bool',
  'qint8', 'quint8', 'qint32', 'quint4x2', 'quint2x4', 'float8_e4m3fn', 'float8_e5m2', 'float8_e4m3fnuz', 'float8_e5m2fnuz',
]);

/** Magic number of the legacy format (torch/serialization.py MAGIC_NUMBER). */
export const TORCH_LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const TORCH_LEGACY_PROTOCOL = 1001;

interface StorageRef {
  readonly kind: 'torch-storage';
  readonly key: string;
  readonly dtype: DType;
  /** Elements in this storage (a legacy view storage: in the view). */
  readonly numel: number;
  /** Legacy storage views: element offset of the view within the root storage `key`. */
  readonly viewOffset: number;
}

/** A tensor inside `TorchCheckpoint.root`: read it by its dotted path (see `isTorchTensorRef`). */
export interface TorchTensorRef {
  readonly kind: 'torch-tensor';
  readonly storage: StorageRef;
  readonly offset: number;
  readonly shape: number[];
  readonly stride: number[];
}

function isStorage(v: PyValue): v is StorageRef {
  return typeof v === 'object' && v !== null && (v as { kind?: string }).kind === 'torch-storage';
}

type TensorRef = TorchTensorRef;

/** Whether a value of `TorchCheckpoint.root` is a tensor (read it with `readTensor(<dotted path>)`). */
export function isTorchTensorRef(v: PyValue): v is TorchTensorRef {
  return typeof v === 'object' && v !== null && (v as { kind?: string }).kind === 'torch-tensor';
}

function intList(v: PyValue, file: string, what: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : undefined;
  if (!items || !items.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
    throw new TorchCheckpointError(file, `${what} is not a tuple of non-negative integers`);
  }
  return items as number[];
}

function rebuildTensor(file: string, fn: string, args: PyValue[], minArgs: number): TensorRef {
  if (args.length < minArgs) throw new TorchCheckpointError(file, `${fn} called with ${args.length} arguments`);
  const [storage, offset, size, stride] = args;
  if (!isStorage(storage)) throw new TorchCheckpointError(file, `${fn}: first argument is not a storage`);
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new TorchCheckpointError(file, `${fn}: storage offset ${String(offset)} is not a non-negative integer`);
  }
  const shape = intList(size, file, `${fn}: size`);
  const strides = intList(stride, file, `${fn}: stride`);
  if (shape.length !== strides.length) {
    throw new TorchCheckpointError(file, `${fn}: size has ${shape.length} dims but stride has ${strides.length}`);
  }
  return { kind: 'torch-tensor', storage, offset, shape, stride: strides };
}

/**
 * The pickle globals a torch.save'd state dict or training checkpoint needs, and nothing else: the
 * tensor rebuilders, storage types, `collections.OrderedDict`, torch dtypes (as their names) and
 * `argparse.Namespace` (as a `PyObject` record of its fields; nothing of argparse runs). Every other
 * global (os.system, builtins.eval, posix.system, subprocess.*, numpy reconstructors, ...) is refused
 * with an UnsafePickleError naming the file and the global.
 */
export function torchFindClass(file: string): (module: string, name: string) => PyValue {
  return (module, name) => {
    const qualname = `${module}.${name}`;
    if (module === 'collections' && name === 'OrderedDict') {
      return new PyCallable(qualname, (args) => {
        const d = new PyDict(true);
        const init = args[0];
        if (args.length > 1) throw new TorchCheckpointError(file, 'OrderedDict called with more than one argument');
        if (init !== undefined && init !== null) {
          const pairs = init instanceof PyTuple ? init.items : Array.isArray(init) ? init : undefined;
          if (!pairs) throw new TorchCheckpointError(file, 'OrderedDict initializer is not a list of pairs');
          for (const p of pairs) {
            const kv = p instanceof PyTuple ? p.items : Array.isArray(p) ? p : undefined;
            if (!kv || kv.length !== 2) throw new TorchCheckpointError(file, 'OrderedDict initializer item is not a pair');
            d.map.set(kv[0], kv[1]);
          }
        }
        return d;
      });
    }
    if (module === 'torch._utils') {
      switch (name) {
        case '_rebuild_tensor_v2': // (storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
          return new PyCallable(qualname, (args) => rebuildTensor(file, name, args, 4));
        case '_rebuild_tensor': // (storage, offset, size, stride)
          return new PyCallable(qualname, (args) => rebuildTensor(file, name, args, 4));
        case '_rebuild_parameter': // (data, requires_grad, backward_hooks)
        case '_rebuild_parameter_with_state': // (data, requires_grad, backward_hooks, state)
          return new PyCallable(qualname, (args) => {
            if (!isTorchTensorRef(args[0])) throw new TorchCheckpointError(file, `${name}: data is not a tensor`);
            return args[0];
          });
      }
    }
    if (module === 'torch' && Object.prototype.hasOwnProperty.call(TORCH_STORAGE_DTYPES, name)) {
      return new PyClassRef(qualname, TORCH_STORAGE_DTYPES[name]);
    }
    if (module === 'torch' && TORCH_DTYPE_NAMES.has(name)) return qualname;
    if (module === 'argparse' && name === 'Namespace') {
      // Pickled as NEWOBJ(Namespace, ()) then BUILD(fields): an empty record that BUILD fills.
      return new PyCallable(qualname, (args) => {
        if (args.length > 0) throw new TorchCheckpointError(file, `${qualname} created with ${args.length} arguments (expected none)`);
        return new PyObject(qualname);
      });
    }
    throw new UnsafePickleError(file, qualname);
  };
}

function storageDType(file: string, type: PyValue): DType {
  if (!(type instanceof PyClassRef) || typeof type.payload !== 'string') {
    throw new TorchCheckpointError(file, 'persistent id names a storage type that is not a torch.*Storage');
  }
  return type.payload as DType;
}

function asString(v: PyValue): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  return undefined;
}

/** Walks the unpickled object and collects its tensors: dict keys joined with '.', lists by index. */
function collectTensors(file: string, root: PyValue): Map<string, TensorRef> {
  if (!(root instanceof PyDict)) {
    throw new TorchCheckpointError(file, 'the pickled object is not a dict of tensors (a state dict)');
  }
  const out = new Map<string, TensorRef>();
  const visit = (value: PyValue, name: string, depth: number): void => {
    if (depth > 64) throw new TorchCheckpointError(file, 'objects nested more than 64 levels deep');
    if (isTorchTensorRef(value)) {
      if (out.has(name)) throw new TorchCheckpointError(file, 'duplicate tensor name', name);
      out.set(name, value);
    } else if (value instanceof PyDict) {
      for (const [k, v] of value.map) {
        const key = asString(k as PyValue);
        if (key !== undefined) visit(v, name ? `${name}.${key}` : key, depth + 1);
      }
    } else if (Array.isArray(value) || value instanceof PyTuple) {
      const items = Array.isArray(value) ? value : value.items;
      items.forEach((v, i) => visit(v, name ? `${name}.${i}` : String(i), depth + 1));
    }
  };
  visit(root, '', 0);
  return out;
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/**
 * Copies the strided view (`shape`, `stride`, elements relative to the start of `span`) into contiguous
 * row-major order.
 */
export function gatherStrided(span: Uint8Array, elementSize: number, shape: number[], stride: number[]): Uint8Array {
  const count = numel(shape);
  const out = new Uint8Array(count * elementSize);
  if (count === 0) return out;
  let src = span;
  const unit = elementSize === 8 ? 4 : elementSize;
  const words = elementSize === 8 ? 2 : 1;
  if (src.byteOffset % unit !== 0) src = src.slice();
  const Ctor = unit === 4 ? Uint32Array : unit === 2 ? Uint16Array : Uint8Array;
  const s = new Ctor(src.buffer as ArrayBuffer, src.byteOffset, Math.floor(src.byteLength / unit));
  const d = new Ctor(out.buffer, 0, (count * elementSize) / unit);
  const ndim = shape.length;
  if (ndim === 0) {
    for (let w = 0; w < words; w++) d[w] = s[w];
    return out;
  }
  const inner = shape[ndim - 1];
  const innerStride = stride[ndim - 1] * words;
  const index = new Array<number>(ndim).fill(0);
  let base = 0;
  let o = 0;
  for (let outer = count / inner; outer > 0; outer--) {
    let p = base;
    if (words === 1) {
      for (let j = 0; j < inner; j++, p += innerStride) d[o++] = s[p];
    } else {
      for (let j = 0; j < inner; j++, p += innerStride) {
        d[o++] = s[p];
        d[o++] = s[p + 1];
      }
    }
    // Odometer over the outer dims.
    for (let k = ndim - 2; k >= 0; k--) {
      index[k]++;
      base += stride[k] * words;
      if (index[k] < shape[k]) break;
      base -= stride[k] * words * shape[k];
      index[k] = 0;
    }
  }
  return out;
}

type StorageReader = (storage: StorageRef, byteOffset: number, byteLength: number) => Promise<Uint8Array>;

/** An opened PyTorch checkpoint (zip or legacy). */
export class TorchCheckpoint implements Checkpoint {
  readonly metadata: Readonly<Record<string, string>> = {};
  readonly tensors: readonly TensorInfo[];
  private readonly byName: Map<string, TensorInfo & { ref: TensorRef }>;

  private constructor(
    readonly format: 'torch-zip' | 'torch-legacy',
    readonly source: ByteSource,
    /**
     * The whole saved object as plain data: dicts as `PyDict` (key order kept, OrderedDict `_metadata`
     * in `attrs`), `argparse.Namespace` as `PyObject`, dtypes as names, tensors as `TorchTensorRef`s
     * whose dotted path (`model.lm_head.bias`) is their name in `tensors`.
     */
    readonly root: PyValue,
    refs: Map<string, TensorRef>,
    private readonly readStorage: StorageReader,
    private readonly bigEndian: boolean,
    private readonly owned: boolean,
  ) {
    this.byName = new Map();
    for (const [name, ref] of refs) {
      // The view must lie inside its storage: offset + sum((size - 1) * stride) < numel.
      let last = ref.offset;
      for (let d = 0; d < ref.shape.length; d++) last += (ref.shape[d] - 1) * ref.stride[d];
      if (numel(ref.shape) > 0 && last >= ref.storage.numel) {
        throw new TorchCheckpointError(
          source.name,
          `view (offset ${ref.offset}, size [${ref.shape.join(',')}], stride [${ref.stride.join(',')}]) reaches ` +
            `element ${last} of storage '${ref.storage.key}', which holds ${ref.storage.numel}`,
          name,
        );
      }
      this.byName.set(name, { name, dtype: ref.storage.dtype, shape: ref.shape.slice(), ref });
    }
    this.tensors = [...this.byName.values()].map(({ name: n, dtype, shape }) => ({ name: n, dtype, shape }));
  }

  get name(): string {
    return this.source.name;
  }

  /** Opens a torch.save file of either container; `owned` sources are closed by close(). */
  static async open(source: ByteSource, owned = false): Promise<TorchCheckpoint> {
    try {
      return (await startsLikeZip(source)) ? await openZip(source, owned) : await openLegacy(source, owned);
    } catch (err) {
      if (owned) await source.close?.();
      throw err;
    }
  }

  /** @internal */
  static create(
    format: 'torch-zip' | 'torch-legacy',
    source: ByteSource,
    root: PyValue,
    refs: Map<string, TensorRef>,
    readStorage: StorageReader,
    bigEndian: boolean,
    owned: boolean,
  ): TorchCheckpoint {
    return new TorchCheckpoint(format, source, root, refs, readStorage, bigEndian, owned);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new TensorNotFoundError(this.name, name);
    return { name: t.name, dtype: t.dtype, shape: t.shape.slice() };
  }

  async readRaw(name: string): Promise<Uint8Array> {
    const t = this.byName.get(name);
    if (!t) throw new TensorNotFoundError(this.name, name);
    const { ref } = t;
    const es = DTYPE_SIZE[ref.storage.dtype];
    const count = numel(ref.shape);
    if (count === 0) return new Uint8Array(0);
    let last = ref.offset;
    for (let d = 0; d < ref.shape.length; d++) last += (ref.shape[d] - 1) * ref.stride[d];
    const span = await this.readStorage(ref.storage, ref.offset * es, (last - ref.offset + 1) * es);
    const out = isContiguous(ref.shape, ref.stride) ? span : gatherStrided(span, es, ref.shape, ref.stride);
    if (this.bigEndian) byteswapInPlace(out, es);
    return out;
  }

  async readTensor<A extends ReadAs = 'host'>(
    name: string,
    options: ReadTensorOptions<A> = {},
  ): Promise<TensorData<DataFor<A>>> {
    const info = this.info(name);
    const bytes = await this.readRaw(name);
    const data = convertBytes(info.dtype, bytes, options.as ?? 'host', { file: this.name, tensor: name });
    return { dtype: info.dtype, shape: info.shape, data: data as DataFor<A> };
  }

  async close(): Promise<void> {
    if (this.owned) await this.source.close?.();
  }
}

function pidItems(file: string, pid: PyValue): PyValue[] {
  if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage') {
    throw new TorchCheckpointError(file, "persistent id is not a ('storage', ...) tuple");
  }
  return pid.items;
}

async function startsLikeZip(source: ByteSource): Promise<boolean> {
  const head = await source.read(0, Math.min(4, source.size));
  return head.length === 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

/** A torch.save zip, or (unless `wrapped`: it is already a zip's member) a plain zip wrapping one. */
async function openZip(source: ByteSource, owned: boolean, wrapped = false): Promise<TorchCheckpoint> {
  const file = source.name;
  const zip = await ZipReader.open(source);
  // torch names every record `<archive>/...`; the archive name is the first record's directory.
  const first = zip.names[0] ?? '';
  const slash = first.indexOf('/');
  const prefix = slash >= 0 ? first.slice(0, slash + 1) : '';
  const pklEntry = zip.entry(`${prefix}data.pkl`);
  if (!pklEntry) {
    const notTorch = `not a torch.save zip: no '${prefix}data.pkl' record`;
    // One level only: a zip inside a zip is refused (a self-inflating zip would otherwise never end).
    if (wrapped) throw new TorchCheckpointError(file, `${notTorch} (a zip's member must be a torch.save file, not another zip)`);
    return openWrapped(zip, source, owned, notTorch);
  }
  const byteorderEntry = zip.entry(`${prefix}byteorder`);
  let bigEndian = false;
  if (byteorderEntry) {
    const order = new TextDecoder().decode(await zip.readChecked(byteorderEntry)).trim();
    if (order !== 'little' && order !== 'big') throw new TorchCheckpointError(file, `unknown byteorder '${order}'`);
    bigEndian = order === 'big';
  }
  const storages = new Map<string, StorageRef & { entry: ZipEntry }>();
  const persistentLoad = (pid: PyValue): PyValue => {
    const [, type, keyValue, , numelValue] = pidItems(file, pid);
    const dtype = storageDType(file, type);
    const key = asString(keyValue);
    if (key === undefined || !/^[\w.-]+$/.test(key)) throw new TorchCheckpointError(file, `bad storage key ${String(keyValue)}`);
    const existing = storages.get(key);
    if (existing) {
      if (existing.dtype !== dtype) {
        throw new TorchCheckpointError(file, `storage '${key}' is used as both ${existing.dtype} and ${dtype}`);
      }
      return existing;
    }
    if (typeof numelValue !== 'number' || !Number.isSafeInteger(numelValue) || numelValue < 0) {
      throw new TorchCheckpointError(file, `storage '${key}' has a bad element count ${String(numelValue)}`);
    }
    const entry = zip.entry(`${prefix}data/${key}`);
    if (!entry) throw new TorchCheckpointError(file, `storage record '${prefix}data/${key}' is missing`);
    const nbytes = numelValue * DTYPE_SIZE[dtype];
    if (entry.uncompressedSize < nbytes) {
      throw new TorchCheckpointError(
        file,
        `storage record '${prefix}data/${key}' has ${entry.uncompressedSize} bytes, ` +
          `but ${numelValue} ${dtype} elements need ${nbytes}`,
      );
    }
    const ref = { kind: 'torch-storage' as const, key, dtype, numel: numelValue, viewOffset: 0, entry };
    storages.set(key, ref);
    return ref;
  };
  const pkl = await zip.readChecked(pklEntry);
  const { value } = unpickleWhole(pkl, file, persistentLoad);
  const refs = collectTensors(file, value);
  const readStorage: StorageReader = (storage, byteOffset, byteLength) => {
    const s = storages.get(storage.key);
    if (!s) throw new TorchCheckpointError(file, `unknown storage '${storage.key}'`);
    return zip.read(s.entry, byteOffset, byteLength);
  };
  return TorchCheckpoint.create('torch-zip', source, value, refs, readStorage, bigEndian, owned);
}

/**
 * A plain zip that wraps one torch.save file (NVIDIA's NGC downloads hold
 * `release/mp_rank_00/model_optim_rng.pt`): that member is opened in its place. A stored member is read
 * in place; a deflated one is inflated into memory. The member must be a torch.save file itself.
 */
async function openWrapped(zip: ZipReader, source: ByteSource, owned: boolean, notTorch: string): Promise<TorchCheckpoint> {
  const members = zip.names.filter((n) => /\.(pt|pth|bin|ckpt)$/.test(n));
  if (members.length !== 1) {
    const held = members.length > 1 ? `; it wraps ${members.length} checkpoint files (${members.join(', ')}): unzip it and open one` : '';
    throw new TorchCheckpointError(source.name, `${notTorch}${held}`);
  }
  const entry = zip.entry(members[0]) as ZipEntry;
  const name = `${source.name}!${entry.name}`;
  const close = owned ? () => source.close?.() ?? Promise.resolve() : undefined;
  const member: ByteSource =
    entry.method === 0
      ? { name, size: entry.uncompressedSize, read: (offset, length) => zip.read(entry, offset, length), close }
      : { ...bytesSource(await zip.readChecked(entry), name), close };
  return (await startsLikeZip(member)) ? openZip(member, owned, true) : openLegacy(member, owned);
}

function unpickleWhole(
  bytes: Uint8Array,
  file: string,
  persistentLoad: (pid: PyValue) => PyValue,
): { value: PyValue; end: number } {
  try {
    return unpickle(bytes, 0, { file, findClass: torchFindClass(file), persistentLoad });
  } catch (err) {
    if (err instanceof PickleTruncatedError) throw new TorchCheckpointError(file, err.message.slice(file.length + 2));
    throw err;
  }
}

/** Reads the pickle starting at `pos`, growing the read window until the pickle fits. */
async function readPickleAt(
  source: ByteSource,
  pos: number,
  persistentLoad?: (pid: PyValue) => PyValue,
): Promise<{ value: PyValue; end: number }> {
  const file = source.name;
  let window = Math.min(1 << 16, source.size - pos);
  for (;;) {
    const bytes = await source.read(pos, window);
    try {
      const r = unpickle(bytes, 0, { file, findClass: torchFindClass(file), persistentLoad });
      return { value: r.value, end: pos + r.end };
    } catch (err) {
      if (!(err instanceof PickleTruncatedError)) throw err;
      if (pos + window >= source.size) {
        throw new TorchCheckpointError(file, `truncated: the pickle at byte ${pos} runs past the end of the file`);
      }
      window = Math.min(window * 4, source.size - pos);
    }
  }
}

async function openLegacy(source: ByteSource, owned: boolean): Promise<TorchCheckpoint> {
  const file = source.name;
  if (source.size >= 262) {
    const tar = await source.read(257, 5);
    if (new TextDecoder().decode(tar) === 'ustar') {
      throw new TorchCheckpointError(file, 'tar-based checkpoints (torch < 0.4) are not supported');
    }
  }
  const magic = await readPickleAt(source, 0);
  if (magic.value !== TORCH_LEGACY_MAGIC && magic.value !== Number(TORCH_LEGACY_MAGIC)) {
    throw new TorchCheckpointError(file, 'not a PyTorch checkpoint: bad magic number');
  }
  const protocol = await readPickleAt(source, magic.end);
  if (protocol.value !== TORCH_LEGACY_PROTOCOL) {
    throw new TorchCheckpointError(file, `unsupported legacy protocol version ${String(protocol.value)}`);
  }
  const sysInfo = await readPickleAt(source, protocol.end);
  let bigEndian = false;
  if (sysInfo.value instanceof PyDict && sysInfo.value.map.get('little_endian') === false) bigEndian = true;

  const roots = new Map<string, { dtype: DType; numel: number }>();
  const views = new Map<string, StorageRef>();
  const persistentLoad = (pid: PyValue): PyValue => {
    const [, type, keyValue, , numelValue, viewMetadata] = pidItems(file, pid);
    const dtype = storageDType(file, type);
    const key = asString(keyValue);
    if (key === undefined) throw new TorchCheckpointError(file, `bad storage key ${String(keyValue)}`);
    if (typeof numelValue !== 'number' || !Number.isSafeInteger(numelValue) || numelValue < 0) {
      throw new TorchCheckpointError(file, `storage '${key}' has a bad element count ${String(numelValue)}`);
    }
    const root = roots.get(key);
    if (!root) roots.set(key, { dtype, numel: numelValue });
    else if (root.dtype !== dtype) {
      throw new TorchCheckpointError(file, `storage '${key}' is used as both ${root.dtype} and ${dtype}`);
    }
    if (viewMetadata === null || viewMetadata === undefined) {
      const ref: StorageRef = { kind: 'torch-storage', key, dtype, numel: numelValue, viewOffset: 0 };
      return ref;
    }
    // (view_key, offset, view_size), in elements of the root storage.
    const vm = viewMetadata instanceof PyTuple ? viewMetadata.items : [];
    const [viewKey, offset, size] = vm;
    if (vm.length !== 3 || asString(viewKey) === undefined || typeof offset !== 'number' || typeof size !== 'number') {
      throw new TorchCheckpointError(file, `storage '${key}' has malformed view metadata`);
    }
    const vk = asString(viewKey) as string;
    const existing = views.get(vk);
    if (existing) return existing;
    if (offset < 0 || size < 0 || offset + size > numelValue) {
      throw new TorchCheckpointError(file, `storage view '${vk}' [${offset}, ${offset + size}) is outside storage '${key}'`);
    }
    const view: StorageRef = { kind: 'torch-storage', key, dtype, numel: size, viewOffset: offset };
    views.set(vk, view);
    return view;
  };
  const main = await readPickleAt(source, sysInfo.end, persistentLoad);
  const refs = collectTensors(file, main.value);
  const keys = await readPickleAt(source, main.end);
  const keyList = Array.isArray(keys.value) ? keys.value.map((k) => asString(k)) : undefined;
  if (!keyList || keyList.some((k) => k === undefined)) {
    throw new TorchCheckpointError(file, 'the storage key list is not a list of keys');
  }
  // Storage records: int64 element count, then the bytes.
  const dataStarts = new Map<string, number>();
  let pos = keys.end;
  for (const key of keyList as string[]) {
    const root = roots.get(key);
    if (!root) throw new TorchCheckpointError(file, `storage '${key}' is stored but no tensor names it`);
    if (pos + 8 > source.size) throw new TorchCheckpointError(file, `truncated: storage '${key}' is missing`);
    const header = await source.read(pos, 8);
    const hv = new DataView(header.buffer, header.byteOffset, 8);
    const count = bigEndian ? hv.getBigInt64(0, false) : hv.getBigInt64(0, true);
    if (count !== BigInt(root.numel)) {
      throw new TorchCheckpointError(file, `storage '${key}' record holds ${count} elements, the pickle says ${root.numel}`);
    }
    const nbytes = root.numel * DTYPE_SIZE[root.dtype];
    if (pos + 8 + nbytes > source.size) {
      throw new TorchCheckpointError(file, `truncated: storage '${key}' (${nbytes} bytes at ${pos + 8}) runs past the end`);
    }
    dataStarts.set(key, pos + 8);
    pos += 8 + nbytes;
  }
  for (const [name, ref] of refs) {
    if (!dataStarts.has(ref.storage.key)) {
      throw new TorchCheckpointError(file, `storage '${ref.storage.key}' is not in the file`, name);
    }
  }
  const readStorage: StorageReader = (storage, byteOffset, byteLength) => {
    const start = dataStarts.get(storage.key) as number;
    return source.read(start + storage.viewOffset * DTYPE_SIZE[storage.dtype] + byteOffset, byteLength);
  };
  return TorchCheckpoint.create('torch-legacy', source, main.value, refs, readStorage, bigEndian, owned);
}
