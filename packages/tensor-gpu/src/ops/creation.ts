// Creation ops: from data, constants, ranges and seeded random draws.

import type { Backend } from '../backend.js';
import { hostArrayFor, type AnyHostArray, type DType } from '../dtype.js';
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { sizeOf } from '../layout.js';
import { defaultGenerator, type Generator } from '../random.js';
import { getBackend } from '../runtime.js';
import { Tensor, type NestedArray } from '../tensor.js';
import { empty } from './util.js';

export interface CreateOptions {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
}

function finish(t: Tensor, options: CreateOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

/** A tensor over a copy of host data with the given shape. */
export function fromHost(data: AnyHostArray, shape: readonly number[], dtype: DType, backend: Backend = getBackend()): Tensor {
  if (data.length !== sizeOf(shape)) {
    throw new ShapeError(`fromArray: ${data.length} values do not fill shape ${fmtShape(shape)} (size ${sizeOf(shape)})`);
  }
  return new Tensor(backend.upload(data, dtype), shape);
}

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let d: NestedArray = data;
  while (Array.isArray(d)) {
    shape.push(d.length);
    if (d.length === 0) break;
    d = d[0];
  }
  return shape;
}

function flatten(data: NestedArray, shape: number[], out: number[], depth = 0): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new ShapeError(`tensor: ragged nested array (expected a number at depth ${depth})`);
    out.push(typeof data === 'boolean' ? +data : data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new ShapeError(`tensor: ragged nested array: expected ${shape[depth]} entries at depth ${depth} of shape ${fmtShape(shape)}`);
  }
  for (const v of data) flatten(v, shape, out, depth + 1);
}

/**
 * A tensor from nested arrays, or from a flat array / typed array plus a shape.
 * dtype defaults to float32 (int32 for Int32Array, bool for boolean data / Uint8Array).
 */
export function tensor(
  data: NestedArray | ArrayLike<number> | AnyHostArray,
  shapeOrOptions?: readonly number[] | CreateOptions,
  maybeOptions: CreateOptions = {},
): Tensor {
  const options = Array.isArray(shapeOrOptions) ? maybeOptions : ((shapeOrOptions as CreateOptions | undefined) ?? {});
  let shape = Array.isArray(shapeOrOptions) ? [...(shapeOrOptions as readonly number[])] : undefined;
  let values: ArrayLike<number>;
  let dtype = options.dtype;
  if (ArrayBuffer.isView(data)) {
    values = data as AnyHostArray;
    shape ??= [values.length];
    dtype ??= data instanceof Int32Array ? 'int32' : data instanceof Uint8Array ? 'bool' : 'float32';
  } else if (typeof data === 'number' || typeof data === 'boolean') {
    values = [+data];
    shape ??= [];
    dtype ??= typeof data === 'boolean' ? 'bool' : 'float32';
  } else if (shape) {
    values = data as ArrayLike<number>;
    dtype ??= 'float32';
  } else {
    shape = inferShape(data as NestedArray);
    const flat: number[] = [];
    flatten(data as NestedArray, shape, flat);
    values = flat;
    dtype ??= typeof firstLeaf(data as NestedArray) === 'boolean' ? 'bool' : 'float32';
  }
  const host = hostArrayFor(dtype, values.length);
  for (let i = 0; i < values.length; i++) host[i] = values[i];
  return finish(fromHost(host, shape, dtype, options.backend), options);
}

function firstLeaf(d: NestedArray): number | boolean | undefined {
  while (Array.isArray(d)) {
    if (d.length === 0) return undefined;
    d = d[0];
  }
  return d;
}

/** A tensor with unspecified contents (torch.empty): for buffers that are about to be overwritten. */
export function emptyTensor(shape: readonly number[], options: CreateOptions = {}): Tensor {
  checkShape('empty', shape);
  return finish(empty(options.backend ?? getBackend(), options.dtype ?? 'float32', shape), options);
}

export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  checkShape('full', shape);
  const t = empty(options.backend ?? getBackend(), options.dtype ?? 'float32', shape);
  t.backend.fill(t, value);
  return finish(t, options);
}

export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return full(shape, 1, options);
}

/** Values start, start+step, ... below end (like torch.arange). dtype int32 when all arguments are integers. */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  if (step === 0) throw new ShapeError('arange: step must be non-zero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const dtype = options.dtype ?? (Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step) ? 'int32' : 'float32');
  const t = empty(options.backend ?? getBackend(), dtype, [n]);
  t.backend.arange(t, start, step);
  return finish(t, options);
}

/** Identity matrix [n, m]. */
export function eye(n: number, m = n, options: CreateOptions = {}): Tensor {
  const rows = arange(0, n, 1, { backend: options.backend }).reshape(n, 1);
  const cols = arange(0, m, 1, { backend: options.backend }).reshape(1, m);
  const eq = rows.eq(cols);
  const out = eq.cast(options.dtype ?? 'float32');
  rows.dispose();
  cols.dispose();
  eq.dispose();
  return finish(out, options);
}

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

function draw(kind: 'uniform' | 'normal' | 'bernoulli', shape: readonly number[], p0: number, p1: number, options: RandomOptions): Tensor {
  checkShape(kind, shape);
  const dtype = options.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16') throw new DTypeError(`${kind}: random draws are float, got dtype ${dtype}`);
  const gen = options.generator ?? defaultGenerator;
  const t = empty(options.backend ?? getBackend(), dtype, shape);
  t.backend.random(t, kind, gen.seed, gen.take(t.size), p0, p1);
  return finish(t, options);
}

/** Uniform in [low, high). */
export function rand(shape: readonly number[], options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  return draw('uniform', shape, options.low ?? 0, options.high ?? 1, options);
}

/** Normal with the given mean and std (default standard normal). */
export function randn(shape: readonly number[], options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  return draw('normal', shape, options.mean ?? 0, options.std ?? 1, options);
}

/** 1 with probability p, else 0 (float). */
export function bernoulli(shape: readonly number[], p: number, options: RandomOptions = {}): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`bernoulli: p must be in [0, 1], got ${p}`);
  return draw('bernoulli', shape, p, 0, options);
}

function checkShape(op: string, shape: readonly number[]): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`${op}: invalid shape ${JSON.stringify(shape)}`);
  }
}
