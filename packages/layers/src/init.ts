// Parameter initialisation. Layers create their parameters through `initTensor`, so that
// `withoutInit(() => new Model(config))` allocates them uninitialised: fromPretrained then fills them
// from the checkpoint without paying for (or holding) a random init first.

import { empty, noGrad, rand, randn, full, type Backend, type Tensor } from '@lm/tensor-gpu';

let skipInit = 0;

/** Constructs modules with uninitialised parameters (they must be filled before use). */
export function withoutInit<T>(fn: () => T): T {
  skipInit++;
  try {
    return fn();
  } finally {
    skipInit--;
  }
}

export function isInitSkipped(): boolean {
  return skipInit > 0;
}

export type Init =
  | { kind: 'normal'; mean?: number; std: number }
  | { kind: 'uniform'; low: number; high: number }
  | { kind: 'constant'; value: number };

/** A new parameter tensor drawn from `init`, or uninitialised inside withoutInit(). */
export function initTensor(shape: readonly number[], init: Init, backend?: Backend): Tensor {
  if (skipInit > 0) return empty(shape, { backend });
  switch (init.kind) {
    case 'normal':
      return randn(shape, { mean: init.mean ?? 0, std: init.std, backend });
    case 'uniform':
      return rand(shape, { low: init.low, high: init.high, backend });
    case 'constant':
      return full(shape, init.value, { backend });
  }
}

/** Overwrites t in place with values from `init` (torch.nn.init.*_): for models' _init_weights. */
export function initInPlace(t: Tensor, init: Init): Tensor {
  const fresh = (() => {
    switch (init.kind) {
      case 'normal':
        return randn(t.shape, { mean: init.mean ?? 0, std: init.std, backend: t.backend });
      case 'uniform':
        return rand(t.shape, { low: init.low, high: init.high, backend: t.backend });
      case 'constant':
        return full(t.shape, init.value, { backend: t.backend });
    }
  })();
  noGrad(() => t.copy_(fresh));
  fresh.dispose();
  return t;
}
