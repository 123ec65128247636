// Wrapper of native/elementwise.cc. Returns false for cases the native kernels do not take: storages
// that are not in host memory, dtype combinations the C++ side has no kernel for (see the checks
// below), more than 16 dimensions, and views whose shapes differ (the reference then reports them).
import type { ActivationOp, BinaryOp, Storage, UnaryOp, View } from '../../backend.js';
import type { DType } from '../../dtype.js';
import { HostStorage } from '../host.js';
import type { Addon } from './addon.js';
import { ACTIVATION_CODE, BINARY_CODE, DTYPE_CODE, UNARY_CODE } from './codes.js';

const MAX_DIMS = 16; // kMaxDims in elementwise.cc

const isHost = (s: Storage): s is HostStorage => s instanceof HostStorage;
const isBytes = (t: DType): boolean => t === 'bool' || t === 'uint8';

/** Dtype pairs the native copy converts (int64 only to itself: the reference goes through bigint). */
function copyable(dst: DType, src: DType): boolean {
  return dst === 'int64' || src === 'int64' ? dst === src : true;
}

export function copy(addon: Addon, dst: View, src: View): boolean {
  const d = dst.storage;
  const s = src.storage;
  if (!isHost(d) || !isHost(s) || !copyable(d.dtype, s.dtype) || !sameShape(dst, src)) return false;
  addon.ewCopy!(DTYPE_CODE[d.dtype], d.data, dst.offset, dst.strides, DTYPE_CODE[s.dtype], s.data, src.offset, src.strides, dst.shape);
  return true;
}

export function fill(addon: Addon, dst: View, value: number): boolean {
  const d = dst.storage;
  if (!isHost(d) || d.dtype === 'int64' || dst.shape.length > MAX_DIMS) return false;
  addon.ewFill!(DTYPE_CODE[d.dtype], d.data, dst.offset, dst.strides, dst.shape, value);
  return true;
}

export function unary(addon: Addon, op: UnaryOp, x: View, out: Storage): boolean {
  const s = x.storage;
  if (!isHost(s) || !isHost(out) || s.dtype !== 'float32' || out.dtype !== 'float32' || x.shape.length > MAX_DIMS) return false;
  addon.ewUnary!(UNARY_CODE[op], s.data, x.offset, x.strides, x.shape, out.data);
  return true;
}

export function unaryGrad(addon: Addon, op: ActivationOp, x: View, g: View, out: Storage): boolean {
  const xs = x.storage;
  const gs = g.storage;
  if (!isHost(xs) || !isHost(gs) || !isHost(out) || !sameShape(x, g)) return false;
  if (xs.dtype !== 'float32' || gs.dtype !== 'float32' || out.dtype !== 'float32') return false;
  addon.ewUnaryGrad!(ACTIVATION_CODE[op], xs.data, x.offset, x.strides, gs.data, g.offset, g.strides, x.shape, out.data);
  return true;
}

/** Whether the native binary kernel takes these dtypes (see ew_binary in elementwise.cc). */
function binaryTakes(op: BinaryOp, a: DType, b: DType, out: DType): boolean {
  if (BINARY_CODE[op] >= BINARY_CODE.eq) {
    if (!isBytes(out)) return false;
    if (isBytes(a) && isBytes(b)) return true;
    return a === b && (a === 'float32' || a === 'int32');
  }
  return a === 'float32' && b === 'float32' && out === 'float32';
}

export function binary(addon: Addon, op: BinaryOp, a: View, b: View, out: Storage): boolean {
  const as = a.storage;
  const bs = b.storage;
  if (!isHost(as) || !isHost(bs) || !isHost(out) || !sameShape(a, b)) return false;
  if (!binaryTakes(op, as.dtype, bs.dtype, out.dtype)) return false;
  addon.ewBinary!(BINARY_CODE[op], DTYPE_CODE[as.dtype], as.data, a.offset, a.strides,
    DTYPE_CODE[bs.dtype], bs.data, b.offset, b.strides, a.shape, DTYPE_CODE[out.dtype], out.data);
  return true;
}

export function where(addon: Addon, cond: View, a: View, b: View, out: Storage): boolean {
  const cs = cond.storage;
  const as = a.storage;
  const bs = b.storage;
  if (!isHost(cs) || !isHost(as) || !isHost(bs) || !isHost(out)) return false;
  if (!sameShape(cond, a) || !sameShape(cond, b)) return false;
  if (!(isBytes(cs.dtype) || cs.dtype === 'float32')) return false;
  if (as.dtype !== 'float32' || bs.dtype !== 'float32' || out.dtype !== 'float32') return false;
  addon.ewWhere!(DTYPE_CODE[cs.dtype], cs.data, cond.offset, cond.strides, as.data, a.offset, a.strides,
    bs.data, b.offset, b.strides, cond.shape, out.data);
  return true;
}

// Mismatched shapes go to the reference backend, whose error names the op and both shapes.
function sameShape(a: View, b: View): boolean {
  return a.shape.length === b.shape.length && a.shape.length <= MAX_DIMS && a.shape.every((d, i) => d === b.shape[i]);
}
