// Wrapper of native/fused.cc. Returns false for cases the native kernels do not take: dtypes
// other than float32, inputs that are not dense (linear reads x and the weight through any
// non-negative strides) or whose size does not match the stated shape (the reference reads any
// layout and reports the mismatches), and layer norms of empty rows, whose results the reference
// defines.
import type { ActivationOp, Storage, View } from '../../backend.js';
import { isDense, numel } from '../../backend.js';
import { hostData, viewData } from '../host.js';
import type { Addon } from './addon.js';
import { ACTIVATION_CODE } from './codes.js';

/** Each view is null or dense float32 with `size` elements; the storages are null or float32. */
function takes(size: number, views: (View | null)[], outs: (Storage | null)[] = []): boolean {
  return views.every((v) => v === null || (v.storage.dtype === 'float32' && isDense(v) && numel(v.shape) === size)) &&
    outs.every((s) => s === null || s.dtype === 'float32');
}

export function biasActivation(addon: Addon, x: View, bias: View, act: ActivationOp | null, rows: number, n: number,
  pre: Storage | null, out: Storage): boolean {
  if (!takes(rows * n, [x], [pre, out]) || !takes(n, [bias])) return false;
  addon.biasActivation!(viewData(x), x.offset, viewData(bias), bias.offset, act === null ? -1 : ACTIVATION_CODE[act],
    rows, n, pre && hostData(pre), hostData(out));
  return true;
}

/**
 * Float32 x [rows, k] and weight [n, k] with non-negative strides (the kernel packs them, so views
 * are read in place), a dense bias [n]. Other cases go to the reference's linear, which runs this
 * backend's matmul and biasActivation.
 */
export function linear(addon: Addon, x: View, weight: View, bias: View, act: ActivationOp | null, pre: Storage | null,
  out: Storage): boolean {
  if (x.shape.length !== 2 || weight.shape.length !== 2 || bias.shape.length !== 1) return false;
  const [rows, k] = x.shape as [number, number];
  const n = weight.shape[0]!;
  if (weight.shape[1] !== k || bias.shape[0] !== n) return false; // the reference reports the mismatch
  if (x.storage.dtype !== 'float32' || weight.storage.dtype !== 'float32' || !takes(n, [bias], [pre, out])) return false;
  if ([...x.strides, ...weight.strides].some((s) => s < 0)) return false;
  addon.linear!(viewData(x), x.offset, x.strides, viewData(weight), weight.offset, weight.strides, viewData(bias),
    bias.offset, act === null ? -1 : ACTIVATION_CODE[act], rows, n, k, pre && hostData(pre), hostData(out));
  return true;
}

export function addLayerNorm(addon: Addon, x: View, residual: View, gamma: View | null, beta: View | null,
  rows: number, n: number, eps: number, sum: Storage, out: Storage, mean: Storage, rstd: Storage): boolean {
  if (!takes(rows * n, [x, residual], [sum, out, mean, rstd]) || !takes(n, [gamma, beta]) || n === 0) return false;
  addon.addLayerNorm!(viewData(x), x.offset, viewData(residual), residual.offset, gamma && viewData(gamma),
    gamma?.offset ?? 0, beta && viewData(beta), beta?.offset ?? 0, rows, n, eps,
    hostData(sum), hostData(out), hostData(mean), hostData(rstd));
  return true;
}
