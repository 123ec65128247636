// Wrapper of native/gemm.cc. Returns false for cases the native kernel does not take.
import type { Storage, View } from '../../backend.js';
import { hostData, viewData } from '../host.js';
import type { Addon } from './addon.js';

/**
 * out[p] = a[p] @ b[p] for float32 a: [batch, M, K], b: [batch, K, N]. The kernel reads any strides
 * directly (it packs its operands into blocks anyway), so views are never copied first.
 */
export function matmul(addon: Addon, a: View, b: View, out: Storage): boolean {
  if (a.storage.dtype !== 'float32' || b.storage.dtype !== 'float32' || out.dtype !== 'float32') return false;
  if (a.shape.length !== 3 || b.shape.length !== 3) return false;
  const [batch, M, K] = a.shape as [number, number, number];
  const N = b.shape[2]!;
  if (b.shape[0] !== batch || b.shape[1] !== K) return false; // the reference reports the mismatch
  let aStrides = a.strides;
  let rows = M;
  let count = batch;
  // One weight for the whole batch over evenly spaced rows of a: a single product with batch * M rows.
  if (batch > 1 && b.strides[0] === 0 && a.strides[0] === M * a.strides[1]!) {
    aStrides = [0, a.strides[1]!, a.strides[2]!];
    rows = batch * M;
    count = 1;
  }
  addon.matmul!(viewData(a), a.offset, aStrides, viewData(b), b.offset, b.strides, hostData(out), count, rows, N, K);
  return true;
}
