// The native CPU backend: C++ kernels (native/*.cc) through N-API. It extends the reference
// backend, so any case a native kernel does not cover (a dtype, a layout) falls back to the
// plain TypeScript kernel; each kernel family's wrapper in ./native/ returns false for those.
import type { ActivationOp, AdamWStep, AttentionArgs, BinaryOp, ReduceOp, SgdStep, Storage, UnaryOp, View } from '../backend.js';
import type { DType } from '../dtype.js';
import { ReferenceBackend } from './reference.js';
import { emptyHost, hostData, poisonHost } from './host.js';
import { noteBorn, takeRecycled } from '../recycle.js';
import { type Addon, loadAddon } from './native/addon.js';
import * as gemm from './native/gemm.js';
import * as elementwise from './native/elementwise.js';
import * as reduce from './native/reduce.js';
import * as attention from './native/attention.js';
import * as indexing from './native/indexing.js';
import * as optim from './native/optim.js';
import * as fused from './native/fused.js';

export class NativeBackend extends ReferenceBackend {
  override readonly name: string = 'native';

  constructor(private readonly addon: Addon) {
    super();
  }

  override alloc(dtype: DType, length: number): Storage {
    return noteBorn(super.alloc(dtype, length));
  }

  override empty(dtype: DType, length: number): Storage {
    const reused = takeRecycled(this, dtype, length);
    if (reused) {
      poisonHost(hostData(reused));
      return noteBorn(reused);
    }
    return noteBorn(emptyHost(this, dtype, length));
  }

  override copy(dst: View, src: View): void {
    if (!elementwise.copy(this.addon, dst, src)) super.copy(dst, src);
  }
  override fill(dst: View, value: number): void {
    if (!elementwise.fill(this.addon, dst, value)) super.fill(dst, value);
  }
  override unary(op: UnaryOp, x: View, out: Storage): void {
    if (!elementwise.unary(this.addon, op, x, out)) super.unary(op, x, out);
  }
  override unaryGrad(op: ActivationOp, x: View, g: View, out: Storage): void {
    if (!elementwise.unaryGrad(this.addon, op, x, g, out)) super.unaryGrad(op, x, g, out);
  }
  override binary(op: BinaryOp, a: View, b: View, out: Storage): void {
    if (!elementwise.binary(this.addon, op, a, b, out)) super.binary(op, a, b, out);
  }
  override where(cond: View, a: View, b: View, out: Storage): void {
    if (!elementwise.where(this.addon, cond, a, b, out)) super.where(cond, a, b, out);
  }
  override reduce(op: ReduceOp, x: View, outer: number, n: number, inner: number, out: Storage): void {
    if (!reduce.reduce(this.addon, op, x, outer, n, inner, out)) super.reduce(op, x, outer, n, inner, out);
  }
  override softmax(x: View, rows: number, n: number, log: boolean, out: Storage): void {
    if (!reduce.softmax(this.addon, x, rows, n, log, out)) super.softmax(x, rows, n, log, out);
  }
  override softmaxGrad(y: View, g: View, rows: number, n: number, log: boolean, out: Storage): void {
    if (!reduce.softmaxGrad(this.addon, y, g, rows, n, log, out)) super.softmaxGrad(y, g, rows, n, log, out);
  }
  override layerNorm(x: View, gamma: View | null, beta: View | null, rows: number, n: number, eps: number,
    out: Storage, mean: Storage, rstd: Storage): void {
    if (!reduce.layerNorm(this.addon, x, gamma, beta, rows, n, eps, out, mean, rstd))
      super.layerNorm(x, gamma, beta, rows, n, eps, out, mean, rstd);
  }
  override layerNormGrad(x: View, g: View, gamma: View | null, mean: View, rstd: View, rows: number, n: number,
    dx: Storage, dgamma: Storage | null, dbeta: Storage | null): void {
    if (!reduce.layerNormGrad(this.addon, x, g, gamma, mean, rstd, rows, n, dx, dgamma, dbeta))
      super.layerNormGrad(x, g, gamma, mean, rstd, rows, n, dx, dgamma, dbeta);
  }
  override biasActivation(x: View, bias: View, act: ActivationOp | null, rows: number, n: number,
    pre: Storage | null, out: Storage): void {
    if (!fused.biasActivation(this.addon, x, bias, act, rows, n, pre, out)) super.biasActivation(x, bias, act, rows, n, pre, out);
  }
  override linear(x: View, weight: View, bias: View, act: ActivationOp | null, pre: Storage | null, out: Storage): void {
    if (!fused.linear(this.addon, x, weight, bias, act, pre, out)) super.linear(x, weight, bias, act, pre, out);
  }
  override addLayerNorm(x: View, residual: View, gamma: View | null, beta: View | null, rows: number, n: number,
    eps: number, sum: Storage, out: Storage, mean: Storage, rstd: Storage): void {
    if (!fused.addLayerNorm(this.addon, x, residual, gamma, beta, rows, n, eps, sum, out, mean, rstd))
      super.addLayerNorm(x, residual, gamma, beta, rows, n, eps, sum, out, mean, rstd);
  }
  override matmul(a: View, b: View, out: Storage): void {
    if (!gemm.matmul(this.addon, a, b, out)) super.matmul(a, b, out);
  }
  override attention(args: AttentionArgs, out: Storage, lse: Storage): void {
    if (!attention.attention(this.addon, args, out, lse)) super.attention(args, out, lse);
  }
  override attentionGrad(args: AttentionArgs, out: View, lse: View, gOut: View,
    dq: Storage, dk: Storage, dv: Storage): void {
    if (!attention.attentionGrad(this.addon, args, out, lse, gOut, dq, dk, dv))
      super.attentionGrad(args, out, lse, gOut, dq, dk, dv);
  }
  override indexSelect(x: View, index: View, outer: number, n: number, inner: number, out: Storage): void {
    if (!indexing.indexSelect(this.addon, x, index, outer, n, inner, out)) super.indexSelect(x, index, outer, n, inner, out);
  }
  override indexAdd(g: View, index: View, outer: number, n: number, inner: number, out: Storage): void {
    if (!indexing.indexAdd(this.addon, g, index, outer, n, inner, out)) super.indexAdd(g, index, outer, n, inner, out);
  }
  override gather(x: View, index: View, outer: number, n: number, inner: number, out: Storage): void {
    if (!indexing.gather(this.addon, x, index, outer, n, inner, out)) super.gather(x, index, outer, n, inner, out);
  }
  override scatterAdd(g: View, index: View, outer: number, n: number, inner: number, out: Storage): void {
    if (!indexing.scatterAdd(this.addon, g, index, outer, n, inner, out)) super.scatterAdd(g, index, outer, n, inner, out);
  }
  override sort(x: View, rows: number, n: number, descending: boolean, values: Storage, indices: Storage): void {
    if (!indexing.sort(this.addon, x, rows, n, descending, values, indices)) super.sort(x, rows, n, descending, values, indices);
  }
  override adamw(param: Storage, grad: Storage, m: Storage, v: Storage, hp: AdamWStep): void {
    if (!optim.adamw(this.addon, param, grad, m, v, hp)) super.adamw(param, grad, m, v, hp);
  }
  override sgd(param: Storage, grad: Storage, momentumBuf: Storage | null, hp: SgdStep): void {
    if (!optim.sgd(this.addon, param, grad, momentumBuf, hp)) super.sgd(param, grad, momentumBuf, hp);
  }

  numThreads(): number {
    return this.addon.numThreads!() as number;
  }
}

/** The native backend, or null when the addon is not built. */
export function createNativeBackend(): NativeBackend | null {
  const addon = loadAddon();
  return addon ? new NativeBackend(addon) : null;
}
