// The Tensor: a strided view of a backend storage, plus what autograd needs (requiresGrad,
// grad, and the node that produced it). Ops live in ./ops/; the methods here delegate to them.
import type { Backend, Storage, View } from './backend.js';
import { contiguousStrides, numel } from './backend.js';
import type { DType, TypedArray } from './dtype.js';
import { allocHost, dtypeOfArray, isFloat } from './dtype.js';
import { type BackwardOptions, type GradNode, backward as runBackward, noGrad } from './autograd.js';
import { defaultBackend } from './device.js';
import * as ew from './ops/elementwise.js';
import * as red from './ops/reduce.js';
import * as vw from './ops/view.js';
import { matmul } from './ops/linalg.js';

export type Shape = readonly number[];
export type Scalar = number;
export type TensorLike = Tensor | number;

/** Nested arrays of numbers (or booleans), as tensor() takes them and tolist() returns them. */
export type NestedArray = number | boolean | NestedArray[];

export interface TensorOptions {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
}

export class Tensor {
  readonly shape: Shape;
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  requiresGrad = false;
  /** Accumulated dL/d(this) after backward(), for leaves (and for tensors that retainGrad()). */
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it was recorded for autograd. */
  gradFn: GradNode | null = null;
  retainsGrad = false;
  private _storage: Storage | null;
  private _postAccumulateGradHooks: ((t: Tensor) => void)[] | null = null;

  constructor(storage: Storage, shape: Shape, strides?: readonly number[], offset = 0) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`Tensor: invalid shape [${shape}]`);
    }
    this._storage = storage;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    this.dtype = storage.dtype;
  }

  get storage(): Storage {
    if (!this._storage) throw new Error(`use of a disposed tensor [${this.shape}] ${this.dtype}`);
    return this._storage;
  }
  get backend(): Backend {
    return this.storage.backend;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  get isDisposed(): boolean {
    return this._storage === null;
  }
  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  /** The storage view kernels read; `op` names the caller in the error if the tensor was disposed. */
  view(op?: string): View {
    if (!this._storage) throw new Error(`${op ?? 'op'}: use of a disposed tensor [${this.shape}] ${this.dtype}`);
    return { storage: this._storage, offset: this.offset, shape: this.shape, strides: this.strides };
  }

  isContiguous(): boolean {
    let s = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== s) return false;
      s *= this.shape[i]!;
    }
    return true;
  }

  /** Releases the storage now rather than at garbage collection; any later use is an error. */
  dispose(): void {
    this._storage = null;
    this.grad = null;
    this.gradFn = null;
  }

  // ---- autograd ----
  backward(grad?: Tensor, opts?: BackwardOptions): void {
    if (!grad && this.size !== 1) {
      throw new Error(`backward: a gradient is needed for a non-scalar tensor [${this.shape}]`);
    }
    runBackward(this, grad ?? ones(this.shape, { dtype: this.dtype, backend: this.backend }), opts);
  }
  /** Keep .grad on this non-leaf tensor during backward. */
  retainGrad(): this {
    this.retainsGrad = true;
    return this;
  }
  accumulateGrad(g: Tensor): void {
    // Leaf gradients are owned by the leaf: copy on first write so later accumulation cannot
    // change a tensor someone else holds. A strided g's dense copy is already a fresh tensor.
    this.grad = noGrad(() => (this.grad ? this.grad.add(g) : g.isContiguous() ? g.clone() : g.contiguous()));
  }
  /**
   * Calls hook(this) each time a backward pass has set or added this leaf's gradient, with .grad
   * final for that pass (as PyTorch's register_post_accumulate_grad_hook). Hooks run in the order
   * they were registered, inside backward; remove() unregisters.
   */
  registerPostAccumulateGradHook(hook: (t: Tensor) => void): { remove(): void } {
    if (!this.isLeaf) throw new Error(`registerPostAccumulateGradHook: only leaf tensors accumulate gradients; this one [${this.shape}] was made by ${this.gradFn!.op}`);
    if (!this.requiresGrad) throw new Error(`registerPostAccumulateGradHook: the tensor [${this.shape}] does not require grad`);
    (this._postAccumulateGradHooks ??= []).push(hook);
    return {
      remove: () => {
        const hooks = this._postAccumulateGradHooks;
        const i = hooks?.indexOf(hook) ?? -1;
        if (i >= 0) hooks!.splice(i, 1);
      },
    };
  }
  /** Runs the post-accumulate-grad hooks (autograd calls this once a leaf's .grad is final for a pass). */
  runPostAccumulateGradHooks(): void {
    const hooks = this._postAccumulateGradHooks;
    if (!hooks || hooks.length === 0) return;
    // A copy: a hook may remove itself or register another while they run.
    for (const hook of [...hooks]) hook(this);
  }
  /** The same data, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.strides, this.offset);
  }
  setRequiresGrad(flag = true): this {
    if (flag && !isFloat(this.dtype)) throw new Error(`requiresGrad: only float tensors can require grad, not ${this.dtype}`);
    this.requiresGrad = flag;
    return this;
  }
  zeroGrad(): void {
    this.grad = null;
  }

  // ---- in place (outside autograd: for initialisation, loading and optimizer-side updates) ----
  /** Overwrites this tensor's elements with src's (same shape; src is cast and moved as needed). */
  copy_(src: Tensor, op = 'copy_'): this {
    if (src.shape.length !== this.shape.length || src.shape.some((d, i) => d !== this.shape[i])) {
      throw new Error(`${op}: shape [${src.shape}] does not match [${this.shape}]`);
    }
    const s = src.dtype === this.dtype ? src : src.to(this.dtype);
    this.backend.copy(this.view(op), (s.backend === this.backend ? s : s.to(this.backend)).view(op));
    return this;
  }
  /** Sets every element to value. */
  fill_(value: number, op = 'fill_'): this {
    this.backend.fill(this.view(op), value);
    return this;
  }

  // ---- data out ----
  /** The elements as a dense host array in row-major order (a copy). */
  data(): TypedArray {
    return this.backend.toHost(this.view('data'));
  }
  toArray(): number[] {
    return Array.from(this.data() as ArrayLike<number | bigint>, Number);
  }
  tolist(): NestedArray {
    const flat = this.toArray();
    const bool = this.dtype === 'bool';
    const build = (dim: number, start: number): NestedArray => {
      if (dim === this.ndim) return bool ? flat[start] !== 0 : flat[start]!;
      const step = numel(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim]! }, (_, i) => build(dim + 1, start + i * step));
    };
    return build(0, 0);
  }
  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor [${this.shape}] has ${this.size} elements, not 1`);
    return this.toArray()[0]!;
  }
  toString(): string {
    return `Tensor([${this.shape}], ${this.dtype}, ${this.backend.name})`;
  }

  // ---- conversions ----
  to(target: DType | Backend): Tensor {
    return typeof target === 'string' ? ew.cast(this, target) : vw.toBackend(this, target);
  }
  contiguous(): Tensor {
    return vw.contiguous(this);
  }
  clone(): Tensor {
    return vw.clone(this);
  }

  // ---- views ----
  reshape(...shape: (number | Shape)[]): Tensor {
    return vw.reshape(this, flatShape(shape));
  }
  permute(...axes: (number | Shape)[]): Tensor {
    return vw.permute(this, flatShape(axes));
  }
  transpose(a = -2, b = -1): Tensor {
    return vw.transpose(this, a, b);
  }
  /** The last two axes swapped. */
  get T(): Tensor {
    return vw.transpose(this, -2, -1);
  }
  expand(...shape: (number | Shape)[]): Tensor {
    return vw.expand(this, flatShape(shape));
  }
  /** Elements start, start+step, ... below end along axis (negative indices count from the end). */
  slice(axis: number, start: number, end?: number, step = 1): Tensor {
    return vw.slice(this, axis, start, end, step);
  }
  narrow(axis: number, start: number, length: number): Tensor {
    return vw.slice(this, axis, start, start + length);
  }
  /** Index i along axis, removing that axis. */
  select(axis: number, i: number): Tensor {
    return vw.select(this, axis, i);
  }
  squeeze(axis?: number): Tensor {
    return vw.squeeze(this, axis);
  }
  unsqueeze(axis: number): Tensor {
    return vw.unsqueeze(this, axis);
  }
  flatten(startAxis = 0, endAxis = -1): Tensor {
    return vw.flatten(this, startAxis, endAxis);
  }

  // ---- elementwise ----
  add(o: TensorLike): Tensor { return ew.add(this, o); }
  sub(o: TensorLike): Tensor { return ew.sub(this, o); }
  mul(o: TensorLike): Tensor { return ew.mul(this, o); }
  div(o: TensorLike): Tensor { return ew.div(this, o); }
  pow(o: TensorLike): Tensor { return ew.pow(this, o); }
  maximum(o: TensorLike): Tensor { return ew.maximum(this, o); }
  minimum(o: TensorLike): Tensor { return ew.minimum(this, o); }
  eq(o: TensorLike): Tensor { return ew.compare('eq', this, o); }
  ne(o: TensorLike): Tensor { return ew.compare('ne', this, o); }
  lt(o: TensorLike): Tensor { return ew.compare('lt', this, o); }
  le(o: TensorLike): Tensor { return ew.compare('le', this, o); }
  gt(o: TensorLike): Tensor { return ew.compare('gt', this, o); }
  ge(o: TensorLike): Tensor { return ew.compare('ge', this, o); }
  logicalAnd(o: TensorLike): Tensor { return ew.compare('and', this, o); }
  logicalOr(o: TensorLike): Tensor { return ew.compare('or', this, o); }
  logicalNot(): Tensor { return ew.compare('eq', this, 0); }
  neg(): Tensor { return ew.neg(this); }
  abs(): Tensor { return ew.abs(this); }
  exp(): Tensor { return ew.exp(this); }
  log(): Tensor { return ew.log(this); }
  sqrt(): Tensor { return ew.sqrt(this); }
  rsqrt(): Tensor { return ew.rsqrt(this); }
  square(): Tensor { return ew.square(this); }
  reciprocal(): Tensor { return ew.reciprocal(this); }
  sin(): Tensor { return ew.sin(this); }
  cos(): Tensor { return ew.cos(this); }
  tanh(): Tensor { return ew.tanh(this); }
  sigmoid(): Tensor { return ew.sigmoid(this); }
  softplus(): Tensor { return ew.softplus(this); }
  erf(): Tensor { return ew.erf(this); }
  relu(): Tensor { return ew.relu(this); }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return ew.gelu(this, approximate); }
  quickGelu(): Tensor { return ew.quickGelu(this); }
  clamp(min?: number, max?: number): Tensor { return ew.clamp(this, min, max); }
  where(cond: Tensor, other: TensorLike): Tensor { return ew.where(cond, this, other); }
  maskedFill(mask: Tensor, value: number): Tensor { return ew.where(mask, value, this); }

  // ---- reductions ----
  sum(axes?: number | number[], keepdim = false): Tensor { return red.sum(this, axes, keepdim); }
  mean(axes?: number | number[], keepdim = false): Tensor { return red.mean(this, axes, keepdim); }
  max(axes?: number | number[], keepdim = false): Tensor { return red.max(this, axes, keepdim); }
  min(axes?: number | number[], keepdim = false): Tensor { return red.min(this, axes, keepdim); }
  argmax(axis = -1, keepdim = false): Tensor { return red.argmax(this, axis, keepdim); }
  argmin(axis = -1, keepdim = false): Tensor { return red.argmin(this, axis, keepdim); }
  logsumexp(axes: number | number[] = -1, keepdim = false): Tensor { return red.logsumexp(this, axes, keepdim); }
  softmax(axis = -1): Tensor { return red.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return red.logSoftmax(this, axis); }

  // ---- linear algebra ----
  matmul(o: Tensor): Tensor { return matmul(this, o); }
}

function flatShape(args: (number | Shape)[]): number[] {
  return args.length === 1 && typeof args[0] !== 'number' ? [...(args[0] as Shape)] : (args as number[]);
}

// ---- creation ----

function resolve(opts: TensorOptions): { backend: Backend; dtype: DType } {
  return { backend: opts.backend ?? defaultBackend(), dtype: opts.dtype ?? 'float32' };
}

function finish(t: Tensor, opts: TensorOptions): Tensor {
  if (opts.requiresGrad) t.setRequiresGrad(true);
  return t;
}

/** A tensor from a typed array (copied) or nested arrays; the shape is inferred unless given. */
export function tensor(data: NestedArray | TypedArray | readonly number[], opts: TensorOptions & { shape?: Shape } = {}): Tensor {
  let flat: ArrayLike<number | bigint | boolean>;
  let shape: number[];
  if (ArrayBuffer.isView(data)) {
    flat = data as TypedArray;
    shape = [flat.length];
  } else if (!Array.isArray(data)) {
    flat = [data as number | boolean];
    shape = [];
  } else {
    shape = [];
    for (let probe: NestedArray = data as NestedArray[]; Array.isArray(probe); probe = probe[0] as NestedArray) shape.push(probe.length);
    flat = (data as unknown[]).flat(Infinity as 1) as (number | boolean)[];
    if (flat.length !== numel(shape)) throw new Error(`tensor: ragged nested array (shape [${shape}] but ${flat.length} elements)`);
  }
  if (opts.shape) shape = [...opts.shape];
  if (flat.length !== numel(shape)) throw new Error(`tensor: ${flat.length} elements do not fill shape [${shape}]`);
  const dtype = opts.dtype ?? (ArrayBuffer.isView(flat) ? dtypeOfArray(flat as TypedArray) : 'float32');
  const backend = opts.backend ?? defaultBackend();
  let host: TypedArray;
  if (ArrayBuffer.isView(flat) && dtypeOfArray(flat as TypedArray) === dtype) {
    host = flat as TypedArray;
  } else {
    host = allocHost(dtype, flat.length);
    for (let i = 0; i < flat.length; i++) {
      const v = Number(flat[i]);
      if (host instanceof BigInt64Array) host[i] = BigInt(Math.trunc(v));
      else if (dtype === 'bool') host[i] = v !== 0 ? 1 : 0;
      else host[i] = v;
    }
  }
  return finish(new Tensor(backend.fromHost(host, dtype), shape), opts);
}

export function full(shape: Shape, value: number, opts: TensorOptions = {}): Tensor {
  const { backend, dtype } = resolve(opts);
  const s = backend.alloc(dtype, numel(shape));
  const t = new Tensor(s, shape);
  if (value !== 0) backend.fill(t.view(), value);
  return finish(t, opts);
}

/** A tensor whose elements are undefined, for one that is written whole before it is read. */
export function empty(shape: Shape, opts: TensorOptions = {}): Tensor {
  const { backend, dtype } = resolve(opts);
  return finish(new Tensor(backend.empty(dtype, numel(shape)), shape), opts);
}

export function zeros(shape: Shape, opts: TensorOptions = {}): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: Shape, opts: TensorOptions = {}): Tensor {
  return full(shape, 1, opts);
}

export function zerosLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return full(t.shape, 0, { dtype: t.dtype, backend: t.backend, ...opts });
}

export function onesLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return full(t.shape, 1, { dtype: t.dtype, backend: t.backend, ...opts });
}

/** start, start+step, ... below end (as torch.arange); int32 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new Error('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const dtype = opts.dtype ?? 'int32';
  const host = allocHost(dtype, n);
  for (let i = 0; i < n; i++) {
    if (host instanceof BigInt64Array) host[i] = BigInt(start + i * step);
    else host[i] = start + i * step;
  }
  return tensor(host, { ...opts, dtype, shape: [n] });
}

/** Wraps a number as a 0-d tensor shaped to meet `like` in a binary op. */
export function scalarLike(x: TensorLike, like: Tensor): Tensor {
  if (x instanceof Tensor) return x;
  // As in PyTorch, a number does not widen a tensor's float type; it makes integer tensors float.
  const dtype: DType = isFloat(like.dtype) ? like.dtype
    : !Number.isInteger(x) ? 'float32'
    : like.dtype === 'bool' ? 'int32' : like.dtype;
  return full([], x, { dtype, backend: like.backend });
}
