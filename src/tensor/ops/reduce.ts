// Reductions over axes, softmax and log-softmax, and their gradients.
import type { ReduceOp } from '../backend.js';
import { numel } from '../backend.js';
import { noGrad, record } from '../autograd.js';
import { isFloat } from '../dtype.js';
import { Tensor } from '../tensor.js';
import { cast, where } from './elementwise.js';
import { expand, normAxis, permute, reshape, transpose } from './view.js';

function normAxes(op: string, axes: number | number[] | undefined, ndim: number): number[] {
  if (axes === undefined) return [...Array(ndim).keys()];
  const list = (typeof axes === 'number' ? [axes] : axes).map((a) => normAxis(op, a, ndim));
  if (new Set(list).size !== list.length) throw new Error(`${op}: repeated axis in [${axes}]`);
  return list.sort((a, b) => a - b);
}

function keptShape(shape: readonly number[], axes: number[], keepdim: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepdim) out.push(1);
  });
  return out;
}

/**
 * Runs a reduce kernel over the given axes. Consecutive axes of a dense tensor are read in
 * place as [outer, n, inner]; anything else is first permuted so the reduced axes come last.
 */
function reduceKernel(op: ReduceOp, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  const outShape = keptShape(x.shape, axes, keepdim);
  const consecutive = axes.every((a, i) => i === 0 || a === axes[i - 1]! + 1);
  let src: Tensor;
  let outer: number, n: number, inner: number;
  if (consecutive && axes.length > 0) {
    src = noGrad(() => x.contiguous());
    outer = numel(x.shape.slice(0, axes[0]));
    n = numel(axes.map((a) => x.shape[a]!));
    inner = numel(x.shape.slice(axes[axes.length - 1]! + 1));
  } else {
    const kept = [...x.shape.keys()].filter((i) => !axes.includes(i));
    src = noGrad(() => permute(x, [...kept, ...axes]).contiguous());
    outer = numel(kept.map((i) => x.shape[i]!));
    n = numel(axes.map((a) => x.shape[a]!));
    inner = 1;
  }
  const dtype = op === 'argmax' || op === 'argmin' ? 'int32' : x.dtype;
  const out = new Tensor(x.backend.empty(dtype, outer * inner), outShape);
  x.backend.reduce(op, src.view(op), outer, n, inner, out.storage);
  return out;
}

export function sum(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  if (x.dtype === 'bool' || x.dtype === 'uint8') x = cast(x, 'int32');
  const ax = normAxes('sum', axes, x.ndim);
  const out = reduceKernel('sum', x, ax, keepdim);
  return record('sum', [x], out, (g) => [expand(reshape(g, keptShape(x.shape, ax, true)), x.shape)]);
}

export function mean(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  if (!isFloat(x.dtype)) x = cast(x, 'float32');
  const ax = normAxes('mean', axes, x.ndim);
  return sum(x, ax, keepdim).div(numel(ax.map((a) => x.shape[a]!)));
}

/** max/min over axes (torch.amax/amin): ties share the gradient evenly. */
function extremum(op: 'max' | 'min', x: Tensor, axes: number | number[] | undefined, keepdim: boolean): Tensor {
  const ax = normAxes(op, axes, x.ndim);
  if (ax.some((a) => x.shape[a] === 0)) throw new Error(`${op}: cannot reduce an empty axis of [${x.shape}]`);
  const out = reduceKernel(op, x, ax, keepdim);
  return record(op, [x], out, (g) => {
    const kept = keptShape(x.shape, ax, true);
    const hit = cast(x.eq(expand(reshape(out, kept), x.shape)), g.dtype);
    const count = sum(hit, ax, true);
    return [hit.mul(reshape(g, kept)).div(count)];
  });
}

export const max = (x: Tensor, axes?: number | number[], keepdim = false) => extremum('max', x, axes, keepdim);
export const min = (x: Tensor, axes?: number | number[], keepdim = false) => extremum('min', x, axes, keepdim);

/** Index (int32) of the first largest element along axis; NaN counts as largest. */
export function argmax(x: Tensor, axis = -1, keepdim = false): Tensor {
  return reduceKernel('argmax', x, [normAxis('argmax', axis, x.ndim)], keepdim);
}

export function argmin(x: Tensor, axis = -1, keepdim = false): Tensor {
  return reduceKernel('argmin', x, [normAxis('argmin', axis, x.ndim)], keepdim);
}

/** log(sum(exp(x))) over axes, shifted by the max for stability; rows of -inf give -inf. */
export function logsumexp(x: Tensor, axes: number | number[] = -1, keepdim = false): Tensor {
  const ax = normAxes('logsumexp', axes, x.ndim);
  const m = noGrad(() => {
    const mx = max(x, ax, true);
    return where(mx.abs().eq(Infinity), 0, mx);
  });
  const out = x.sub(m).exp().sum(ax, true).log().add(m);
  return keepdim ? out : reshape(out, keptShape(x.shape, ax, false));
}

function softmaxOp(x: Tensor, axis: number, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  const a = normAxis(op, axis, x.ndim);
  if (a !== x.ndim - 1) return transpose(softmaxOp(transpose(x, a, -1), -1, log), a, -1);
  if (!isFloat(x.dtype)) x = cast(x, 'float32');
  const src = x.contiguous();
  const n = x.ndim === 0 ? 1 : x.shape[x.ndim - 1]!;
  const rows = n === 0 ? 0 : x.size / n;
  const out = new Tensor(x.backend.empty(x.dtype, x.size), x.shape);
  x.backend.softmax(src.view(op), rows, n, log, out.storage);
  return record(op, [src], out, (g) => {
    const dx = new Tensor(g.backend.empty(g.dtype, g.size), g.shape);
    g.backend.softmaxGrad(out.view(), g.contiguous().view(), rows, n, log, dx.storage);
    return [dx];
  });
}

export const softmax = (x: Tensor, axis = -1) => softmaxOp(x, axis, false);
export const logSoftmax = (x: Tensor, axis = -1) => softmaxOp(x, axis, true);
