// Reverse-mode autograd above the backends. An op that produced a tensor from inputs that require
// grad records a GradNode: edges to its inputs' nodes (or to leaf tensors), the tensors its backward
// needs (held as private handles so user disposal cannot free them), and the backward rule written
// beside the forward in src/ops. backward() walks the nodes in reverse topological order.

import { ShapeError, TensorError } from './errors.js';
import { keep, scope } from './memory.js';
import type { Tensor } from './tensor.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with gradient recording off (like torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn with gradient recording on, e.g. to recompute a block inside a backward pass. */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

type Edge = { node: GradNode; output: number } | { leaf: Tensor } | null;

/** Gradients for each input (null where an input needs none). */
export type BackwardFn = (grads: (Tensor | null)[], saved: Tensor[]) => (Tensor | null)[];

export class GradNode {
  readonly name: string;
  readonly edges: Edge[];
  readonly numOutputs: number;
  /** Shapes/dtypes of outputs, to make zero grads for outputs that received none. */
  readonly outputMeta: { shape: readonly number[]; like: Tensor }[] = [];
  private backwardFn: BackwardFn | null;
  private saved: Tensor[];
  /** Output tensors and downstream nodes referencing this node. */
  refs = 0;

  constructor(name: string, edges: Edge[], numOutputs: number, saved: Tensor[], backwardFn: BackwardFn) {
    this.name = name;
    this.edges = edges;
    this.numOutputs = numOutputs;
    this.saved = saved;
    this.backwardFn = backwardFn;
    for (const e of edges) if (e && 'node' in e) e.node.refs++;
  }

  get released(): boolean {
    return this.backwardFn === null;
  }

  run(grads: (Tensor | null)[]): (Tensor | null)[] {
    if (!this.backwardFn) {
      throw new TensorError(
        `backward: the graph through '${this.name}' was already freed (by an earlier backward or by disposing its outputs); pass { retainGraph: true } to the first backward to run it twice`,
      );
    }
    return this.backwardFn(grads, this.saved);
  }

  /** Frees saved tensors; the node can no longer run. Keeps edges so the graph walk still works. */
  releaseSaved(): void {
    this.backwardFn = null;
    for (const t of this.saved) t.dispose();
    this.saved = [];
  }

  /** Drops one reference; at zero, frees saved tensors and releases upstream nodes. */
  unref(): void {
    if (--this.refs > 0) return;
    this.releaseSaved();
    for (const e of this.edges) if (e && 'node' in e) e.node.unref();
  }
}

/**
 * Records that `outputs` were computed from `inputs` by `name`. `saved` tensors are kept alive for
 * backward (as private handles) and handed to `backward` in the same order. No-op when grad is off or
 * no input requires grad. Returns the outputs.
 */
export function record<T extends Tensor | Tensor[]>(
  name: string,
  outputs: T,
  inputs: readonly (Tensor | null | undefined)[],
  saved: readonly Tensor[],
  backward: BackwardFn,
): T {
  if (!gradEnabled || !inputs.some((t) => t?.requiresGrad)) return outputs;
  const edges: Edge[] = inputs.map((t) => {
    if (!t || !t.requiresGrad) return null;
    if (t.gradFn) return { node: t.gradFn, output: t.outputIndex };
    return { leaf: t };
  });
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const node = new GradNode(
    name,
    edges,
    outs.length,
    saved.map((t) => t.savedHandle()),
    backward,
  );
  outs.forEach((o, i) => {
    o.attachGrad(node, i);
    node.outputMeta.push({ shape: o.shape, like: o });
  });
  return outputs;
}

export interface BackwardOptions {
  /** Keep saved tensors so backward can run again through the same graph. */
  retainGraph?: boolean;
}

function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  if (leaf.disposed) {
    throw new TensorError(`backward: a leaf tensor of shape [${leaf.shape.join(',')}] that requires grad was disposed before backward`);
  }
  if (leaf.grad === null) {
    // .grad owns its storage (a rule may hand the same tensor to several inputs), contiguous.
    leaf.grad = keep(g.storage.refs > 1 || !g.isContiguous ? g.clone() : g.detach());
  } else {
    const old = leaf.grad;
    leaf.grad = keep(old.add(g));
    old.dispose();
  }
}

/**
 * A gradient has the dtype of the tensor it is the gradient of, as in torch: an op that promoted a
 * float16 input to float32 (a float16 model plus a float32 mask) hands that input a float16 gradient,
 * so float16 parameters get float16 `.grad`s.
 */
function asInputDType(g: Tensor, dtype: Tensor['dtype']): Tensor {
  if (g.dtype === dtype || (dtype !== 'float16' && dtype !== 'float32') || (g.dtype !== 'float16' && g.dtype !== 'float32')) return g;
  const cast = g.cast(dtype);
  g.dispose();
  return cast;
}

/** Computes gradients of `root` w.r.t. every leaf that requires grad, accumulating into `.grad`. */
export function backward(root: Tensor, gradOutput?: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad) {
    throw new TensorError(`backward: the tensor of shape [${root.shape.join(',')}] does not require grad and has no grad_fn`);
  }
  if (!gradOutput && root.size !== 1) {
    throw new TensorError(`backward: grad can be implicitly created only for scalar outputs, got shape [${root.shape.join(',')}]`);
  }
  // as torch: a gradient of another shape is refused, not broadcast or read past (a fused kernel would)
  if (gradOutput && (gradOutput.rank !== root.rank || gradOutput.shape.some((d, i) => d !== root.shape[i]))) {
    throw new ShapeError(`backward: grad of shape [${gradOutput.shape.join(',')}] does not match the output's shape [${root.shape.join(',')}]`);
  }
  noGrad(() =>
    scope(() => {
      const seed = gradOutput ?? root.onesLike();
      if (!root.gradFn) {
        accumulateLeaf(root, seed);
        return;
      }
      // Reverse topological order of the nodes reachable from root (iterative DFS post-order).
      const order: GradNode[] = [];
      const visited = new Set<GradNode>();
      const stack: [GradNode, number][] = [[root.gradFn, 0]];
      visited.add(root.gradFn);
      while (stack.length) {
        const top = stack[stack.length - 1];
        const [node, i] = top;
        if (i < node.edges.length) {
          top[1]++;
          const e = node.edges[i];
          if (e && 'node' in e && !visited.has(e.node)) {
            visited.add(e.node);
            stack.push([e.node, 0]);
          }
        } else {
          stack.pop();
          order.push(node);
        }
      }
      order.reverse();
      const pending = new Map<GradNode, (Tensor | null)[]>();
      pending.set(root.gradFn, Array.from({ length: root.gradFn.numOutputs }, (_, i) => (i === root.outputIndex ? seed : null)));
      for (const node of order) {
        const grads = pending.get(node);
        pending.delete(node);
        if (!grads || grads.every((g) => g === null)) continue;
        // Each node's temporaries live in their own scope; only the input grads come out.
        const returned = scope(() => node.run(grads));
        // A rule may hand back an incoming grad or the same tensor twice (add: [g, g]); give each
        // slot its own handle so every slot can be disposed independently.
        const seen = new Set<Tensor>(grads.filter((g): g is Tensor => g !== null));
        const inputGrads = returned.map((g) => {
          if (!g) return null;
          if (seen.has(g)) return g.detach();
          seen.add(g);
          return g;
        });
        for (const g of grads) if (g && g !== seed) g.dispose();
        if (!options.retainGraph) node.releaseSaved();
        node.edges.forEach((e, i) => {
          const returnedGrad = inputGrads[i];
          if (!e || !returnedGrad) {
            if (returnedGrad) returnedGrad.dispose();
            return;
          }
          const g = asInputDType(returnedGrad, 'leaf' in e ? e.leaf.dtype : e.node.outputMeta[e.output].like.dtype);
          if ('leaf' in e) {
            accumulateLeaf(e.leaf, g);
            g.dispose();
            return;
          }
          let slot = pending.get(e.node);
          if (!slot) {
            slot = new Array<Tensor | null>(e.node.numOutputs).fill(null);
            pending.set(e.node, slot);
          }
          const prev = slot[e.output];
          if (prev) {
            slot[e.output] = prev.add(g);
            prev.dispose();
            g.dispose();
          } else slot[e.output] = g;
        });
      }
    }),
  );
}

export interface FunctionContext {
  /** Tensors to keep for backward; returned in order as `ctx.saved`. */
  saveForBackward(...tensors: Tensor[]): void;
  /** Any non-tensor values backward needs. */
  [key: string]: unknown;
}

export interface CustomFunction<I extends Tensor[]> {
  name: string;
  /** Runs with grad off; returns one tensor or several. */
  forward(ctx: FunctionContext, ...inputs: I): Tensor | Tensor[];
  /** Gradients for each input given the gradient of each output (null where an output got none). */
  backward(ctx: FunctionContext & { saved: Tensor[] }, ...grads: (Tensor | null)[]): (Tensor | null)[];
}

/**
 * A user-defined autograd function (torch.autograd.Function): custom forward and backward. Layers
 * build gradient checkpointing and reversible residual layers on this.
 */
export function applyFunction<I extends Tensor[]>(fn: CustomFunction<I>, ...inputs: I): Tensor | Tensor[] {
  const toSave: Tensor[] = [];
  const ctx: FunctionContext = {
    saveForBackward: (...ts: Tensor[]) => {
      toSave.push(...ts);
    },
  };
  const out = noGrad(() => fn.forward(ctx, ...inputs));
  const outs = Array.isArray(out) ? out : [out];
  // An output that is one of the inputs must be a new handle, or the input's own graph would be replaced.
  const fresh = outs.map((o) => (inputs.includes(o) ? o.detach() : o));
  const result = Array.isArray(out) ? fresh : fresh[0];
  return record(fn.name, result, inputs, toSave, (grads, saved) => fn.backward(Object.assign(ctx, { saved }), ...grads));
}
