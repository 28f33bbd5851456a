// Error classes. Every message names the op and the shapes/dtypes involved, e.g.
// `matmul: a[2,3] @ b[4,5]: inner dims 3 != 4`.

export class TensorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes that do not fit together (broadcasting, matmul inner dims, reshape sizes, ...). */
export class ShapeError extends TensorError {}
/** An input of the wrong dtype for the op. */
export class DTypeError extends TensorError {}
/** An axis or index outside the valid range. */
export class IndexError extends TensorError {}
/** A tensor used after `dispose()`. */
export class DisposedError extends TensorError {}
/** A backend that cannot be created or used (no adapter, device lost, limits exceeded). */
export class BackendError extends TensorError {}
/** The GPU device was lost; every later op on it fails with this. */
export class DeviceLostError extends BackendError {}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}
