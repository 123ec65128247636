// Wrapper of native/reduce.cc. Returns false for cases the native kernels do not take.
import type { ReduceOp, Storage, View } from '../../backend.js';
import type { Addon } from './addon.js';

export function reduce(addon: Addon, op: ReduceOp, x: View, outer: number, n: number, inner: number, out: Storage): boolean {
  return false;
}
export function softmax(addon: Addon, x: View, rows: number, n: number, log: boolean, out: Storage): boolean {
  return false;
}
export function softmaxGrad(addon: Addon, y: View, g: View, rows: number, n: number, log: boolean, out: Storage): boolean {
  return false;
}
export function layerNorm(addon: Addon, x: View, gamma: View | null, beta: View | null, rows: number, n: number,
  eps: number, out: Storage, mean: Storage, rstd: Storage): boolean {
  return false;
}
export function layerNormGrad(addon: Addon, x: View, g: View, gamma: View | null, mean: View, rstd: View,
  rows: number, n: number, dx: Storage, dgamma: Storage | null, dbeta: Storage | null): boolean {
  return false;
}
