// The Tensor: a strided view onto backend storage, plus autograd bookkeeping. Ops live in src/ops;
// the methods here are thin, PyTorch-named doors into them.

import { backward as runBackward, isGradEnabled, type BackwardOptions, type GradNode } from './autograd.js';
import type { Backend, Storage, View } from './backend.js';
import type { AnyHostArray, DType } from './dtype.js';
import { DisposedError, TensorError } from './errors.js';
import { broadcastShapes, contiguousStrides, isContiguous, shapesEqual, sizeOf } from './layout.js';
import { keep, setTensorCheck, trackTensor, untrackTensor } from './memory.js';
import * as elementwise from './ops/elementwise.js';
import { broadcastTo } from './ops/broadcast.js';
import * as creation from './ops/creation.js';
import * as views from './ops/views.js';
import * as reduce from './ops/reduce.js';
import * as linalg from './ops/linalg.js';
import * as nn from './ops/nn.js';
import * as indexing from './ops/indexing.js';
import * as shapeOps from './ops/shape.js';

export type NestedArray = number | boolean | NestedArray[];
type Scalar = number;
type TensorOrScalar = Tensor | number;

let nextId = 1;

export class Tensor implements View {
  readonly id = nextId++;
  readonly storage: Storage;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  /** When true, ops on this tensor are recorded for backward. Set it only on leaves. */
  requiresGrad = false;
  /** Gradient accumulated by backward() (leaves only). */
  grad: Tensor | null = null;
  /** The node that produced this tensor (null for leaves). */
  gradFn: GradNode | null = null;
  /** Which output of gradFn this is. */
  outputIndex = 0;
  private _disposed = false;

  /**
   * Wraps storage; takes over one reference the caller already counted (storage.refs).
   * Users create tensors with tensor(), zeros(), randn(), ...
   */
  constructor(storage: Storage, shape: readonly number[], strides?: readonly number[], offset = 0, tracked = true) {
    this.storage = storage;
    this.dtype = storage.dtype;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    trackTensor(this);
    // Saved handles belong to autograd nodes, not to the scope that happened to be open.
    if (!tracked) keep(this);
  }

  get backend(): Backend {
    return this.storage.backend;
  }
  get size(): number {
    return sizeOf(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get isLeaf(): boolean {
    return this.gradFn === null;
  }
  get disposed(): boolean {
    return this._disposed;
  }
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }

  /** Throws DisposedError if this tensor was disposed; every op calls it on its inputs. */
  assertAlive(op: string): void {
    if (this._disposed) {
      throw new DisposedError(`${op}: tensor #${this.id} [${this.shape.join(',')}] ${this.dtype} was used after dispose()`);
    }
  }

  /** A new handle on the same storage and layout (no copy), optionally with another layout. */
  viewOf(shape: readonly number[], strides: readonly number[], offset: number): Tensor {
    this.assertAlive('view');
    this.storage.refs++;
    return new Tensor(this.storage, shape, strides, offset);
  }

  /** Internal: a handle for autograd to keep, outside any scope. */
  savedHandle(): Tensor {
    this.assertAlive('save for backward');
    this.storage.refs++;
    return new Tensor(this.storage, this.shape, this.strides, this.offset, false);
  }

  /** Internal: marks this tensor as output `index` of an autograd node. */
  attachGrad(node: GradNode, index: number): void {
    this.gradFn = node;
    this.outputIndex = index;
    this.requiresGrad = true;
    node.refs++;
  }

  /** Frees this handle; the storage is freed when no other tensor or autograd node uses it. */
  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    untrackTensor(this);
    if (--this.storage.refs === 0) this.storage.backend.free(this.storage);
    if (this.gradFn) {
      const node = this.gradFn;
      this.gradFn = null;
      node.unref();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Sets requiresGrad (leaves only) and returns this, like torch's requires_grad_(). */
  requiresGrad_(value = true): this {
    if (this.gradFn && !value) throw new TensorError('requiresGrad_: cannot turn off grad on a non-leaf tensor; use detach()');
    this.requiresGrad = value;
    return this;
  }

  // ---- reading --------------------------------------------------------------------------------
  /** A contiguous host copy of the values (Float32Array, Int32Array, or Uint8Array for bool). */
  async data(): Promise<AnyHostArray> {
    this.assertAlive('data');
    return this.backend.read(this);
  }
  /** Synchronous read; only on the cpu backend. */
  dataSync(): AnyHostArray {
    this.assertAlive('dataSync');
    if (!this.backend.readSync) {
      throw new TensorError(`dataSync: the ${this.backend.name} backend reads asynchronously; use await tensor.data()`);
    }
    return this.backend.readSync(this);
  }
  /** Nested JS arrays of the values (booleans for bool tensors). */
  async toArray(): Promise<NestedArray> {
    return toNested(await this.data(), this.shape, this.dtype);
  }
  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new TensorError(`item: expected a one-element tensor, got shape [${this.shape.join(',')}]`);
    return (await this.data())[0];
  }
  toString(): string {
    return `Tensor(shape=[${this.shape.join(',')}], dtype=${this.dtype}, backend=${this.backend.name}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }

  // ---- autograd -------------------------------------------------------------------------------
  backward(grad?: Tensor, options?: BackwardOptions): void {
    runBackward(this, grad, options);
  }
  /** Same values, cut from the graph (shares storage). */
  detach(): Tensor {
    this.assertAlive('detach');
    return this.viewOf(this.shape, this.strides, this.offset);
  }
  /** Disposes and clears .grad. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  /**
   * Overwrites this tensor's values with src (broadcast, cast), in place: how optimizers update
   * parameters without changing their identity. Every view of the same storage sees the change.
   * Allowed under noGrad() on tensors that require grad (as torch's p.copy_ in no_grad).
   */
  copy_(src: Tensor): this {
    this.assertAlive('copy_');
    src.assertAlive('copy_');
    if (this.requiresGrad && isGradEnabled()) {
      throw new TensorError('copy_: in-place update of a tensor that requires grad; wrap it in noGrad()');
    }
    if (this.strides.some((st, i) => st === 0 && this.shape[i] > 1)) {
      throw new TensorError(`copy_: destination [${this.shape.join(',')}] is an expanded view whose elements overlap`);
    }
    if (src.backend !== this.backend) {
      throw new TensorError(`copy_: source lives on ${src.backend.name}, destination on ${this.backend.name}`);
    }
    const b = broadcastTo(src, broadcastShapes('copy_', this.shape, src.shape));
    if (!shapesEqual(b.shape, this.shape)) {
      if (b !== src) b.dispose();
      throw new TensorError(`copy_: source [${src.shape.join(',')}] does not broadcast to destination [${this.shape.join(',')}]`);
    }
    this.backend.copy(b, this);
    if (b !== src) b.dispose();
    return this;
  }

  // ---- creation helpers -------------------------------------------------------------------------
  onesLike(): Tensor {
    return creation.full(this.shape, 1, { dtype: this.dtype, backend: this.backend });
  }
  zerosLike(): Tensor {
    return creation.full(this.shape, 0, { dtype: this.dtype, backend: this.backend });
  }
  /** Copies to another backend (async: leaving a GPU needs a read). */
  async to(backend: Backend): Promise<Tensor> {
    if (backend === this.backend) return this.detach();
    return creation.fromHost(await this.data(), this.shape, this.dtype, backend);
  }

  // ---- dtype ------------------------------------------------------------------------------------
  cast(dtype: DType): Tensor {
    return elementwise.cast(this, dtype);
  }
  toFloat(): Tensor {
    return elementwise.cast(this, 'float32');
  }
  toInt(): Tensor {
    return elementwise.cast(this, 'int32');
  }
  toBool(): Tensor {
    return elementwise.cast(this, 'bool');
  }

  // ---- elementwise ------------------------------------------------------------------------------
  add(other: TensorOrScalar): Tensor {
    return elementwise.add(this, other);
  }
  sub(other: TensorOrScalar): Tensor {
    return elementwise.sub(this, other);
  }
  mul(other: TensorOrScalar): Tensor {
    return elementwise.mul(this, other);
  }
  div(other: TensorOrScalar): Tensor {
    return elementwise.div(this, other);
  }
  pow(exponent: TensorOrScalar): Tensor {
    return elementwise.pow(this, exponent);
  }
  maximum(other: TensorOrScalar): Tensor {
    return elementwise.maximum(this, other);
  }
  minimum(other: TensorOrScalar): Tensor {
    return elementwise.minimum(this, other);
  }
  addScalar(s: Scalar): Tensor {
    return elementwise.unary('affine', this, 1, s);
  }
  subScalar(s: Scalar): Tensor {
    return elementwise.unary('affine', this, 1, -s);
  }
  mulScalar(s: Scalar): Tensor {
    return elementwise.unary('affine', this, s, 0);
  }
  divScalar(s: Scalar): Tensor {
    return elementwise.unary('affine', this, 1 / s, 0);
  }
  eq(other: TensorOrScalar): Tensor {
    return elementwise.compare('eq', this, other);
  }
  ne(other: TensorOrScalar): Tensor {
    return elementwise.compare('ne', this, other);
  }
  lt(other: TensorOrScalar): Tensor {
    return elementwise.compare('lt', this, other);
  }
  le(other: TensorOrScalar): Tensor {
    return elementwise.compare('le', this, other);
  }
  gt(other: TensorOrScalar): Tensor {
    return elementwise.compare('gt', this, other);
  }
  ge(other: TensorOrScalar): Tensor {
    return elementwise.compare('ge', this, other);
  }
  gtScalar(s: Scalar): Tensor {
    return elementwise.unary('gtScalar', this, s);
  }
  geScalar(s: Scalar): Tensor {
    return elementwise.unary('geScalar', this, s);
  }
  ltScalar(s: Scalar): Tensor {
    return elementwise.unary('ltScalar', this, s);
  }
  leScalar(s: Scalar): Tensor {
    return elementwise.unary('leScalar', this, s);
  }
  logicalAnd(other: Tensor): Tensor {
    return elementwise.binary('logicalAnd', this, other);
  }
  logicalOr(other: Tensor): Tensor {
    return elementwise.binary('logicalOr', this, other);
  }
  logicalNot(): Tensor {
    return elementwise.unary('logicalNot', this);
  }
  neg(): Tensor {
    return elementwise.unary('neg', this);
  }
  abs(): Tensor {
    return elementwise.unary('abs', this);
  }
  sign(): Tensor {
    return elementwise.unary('sign', this);
  }
  exp(): Tensor {
    return elementwise.unary('exp', this);
  }
  log(): Tensor {
    return elementwise.unary('log', this);
  }
  log1p(): Tensor {
    return elementwise.unary('log1p', this);
  }
  expm1(): Tensor {
    return elementwise.unary('expm1', this);
  }
  sqrt(): Tensor {
    return elementwise.unary('sqrt', this);
  }
  rsqrt(): Tensor {
    return elementwise.unary('rsqrt', this);
  }
  square(): Tensor {
    return elementwise.unary('square', this);
  }
  reciprocal(): Tensor {
    return elementwise.unary('reciprocal', this);
  }
  sin(): Tensor {
    return elementwise.unary('sin', this);
  }
  cos(): Tensor {
    return elementwise.unary('cos', this);
  }
  tanh(): Tensor {
    return elementwise.unary('tanh', this);
  }
  sigmoid(): Tensor {
    return elementwise.unary('sigmoid', this);
  }
  relu(): Tensor {
    return elementwise.unary('relu', this);
  }
  erf(): Tensor {
    return elementwise.unary('erf', this);
  }
  gelu(): Tensor {
    return elementwise.unary('gelu', this);
  }
  geluTanh(): Tensor {
    return elementwise.unary('geluTanh', this);
  }
  silu(): Tensor {
    return elementwise.unary('silu', this);
  }
  softplus(): Tensor {
    return elementwise.unary('softplus', this);
  }
  leakyRelu(slope = 0.01): Tensor {
    return elementwise.unary('leakyRelu', this, slope);
  }
  floor(): Tensor {
    return elementwise.unary('floor', this);
  }
  ceil(): Tensor {
    return elementwise.unary('ceil', this);
  }
  round(): Tensor {
    return elementwise.unary('round', this);
  }
  isNan(): Tensor {
    return elementwise.unary('isNan', this);
  }
  clamp(min = -Infinity, max = Infinity): Tensor {
    return elementwise.unary('clamp', this, min, max);
  }
  /** Where mask is true, value; elsewhere this. */
  maskedFill(mask: Tensor, value: number): Tensor {
    return elementwise.maskedFill(this, mask, value);
  }

  // ---- reductions -------------------------------------------------------------------------------
  sum(axes?: number | number[], keepDim = false): Tensor {
    return reduce.sum(this, axes, keepDim);
  }
  mean(axes?: number | number[], keepDim = false): Tensor {
    return reduce.mean(this, axes, keepDim);
  }
  prod(axes?: number | number[], keepDim = false): Tensor {
    return reduce.prod(this, axes, keepDim);
  }
  max(axes?: number | number[], keepDim = false): Tensor {
    return reduce.max(this, axes, keepDim);
  }
  min(axes?: number | number[], keepDim = false): Tensor {
    return reduce.min(this, axes, keepDim);
  }
  argmax(axis?: number, keepDim = false): Tensor {
    return reduce.argmax(this, axis, keepDim);
  }
  argmin(axis?: number, keepDim = false): Tensor {
    return reduce.argmin(this, axis, keepDim);
  }
  var(axes?: number | number[], options?: { correction?: number; keepDim?: boolean }): Tensor {
    return reduce.variance(this, axes, options);
  }
  std(axes?: number | number[], options?: { correction?: number; keepDim?: boolean }): Tensor {
    return reduce.variance(this, axes, options).sqrt();
  }
  logsumexp(axes: number | number[], keepDim = false): Tensor {
    return reduce.logsumexp(this, axes, keepDim);
  }

  // ---- nn -------------------------------------------------------------------------------------
  matmul(other: Tensor): Tensor {
    return linalg.matmul(this, other);
  }
  softmax(axis = -1): Tensor {
    return nn.softmax(this, axis);
  }
  logSoftmax(axis = -1): Tensor {
    return nn.logSoftmax(this, axis);
  }

  // ---- views and shape ------------------------------------------------------------------------
  reshape(...shape: number[] | [readonly number[]]): Tensor {
    return views.reshape(this, flatArgs(shape));
  }
  /** Like reshape, but fails instead of copying when the layout does not allow a view. */
  view(...shape: number[] | [readonly number[]]): Tensor {
    return views.view(this, flatArgs(shape));
  }
  permute(...axes: number[] | [readonly number[]]): Tensor {
    return views.permute(this, flatArgs(axes));
  }
  transpose(axis0 = -2, axis1 = -1): Tensor {
    return views.transpose(this, axis0, axis1);
  }
  unsqueeze(axis: number): Tensor {
    return views.unsqueeze(this, axis);
  }
  squeeze(axis?: number | number[]): Tensor {
    return views.squeeze(this, axis);
  }
  expand(...shape: number[] | [readonly number[]]): Tensor {
    return views.expand(this, flatArgs(shape));
  }
  flatten(startAxis = 0, endAxis = -1): Tensor {
    return views.flatten(this, startAxis, endAxis);
  }
  /** Elements start..end (exclusive) with step along axis (negative indices count from the end). */
  slice(axis: number, start = 0, end?: number, step = 1): Tensor {
    return views.slice(this, axis, start, end, step);
  }
  narrow(axis: number, start: number, length: number): Tensor {
    return views.slice(this, axis, start, start + length);
  }
  /** Index one position along axis, dropping that axis. */
  select(axis: number, index: number): Tensor {
    return views.select(this, axis, index);
  }
  /** A copy with its own storage. */
  clone(): Tensor {
    return views.clone(this);
  }
  /** A contiguous copy, or a new handle on the same storage when already contiguous. */
  contiguous(): Tensor {
    return views.contiguous(this);
  }
  split(sizeOrSizes: number | number[], axis = 0): Tensor[] {
    return shapeOps.split(this, sizeOrSizes, axis);
  }
  chunk(chunks: number, axis = 0): Tensor[] {
    return shapeOps.chunk(this, chunks, axis);
  }
  tril(diagonal = 0): Tensor {
    return shapeOps.tril(this, diagonal);
  }
  triu(diagonal = 0): Tensor {
    return shapeOps.triu(this, diagonal);
  }

  // ---- indexing -------------------------------------------------------------------------------
  gather(axis: number, index: Tensor): Tensor {
    return indexing.gather(this, axis, index);
  }
  indexSelect(axis: number, index: Tensor): Tensor {
    return indexing.indexSelect(this, axis, index);
  }
  scatterAdd(axis: number, index: Tensor, src: Tensor): Tensor {
    return indexing.scatterAdd(this, axis, index, src);
  }
  cumsum(axis: number): Tensor {
    return indexing.cumsum(this, axis);
  }
}

setTensorCheck((v: unknown): v is Tensor => v instanceof Tensor);

function flatArgs(args: number[] | [readonly number[]]): number[] {
  return Array.isArray(args[0]) ? [...(args[0] as readonly number[])] : (args as number[]);
}

function toNested(data: AnyHostArray, shape: readonly number[], dtype: DType): NestedArray {
  const conv = dtype === 'bool' ? (v: number) => v !== 0 : (v: number) => v;
  if (shape.length === 0) return conv(data[0]);
  let i = 0;
  const build = (d: number): NestedArray[] => {
    const out: NestedArray[] = [];
    for (let k = 0; k < shape[d]; k++) {
      if (d === shape.length - 1) out.push(conv(data[i++]));
      else out.push(build(d + 1));
    }
    return out;
  };
  return build(0);
}
