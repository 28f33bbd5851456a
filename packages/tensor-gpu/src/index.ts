// @lm/tensor-gpu: tensors, WGSL kernels, a fast cpu backend, autograd and memory management.

export { Tensor, type NestedArray } from './tensor.js';
export type { AdamStepParams, Backend, BackendName, FusedKernels, FusedKernelName, Storage, View, MemoryInfo, ReduceOpName, RandomKind } from './backend.js';
export type { DType, AnyHostArray } from './dtype.js';
export { DTYPES, isFloat, promoteTypes, numberToFloat16Bits, float16BitsToNumber, bfloat16BitsToNumber, roundToFloat16 } from './dtype.js';
export * from './errors.js';
export { init, cpu, getBackend, setBackend, autoFallbackReason, type BackendChoice, type InitOptions } from './runtime.js';
export { probeWebGPU, type WebGPUProbe } from './probe.js';
export { createWebGPUBackend, WebGPUBackend, type WebGPUBackendOptions } from './backends/webgpu/index.js';
export { scope, keep, memory, type MemoryReport } from './memory.js';
export {
  noGrad,
  enableGrad,
  isGradEnabled,
  backward,
  applyFunction,
  type CustomFunction,
  type FunctionContext,
  type BackwardOptions,
} from './autograd.js';
export { Generator, manualSeed, defaultGenerator, philox, philoxFill } from './random.js';
export { tensor, fromHost, emptyTensor as empty, zeros, ones, full, arange, eye, rand, randn, bernoulli, type CreateOptions, type RandomOptions } from './ops/creation.js';
export { unary, binary, biasActivation, add, sub, mul, div, pow, maximum, minimum, where, maskedFill, cast } from './ops/elementwise.js';
export { sumToShape, broadcastTo } from './ops/broadcast.js';
export {
  UNARY,
  BINARY,
  FUSED_BINARY,
  FUSED_BIAS_ACTIVATIONS,
  erf,
  type UnaryOpName,
  type BinaryOpName,
  type FusedBinaryOpName,
  type UnaryRow,
  type BinaryRow,
  type FusedBiasActivation,
} from './elementwise-math.js';
export { UNARY_GRAD, BINARY_GRAD, type UnaryGrad, type BinaryGrad } from './ops/elementwise-grad.js';
export { clone, reshape, view, permute, transpose, unsqueeze, squeeze, expand, flatten, slice, select, contiguous, alias } from './ops/views.js';
export { sum, mean, prod, max, min, argmax, argmin, variance, logsumexp } from './ops/reduce.js';
export { matmul } from './ops/linalg.js';
export {
  softmax,
  logSoftmax,
  layerNorm,
  rmsNorm,
  dropout,
  mseLoss,
  binaryCrossEntropyWithLogits,
  scaledDotProductAttention,
  causalKeep,
  type MSELossOptions,
  type BinaryCrossEntropyWithLogitsOptions,
  type AttentionOptions,
} from './ops/nn.js';
export { crossEntropy, type CrossEntropyOptions } from './ops/cross-entropy.js';
export { gather, indexSelect, scatterAdd, embedding, cumsum, sort, argsort, topk, oneHot, type SortResult } from './ops/indexing.js';
export { concat, stack, split, chunk, pad, tril, triu } from './ops/shape.js';
export { adamStep_ } from './ops/optim.js';
export { matmulTopk, type MatmulTopkOptions, type MatmulTopkResult } from './ops/matmul-topk.js';
export { quantizedMatmul, dequantizeWeight, packQuantizedRows, packFloat16Rows, quantizedRowWords, type QuantBits, type QuantizedWeightOptions } from './ops/quantized-matmul.js';
