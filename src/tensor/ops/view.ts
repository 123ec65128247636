// Movement ops: views that share storage (reshape, permute, expand, slice, ...) and the copies
// that make them dense. Each gradient is the inverse movement.
import type { Backend } from '../backend.js';
import { contiguousStrides, numel } from '../backend.js';
import { record } from '../autograd.js';
import { Tensor, type Shape, zeros } from '../tensor.js';

/** Normalises a possibly negative axis, naming the op and shape on error. */
export function normAxis(op: string, axis: number, ndim: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= ndim) {
    throw new RangeError(`${op}: axis ${axis} is out of range for a ${ndim}-d tensor`);
  }
  return a;
}

function viewOf(t: Tensor, shape: Shape, strides: readonly number[], offset: number): Tensor {
  return new Tensor(t.view().storage, shape, strides, offset);
}

function copyDense(t: Tensor, backend: Backend, op: string): Tensor {
  const out = new Tensor(backend.empty(t.dtype, t.size), t.shape);
  backend.copy(out.view(op), t.view(op));
  return out;
}

export function contiguous(t: Tensor): Tensor {
  if (t.isContiguous()) return t;
  return record('contiguous', [t], copyDense(t, t.backend, 'contiguous'), (g) => [g]);
}

/** A dense copy that owns its storage. */
export function clone(t: Tensor): Tensor {
  return record('clone', [t], copyDense(t, t.backend, 'clone'), (g) => [g]);
}

/** The tensor on another backend (a copy through host memory unless both share it). */
export function toBackend(t: Tensor, backend: Backend): Tensor {
  if (t.backend === backend) return t;
  const out = new Tensor(backend.fromHost(t.data(), t.dtype), t.shape);
  const from = t.backend;
  return record('to', [t], out, (g) => [toBackend(g, from)]);
}

export function reshape(t: Tensor, shape: Shape): Tensor {
  const target = [...shape];
  const infer = target.indexOf(-1);
  if (infer !== target.lastIndexOf(-1)) throw new Error(`reshape: only one dimension can be -1 in [${shape}]`);
  if (infer >= 0) {
    const known = numel(target.filter((_, i) => i !== infer));
    target[infer] = known === 0 ? 0 : t.size / known;
  }
  if (numel(target) !== t.size || target.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`reshape: cannot reshape [${t.shape}] (${t.size} elements) to [${shape}]`);
  }
  const strides = viewStrides(t.shape, t.strides, target);
  const src = strides ? t : contiguous(t);
  const out = viewOf(src, target, strides ?? contiguousStrides(target), src.offset);
  return record('reshape', [src], out, (g) => [reshape(g, src.shape)]);
}

/**
 * Strides that let newShape view the same elements without a copy, or null when none exist
 * (as torch.Tensor.view decides): each run of old axes that is contiguous in memory can be
 * split or merged freely; runs cannot be merged with each other.
 */
function viewStrides(shape: Shape, strides: readonly number[], newShape: Shape): number[] | null {
  if (shape.length === 0 || numel(shape) === 0) return contiguousStrides(newShape);
  const out = new Array<number>(newShape.length);
  let viewAxis = newShape.length - 1;
  let chunkStride = strides[shape.length - 1]!;
  let chunkSize = 1;
  let viewSize = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    chunkSize *= shape[axis]!;
    const chunkEnds = axis === 0 || (shape[axis - 1] !== 1 && strides[axis - 1] !== chunkSize * chunkStride);
    if (!chunkEnds) continue;
    while (viewAxis >= 0 && (viewSize < chunkSize || newShape[viewAxis] === 1)) {
      out[viewAxis] = viewSize * chunkStride;
      viewSize *= newShape[viewAxis]!;
      viewAxis--;
    }
    if (viewSize !== chunkSize) return null;
    if (axis > 0) {
      chunkStride = strides[axis - 1]!;
      chunkSize = 1;
      viewSize = 1;
    }
  }
  return viewAxis === -1 ? out : null;
}

export function permute(t: Tensor, axes: readonly number[]): Tensor {
  const nd = t.ndim;
  const perm = axes.map((a) => normAxis('permute', a, nd));
  if (perm.length !== nd || new Set(perm).size !== nd) {
    throw new Error(`permute: [${axes}] is not a permutation of the ${nd} axes of [${t.shape}]`);
  }
  const out = viewOf(t, perm.map((p) => t.shape[p]!), perm.map((p) => t.strides[p]!), t.offset);
  const inverse = new Array<number>(nd);
  perm.forEach((p, i) => (inverse[p] = i));
  return record('permute', [t], out, (g) => [permute(g, inverse)]);
}

export function transpose(t: Tensor, a: number, b: number): Tensor {
  const perm = [...Array(t.ndim).keys()];
  const i = normAxis('transpose', a, t.ndim);
  const j = normAxis('transpose', b, t.ndim);
  [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  return permute(t, perm);
}

/** Shape of broadcasting a and b together, as NumPy and PyTorch define it. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const nd = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(nd).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const k = nd - s.length + i;
      const d = s[i]!;
      if (d === out[k] || d === 1) continue;
      if (out[k] !== 1) throw new Error(`${op}: shapes ${shapes.map((x) => `[${x}]`).join(' and ')} cannot be broadcast together`);
      out[k] = d;
    }
  }
  return out;
}

export function expand(t: Tensor, shape: Shape): Tensor {
  const nd = shape.length;
  if (nd < t.ndim) throw new Error(`expand: cannot expand [${t.shape}] to fewer dimensions [${shape}]`);
  const strides = new Array<number>(nd);
  const target = [...shape];
  for (let i = 0; i < nd; i++) {
    const k = i - (nd - t.ndim);
    const d = k >= 0 ? t.shape[k]! : 1;
    if (target[i] === -1) target[i] = d;
    if (d === target[i]) strides[i] = k >= 0 ? t.strides[k]! : 0;
    else if (d === 1) strides[i] = 0;
    else throw new Error(`expand: cannot expand [${t.shape}] to [${shape}]`);
  }
  if (target.every((d, i) => d === t.shape[i]) && nd === t.ndim) return t;
  const out = viewOf(t, target, strides, t.offset);
  return record('expand', [t], out, (g) => [sumTo(g, t.shape)]);
}

/** Sums g over the axes that broadcasting added or stretched, back to shape. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (g.ndim === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const summed = axes.length ? g.sum(axes, true) : g;
  return reshape(summed, shape);
}

export function slice(t: Tensor, axis: number, start: number, end?: number, step = 1): Tensor {
  const a = normAxis('slice', axis, t.ndim);
  const n = t.shape[a]!;
  if (!Number.isInteger(step) || step < 1) throw new Error(`slice: step must be a positive integer, got ${step}`);
  const clampIndex = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIndex(start);
  const e = Math.max(s, clampIndex(end ?? n));
  const len = Math.ceil((e - s) / step);
  const shape = [...t.shape];
  shape[a] = len;
  const strides = [...t.strides];
  strides[a] = t.strides[a]! * step;
  const out = viewOf(t, shape, strides, t.offset + s * t.strides[a]!);
  return record('slice', [t], out, (g) => {
    const full = zeros(t.shape, { dtype: g.dtype, backend: g.backend });
    g.backend.copy(slice(full, a, s, e, step).view(), g.view());
    return [full];
  });
}

export function select(t: Tensor, axis: number, i: number): Tensor {
  const a = normAxis('select', axis, t.ndim);
  const n = t.shape[a]!;
  const k = i < 0 ? i + n : i;
  if (!Number.isInteger(i) || k < 0 || k >= n) throw new RangeError(`select: index ${i} is out of range for axis ${axis} of size ${n}`);
  return squeeze(slice(t, a, k, k + 1), a);
}

export function squeeze(t: Tensor, axis?: number): Tensor {
  let keep: number[];
  if (axis === undefined) keep = [...t.shape.keys()].filter((i) => t.shape[i] !== 1);
  else {
    const a = normAxis('squeeze', axis, t.ndim);
    keep = [...t.shape.keys()].filter((i) => i !== a || t.shape[i] !== 1);
  }
  const out = viewOf(t, keep.map((i) => t.shape[i]!), keep.map((i) => t.strides[i]!), t.offset);
  return record('squeeze', [t], out, (g) => [reshape(g, t.shape)]);
}

export function unsqueeze(t: Tensor, axis: number): Tensor {
  const a = normAxis('unsqueeze', axis, t.ndim + 1);
  const shape = [...t.shape];
  const strides = [...t.strides];
  shape.splice(a, 0, 1);
  strides.splice(a, 0, a < t.ndim ? t.strides[a]! * t.shape[a]! : 1);
  const out = viewOf(t, shape, strides, t.offset);
  return record('unsqueeze', [t], out, (g) => [reshape(g, t.shape)]);
}

export function flatten(t: Tensor, startAxis = 0, endAxis = -1): Tensor {
  if (t.ndim === 0) return reshape(t, [1]);
  const s = normAxis('flatten', startAxis, t.ndim);
  const e = normAxis('flatten', endAxis, t.ndim);
  if (e < s) throw new Error(`flatten: end axis ${endAxis} comes before start axis ${startAxis}`);
  return reshape(t, [...t.shape.slice(0, s), numel(t.shape.slice(s, e + 1)), ...t.shape.slice(e + 1)]);
}
