// Gradient checkpointing: run a block without keeping its activations, and recompute them in backward
// (torch.utils.checkpoint, reentrant flavour). Dropout masks are reproduced by restoring the random
// generator's state before the recompute.

import { applyFunction, defaultGenerator, enableGrad, type CustomFunction, type Tensor } from '@lm/tensor-gpu';

/**
 * Calls `fn(...inputs)` so that its intermediate tensors are freed after the forward and rebuilt
 * during backward. Parameters `fn` reads (module weights) get their gradients during the recompute.
 * Non-tensor arguments should be closed over by `fn`.
 */
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  const rng = defaultGenerator.getState();
  const fnc: CustomFunction<Tensor[]> = {
    name: 'checkpoint',
    forward: (ctx, ...xs) => {
      ctx.saveForBackward(...xs);
      return fn(...xs);
    },
    backward: (ctx, grad) => {
      const replay = ctx.saved.map((x, i) => {
        const d = x.detach();
        d.requiresGrad = inputs[i].requiresGrad && (d.dtype === 'float32' || d.dtype === 'float16');
        return d;
      });
      // Recompute with the same random draws, then put the generator back where backward found it.
      const now = defaultGenerator.getState();
      defaultGenerator.setState(rng);
      const out = enableGrad(() => fn(...replay));
      defaultGenerator.setState(now);
      if (out.requiresGrad) out.backward(grad!);
      const grads = replay.map((r) => r.grad);
      for (const r of replay) r.grad = null;
      return grads;
    },
  };
  return applyFunction(fnc, ...inputs) as Tensor;
}
