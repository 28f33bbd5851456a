// Elementwise ops: the UNARY/BINARY math rows (../elementwise-math.ts) exposed as functions, with
// broadcasting, dtype promotion, scalar operands and their gradient rules (./elementwise-grad.ts,
// summed back over broadcast dims).

import { autoDType, promoteTypes, type DType } from '../dtype.js';
import { record } from '../autograd.js';
import { broadcastShapes } from '../layout.js';
import { scope } from '../memory.js';
import { Tensor } from '../tensor.js';
import { BINARY, FUSED_BIAS_ACTIVATIONS, UNARY, type BinaryOpName, type FusedBiasActivation, type UnaryOpName } from '../elementwise-math.js';
import { BINARY_GRAD, UNARY_GRAD, type BinaryGrad } from './elementwise-grad.js';
import { broadcastTo, sumToShape } from './broadcast.js';
import { backendOf, empty } from './util.js';
import { full } from './creation.js';
import { alias } from './views.js';

function unaryOutDType(kind: 'same' | 'bool' | 'float', input: DType): DType {
  if (kind === 'bool') return 'bool';
  if (kind === 'float') return input === 'float16' ? 'float16' : 'float32';
  return input;
}

/** Applies a UNARY table row. */
export function unary(op: UnaryOpName, x: Tensor, p0 = 0, p1 = 0): Tensor {
  const backend = backendOf(op, x);
  const row = UNARY[op];
  const out = empty(backend, unaryOutDType(row.out, x.dtype), x.shape);
  backend.unary(op, x, out, p0, p1);
  const grad = UNARY_GRAD[op];
  if (!grad) return out;
  return record(op, out, [x], [x, out], ([g], [xs, ys]) => [grad(g!, xs, ys, p0, p1)]);
}

/** Applies a BINARY table row to two tensors with broadcasting. */
export function binary(op: BinaryOpName, a: Tensor, b: Tensor): Tensor {
  const backend = backendOf(op, a, b);
  return broadcastBinary(op, a, b, BINARY[op].out, (av, bv, out) => backend.binary(op, av, bv, out), BINARY_GRAD[op]);
}

/**
 * out = kernel(a, b) over the broadcast shape (the kernel gets both inputs as views of that shape),
 * recorded with `grad` whose results are summed back to each input's shape.
 */
function broadcastBinary(
  op: string,
  a: Tensor,
  b: Tensor,
  outKind: 'promote' | 'bool' | 'float',
  kernel: (a: Tensor, b: Tensor, out: Tensor) => void,
  grad: BinaryGrad | null,
): Tensor {
  const shape = broadcastShapes(op, a.shape, b.shape);
  const promoted = promoteTypes(a.dtype, b.dtype);
  const dtype = outKind === 'bool' ? 'bool' : outKind === 'float' ? (promoted === 'float16' ? 'float16' : 'float32') : promoted;
  const out = empty(a.backend, dtype, shape);
  const av = broadcastTo(a, shape);
  const bv = broadcastTo(b, shape);
  kernel(av, bv, out);
  if (av !== a) av.dispose();
  if (bv !== b) bv.dispose();
  if (!grad) return out;
  const aShape = a.shape;
  const bShape = b.shape;
  return record(op, out, [a, b], [a, b, out], ([g], [as, bs, ys]) => {
    const [ga, gb] = grad(g!, as, bs, ys);
    return [ga && sumToShape(ga, aShape), gb && sumToShape(gb, bShape)];
  });
}

function scalarLike(x: Tensor, value: number): Tensor {
  return full([], value, { backend: x.backend, dtype: autoDType(value, x.dtype) });
}

type Operand = Tensor | number;

export function add(a: Operand, b: Operand): Tensor {
  if (typeof b === 'number' && a instanceof Tensor) return unary('affine', a, 1, b);
  if (typeof a === 'number' && b instanceof Tensor) return unary('affine', b, 1, a);
  return binary('add', a as Tensor, b as Tensor);
}

export function sub(a: Operand, b: Operand): Tensor {
  if (typeof b === 'number' && a instanceof Tensor) return unary('affine', a, 1, -b);
  if (typeof a === 'number' && b instanceof Tensor) return unary('affine', b, -1, a);
  return binary('sub', a as Tensor, b as Tensor);
}

export function mul(a: Operand, b: Operand): Tensor {
  if (typeof b === 'number' && a instanceof Tensor) return unary('affine', a, b, 0);
  if (typeof a === 'number' && b instanceof Tensor) return unary('affine', b, a, 0);
  return binary('mul', a as Tensor, b as Tensor);
}

export function div(a: Operand, b: Operand): Tensor {
  if (typeof b === 'number' && a instanceof Tensor && a.dtype !== 'int32') return unary('affine', a, 1 / b, 0);
  return binary('div', toTensor(a, b), toTensor(b, a));
}

export function pow(a: Operand, b: Operand): Tensor {
  if (typeof b === 'number' && a instanceof Tensor) {
    if (b === 2) return unary('square', a);
    if (b === 1) return unary('affine', a, 1, 0);
    return unary('powScalar', a, b);
  }
  if (typeof a === 'number' && b instanceof Tensor) return unary('rpowScalar', b, a);
  return binary('pow', a as Tensor, b as Tensor);
}

export function maximum(a: Operand, b: Operand): Tensor {
  return binary('maximum', toTensor(a, b), toTensor(b, a));
}

export function minimum(a: Operand, b: Operand): Tensor {
  return binary('minimum', toTensor(a, b), toTensor(b, a));
}

const SCALAR_COMPARE = { eq: 'eqScalar', ne: 'neScalar', lt: 'ltScalar', le: 'leScalar', gt: 'gtScalar', ge: 'geScalar' } as const;

export function compare(op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge', a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') return unary(SCALAR_COMPARE[op], a, b);
  return binary(op, a, b);
}

function toTensor(x: Operand, other: Operand): Tensor {
  if (x instanceof Tensor) return x;
  return scalarLike(other as Tensor, x);
}

/** Converts to another dtype (float -> int truncates toward zero; nonzero -> true for bool). */
export function cast(x: Tensor, dtype: DType): Tensor {
  const backend = backendOf('cast', x);
  if (x.dtype === dtype) return alias(x);
  const out = empty(backend, dtype, x.shape);
  backend.copy(x, out);
  if (dtype !== 'float32' && dtype !== 'float16') return out;
  const from = x.dtype;
  if (from !== 'float32' && from !== 'float16') return out;
  return record('cast', out, [x], [], ([g]) => [cast(g!, from)]);
}

/** out = cond ? a : b with broadcasting; a/b may be scalars. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const ref = a instanceof Tensor ? a : b instanceof Tensor ? b : cond;
  const at = a instanceof Tensor ? a : full([], a, { backend: ref.backend, dtype: ref === cond ? 'float32' : ref.dtype });
  const bt = b instanceof Tensor ? b : full([], b, { backend: ref.backend, dtype: at.dtype });
  const backend = backendOf('where', cond, at, bt);
  const shape = broadcastShapes('where', cond.shape, at.shape, bt.shape);
  const out = empty(backend, promoteTypes(at.dtype, bt.dtype), shape);
  const views = [broadcastTo(cond, shape), broadcastTo(at, shape), broadcastTo(bt, shape)];
  backend.where(views[0], views[1], views[2], out);
  views.forEach((v, i) => {
    if (v !== [cond, at, bt][i]) v.dispose();
  });
  const aShape = at.shape;
  const bShape = bt.shape;
  const result = record('where', out, [null, at, bt], [cond], ([g], [c]) => [
    null,
    at.requiresGrad ? sumToShape(where(c, g!, 0), aShape) : null,
    bt.requiresGrad ? sumToShape(where(c, 0, g!), bShape) : null,
  ]);
  if (!(a instanceof Tensor)) at.dispose();
  if (!(b instanceof Tensor)) bt.dispose();
  return result;
}

/**
 * act(x + bias), bias broadcast over x: the epilogue of Linear layers. One kernel where the backend has
 * the fused row (Backend.fused.biasActivation), else the add and the activation.
 */
export function biasActivation(x: Tensor, bias: Tensor, activation: FusedBiasActivation): Tensor {
  if (!FUSED_BIAS_ACTIVATIONS.includes(activation)) {
    throw new TypeError(`biasActivation: unknown activation '${activation}'; known: ${FUSED_BIAS_ACTIVATIONS.join(', ')}`);
  }
  const backend = backendOf('biasActivation', x, bias);
  const kernel = backend.fused.biasActivation;
  if (!kernel) return scope(() => unary(activation, binary('add', x, bias)));
  const rule = UNARY_GRAD[activation]!;
  return broadcastBinary(`biasActivation(${activation})`, x, bias, 'float', (xv, bv, out) => kernel(activation, xv, bv, out), (g, xs, bs, y) => {
    const gz = rule(g, xs.add(bs), y, 0, 0);
    return [gz, gz];
  });
}

/** Where mask is true, value; elsewhere x. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  return where(mask, value, x);
}
