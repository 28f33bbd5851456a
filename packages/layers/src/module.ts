// Module: the base of every layer and model. Registered parameters, buffers and submodules under the
// reference's names, so `namedParameters()` and `stateDict()` produce the checkpoint keys
// (`encoder.layer.0.attention.self.query.weight`) with no rename table. The registry is the only holder
// of a weight; fields are accessors onto it (docs/decisions/0004-registry-holds-every-weight.md).

import { keep, noGrad, Tensor, type Backend } from '@lm/tensor-gpu';

export class StateDictError extends Error {
  constructor(
    message: string,
    readonly missingKeys: string[],
    readonly unexpectedKeys: string[],
    readonly mismatchedKeys: { key: string; expected: readonly number[]; got: readonly number[] }[],
  ) {
    super(message);
    this.name = 'StateDictError';
  }
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
  mismatchedKeys: { key: string; expected: readonly number[]; got: readonly number[] }[];
}

export type StateDict = Map<string, Tensor>;

/** The constructor options every module takes: where it allocates its parameters (default: the current backend). */
export interface ModuleOptions {
  backend?: Backend;
}

/** A registry name must be declared as a field (`declare name: T`) of the registering class. */
type Declares<N extends string> = { [K in N]: unknown };

type Kind = 'parameter' | 'buffer' | 'submodule';

/**
 * The base of every layer and model. The registry (parameters, buffers, submodules by name) is the only
 * place a weight lives: registering `name` defines an accessor property `name` on the instance that
 * reads and replaces the registry entry, so `module.weight`, `getParameter('weight')`, `stateDict()` and
 * `getSubmodule()` can never disagree. Subclasses declare these fields with `declare` (a plain field
 * would shadow the accessor); the name is the reference's state-dict name (`this.LayerNorm`,
 * `this.word_embeddings`).
 */
export class Module {
  /** Dropout and similar layers behave differently in training; set with train()/eval(). */
  training = true;
  readonly #parameters = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor | null>();
  readonly #nonPersistent = new Set<string>();
  readonly #modules = new Map<string, Module | null>();

  // ---- registration ---------------------------------------------------------------------------
  /**
   * Registers a trainable parameter (requiresGrad, kept out of any open scope) under `name`, and the
   * accessor `this[name]` that reads and replaces it (torch's `module.weight = nn.Parameter(...)`).
   */
  protected registerParameter<N extends string>(this: Declares<N>, name: N, tensor: Tensor | null): Tensor {
    const self = this as unknown as Module;
    self.#define('parameter', name);
    self.#store('parameter', name, tensor);
    return tensor as Tensor;
  }

  /** Registers a buffer (state that is not trained) and its accessor; non-persistent buffers stay out of stateDict(). */
  protected registerBuffer<N extends string>(this: Declares<N>, name: N, tensor: Tensor | null, options: { persistent?: boolean } = {}): Tensor {
    const self = this as unknown as Module;
    self.#define('buffer', name);
    self.#store('buffer', name, tensor);
    if (options.persistent === false) self.#nonPersistent.add(name);
    else self.#nonPersistent.delete(name);
    return tensor as Tensor;
  }

  /** Registers a submodule (or null: declared but absent, like a model built without its pooler) and its accessor. */
  protected registerModule<N extends string, M extends Module | null>(this: Declares<N>, name: N, module: M): M {
    const self = this as unknown as Module;
    self.#define('submodule', name);
    self.#store('submodule', name, module);
    return module;
  }

  /**
   * Checks `name` and defines its accessor once. A name already registered as the same kind is simply
   * replaced; one of another kind, or one that would shadow a field or method, is refused.
   */
  #define(kind: Kind, name: string): void {
    if (!name || name.includes('.')) throw new TypeError(`${this.constructor.name}: invalid name '${name}' (non-empty, no dots)`);
    const registered = this.#kindOf(name);
    if (registered === kind) return;
    if (registered) throw new TypeError(`${this.constructor.name}: cannot register ${kind} '${name}': it is already a ${registered}`);
    if (name in this) {
      const where = Object.prototype.hasOwnProperty.call(this, name) ? 'a field (declare registered fields with `declare`)' : 'a method or accessor of the class';
      throw new TypeError(`${this.constructor.name}: cannot register ${kind} '${name}': it would shadow ${where}`);
    }
    const table = kind === 'parameter' ? this.#parameters : kind === 'buffer' ? this.#buffers : this.#modules;
    Object.defineProperty(this, name, {
      enumerable: true,
      configurable: false,
      get: () => table.get(name) ?? null,
      set: (value: unknown) => this.#store(kind, name, value),
    });
  }

  /** Puts `value` in the table of `kind` after that kind's checks (the one write path of the registry). */
  #store(kind: Kind, name: string, value: unknown): void {
    if (kind === 'parameter') this.#parameters.set(name, asParameter(this, name, value));
    else if (kind === 'buffer') this.#buffers.set(name, asBuffer(this, name, value));
    else this.#modules.set(name, asModule(this, name, value));
  }

  #kindOf(name: string): Kind | null {
    if (this.#parameters.has(name)) return 'parameter';
    if (this.#buffers.has(name)) return 'buffer';
    if (this.#modules.has(name)) return 'submodule';
    return null;
  }

  /** The registered parameter `name` of this module (not of submodules). */
  getParameter(name: string): Tensor | null {
    if (!this.#parameters.has(name)) throw new TypeError(`${this.constructor.name}: no parameter '${name}'`);
    return this.#parameters.get(name) ?? null;
  }

  /** The registered buffer `name` of this module (not of submodules). */
  getBuffer(name: string): Tensor | null {
    if (!this.#buffers.has(name)) throw new TypeError(`${this.constructor.name}: no buffer '${name}'`);
    return this.#buffers.get(name) ?? null;
  }

  /**
   * Replaces a registered parameter, e.g. to tie an output projection to the input embeddings. The
   * replaced tensor is disposed unless `disposeOld` is false (keep it when something else holds it).
   * Assigning `module[name] = tensor` replaces without disposing.
   */
  setParameter(name: string, tensor: Tensor | null, options: { disposeOld?: boolean } = {}): void {
    if (!this.#parameters.has(name)) throw new TypeError(`${this.constructor.name}: no parameter '${name}' to replace`);
    const old = this.#parameters.get(name);
    this.#store('parameter', name, tensor);
    if (old && old !== tensor && options.disposeOld !== false) old.dispose();
  }

  /** Replaces a registered buffer (disposing the old one unless `disposeOld` is false). */
  setBuffer(name: string, tensor: Tensor | null, options: { disposeOld?: boolean } = {}): void {
    if (!this.#buffers.has(name)) throw new TypeError(`${this.constructor.name}: no buffer '${name}' to replace`);
    const old = this.#buffers.get(name);
    this.#store('buffer', name, tensor);
    if (old && old !== tensor && options.disposeOld !== false) old.dispose();
  }

  /** Replaces a registered submodule (the old one is left to the caller); the same as assigning `module[name]`. */
  setModule(name: string, module: Module | null): void {
    if (!this.#modules.has(name)) throw new TypeError(`${this.constructor.name}: no submodule '${name}' to replace`);
    this.#store('submodule', name, module);
  }

  // ---- traversal -------------------------------------------------------------------------------
  *namedChildren(): Generator<[string, Module]> {
    for (const [name, m] of this.#modules) if (m) yield [name, m];
  }

  /** Every module in the tree with its dotted path ('' for this one), each once. */
  *namedModules(prefix = '', seen = new Set<Module>()): Generator<[string, Module]> {
    if (seen.has(this)) return;
    seen.add(this);
    yield [prefix, this];
    for (const [name, m] of this.namedChildren()) yield* m.namedModules(prefix ? `${prefix}.${name}` : name, seen);
  }

  /** Parameters with dotted names; a tensor shared by several names (tied weights) is listed once unless `removeDuplicate` is false. */
  *namedParameters(prefix = '', options: { recurse?: boolean; removeDuplicate?: boolean } = {}): Generator<[string, Tensor]> {
    yield* this.#namedTensors('parameters', prefix, options);
  }

  *parameters(options: { recurse?: boolean } = {}): Generator<Tensor> {
    for (const [, p] of this.namedParameters('', options)) yield p;
  }

  *namedBuffers(prefix = '', options: { recurse?: boolean; removeDuplicate?: boolean } = {}): Generator<[string, Tensor]> {
    yield* this.#namedTensors('buffers', prefix, options);
  }

  *#namedTensors(kind: 'parameters' | 'buffers', prefix: string, options: { recurse?: boolean; removeDuplicate?: boolean }): Generator<[string, Tensor]> {
    const seen = new Set<Tensor>();
    const dedupe = options.removeDuplicate ?? true;
    const modules = options.recurse === false ? [[prefix, this] as [string, Module]] : [...this.namedModules(prefix, dedupe ? new Set() : new NoDedupSet())];
    for (const [path, m] of modules) {
      const table = kind === 'parameters' ? m.#parameters : m.#buffers;
      for (const [name, t] of table) {
        if (!t || (dedupe && seen.has(t))) continue;
        seen.add(t);
        yield [path ? `${path}.${name}` : name, t];
      }
    }
  }

  /** The submodule at a dotted path ('' is this module). */
  getSubmodule(path: string): Module {
    if (!path) return this;
    return path.split('.').reduce<Module>((m, part) => {
      const next = m.#modules.get(part);
      if (!next) throw new TypeError(`getSubmodule: '${path}': ${m.constructor.name} has no submodule '${part}'`);
      return next;
    }, this);
  }

  /** Calls fn on every module (children first, like torch's apply). */
  apply(fn: (m: Module) => void): this {
    for (const [, child] of this.namedChildren()) child.apply(fn);
    fn(this);
    return this;
  }

  // ---- modes ---------------------------------------------------------------------------------
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  // ---- state dict ----------------------------------------------------------------------------
  /**
   * Parameters and persistent buffers by their dotted names. Tied tensors appear under every name, as
   * in torch's state_dict(). The tensors are the module's own (not copies).
   */
  stateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [path, m] of this.namedModules('', new NoDedupSet())) {
      const at = (name: string) => (path ? `${path}.${name}` : name);
      for (const [name, t] of m.#parameters) if (t) out.set(at(name), t);
      for (const [name, t] of m.#buffers) if (t && !m.#nonPersistent.has(name)) out.set(at(name), t);
    }
    return out;
  }

  /**
   * Copies values from a state dict into this module's tensors (in place, so tied weights stay tied).
   * strict (default): any missing, unexpected or shape-mismatched key throws a StateDictError naming
   * every one of them, before anything is copied.
   */
  loadStateDict(stateDict: StateDict | Record<string, Tensor>, options: { strict?: boolean } = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const incoming = stateDict instanceof Map ? stateDict : new Map(Object.entries(stateDict));
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((k) => !incoming.has(k));
    const unexpectedKeys = [...incoming.keys()].filter((k) => !own.has(k));
    const mismatchedKeys: LoadStateDictResult['mismatchedKeys'] = [];
    for (const [key, t] of own) {
      const src = incoming.get(key);
      if (src && (src.shape.length !== t.shape.length || src.shape.some((d, i) => d !== t.shape[i]))) {
        mismatchedKeys.push({ key, expected: t.shape, got: src.shape });
      }
    }
    if (strict && (missingKeys.length || unexpectedKeys.length || mismatchedKeys.length)) {
      const parts: string[] = [];
      if (missingKeys.length) parts.push(`missing keys: ${missingKeys.join(', ')}`);
      if (unexpectedKeys.length) parts.push(`unexpected keys: ${unexpectedKeys.join(', ')}`);
      for (const m of mismatchedKeys) parts.push(`size mismatch for ${m.key}: checkpoint [${m.got.join(',')}], model [${m.expected.join(',')}]`);
      throw new StateDictError(`loadStateDict (${this.constructor.name}): ${parts.join('; ')}`, missingKeys, unexpectedKeys, mismatchedKeys);
    }
    const bad = new Set(mismatchedKeys.map((m) => m.key));
    noGrad(() => {
      for (const [key, t] of own) {
        const src = incoming.get(key);
        if (!src || bad.has(key)) continue;
        if (src.backend !== t.backend) throw new TypeError(`loadStateDict: '${key}' is on ${src.backend.name}, the model on ${t.backend.name}`);
        t.copy_(src);
      }
    });
    return { missingKeys, unexpectedKeys, mismatchedKeys };
  }

  // ---- placement and lifetime ---------------------------------------------------------------
  /** Moves every parameter and buffer to another backend (tied tensors stay tied). */
  async to(backend: Backend): Promise<this> {
    const moved = new Map<Tensor, Tensor>();
    const move = async (t: Tensor): Promise<Tensor> => {
      let m = moved.get(t);
      if (!m) {
        m = keep(await t.to(backend));
        m.requiresGrad = t.requiresGrad;
        moved.set(t, m);
      }
      return m;
    };
    for (const [, mod] of this.namedModules()) {
      for (const [name, t] of mod.#parameters) if (t) mod.#parameters.set(name, await move(t));
      for (const [name, t] of mod.#buffers) if (t) mod.#buffers.set(name, await move(t));
    }
    for (const old of moved.keys()) old.dispose();
    return this;
  }

  /**
   * Casts every floating-point parameter and buffer to `dtype` (torch's `.half()` / `.float()`):
   * integer and bool buffers are left alone, tied tensors stay tied, gradients are dropped, and the
   * old tensors are freed. Mixed-precision training keeps float32 main weights beside a float16
   * model (see `Float16MainParams`).
   */
  cast(dtype: 'float32' | 'float16'): this {
    // Every cast is made before any is installed, so a failure (no float16 on this backend) leaves the
    // module as it was.
    const cast = new Map<Tensor, Tensor>();
    try {
      noGrad(() => {
        for (const [, mod] of this.namedModules()) {
          for (const t of [...mod.#parameters.values(), ...mod.#buffers.values()]) {
            if (!t || cast.has(t) || t.dtype === dtype || (t.dtype !== 'float32' && t.dtype !== 'float16')) continue;
            const c = keep(t.cast(dtype));
            c.requiresGrad = t.requiresGrad;
            cast.set(t, c);
          }
        }
      });
    } catch (e) {
      for (const c of cast.values()) c.dispose();
      throw e;
    }
    for (const [, mod] of this.namedModules()) {
      for (const [name, t] of mod.#parameters) if (t && cast.has(t)) mod.#parameters.set(name, cast.get(t)!);
      for (const [name, t] of mod.#buffers) if (t && cast.has(t)) mod.#buffers.set(name, cast.get(t)!);
    }
    for (const old of cast.keys()) {
      old.grad?.dispose();
      old.grad = null;
      old.dispose();
    }
    return this;
  }

  /** Frees every parameter, buffer and gradient of the tree. */
  dispose(): void {
    for (const [, mod] of this.namedModules()) {
      for (const t of [...mod.#parameters.values(), ...mod.#buffers.values()]) {
        t?.grad?.dispose();
        if (t) t.grad = null;
        t?.dispose();
      }
    }
  }

  /** Clears every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }
}

/** A tensor entering the registry as a parameter: a kept leaf that requires grad. */
function asParameter(owner: Module, name: string, value: unknown): Tensor | null {
  if (value === null) return null;
  if (!(value instanceof Tensor)) throw new TypeError(`${owner.constructor.name}: parameter '${name}' must be a Tensor or null, got ${typeName(value)}`);
  if (!value.isLeaf) throw new TypeError(`${owner.constructor.name}: parameter '${name}' must be a leaf tensor (detach() it first)`);
  keep(value);
  value.requiresGrad = true;
  return value;
}

function asBuffer(owner: Module, name: string, value: unknown): Tensor | null {
  if (value === null) return null;
  if (!(value instanceof Tensor)) throw new TypeError(`${owner.constructor.name}: buffer '${name}' must be a Tensor or null, got ${typeName(value)}`);
  return keep(value);
}

function asModule<M>(owner: Module, name: string, value: M): M & (Module | null) {
  if (value !== null && !(value instanceof Module)) throw new TypeError(`${owner.constructor.name}: submodule '${name}' must be a Module or null, got ${typeName(value)}`);
  return value as M & (Module | null);
}

function typeName(value: unknown): string {
  if (value instanceof Tensor) return 'Tensor';
  return value === undefined ? 'undefined' : ((value as object)?.constructor?.name ?? typeof value);
}

/** A Set that never reports membership: namedModules() without de-duplication. */
class NoDedupSet<T> extends Set<T> {
  override has(): boolean {
    return false;
  }
}

/** An indexable list of submodules registered as '0', '1', ... (torch's ModuleList); `list[i]` reads the registry. */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  readonly [index: number]: M;
  #length = 0;
  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }
  append(m: M): this {
    // Indices are registry names; they have no declared field, hence the cast.
    (this as ModuleList<M> & Record<string, unknown>).registerModule(String(this.#length), m);
    this.#length++;
    return this;
  }
  get length(): number {
    return this.#length;
  }
  at(i: number): M {
    return this[i < 0 ? i + this.#length : i];
  }
  /** The modules in order, as a new array. */
  get items(): M[] {
    return Array.from({ length: this.#length }, (_, i) => this[i]);
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
