// Module: the base of every layer and model. Registered parameters, buffers and submodules under the
// reference's names, so `namedParameters()` and `stateDict()` produce the checkpoint keys
// (`encoder.layer.0.attention.self.query.weight`) with no rename table.

import { keep, noGrad, type Backend, type Tensor } from '@lm/tensor-gpu';

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

export class Module {
  /** Dropout and similar layers behave differently in training; set with train()/eval(). */
  training = true;
  readonly #parameters = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor | null>();
  readonly #nonPersistent = new Set<string>();
  readonly #modules = new Map<string, Module | null>();

  // ---- registration ---------------------------------------------------------------------------
  /** Registers a trainable parameter (requiresGrad, kept out of any open scope). */
  protected registerParameter(name: string, tensor: Tensor | null): Tensor {
    this.#checkName(name);
    if (tensor) {
      keep(tensor);
      if (!tensor.isLeaf) throw new TypeError(`registerParameter: '${name}' must be a leaf tensor (detach() it first)`);
      tensor.requiresGrad = true;
    }
    this.#parameters.set(name, tensor);
    return tensor as Tensor;
  }

  /** Registers a buffer (state that is not trained); non-persistent buffers stay out of stateDict(). */
  protected registerBuffer(name: string, tensor: Tensor | null, options: { persistent?: boolean } = {}): Tensor {
    this.#checkName(name);
    if (tensor) keep(tensor);
    this.#buffers.set(name, tensor);
    if (options.persistent === false) this.#nonPersistent.add(name);
    else this.#nonPersistent.delete(name);
    return tensor as Tensor;
  }

  /** Registers a submodule under `name`; returns it so constructors read `this.dense = this.registerModule('dense', ...)`. */
  protected registerModule<M extends Module | null>(name: string, module: M): M {
    this.#checkName(name);
    this.#modules.set(name, module);
    return module;
  }

  #checkName(name: string): void {
    if (!name || name.includes('.')) throw new TypeError(`Module: invalid name '${name}' (non-empty, no dots)`);
  }

  /** The registered parameter `name` of this module (not of submodules). */
  getParameter(name: string): Tensor | null {
    if (!this.#parameters.has(name)) throw new TypeError(`${this.constructor.name}: no parameter '${name}'`);
    return this.#parameters.get(name) ?? null;
  }

  /**
   * Replaces a registered parameter, e.g. to tie an output projection to the input embeddings. The
   * replaced tensor is disposed unless `disposeOld` is false (keep it when something else holds it).
   */
  setParameter(name: string, tensor: Tensor | null, options: { disposeOld?: boolean } = {}): void {
    if (!this.#parameters.has(name)) throw new TypeError(`${this.constructor.name}: no parameter '${name}' to replace`);
    const old = this.#parameters.get(name);
    this.registerParameter(name, tensor);
    this.onParametersChanged();
    if (old && old !== tensor && options.disposeOld !== false) old.dispose();
  }

  /** Replaces a registered buffer (disposing the old one unless `disposeOld` is false). */
  setBuffer(name: string, tensor: Tensor | null, options: { disposeOld?: boolean } = {}): void {
    if (!this.#buffers.has(name)) throw new TypeError(`${this.constructor.name}: no buffer '${name}' to replace`);
    const old = this.#buffers.get(name);
    this.registerBuffer(name, tensor, { persistent: !this.#nonPersistent.has(name) });
    this.onParametersChanged();
    if (old && old !== tensor && options.disposeOld !== false) old.dispose();
  }

  /** Replaces a registered submodule. */
  setModule(name: string, module: Module | null): void {
    if (!this.#modules.has(name)) throw new TypeError(`${this.constructor.name}: no submodule '${name}' to replace`);
    this.#modules.set(name, module);
  }

  /** Subclasses that cache registered tensors in fields refresh them here. */
  protected onParametersChanged(): void {}

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
      mod.onParametersChanged();
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
      mod.onParametersChanged();
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

/** A Set that never reports membership: namedModules() without de-duplication. */
class NoDedupSet<T> extends Set<T> {
  override has(): boolean {
    return false;
  }
}

/** An indexable list of submodules registered as '0', '1', ... (torch's ModuleList). */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  readonly items: M[] = [];
  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }
  append(m: M): this {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    return this.items[i < 0 ? i + this.items.length : i];
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
