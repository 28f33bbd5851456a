// Shared helpers for the ops layer: output allocation and input checks.

import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { BackendError, DTypeError, fmtShape } from '../errors.js';
import { sizeOf } from '../layout.js';
import { Tensor } from '../tensor.js';

/** A fresh contiguous tensor (uninitialised: the kernel about to run fills it). */
export function empty(backend: Backend, dtype: DType, shape: readonly number[]): Tensor {
  return new Tensor(backend.alloc(dtype, sizeOf(shape)), shape);
}

/** The backend all inputs share; names the op when they differ or an input was disposed. */
export function backendOf(op: string, ...inputs: (Tensor | null | undefined)[]): Backend {
  let backend: Backend | null = null;
  for (const t of inputs) {
    if (!t) continue;
    t.assertAlive(op);
    if (backend && t.backend !== backend) {
      throw new BackendError(`${op}: inputs live on different backends (${backend.name} and ${t.backend.name}); move one with await t.to(backend)`);
    }
    backend = t.backend;
  }
  if (!backend) throw new BackendError(`${op}: no tensor inputs`);
  return backend;
}

export function describe(t: Tensor): string {
  return `${fmtShape(t.shape)} ${t.dtype}`;
}

export function requireFloat(op: string, t: Tensor, what = 'input'): void {
  if (t.dtype !== 'float32' && t.dtype !== 'float16') {
    throw new DTypeError(`${op}: ${what} must be float32 or float16, got ${describe(t)}`);
  }
}

export function requireDType(op: string, t: Tensor, dtypes: DType[], what = 'input'): void {
  if (!dtypes.includes(t.dtype)) throw new DTypeError(`${op}: ${what} must be ${dtypes.join(' or ')}, got ${describe(t)}`);
}
