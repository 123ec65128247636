// Wrapper of native/indexing.cc. Returns false for cases the native kernels do not take.
import type { Storage, View } from '../../backend.js';
import type { Addon } from './addon.js';

export function indexSelect(addon: Addon, x: View, index: View, outer: number, n: number, inner: number, out: Storage): boolean {
  return false;
}
export function indexAdd(addon: Addon, g: View, index: View, outer: number, n: number, inner: number, out: Storage): boolean {
  return false;
}
export function gather(addon: Addon, x: View, index: View, outer: number, n: number, inner: number, out: Storage): boolean {
  return false;
}
export function scatterAdd(addon: Addon, g: View, index: View, outer: number, n: number, inner: number, out: Storage): boolean {
  return false;
}
export function sort(addon: Addon, x: View, rows: number, n: number, descending: boolean, values: Storage, indices: Storage): boolean {
  return false;
}
