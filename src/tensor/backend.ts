// The backend interface: the small set of kernels every backend provides. Tensors and autograd
// live above it (src/tensor/tensor.ts); a backend only moves and computes numbers.
//
// Conventions, shared by every kernel:
// - Inputs are Views: a storage plus offset, shape and strides in elements, so kernels can read
//   broadcast (stride 0), transposed and sliced data without copies. A kernel that needs a dense
//   layout says so, and the caller makes one with contiguous().
// - Outputs are whole Storages, written densely in row-major order of the output shape. The
//   caller allocates them (alloc) and they are never aliased with an input unless a kernel says so.
// - Kernels are synchronous on CPU backends. A device backend (CUDA, see docs/ARCHITECTURE.md)
//   may queue them: only toHost() must wait for the results.

import type { DType, TypedArray } from './dtype.js';

/** Memory owned by one backend. CPU backends keep a TypedArray in `data`. */
export interface Storage {
  readonly backend: Backend;
  readonly dtype: DType;
  readonly length: number;
}

export interface View {
  readonly storage: Storage;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
}

export type UnaryOp =
  | 'neg' | 'abs' | 'sign' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'reciprocal' | 'square'
  | 'sin' | 'cos' | 'tanh' | 'sigmoid' | 'softplus' | 'erf'
  | 'relu' | 'gelu_erf' | 'gelu_tanh' | 'quick_gelu';

/** Activations whose derivative has a fused kernel: unaryGrad(op, x, g) = g * op'(x). */
export type ActivationOp = 'relu' | 'gelu_erf' | 'gelu_tanh' | 'quick_gelu' | 'sigmoid' | 'tanh' | 'erf' | 'softplus';

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum'
  // comparisons and logic write 0/1 into a bool output
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'and' | 'or';

/** sum/max/min write the input dtype; argmax/argmin write int32 indices of the first extremum. */
export type ReduceOp = 'sum' | 'max' | 'min' | 'argmax' | 'argmin';

export interface AttentionArgs {
  /** [B, H, Tq, D], [B, H, Tk, D], [B, H, Tk, Dv]; the last stride of each must be 1. */
  q: View;
  k: View;
  v: View;
  /** [B, Tk], nonzero = the key may be attended to; null = all keys. */
  keyPadding: View | null;
  /** Query i attends keys j <= i (top-left aligned, as PyTorch's is_causal). */
  causal: boolean;
  scale: number;
}

export interface Backend {
  readonly name: string;

  // ---- memory ----
  /** A zero-filled storage. */
  alloc(dtype: DType, length: number): Storage;
  /**
   * A storage whose contents are undefined, for an output that a kernel overwrites entirely:
   * zero-filling fresh memory costs as much as a simple kernel.
   */
  empty(dtype: DType, length: number): Storage;
  /** A storage holding a copy of data (which must match dtype's array type). */
  fromHost(data: TypedArray, dtype: DType): Storage;
  /** The view's elements as a new dense host array, row-major. */
  toHost(x: View): TypedArray;
  /** dst[i] = cast(src[i]) for every index of the common shape; dst may be any strided view. */
  copy(dst: View, src: View): void;
  fill(dst: View, value: number): void;

  // ---- elementwise ----
  unary(op: UnaryOp, x: View, out: Storage): void;
  unaryGrad(op: ActivationOp, x: View, g: View, out: Storage): void;
  /** a and b have out's shape (broadcast axes have stride 0). */
  binary(op: BinaryOp, a: View, b: View, out: Storage): void;
  /** out = cond ? a : b; all three have out's shape. */
  where(cond: View, a: View, b: View, out: Storage): void;

  // ---- reductions and normalisation; x is dense and read as [outer, n, inner] ----
  reduce(op: ReduceOp, x: View, outer: number, n: number, inner: number, out: Storage): void;
  /** Softmax (or log-softmax) over the last axis of a dense [rows, n] view. */
  softmax(x: View, rows: number, n: number, log: boolean, out: Storage): void;
  /** Given y = softmax(x) (or log-softmax) and g = dL/dy, writes dL/dx. */
  softmaxGrad(y: View, g: View, rows: number, n: number, log: boolean, out: Storage): void;
  /** Layer norm over the last axis of a dense [rows, n] view; also writes per-row mean and 1/std. */
  layerNorm(x: View, gamma: View | null, beta: View | null, rows: number, n: number, eps: number,
    out: Storage, mean: Storage, rstd: Storage): void;
  /** dgamma and dbeta are overwritten (not accumulated); either may be null when not needed. */
  layerNormGrad(x: View, g: View, gamma: View | null, mean: View, rstd: View, rows: number, n: number,
    dx: Storage, dgamma: Storage | null, dbeta: Storage | null): void;

  // ---- fused kernels: two steps in one pass over the rows (linear: a product and its epilogue) ----
  /**
   * pre = x + bias and out = act(pre) (out = pre when act is null), for x a dense view read as
   * [rows, n] and bias [n] added to every row. out is act of pre as stored (rounded to the dtype).
   * pre, kept for the backward pass, may be null. Either pre or out (not both) may be x's own
   * elements (x.storage with offset 0), updated in place.
   */
  biasActivation(x: View, bias: View, act: ActivationOp | null, rows: number, n: number,
    pre: Storage | null, out: Storage): void;
  /**
   * A linear layer in one kernel: pre = x @ weight^T + bias and out = act(pre) (out = pre when act
   * is null), for x [rows, k] and weight [n, k] (any strides) and bias [n]; pre and out are dense
   * [rows, n]. pre, kept for the backward pass, may be null. The results are those of matmul
   * followed by biasActivation (pre is the product as stored plus the bias, out act of pre as
   * stored); a backend may apply the bias and activation to each block of the product while it is
   * still in cache or in registers. Neither output overlaps an input.
   */
  linear(x: View, weight: View, bias: View, act: ActivationOp | null, pre: Storage | null, out: Storage): void;
  /**
   * sum = x + residual, and layerNorm of sum as stored into out, mean and rstd (as layerNorm
   * writes them), for x and residual dense views read as [rows, n].
   */
  addLayerNorm(x: View, residual: View, gamma: View | null, beta: View | null, rows: number, n: number, eps: number,
    sum: Storage, out: Storage, mean: Storage, rstd: Storage): void;

  // ---- linear algebra ----
  /** out[b] = a[b] @ b[b] for a: [batch, M, K], b: [batch, K, N] (any strides), out dense [batch, M, N]. */
  matmul(a: View, b: View, out: Storage): void;

  // ---- attention: softmax(q k^T * scale + masks) v without materialising masks ----
  /** out: dense [B, H, Tq, Dv]; lse: dense [B, H, Tq] row log-sum-exp, kept for the backward pass. */
  attention(args: AttentionArgs, out: Storage, lse: Storage): void;
  attentionGrad(args: AttentionArgs, out: View, lse: View, gOut: View,
    dq: Storage, dk: Storage, dv: Storage): void;

  // ---- indexing; index views hold int32; x is dense and read as [outer, n, inner] ----
  /** out[o, j, i] = x[o, index[j], i] for index of length m. */
  indexSelect(x: View, index: View, outer: number, n: number, inner: number, out: Storage): void;
  /** out[o, index[j], i] += g[o, j, i]: the scatter-add that is indexSelect's gradient. */
  indexAdd(g: View, index: View, outer: number, n: number, inner: number, out: Storage): void;
  /** out[o, j, i] = x[o, index[o, j, i], i] (torch.gather) for dense index [outer, m, inner]. */
  gather(x: View, index: View, outer: number, n: number, inner: number, out: Storage): void;
  /** out[o, index[o, j, i], i] += g[o, j, i]: gather's gradient. */
  scatterAdd(g: View, index: View, outer: number, n: number, inner: number, out: Storage): void;
  /** Sorts each row of a dense [rows, n] view; ties keep their order (stable). */
  sort(x: View, rows: number, n: number, descending: boolean, values: Storage, indices: Storage): void;

  // ---- optimizer updates, in place on dense float32 storages of equal length ----
  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, hp: AdamWStep): void;
  /** momentumBuf is null when momentum is 0. */
  sgd(param: Storage, grad: Storage, momentumBuf: Storage | null, hp: SgdStep): void;
}

export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1 - beta^t for the current step t, precomputed by the optimizer. */
  biasCorrection1: number;
  biasCorrection2: number;
}

export interface SgdStep {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** true on the first step, when the momentum buffer is set to the gradient. */
  firstStep: boolean;
}

/** Helpers every backend may use. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function isDense(v: View): boolean {
  let s = 1;
  for (let i = v.shape.length - 1; i >= 0; i--) {
    if (v.shape[i] !== 1 && v.strides[i] !== s) return false;
    s *= v.shape[i]!;
  }
  return true;
}
