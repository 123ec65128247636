// Indexing, sorting and joining: index_select / embedding (gradient by scatter-add), gather,
// sort / topk, concat / stack / split.
import { numel } from '../backend.js';
import { noGrad, record } from '../autograd.js';
import { Tensor, zeros } from '../tensor.js';
import { cast } from './elementwise.js';
import { normAxis, reshape, slice, transpose, unsqueeze } from './view.js';

/** Index tensors are read as dense int32 by the kernels. */
function asIndex(index: Tensor, op: string): Tensor {
  if (index.dtype !== 'int32' && index.dtype !== 'int64') {
    throw new TypeError(`${op}: indices must be int32 or int64, got ${index.dtype}`);
  }
  return noGrad(() => cast(index, 'int32').contiguous());
}

function split3(shape: readonly number[], axis: number): [number, number, number] {
  return [numel(shape.slice(0, axis)), shape[axis]!, numel(shape.slice(axis + 1))];
}

/** Rows of x along axis picked by a 1-d index (torch.index_select). */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  const a = normAxis('indexSelect', axis, x.ndim);
  if (index.ndim !== 1) throw new Error(`indexSelect: index must be 1-d, got [${index.shape}]`);
  const idx = asIndex(index, 'indexSelect');
  const [outer, n, inner] = split3(x.shape, a);
  const shape = [...x.shape];
  shape[a] = idx.size;
  const src = noGrad(() => x.contiguous());
  const out = new Tensor(x.backend.empty(x.dtype, numel(shape)), shape);
  x.backend.indexSelect(src.view('indexSelect'), idx.view(), outer, n, inner, out.storage);
  return record('indexSelect', [x], out, (g) => {
    const dx = zeros(x.shape, { dtype: g.dtype, backend: g.backend });
    g.backend.indexAdd(g.contiguous().view(), idx.view(), outer, n, inner, dx.storage);
    return [dx];
  });
}

/** weight[ids]: one row of weight per id, shaped [...ids.shape, dim]. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be [num, dim], got [${weight.shape}]`);
  return reshape(indexSelect(weight, 0, reshape(ids, [-1])), [...ids.shape, weight.shape[1]!]);
}

/** out[..., j, ...] = x[..., index[..., j, ...], ...] along axis (torch.gather). */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  const a = normAxis('gather', axis, x.ndim);
  if (index.ndim !== x.ndim || index.shape.some((d, i) => i !== a && d !== x.shape[i])) {
    throw new Error(`gather: index [${index.shape}] must match input [${x.shape}] on every axis but ${axis}`);
  }
  const idx = asIndex(index, 'gather');
  const [outer, n, inner] = split3(x.shape, a);
  const src = noGrad(() => x.contiguous());
  const out = new Tensor(x.backend.empty(x.dtype, idx.size), idx.shape);
  x.backend.gather(src.view('gather'), idx.view(), outer, n, inner, out.storage);
  return record('gather', [x], out, (g) => {
    const dx = zeros(x.shape, { dtype: g.dtype, backend: g.backend });
    g.backend.scatterAdd(g.contiguous().view(), idx.view(), outer, n, inner, dx.storage);
    return [dx];
  });
}

export interface Sorted {
  values: Tensor;
  /** int32 positions along the sorted axis */
  indices: Tensor;
}

/** Stable sort along axis; NaN sorts as largest. values carry the gradient back to x. */
export function sort(x: Tensor, axis = -1, descending = false): Sorted {
  const a = normAxis('sort', axis, x.ndim);
  if (a !== x.ndim - 1) {
    const s = sort(transpose(x, a, -1), -1, descending);
    return { values: transpose(s.values, a, -1), indices: transpose(s.indices, a, -1) };
  }
  const n = x.shape[a]!;
  const rows = n === 0 ? 0 : x.size / n;
  const src = noGrad(() => x.contiguous());
  const values = new Tensor(x.backend.empty(x.dtype, x.size), x.shape);
  const indices = new Tensor(x.backend.empty('int32', x.size), x.shape);
  x.backend.sort(src.view('sort'), rows, n, descending, values.storage, indices.storage);
  if (!x.requiresGrad) return { values, indices };
  return { values: gather(x, a, indices), indices };
}

export function argsort(x: Tensor, axis = -1, descending = false): Tensor {
  return noGrad(() => sort(x, axis, descending).indices);
}

/** The k largest (or smallest) along axis, in sorted order. */
export function topk(x: Tensor, k: number, axis = -1, largest = true): Sorted {
  const a = normAxis('topk', axis, x.ndim);
  if (!Number.isInteger(k) || k < 0 || k > x.shape[a]!) {
    throw new RangeError(`topk: k = ${k} is out of range for axis ${axis} of size ${x.shape[a]}`);
  }
  const indices = noGrad(() => slice(sort(x, a, largest).indices, a, 0, k).contiguous());
  return { values: gather(x, a, indices), indices };
}

/** Joins tensors of equal shapes except along axis. */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new Error('concat: no tensors given');
  const first = tensors[0]!;
  const a = normAxis('concat', axis, first.ndim);
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new Error(`concat: shapes ${tensors.map((x) => `[${x.shape}]`).join(', ')} differ outside axis ${axis}`);
    }
    if (t.dtype !== first.dtype) throw new Error(`concat: dtypes differ (${first.dtype} and ${t.dtype})`);
    if (t.backend !== first.backend) throw new Error('concat: tensors are on different backends');
  }
  const shape = [...first.shape];
  shape[a] = tensors.reduce((s, t) => s + t.shape[a]!, 0);
  const out = new Tensor(first.backend.empty(first.dtype, numel(shape)), shape);
  const starts: number[] = [];
  let at = 0;
  for (const t of tensors) {
    starts.push(at);
    first.backend.copy(slice(out, a, at, at + t.shape[a]!).view(), t.view('concat'));
    at += t.shape[a]!;
  }
  return record('concat', tensors, out, (g) => tensors.map((t, i) => slice(g, a, starts[i]!, starts[i]! + t.shape[a]!)));
}

export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new Error('stack: no tensors given');
  const a = normAxis('stack', axis, tensors[0]!.ndim + 1);
  return concat(tensors.map((t) => unsqueeze(t, a)), a);
}

/** Pieces of the given sizes (or of equal size `sizes`, the last one smaller) along axis: views. */
export function split(x: Tensor, sizes: number | number[], axis = 0): Tensor[] {
  const a = normAxis('split', axis, x.ndim);
  const n = x.shape[a]!;
  let list: number[];
  if (typeof sizes === 'number') {
    if (!(sizes > 0)) throw new Error(`split: size must be positive, got ${sizes}`);
    list = [];
    for (let s = 0; s < n; s += sizes) list.push(Math.min(sizes, n - s));
  } else {
    list = sizes;
    if (list.reduce((s, v) => s + v, 0) !== n) throw new Error(`split: sizes [${sizes}] do not add up to ${n} along axis ${axis}`);
  }
  const out: Tensor[] = [];
  let at = 0;
  for (const s of list) {
    out.push(slice(x, a, at, at + s));
    at += s;
  }
  return out;
}
