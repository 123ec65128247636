// The tensor layer's public surface.
export type { Backend, Storage, View, UnaryOp, BinaryOp, ActivationOp, ReduceOp, AttentionArgs, AdamWStep, SgdStep } from './backend.js';
export type { DType, TypedArray } from './dtype.js';
export { Tensor, tensor, zeros, ones, full, zerosLike, onesLike, arange } from './tensor.js';
export type { Shape, TensorLike, TensorOptions, NestedArray } from './tensor.js';
export { noGrad, isGradEnabled } from './autograd.js';
export { gradcheck } from './gradcheck.js';
export type { GradcheckOptions } from './gradcheck.js';
export type { BackwardOptions } from './autograd.js';
export { getBackend, defaultBackend, setDefaultBackend, hasBackend, reclaimMemory } from './device.js';
export { Generator, manualSeed, getDefaultGenerator, randn, rand, randint, bernoulli } from './random.js';
export type { RandomOptions } from './random.js';
export {
  cast, add, sub, mul, div, pow, maximum, minimum, compare, neg, abs, exp, log, sqrt, rsqrt, reciprocal, square,
  sin, cos, sign, tanh, sigmoid, softplus, erf, relu, gelu, quickGelu, where, clamp,
} from './ops/elementwise.js';
export { sum, mean, max, min, argmax, argmin, logsumexp, softmax, logSoftmax } from './ops/reduce.js';
export { matmul } from './ops/linalg.js';
export { reshape, permute, transpose, expand, slice, select, squeeze, unsqueeze, flatten, contiguous, broadcastShapes } from './ops/view.js';
export { indexSelect, embedding, gather, sort, argsort, topk, concat, stack, split } from './ops/indexing.js';
export type { Sorted } from './ops/indexing.js';
export * from './ops/nn.js';
