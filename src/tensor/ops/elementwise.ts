// Elementwise ops with broadcasting, and their gradients.
import type { ActivationOp, BinaryOp, UnaryOp, View } from '../backend.js';
import { numel } from '../backend.js';
import { record } from '../autograd.js';
import type { DType } from '../dtype.js';
import { isFloat, promote } from '../dtype.js';
import { Tensor, type Shape, type TensorLike, scalarLike } from '../tensor.js';
import { broadcastShapes, sumTo } from './view.js';

/** The view of t broadcast to shape (stride 0 on stretched axes), for kernels; not recorded. */
export function broadcastView(t: Tensor, shape: Shape, op: string): View {
  const v = t.view(op);
  const lead = shape.length - t.ndim;
  const strides = shape.map((d, i) => (i < lead || t.shape[i - lead] !== d ? 0 : t.strides[i - lead]!));
  return { ...v, shape, strides };
}

function newTensor(like: Tensor, dtype: DType, shape: Shape): Tensor {
  return new Tensor(like.backend.empty(dtype, numel(shape)), shape);
}

function sameBackend(op: string, ...ts: Tensor[]): void {
  const b = ts[0]!.backend;
  for (const t of ts) {
    if (t.backend !== b) throw new Error(`${op}: tensors are on different backends (${ts.map((x) => x.backend.name).join(', ')})`);
  }
}

export function cast(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  const out = newTensor(t, dtype, t.shape);
  t.backend.copy(out.view(), t.view('to'));
  if (!isFloat(dtype)) return out;
  return record('cast', [t], out, (g) => [cast(g, t.dtype)]);
}

function operands(op: string, a: TensorLike, b: TensorLike): [Tensor, Tensor] {
  if (a instanceof Tensor) return [a, scalarLike(b, a)];
  if (b instanceof Tensor) return [scalarLike(a, b), b];
  throw new Error(`${op}: at least one operand must be a tensor`);
}

/** Runs a binary kernel on broadcast operands of a common dtype; the output has outDtype. */
function binaryKernel(op: BinaryOp, a: Tensor, b: Tensor, computeDtype: DType, outDtype: DType): Tensor {
  sameBackend(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const x = cast(a, computeDtype);
  const y = cast(b, computeDtype);
  const out = newTensor(a, outDtype, shape);
  a.backend.binary(op, broadcastView(x, shape, op), broadcastView(y, shape, op), out.storage);
  return out;
}

function arithmetic(op: BinaryOp, a: TensorLike, b: TensorLike, rule: (g: Tensor, x: Tensor, y: Tensor, out: Tensor) => [Tensor | null, Tensor | null]): Tensor {
  const [x, y] = operands(op, a, b);
  let dtype = promote(x.dtype, y.dtype);
  if (op === 'div' && !isFloat(dtype)) dtype = 'float32'; // true division, as torch.div
  if (dtype === 'bool') dtype = 'int32';
  const out = binaryKernel(op, x, y, dtype, dtype);
  return record(op, [x, y], out, (g) => {
    const [gx, gy] = rule(g, x, y, out);
    return [gx && x.requiresGrad ? sumTo(gx, x.shape) : null, gy && y.requiresGrad ? sumTo(gy, y.shape) : null];
  });
}

export const add = (a: TensorLike, b: TensorLike) => arithmetic('add', a, b, (g) => [g, g]);
export const sub = (a: TensorLike, b: TensorLike) => arithmetic('sub', a, b, (g) => [g, g.neg()]);
export const mul = (a: TensorLike, b: TensorLike) => arithmetic('mul', a, b, (g, x, y) => [g.mul(y), g.mul(x)]);
export const div = (a: TensorLike, b: TensorLike) =>
  arithmetic('div', a, b, (g, _x, y, out) => [g.div(y), g.mul(out).div(y).neg()]);
export const pow = (a: TensorLike, b: TensorLike) =>
  arithmetic('pow', a, b, (g, x, y, out) => [
    x.requiresGrad ? g.mul(y).mul(x.pow(y.sub(1))) : null,
    y.requiresGrad ? g.mul(out).mul(x.log()) : null,
  ]);
// Ties split the gradient evenly, as torch.maximum does.
export const maximum = (a: TensorLike, b: TensorLike) =>
  arithmetic('maximum', a, b, (g, x, y) => {
    const share = x.gt(y).to(g.dtype).add(x.eq(y).to(g.dtype).mul(0.5));
    return [g.mul(share), g.mul(share.neg().add(1))];
  });
export const minimum = (a: TensorLike, b: TensorLike) =>
  arithmetic('minimum', a, b, (g, x, y) => {
    const share = x.lt(y).to(g.dtype).add(x.eq(y).to(g.dtype).mul(0.5));
    return [g.mul(share), g.mul(share.neg().add(1))];
  });

/** Comparisons and logic: a bool tensor, no gradient. */
export function compare(op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'and' | 'or', a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = operands(op, a, b);
  return binaryKernel(op, x, y, promote(x.dtype, y.dtype), 'bool');
}

function unaryKernel(op: UnaryOp, x: Tensor): Tensor {
  if (!isFloat(x.dtype) && op !== 'neg' && op !== 'abs' && op !== 'sign' && op !== 'square') x = cast(x, 'float32');
  const out = newTensor(x, x.dtype, x.shape);
  x.backend.unary(op, x.view(op), out.storage);
  return out;
}

function unary(op: UnaryOp, x: Tensor, rule: ((g: Tensor, y: Tensor) => Tensor) | null): Tensor {
  const out = unaryKernel(op, x);
  if (!rule) return out;
  return record(op, [x], out, (g) => [rule(g, out)]);
}

/** An activation whose derivative is one fused kernel: g * f'(x). */
function activation(op: UnaryOp & ActivationOp, x: Tensor): Tensor {
  return unary(op, x, (g) => {
    const out = newTensor(g, g.dtype, g.shape);
    g.backend.unaryGrad(op, x.view(op), g.view(op), out.storage);
    return out;
  });
}

export const neg = (x: Tensor) => unary('neg', x, (g) => g.neg());
export const abs = (x: Tensor) => unary('abs', x, (g) => g.mul(unaryKernel('sign', x)));
export const exp = (x: Tensor) => unary('exp', x, (g, y) => g.mul(y));
export const log = (x: Tensor) => unary('log', x, (g) => g.div(x));
export const sqrt = (x: Tensor) => unary('sqrt', x, (g, y) => g.div(y).mul(0.5));
export const rsqrt = (x: Tensor) => unary('rsqrt', x, (g, y) => g.mul(y.mul(y).mul(y)).mul(-0.5));
export const reciprocal = (x: Tensor) => unary('reciprocal', x, (g, y) => g.mul(y.mul(y)).neg());
export const square = (x: Tensor) => unary('square', x, (g) => g.mul(x).mul(2));
export const sin = (x: Tensor) => unary('sin', x, (g) => g.mul(x.cos()));
export const cos = (x: Tensor) => unary('cos', x, (g) => g.mul(x.sin()).neg());
export const sign = (x: Tensor) => unary('sign', x, null);
export const tanh = (x: Tensor) => activation('tanh', x);
export const sigmoid = (x: Tensor) => activation('sigmoid', x);
export const softplus = (x: Tensor) => activation('softplus', x);
export const erf = (x: Tensor) => activation('erf', x);
export const relu = (x: Tensor) => activation('relu', x);
/** GELU, exact (erf) by default or with the tanh approximation, as torch.nn.functional.gelu. */
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none') => activation(approximate === 'tanh' ? 'gelu_tanh' : 'gelu_erf', x);
/** x * sigmoid(1.702 x), OpenAI CLIP's activation. */
export const quickGelu = (x: Tensor) => activation('quick_gelu', x);

/** cond ? a : b with broadcasting; cond is any tensor read as nonzero = true. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : null;
  if (!like) throw new Error('where: a or b must be a tensor');
  const x = scalarLike(a, like);
  const y = scalarLike(b, like);
  sameBackend('where', cond, x, y);
  const shape = broadcastShapes('where', cond.shape, x.shape, y.shape);
  const dtype = promote(x.dtype, y.dtype);
  const xv = cast(x, dtype);
  const yv = cast(y, dtype);
  const out = newTensor(x, dtype, shape);
  x.backend.where(broadcastView(cond, shape, 'where'), broadcastView(xv, shape, 'where'), broadcastView(yv, shape, 'where'), out.storage);
  return record('where', [x, y], out, (g) => [
    x.requiresGrad ? sumTo(where(cond, g, 0), x.shape) : null,
    y.requiresGrad ? sumTo(where(cond, 0, g), y.shape) : null,
  ]);
}

/** Limits values to [min, max]; the gradient passes where the input was inside. */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  let out = x;
  if (min !== undefined) out = where(out.lt(min), min, out);
  if (max !== undefined) out = where(out.gt(max), max, out);
  return out;
}
