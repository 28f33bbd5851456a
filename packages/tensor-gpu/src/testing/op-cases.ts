// The op-case table: every op, run on each backend against the cpu backend, and (where
// differentiable) gradient-checked by finite differences on cpu. One row per behaviour.

import type { Tensor } from '../tensor.js';
import { BINARY, FUSED_BIAS_ACTIVATIONS, UNARY, type BinaryOpName, type UnaryOpName } from '../elementwise-math.js';
import { BINARY_GRAD, UNARY_GRAD } from '../ops/elementwise-grad.js';
import { biasActivation, binary, cast, maskedFill, pow, unary, where } from '../ops/elementwise.js';
import { logsumexp, variance } from '../ops/reduce.js';
import { layerNorm, logSoftmax, rmsNorm, scaledDotProductAttention, softmax } from '../ops/nn.js';
import { crossEntropy } from '../ops/cross-entropy.js';
import { cumsum, embedding, gather, indexSelect, oneHot, scatterAdd, sort, topk } from '../ops/indexing.js';
import { chunk, concat, pad, split, stack, tril, triu } from '../ops/shape.js';
import { hostInput, type InputSpec } from './inputs.js';

export interface OpCase {
  name: string;
  inputs: InputSpec[];
  run: (...inputs: Tensor[]) => Tensor | Tensor[];
  /** Gradient-check float inputs (default true when the op is differentiable). */
  grad?: boolean;
  /** Absolute/relative tolerance versus cpu (default 1e-5 / 1e-4). */
  atol?: number;
  rtol?: number;
  /** Finite-difference tolerance (default 2e-2 relative). */
  gradTol?: number;
  /** Skip the finite-difference check only (the rule intentionally differs from the math, e.g. padding_idx). */
  noGradcheck?: boolean;
}

const f = (shape: number[], extra: Partial<InputSpec> = {}): InputSpec => ({ shape, ...extra });
const ints = (shape: number[], high: number): InputSpec => ({ shape, kind: 'int', high });

// Inputs chosen inside each op's smooth domain so finite differences are meaningful.
const UNARY_DOMAIN: Partial<Record<UnaryOpName, InputSpec['kind']>> = {
  log: 'positive',
  sqrt: 'positive',
  rsqrt: 'positive',
  reciprocal: 'positive',
  powScalar: 'positive',
  log1p: 'positive',
};
const UNARY_PARAMS: Partial<Record<UnaryOpName, [number, number]>> = {
  affine: [1.5, -0.25],
  powScalar: [2.5, 0],
  rpowScalar: [1.7, 0],
  clamp: [-0.5, 0.7],
  leakyRelu: [0.1, 0],
  eqScalar: [0, 0],
  neScalar: [0, 0],
  ltScalar: [0.1, 0],
  leScalar: [0.1, 0],
  gtScalar: [0.1, 0],
  geScalar: [0.1, 0],
};

// Ops with kinks are gradient-checked on inputs kept clear of them: finite differences (step 1e-3)
// straddling a kink measure neither side. The values at the kinks are tested exactly in kinks.test.ts.
const MARGIN = 0.1;

/**
 * n seeded values on the grid {0.2 k + offset}: two inputs with offsets 0 and 0.1 never come within
 * MARGIN of each other (maximum/minimum), and offset 0.1 stays MARGIN away from 0 (relu, abs, ...).
 */
function grid(n: number, seed: number, offset: number): number[] {
  return Array.from(hostInput({ shape: [n] }, seed), (v) => Math.round(v * 5) / 5 + offset);
}

/** n seeded normal values, each moved at least MARGIN away from every kink. */
function awayFromKinks(n: number, seed: number, kinks: number[]): number[] {
  return Array.from(hostInput({ shape: [n] }, seed), (v) => {
    for (const k of kinks) if (Math.abs(v - k) < MARGIN) v = v < k ? k - MARGIN : k + MARGIN;
    return v;
  });
}

const UNARY_KINKS: Partial<Record<UnaryOpName, number[]>> = {
  abs: [0],
  relu: [0],
  clamp: UNARY_PARAMS.clamp,
  leakyRelu: [0],
};

const unaryCases: OpCase[] = (Object.keys(UNARY) as UnaryOpName[]).map((op) => {
  const [p0, p1] = UNARY_PARAMS[op] ?? [0, 0];
  const kinks = UNARY_KINKS[op];
  return {
    name: `unary ${op}`,
    inputs: [kinks ? f([3, 5], { values: awayFromKinks(15, 1, kinks) }) : f([3, 5], { kind: UNARY_DOMAIN[op] ?? 'normal' })],
    run: (x: Tensor) => unary(op, x, p0, p1),
    grad: UNARY_GRAD[op] !== null,
  };
});

const BINARY_DOMAIN: Partial<Record<BinaryOpName, [InputSpec['kind'], InputSpec['kind']]>> = {
  div: ['normal', 'positive'],
  pow: ['positive', 'normal'],
};

// bias + activation (a fused kernel where the backend has it): bias broadcast over rows
// (for relu, x + bias is kept clear of 0: x on the odd grid, bias on the even one)
const biasActivationCases: OpCase[] = FUSED_BIAS_ACTIVATIONS.map((act) => ({
  name: `biasActivation ${act}`,
  inputs: act === 'relu' ? [f([3, 5], { values: grid(15, 1, MARGIN) }), f([5], { values: grid(5, 2, 0) })] : [f([3, 5]), f([5])],
  run: (x: Tensor, b: Tensor) => biasActivation(x, b, act),
}));

const binaryCases: OpCase[] = (Object.keys(BINARY) as BinaryOpName[]).flatMap((op) => {
  const [ka, kb] = BINARY_DOMAIN[op] ?? ['normal', 'normal'];
  const differentiable = BINARY_GRAD[op] !== null;
  // maximum/minimum: a and b on interleaved grids, so no pair is within MARGIN of a tie
  const kinked = op === 'maximum' || op === 'minimum';
  const spec = (shape: number[], kind: InputSpec['kind'], seed: number, offset: number) =>
    kinked ? f(shape, { values: grid(shape.reduce((n, d) => n * d, 1), seed, offset) }) : f(shape, { kind });
  return [
    { name: `binary ${op}`, inputs: [spec([4, 3], ka, 1, MARGIN), spec([4, 3], kb, 2, 0)], run: (a: Tensor, b: Tensor) => binary(op, a, b), grad: differentiable },
    {
      name: `binary ${op} broadcast`,
      inputs: [spec([2, 1, 3], ka, 1, MARGIN), spec([4, 1], kb, 2, 0)],
      run: (a: Tensor, b: Tensor) => binary(op, a, b),
      grad: differentiable,
    },
  ];
});

export const OP_CASES: OpCase[] = [
  ...unaryCases,
  ...binaryCases,
  ...biasActivationCases,
  { name: 'binary on transposed views', inputs: [f([3, 4]), f([4, 3])], run: (a, b) => a.transpose(0, 1).mul(b) },
  { name: 'binary on sliced strided views', inputs: [f([6, 5]), f([3, 5])], run: (a, b) => a.slice(0, 0, 6, 2).add(b) },
  // a tie's gradient is split evenly (PyTorch's rule), which is not a finite difference of one side
  { name: 'maximum with ties', inputs: [f([4], { values: [1, 2, 3, 4] }), f([4], { values: [4, 2, 1, 5] })], run: (a, b) => binary('maximum', a, b), noGradcheck: true },
  { name: 'minimum with ties', inputs: [f([4], { values: [1, 2, 3, 4] }), f([4], { values: [4, 2, 1, 5] })], run: (a, b) => binary('minimum', a, b), noGradcheck: true },
  { name: 'int32 add', inputs: [ints([5], 10), ints([5], 10)], run: (a, b) => a.add(b), grad: false },
  { name: 'int32 comparison', inputs: [ints([6], 4), ints([6], 4)], run: (a, b) => a.lt(b), grad: false },
  { name: 'bool logical ops', inputs: [f([7], { kind: 'bool' }), f([7], { kind: 'bool' })], run: (a, b) => a.logicalAnd(b).logicalOr(a.logicalNot()), grad: false },
  { name: 'where', inputs: [f([3, 4], { kind: 'bool' }), f([3, 4]), f([1, 4])], run: (c, a, b) => where(c, a, b) },
  { name: 'where scalar', inputs: [f([3, 4], { kind: 'bool' }), f([3, 4])], run: (c, a) => where(c, a, -2) },
  { name: 'maskedFill', inputs: [f([2, 5]), f([1, 5], { kind: 'bool' })], run: (x, m) => maskedFill(x, m, -1e9) },
  { name: 'pow tensor-scalar', inputs: [f([5], { kind: 'positive' })], run: (x) => pow(x, 3) },
  { name: 'cast float->int32', inputs: [f([6], { values: [-2.7, -0.5, 0, 0.5, 1.9, 3] })], run: (x) => cast(x, 'int32'), grad: false },
  { name: 'cast int->float', inputs: [ints([6], 100)], run: (x) => cast(x, 'float32'), grad: false },
  { name: 'cast float->bool', inputs: [f([4], { values: [0, 1, -2, 0] })], run: (x) => cast(x, 'bool'), grad: false },

  { name: 'sum all', inputs: [f([3, 4, 5])], run: (x) => x.sum() },
  { name: 'sum axes keepDim', inputs: [f([3, 4, 5])], run: (x) => x.sum([0, 2], true) },
  { name: 'sum middle axis', inputs: [f([3, 4, 5])], run: (x) => x.sum(1) },
  { name: 'sum of a transposed view', inputs: [f([4, 6])], run: (x) => x.transpose(0, 1).sum(1) },
  { name: 'mean', inputs: [f([3, 4, 5])], run: (x) => x.mean(-1) },
  { name: 'prod', inputs: [f([3, 4], { kind: 'positive' })], run: (x) => x.prod(1) },
  { name: 'max', inputs: [f([3, 5], { kind: 'distinct' })], run: (x) => x.max(1) },
  { name: 'min keepDim', inputs: [f([3, 5], { kind: 'distinct' })], run: (x) => x.min(0, true) },
  { name: 'argmax', inputs: [f([4, 6], { kind: 'distinct' })], run: (x) => x.argmax(1), grad: false },
  { name: 'argmax ties take the first', inputs: [f([2, 4], { values: [1, 3, 3, 0, 5, 5, 5, 5] })], run: (x) => x.argmax(1), grad: false },
  { name: 'argmin over all', inputs: [f([3, 4], { kind: 'distinct' })], run: (x) => x.argmin(), grad: false },
  { name: 'var', inputs: [f([3, 6])], run: (x) => variance(x, 1) },
  { name: 'var unbiased off', inputs: [f([3, 6])], run: (x) => variance(x, [0, 1], { correction: 0 }) },
  { name: 'logsumexp', inputs: [f([3, 6])], run: (x) => logsumexp(x, 1) },
  { name: 'int32 sum', inputs: [ints([4, 5], 7)], run: (x) => x.sum(1), grad: false },

  { name: 'matmul 2d', inputs: [f([5, 7]), f([7, 3])], run: (a, b) => a.matmul(b) },
  { name: 'matmul batched broadcast', inputs: [f([2, 3, 4, 5]), f([5, 6])], run: (a, b) => a.matmul(b) },
  { name: 'matmul batch broadcast both', inputs: [f([2, 1, 3, 4]), f([1, 3, 4, 2])], run: (a, b) => a.matmul(b) },
  { name: 'matmul transposed operands', inputs: [f([4, 5]), f([6, 4])], run: (a, b) => a.transpose(0, 1).matmul(b.transpose(0, 1)) },
  { name: 'matmul vector-matrix', inputs: [f([4]), f([4, 3])], run: (a, b) => a.matmul(b) },
  { name: 'matmul matrix-vector', inputs: [f([3, 4]), f([4])], run: (a, b) => a.matmul(b) },
  { name: 'matmul dot', inputs: [f([6]), f([6])], run: (a, b) => a.matmul(b) },
  { name: 'matmul odd sizes', inputs: [f([1, 17, 33]), f([1, 33, 9])], run: (a, b) => a.matmul(b) },

  { name: 'softmax last', inputs: [f([3, 7])], run: (x) => softmax(x, -1) },
  { name: 'softmax middle axis', inputs: [f([2, 5, 3])], run: (x) => softmax(x, 1) },
  { name: 'softmax with -inf mask', inputs: [f([2, 4])], run: (x) => softmax(maskedFill(x, x.gtScalar(0.8), -Infinity), -1), grad: false },
  { name: 'logSoftmax', inputs: [f([3, 7])], run: (x) => logSoftmax(x, -1) },
  { name: 'layerNorm', inputs: [f([3, 8]), f([8]), f([8])], run: (x, w, b) => layerNorm(x, 8, w, b, 1e-5), gradTol: 3e-2 },
  { name: 'layerNorm without affine', inputs: [f([2, 3, 6])], run: (x) => layerNorm(x, 6, null, null, 1e-12), gradTol: 3e-2 },
  { name: 'layerNorm over 2 dims', inputs: [f([2, 3, 4]), f([3, 4]), f([3, 4])], run: (x, w, b) => layerNorm(x, [3, 4], w, b), gradTol: 3e-2 },
  { name: 'rmsNorm', inputs: [f([3, 8]), f([8])], run: (x, w) => rmsNorm(x, w, 1e-6), gradTol: 3e-2 },
  {
    name: 'crossEntropy with ignore_index',
    inputs: [f([5, 7]), f([5], { dtype: 'int32', values: [1, -100, 6, 0, 3] })],
    run: (x, t) => crossEntropy(x, t),
  },
  { name: 'crossEntropy sum, smoothing', inputs: [f([4, 5]), ints([4], 5)], run: (x, t) => crossEntropy(x, t, { reduction: 'sum', labelSmoothing: 0.1 }) },
  { name: 'crossEntropy over [N, C, L]', inputs: [f([2, 5, 3]), ints([2, 3], 5)], run: (x, t) => crossEntropy(x, t, { reduction: 'none' }) },
  { name: 'attention', inputs: [f([2, 3, 5, 4]), f([2, 3, 6, 4]), f([2, 3, 6, 4])], run: (q, k, v) => scaledDotProductAttention(q, k, v), gradTol: 3e-2 },
  {
    name: 'attention additive mask',
    inputs: [f([2, 2, 4, 8]), f([2, 2, 4, 8]), f([2, 2, 4, 8]), f([2, 1, 1, 4])],
    run: (q, k, v, m) => scaledDotProductAttention(q, k, v, { mask: m }),
    gradTol: 3e-2,
  },
  {
    name: 'attention bool mask with a fully masked row',
    inputs: [f([1, 3, 4]), f([1, 5, 4]), f([1, 5, 2]), f([1, 3, 5], { dtype: 'bool', values: [1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1] })],
    run: (q, k, v, m) => scaledDotProductAttention(q, k, v, { mask: m }),
    gradTol: 3e-2,
  },
  { name: 'attention causal with cache offset', inputs: [f([2, 3, 4]), f([2, 5, 4]), f([2, 5, 3])], run: (q, k, v) => scaledDotProductAttention(q, k, v, { causal: true, scale: 0.3 }), gradTol: 3e-2 },
  { name: 'attention on transposed heads', inputs: [f([2, 5, 3, 4]), f([2, 5, 3, 4]), f([2, 5, 3, 4])], run: (q, k, v) => scaledDotProductAttention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)), gradTol: 3e-2 },

  { name: 'gather axis 1', inputs: [f([3, 5]), ints([3, 4], 5)], run: (x, i) => gather(x, 1, i) },
  { name: 'gather axis 0', inputs: [f([4, 3]), ints([2, 3], 4)], run: (x, i) => gather(x, 0, i) },
  { name: 'indexSelect', inputs: [f([6, 4]), f([5], { dtype: 'int32', values: [5, 0, 2, 2, 1] })], run: (x, i) => indexSelect(x, 0, i) },
  { name: 'indexSelect axis 1', inputs: [f([3, 6, 2]), f([3], { dtype: 'int32', values: [4, 4, 0] })], run: (x, i) => indexSelect(x, 1, i) },
  { name: 'embedding', inputs: [f([7, 3]), f([2, 4], { dtype: 'int32', values: [0, 3, 3, 6, 1, 0, 2, 5] })], run: (w, i) => embedding(w, i) },
  // nn.Embedding gives the padding row no gradient although it is used: not a finite difference.
  { name: 'embedding with padding_idx', inputs: [f([7, 3]), f([2, 4], { dtype: 'int32', values: [0, 3, 3, 6, 1, 0, 2, 5] })], run: (w, i) => embedding(w, i, { paddingIdx: 0 }), noGradcheck: true },
  { name: 'scatterAdd', inputs: [f([3, 5]), ints([3, 4], 5), f([3, 4])], run: (x, i, s) => scatterAdd(x, 1, i, s) },
  { name: 'scatterAdd axis 0 duplicates', inputs: [f([4, 3]), f([3, 3], { dtype: 'int32', values: [0, 1, 0, 0, 3, 0, 2, 2, 0] }), f([3, 3])], run: (x, i, s) => scatterAdd(x, 0, i, s) },
  { name: 'cumsum', inputs: [f([3, 6])], run: (x) => cumsum(x, 1) },
  { name: 'cumsum axis 0', inputs: [f([4, 2, 3])], run: (x) => cumsum(x, 0) },
  { name: 'sort ascending', inputs: [f([3, 7], { kind: 'distinct' })], run: (x) => { const s = sort(x, -1); return [s.values, s.indices]; } },
  { name: 'sort descending axis 0', inputs: [f([6, 3], { kind: 'distinct' })], run: (x) => { const s = sort(x, 0, true); return [s.values, s.indices]; } },
  { name: 'sort stable with ties', inputs: [f([8], { values: [3, 1, 2, 1, 3, 0, 2, 1] })], run: (x) => sort(x).indices, grad: false },
  { name: 'topk', inputs: [f([3, 9], { kind: 'distinct' })], run: (x) => { const s = topk(x, 3, -1); return [s.values, s.indices]; } },
  { name: 'topk smallest', inputs: [f([2, 6], { kind: 'distinct' })], run: (x) => topk(x, 2, 1, false).values },
  { name: 'oneHot', inputs: [ints([2, 3], 4)], run: (i) => oneHot(i, 4), grad: false },

  { name: 'concat', inputs: [f([2, 3]), f([4, 3]), f([1, 3])], run: (a, b, c) => concat([a, b, c], 0) },
  { name: 'concat last axis', inputs: [f([2, 3]), f([2, 2])], run: (a, b) => concat([a, b], -1) },
  { name: 'stack', inputs: [f([2, 3]), f([2, 3])], run: (a, b) => stack([a, b], 1) },
  { name: 'split', inputs: [f([7, 2])], run: (x) => split(x, 3, 0) },
  { name: 'chunk', inputs: [f([2, 6])], run: (x) => chunk(x, 3, 1).map((c) => c.mulScalar(2)) },
  { name: 'pad', inputs: [f([2, 3, 4])], run: (x) => pad(x, [1, 2, 0, 1], 0.5) },
  { name: 'tril', inputs: [f([4, 5])], run: (x) => tril(x) },
  { name: 'triu with offset', inputs: [f([2, 4, 4])], run: (x) => triu(x, 1) },
  { name: 'tril bool', inputs: [f([3, 3], { kind: 'bool' })], run: (x) => tril(x, -1), grad: false },

  { name: 'reshape of a permuted view copies', inputs: [f([2, 3, 4])], run: (x) => x.permute(2, 0, 1).reshape(4, 6) },
  { name: 'expand then contiguous', inputs: [f([3, 1])], run: (x) => x.expand(2, 3, 4).contiguous() },
  { name: 'slice with step and negative start', inputs: [f([10, 2])], run: (x) => x.slice(0, -7, 9, 3) },
  { name: 'select and squeeze', inputs: [f([3, 1, 4])], run: (x) => x.select(0, 1).squeeze() },
  { name: 'flatten', inputs: [f([2, 3, 4])], run: (x) => x.flatten(1) },
];
