// Wrapper of native/indexing.cc. Returns false for cases the native kernels do not take: a
// non-dense x/g, an index that is not int32 (or not a dense or 1-D view), and dtypes other than
// float32 for the adds and the sort (selects and gathers copy any dtype). Out-of-range indices
// raise a RangeError from the native side, as the reference does.
import type { Storage, View } from '../../backend.js';
import { isDense, numel } from '../../backend.js';
import { hostData, viewData } from '../host.js';
import type { Addon } from './addon.js';

/** [offset, stride] of an int32 index read as a flat vector, or null if it cannot be. */
function flatIndex(index: View): [number, number] | null {
  if (index.storage.dtype !== 'int32') return null;
  if (index.shape.length === 1) return [index.offset, index.strides[0]!];
  return isDense(index) ? [index.offset, 1] : null;
}

function checkCount(what: string, v: View, expected: number, dims: string): void {
  if (numel(v.shape) !== expected) throw new Error(`${what}: [${v.shape}] does not have the ${expected} elements of ${dims}`);
}

export function indexSelect(addon: Addon, x: View, index: View, outer: number, n: number, inner: number, out: Storage): boolean {
  const idx = flatIndex(index);
  if (!idx || !isDense(x) || out.dtype !== x.storage.dtype) return false;
  checkCount('indexSelect', x, outer * n * inner, `[${outer}, ${n}, ${inner}]`);
  addon.indexSelect!(viewData(x), x.offset, viewData(index), idx[0], idx[1], numel(index.shape), outer, n, inner, hostData(out));
  return true;
}

export function indexAdd(addon: Addon, g: View, index: View, outer: number, n: number, inner: number, out: Storage): boolean {
  const idx = flatIndex(index);
  if (!idx || !isDense(g) || g.storage.dtype !== 'float32' || out.dtype !== 'float32') return false;
  const m = numel(index.shape);
  checkCount('indexAdd', g, outer * m * inner, `[${outer}, ${m}, ${inner}]`);
  addon.indexAdd!(viewData(g), g.offset, viewData(index), idx[0], idx[1], m, outer, n, inner, hostData(out));
  return true;
}

/** m of a dense [outer, m, inner] index, or null when the native kernels cannot take it. */
function gatherRows(what: string, index: View, outer: number, inner: number): number | null {
  if (index.storage.dtype !== 'int32' || !isDense(index)) return null;
  const total = numel(index.shape);
  if (outer * inner === 0) return total === 0 ? 0 : null;
  if (total % (outer * inner) !== 0) throw new Error(`${what}: index [${index.shape}] is not [${outer}, m, ${inner}]`);
  return total / (outer * inner);
}

export function gather(addon: Addon, x: View, index: View, outer: number, n: number, inner: number, out: Storage): boolean {
  const m = gatherRows('gather', index, outer, inner);
  if (m === null || !isDense(x) || out.dtype !== x.storage.dtype) return false;
  checkCount('gather', x, outer * n * inner, `[${outer}, ${n}, ${inner}]`);
  addon.gather!(viewData(x), x.offset, viewData(index), index.offset, m, outer, n, inner, hostData(out));
  return true;
}

export function scatterAdd(addon: Addon, g: View, index: View, outer: number, n: number, inner: number, out: Storage): boolean {
  const m = gatherRows('scatterAdd', index, outer, inner);
  if (m === null || !isDense(g) || g.storage.dtype !== 'float32' || out.dtype !== 'float32') return false;
  checkCount('scatterAdd', g, outer * m * inner, `[${outer}, ${m}, ${inner}]`);
  addon.scatterAdd!(viewData(g), g.offset, viewData(index), index.offset, m, outer, n, inner, hostData(out));
  return true;
}

export function sort(addon: Addon, x: View, rows: number, n: number, descending: boolean, values: Storage, indices: Storage): boolean {
  if (x.storage.dtype !== 'float32' || !isDense(x) || values.dtype !== 'float32') return false;
  if (indices.dtype !== 'int32' && indices.dtype !== 'int64') return false;
  checkCount('sort', x, rows * n, `[${rows}, ${n}]`);
  addon.sort!(viewData(x), x.offset, rows, n, descending, hostData(values), hostData(indices));
  return true;
}
