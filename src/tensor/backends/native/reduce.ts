// Wrapper of native/reduce.cc. Returns false for cases the native kernels do not take: dtypes
// other than float32, inputs that are not dense or whose size does not match the stated shape
// (the interface asks callers for dense ones; the reference reads any layout and reports the
// mismatches), and empty rows, whose errors the reference defines.
import type { ReduceOp, Storage, View } from '../../backend.js';
import { isDense, numel } from '../../backend.js';
import { hostData, viewData } from '../host.js';
import type { Addon } from './addon.js';
import { REDUCE_CODE } from './codes.js';

/** Each view is null or dense float32 with `size` elements, as are the storages. */
function takes(size: number, views: (View | null)[], outs: (Storage | null)[] = []): boolean {
  return views.every((v) => v === null || (v.storage.dtype === 'float32' && isDense(v) && numel(v.shape) === size)) &&
    outs.every((s) => s === null || s.dtype === 'float32');
}

export function reduce(addon: Addon, op: ReduceOp, x: View, outer: number, n: number, inner: number, out: Storage): boolean {
  if (!takes(outer * n * inner, [x]) || n === 0) return false;
  if (out.dtype !== (op === 'argmax' || op === 'argmin' ? 'int32' : 'float32')) return false;
  addon.reduce!(REDUCE_CODE[op], viewData(x), x.offset, outer, n, inner, hostData(out));
  return true;
}

export function softmax(addon: Addon, x: View, rows: number, n: number, log: boolean, out: Storage): boolean {
  if (!takes(rows * n, [x], [out]) || n === 0) return false;
  addon.softmax!(viewData(x), x.offset, hostData(out), rows, n, log);
  return true;
}

export function softmaxGrad(addon: Addon, y: View, g: View, rows: number, n: number, log: boolean, out: Storage): boolean {
  if (!takes(rows * n, [y, g], [out]) || n === 0) return false;
  addon.softmaxGrad!(viewData(y), y.offset, viewData(g), g.offset, hostData(out), rows, n, log);
  return true;
}

export function layerNorm(addon: Addon, x: View, gamma: View | null, beta: View | null, rows: number, n: number,
  eps: number, out: Storage, mean: Storage, rstd: Storage): boolean {
  if (!takes(rows * n, [x], [out, mean, rstd]) || !takes(n, [gamma, beta]) || n === 0) return false;
  addon.layerNorm!(viewData(x), x.offset, gamma && viewData(gamma), gamma?.offset ?? 0,
    beta && viewData(beta), beta?.offset ?? 0, rows, n, eps, hostData(out), hostData(mean), hostData(rstd));
  return true;
}

export function layerNormGrad(addon: Addon, x: View, g: View, gamma: View | null, mean: View, rstd: View,
  rows: number, n: number, dx: Storage, dgamma: Storage | null, dbeta: Storage | null): boolean {
  if (!takes(rows * n, [x, g], [dx, dgamma, dbeta]) || !takes(n, [gamma]) || !takes(rows, [mean, rstd]) || n === 0) {
    return false;
  }
  addon.layerNormGrad!(viewData(x), x.offset, viewData(g), g.offset, gamma && viewData(gamma), gamma?.offset ?? 0,
    viewData(mean), mean.offset, viewData(rstd), rstd.offset, rows, n,
    hostData(dx), dgamma && hostData(dgamma), dbeta && hostData(dbeta));
  return true;
}
