// Wrapper of native/elementwise.cc. Returns false for cases the native kernels do not take.
import type { ActivationOp, BinaryOp, Storage, UnaryOp, View } from '../../backend.js';
import type { Addon } from './addon.js';

export function copy(addon: Addon, dst: View, src: View): boolean {
  return false;
}
export function fill(addon: Addon, dst: View, value: number): boolean {
  return false;
}
export function unary(addon: Addon, op: UnaryOp, x: View, out: Storage): boolean {
  return false;
}
export function unaryGrad(addon: Addon, op: ActivationOp, x: View, g: View, out: Storage): boolean {
  return false;
}
export function binary(addon: Addon, op: BinaryOp, a: View, b: View, out: Storage): boolean {
  return false;
}
export function where(addon: Addon, cond: View, a: View, b: View, out: Storage): boolean {
  return false;
}
