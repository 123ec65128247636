// Native elementwise kernels (native/elementwise.cc) against the reference backend: copy with dtype
// casts, fill, every unary op and activation gradient, binary arithmetic / comparisons / logic with
// broadcasting, and where; over odd shapes, 0-d tensors, transposed / sliced / offset / broadcast
// views, sizes big enough to split across threads, special values, and misuse that must throw.
// The whole file runs a second time in a child process with GLIMPSE_NO_AVX2=1 to cover the
// portable kernels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ActivationOp, Backend, BinaryOp, UnaryOp, View } from '../../src/tensor/backend.js';
import { numel } from '../../src/tensor/backend.js';
import type { DType, TypedArray } from '../../src/tensor/dtype.js';
import { ReferenceBackend } from '../../src/tensor/backends/reference.js';
import { createNativeBackend } from '../../src/tensor/backends/native.js';
import { HostStorage } from '../../src/tensor/backends/host.js';
import { loadAddon } from '../../src/tensor/backends/native/addon.js';
import type { Layout } from '../helpers.js';
import { assertClose, denseView, randInt, randomView, rng, storageData, rerunTestFile } from '../helpers.js';

const native = createNativeBackend();
const reference = new ReferenceBackend();
const skip = native ? false : 'the native addon is not built';
const portable = process.env.GLIMPSE_NO_AVX2 === '1';
const both = (): Backend[] => [native!, reference];

const UNARY: UnaryOp[] = [
  'neg', 'abs', 'sign', 'exp', 'log', 'sqrt', 'rsqrt', 'reciprocal', 'square', 'sin', 'cos', 'tanh', 'sigmoid',
  'softplus', 'erf', 'relu', 'gelu_erf', 'gelu_tanh', 'quick_gelu',
];
const ACTIVATIONS: ActivationOp[] = ['relu', 'gelu_erf', 'gelu_tanh', 'quick_gelu', 'sigmoid', 'tanh', 'erf', 'softplus'];
const ARITH: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'];
const COMPARE: BinaryOp[] = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or'];
const LAYOUTS: Layout[] = ['dense', 'offset', 'transposed', 'sliced', 'broadcast'];
// Values near 0 are compared absolutely: derivatives cross zero, and the reference's
// 0.5x(1 + tanh(u)) loses everything below ~1e-16 to cancellation, which the native kernels do not.
const RTOL = 1e-5;
const ATOL = 1e-6;

// Inputs that stress each function: zeros, infinities, NaN, subnormals, the edges of exp's range,
// and values far out in every tail.
const SPECIALS = [
  0, -0, Infinity, -Infinity, NaN, 1e-40, -1e-40, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 0.75, -0.75, 1, -1,
  3.9, -3.9, 5, -5, 7, -7, 9, -9, 10.5, -10.5, 13.5, -13.5, 15, -15, 20, -20, 30, -30, 50, -50, 86.5, -86.5,
  88.3, 88.7, 88.8, -87.4, -100, -104, -110, 100, 1e4, -1e4, 1e20, -1e20, 3.4e38, -3.4e38,
];

function shapeOf(r: () => number, maxRank = 4): number[] {
  const rank = randInt(r, 0, maxRank);
  return Array.from({ length: rank }, () => (r() < 0.25 ? 1 : randInt(r, 1, r() < 0.3 ? 37 : 9)));
}

/** A view of `outShape` reading random data of `srcShape` (1s where it broadcasts), laid out as `layout`. */
function broadcastView(r: () => number, dtype: DType, srcShape: number[], outShape: number[], layout: Layout, lo = -2, hi = 2): View[] {
  return randomView(r, both(), dtype, srcShape, layout, lo, hi).map((v) => ({
    ...v,
    shape: [...outShape],
    strides: v.strides.map((s, i) => (srcShape[i] === 1 && outShape[i] !== 1 ? 0 : s)),
  }));
}

/** Same host data on each backend, as a dense view (specials and other hand-picked values). */
function place(data: TypedArray, dtype: DType, shape = [data.length]): View[] {
  return both().map((b) => denseView(b.fromHost(data, dtype), shape));
}

function outs(dtype: DType, n: number) {
  return both().map((b) => b.alloc(dtype, n));
}

function values(s: { storage?: unknown } | unknown): number[] {
  return Array.from(storageData(s as never) as ArrayLike<number>, Number);
}

function checkUnary(op: UnaryOp, xs: View[], what: string, rtol = RTOL, atol = ATOL): void {
  const n = numel(xs[0]!.shape);
  const o = outs('float32', n);
  native!.unary(op, xs[0]!, o[0]!);
  reference.unary(op, xs[1]!, o[1]!);
  assertClose(storageData(o[0]!) as Float32Array, storageData(o[1]!) as Float32Array, rtol, atol, `${op} ${what}`);
}

function checkGrad(op: ActivationOp, xs: View[], gs: View[], what: string, rtol = RTOL, atol = ATOL): void {
  const o = outs('float32', numel(xs[0]!.shape));
  native!.unaryGrad(op, xs[0]!, gs[0]!, o[0]!);
  reference.unaryGrad(op, xs[1]!, gs[1]!, o[1]!);
  assertClose(storageData(o[0]!) as Float32Array, storageData(o[1]!) as Float32Array, rtol, atol, `${op}' ${what}`);
}

function checkBinary(op: BinaryOp, as: View[], bs: View[], what: string): void {
  const outType: DType = COMPARE.includes(op) ? 'bool' : 'float32';
  const o = outs(outType, numel(as[0]!.shape));
  native!.binary(op, as[0]!, bs[0]!, o[0]!);
  reference.binary(op, as[1]!, bs[1]!, o[1]!);
  if (outType === 'bool') assert.deepEqual(values(o[0]), values(o[1]), `${op} ${what}`);
  else assertClose(storageData(o[0]!) as Float32Array, storageData(o[1]!) as Float32Array, RTOL, ATOL, `${op} ${what}`);
}

test('the portable path is selected when GLIMPSE_NO_AVX2=1', { skip }, () => {
  if (portable) assert.equal(loadAddon()!.hasAvx2Fma!(), false);
});

test('unary ops match the reference on random shapes and layouts', { skip }, () => {
  const r = rng(1);
  for (const op of UNARY) {
    for (let t = 0; t < 12; t++) {
      const shape = shapeOf(r);
      const layout = LAYOUTS[t % LAYOUTS.length]!;
      const [lo, hi] = t % 3 === 2 ? [-30, 30] : [-3, 3];
      checkUnary(op, randomView(r, both(), 'float32', shape, layout, lo, hi), `[${shape}] ${layout} in [${lo}, ${hi}]`);
    }
  }
});

test('more dimensions than the native kernels take fall back to the reference', { skip }, () => {
  const r = rng(11);
  const shape = Array.from({ length: 17 }, (_, i) => (i % 6 === 0 ? 2 : 1));
  checkUnary('exp', randomView(r, both(), 'float32', shape, 'transposed'), '17 dims');
  checkBinary('add', randomView(r, both(), 'float32', shape, 'dense'), randomView(r, both(), 'float32', shape, 'sliced'), '17 dims');
});

test('unary ops on special values', { skip }, () => {
  const data = Float32Array.from(SPECIALS);
  // The reference computes tiny tails in float64 with cancellation (tanh' = 1 - tanh^2 is 0 from
  // |x| = 19 on); the native kernels keep them, so far-out values are compared absolutely.
  for (const op of UNARY) checkUnary(op, place(data, 'float32'), 'specials', RTOL, 1e-15);
});

test('unary ops over a large tensor split across threads, and a broadcast input', { skip }, () => {
  const r = rng(2);
  for (const op of ['gelu_erf', 'exp', 'relu', 'sin'] as UnaryOp[]) {
    checkUnary(op, randomView(r, both(), 'float32', [129, 611], 'dense'), 'large dense');
    checkUnary(op, randomView(r, both(), 'float32', [611, 129], 'transposed'), 'large transposed');
    checkUnary(op, broadcastView(r, 'float32', [1, 613], [117, 613], 'dense'), 'large broadcast rows');
  }
});

// Streaming stores are an AVX2-path feature.
test('outputs large enough for streaming stores equal the cached path, aligned or not', { skip: skip || portable }, () => {
  // Past the streaming threshold (16 MiB of output); each row of the same data, computed on its
  // own, is small enough to take the ordinary stores: results must agree bit for bit.
  const r = rng(10);
  const cols = 4099;
  const rows = Math.ceil((1 << 22) / cols) + 1;
  const xs = new Float32Array(rows * cols + 5);
  const gs = new Float32Array(rows * cols);
  for (let i = 0; i < xs.length; i++) xs[i] = 12 * r() - 6;
  for (let i = 0; i < gs.length; i++) gs[i] = r() - 0.5;
  const x = native!.fromHost(xs, 'float32');
  const g = native!.fromHost(gs, 'float32');
  const xv: View = { storage: x, offset: 5, shape: [rows, cols], strides: [cols, 1] };
  const gv = denseView(g, [rows, cols]);
  const bias: View = { storage: x, offset: 0, shape: [rows, cols], strides: [0, 1] };
  for (const byteOffset of [0, 4, 12]) {
    const buf = new ArrayBuffer(rows * cols * 4 + 32);
    const out = new HostStorage(native!, 'float32', new Float32Array(buf, byteOffset, rows * cols));
    const row = native!.alloc('float32', cols);
    const rowView = (v: View, i: number): View => ({ ...v, offset: v.offset + i * v.strides[0]!, shape: [cols], strides: [v.strides[1]!] });
    const kernels: [string, () => void, (i: number) => void][] = [
      ['gelu_erf', () => native!.unary('gelu_erf', xv, out), (i) => native!.unary('gelu_erf', rowView(xv, i), row)],
      ['gelu_tanh\'', () => native!.unaryGrad('gelu_tanh', xv, gv, out),
        (i) => native!.unaryGrad('gelu_tanh', rowView(xv, i), rowView(gv, i), row)],
      ['add bias', () => native!.binary('add', xv, bias, out), (i) => native!.binary('add', rowView(xv, i), rowView(bias, i), row)],
    ];
    native!.copy(denseView(out, [rows, cols]), xv);
    assert.deepEqual(storageData(out), xs.subarray(5), `dense copy, output at byte ${byteOffset}`);
    for (const [name, whole, one] of kernels) {
      whole();
      const all = storageData(out) as Float32Array;
      for (const i of [0, 1, Math.floor(rows / 2), rows - 1]) {
        one(i);
        assert.deepEqual(all.subarray(i * cols, (i + 1) * cols), storageData(row), `${name} row ${i}, output at byte ${byteOffset}`);
      }
    }
  }
});

test('activation gradients match the reference', { skip }, () => {
  const r = rng(3);
  for (const op of ACTIVATIONS) {
    for (let t = 0; t < 12; t++) {
      const shape = shapeOf(r);
      const lx = LAYOUTS[t % LAYOUTS.length]!;
      const lg = LAYOUTS[randInt(r, 0, LAYOUTS.length - 1)]!;
      const [lo, hi] = t % 3 === 2 ? [-12, 12] : [-3, 3];
      const xs = randomView(r, both(), 'float32', shape, lx, lo, hi);
      const gs = randomView(r, both(), 'float32', shape, lg);
      checkGrad(op, xs, gs, `[${shape}] x ${lx} g ${lg}`);
    }
    const big = randomView(r, both(), 'float32', [97, 1031], 'dense', -6, 6);
    checkGrad(op, big, randomView(r, both(), 'float32', [97, 1031], 'dense'), 'large');
    const sp = Float32Array.from(SPECIALS);
    checkGrad(op, place(sp, 'float32'), place(sp.map(() => 1.5), 'float32'), 'specials');
  }
});

// Stable float64 formulas: where the reference's own formula cancels, these hold the native
// kernels to their claimed relative accuracy far out in the tails.
function sigmoid64(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}
const K = Math.sqrt(2 / Math.PI);
const TAILS: [string, UnaryOp | null, ActivationOp | null, (x: number) => number, number, number][] = [
  ['sigmoid', 'sigmoid', null, sigmoid64, -80, 80],
  ['softplus', 'softplus', null, (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))), -80, 80],
  ['quick_gelu', 'quick_gelu', null, (x) => x * sigmoid64(1.702 * x), -50, 50],
  ['gelu_tanh', 'gelu_tanh', null, (x) => x * sigmoid64(2 * K * (x + 0.044715 * x ** 3)), -9, 9],
  ['sigmoid\'', null, 'sigmoid', (x) => { const e = Math.exp(-Math.abs(x)); return e / (1 + e) ** 2; }, -80, 80],
  ['tanh\'', null, 'tanh', (x) => { const e = Math.exp(-2 * Math.abs(x)); return (4 * e) / (1 + e) ** 2; }, -40, 40],
  ['gelu_tanh\'', null, 'gelu_tanh', (x) => {
    const v = 2 * K * (x + 0.044715 * x ** 3);
    const e = Math.exp(-Math.abs(v));
    return sigmoid64(v) + (x * e * 2 * K * (1 + 3 * 0.044715 * x * x)) / (1 + e) ** 2;
  }, -9, -1.5],
];

test('activations keep their relative accuracy in the tails', { skip }, () => {
  for (const [name, uop, aop, f, lo, hi] of TAILS) {
    const xs = Float32Array.from({ length: 4001 }, (_, i) => lo + ((hi - lo) * i) / 4000);
    const expected = Float32Array.from(xs, (x) => f(x));
    const o = native!.alloc('float32', xs.length);
    const xv = denseView(native!.fromHost(xs, 'float32'), [xs.length]);
    if (uop) native!.unary(uop, xv, o);
    else native!.unaryGrad(aop!, xv, denseView(native!.fromHost(new Float32Array(xs.length).fill(1), 'float32'), [xs.length]), o);
    // Normal floats only: results below 1e-37 may flush to zero.
    assertClose(storageData(o) as Float32Array, expected, 1e-6, 1e-37, `${name} tails`);
  }
  // gelu (erf form) against the reference's erf where 1 + erf(x/sqrt2) is still accurate in float64.
  const xs = Float32Array.from({ length: 3001 }, (_, i) => -5.5 + (15.5 * i) / 3000);
  const o = outs('float32', xs.length);
  const v = place(xs, 'float32');
  native!.unary('gelu_erf', v[0]!, o[0]!);
  reference.unary('gelu_erf', v[1]!, o[1]!);
  assertClose(storageData(o[0]!) as Float32Array, storageData(o[1]!) as Float32Array, 1e-6, 1e-37, 'gelu_erf tails');
});

/** The float32 values within `k` ulps of `c` (c itself included). */
function floatsAround(c: number, k: number): number[] {
  const f = new Float32Array([c]);
  const bits = new Int32Array(f.buffer);
  const out: number[] = [];
  const base = bits[0]!;
  for (let d = -k; d <= k; d++) {
    bits[0] = base + d;
    out.push(f[0]!);
  }
  return out;
}

// The GELU kernels take their tails from tables of piecewise polynomials for |x| < 3.75 and from
// exact formulas beyond; the derivatives cross zero near x = -0.75, where the kernels keep their
// relative accuracy as well. Every float next to the roots and to the pieces' edges is checked.
test('GELU kernels and derivatives keep 1e-6 relative accuracy, at the table edges and the roots too', { skip }, () => {
  const xs: number[] = [];
  for (let i = 0; i <= 24000; i++) xs.push(-12 + i / 1000);
  for (const root of [-0.7517915246935645, -0.7524614220710163, -0.7511542554412890]) xs.push(...floatsAround(root, 400));
  for (let j = 0; j <= 7; j++) for (const sign of [1, -1]) xs.push(...floatsAround(sign * (j / 2 + 0.25), 40));
  const data = Float32Array.from(xs);
  const ones = place(data.map(() => 1), 'float32');
  for (const op of ['gelu_erf', 'gelu_tanh', 'quick_gelu'] as const) {
    // Results below 1e-35 in magnitude may flush to zero.
    checkUnary(op, place(data, 'float32'), 'accuracy sweep', 1e-6, 1e-35);
    checkGrad(op, place(data, 'float32'), ones, 'accuracy sweep', 1e-6, 1e-35);
  }
});

test('binary arithmetic with broadcasting matches the reference', { skip }, () => {
  const r = rng(4);
  for (const op of ARITH) {
    for (let t = 0; t < 16; t++) {
      const shape = shapeOf(r);
      const bShape = shape.map((d) => (r() < 0.35 ? 1 : d));
      const aShape = shape.map((d, i) => (bShape[i] !== 1 && r() < 0.2 ? 1 : d));
      const la = LAYOUTS[t % LAYOUTS.length]!;
      const lb = LAYOUTS[randInt(r, 0, LAYOUTS.length - 1)]!;
      const as = broadcastView(r, 'float32', aShape, shape, la, -3, 3);
      let bs = broadcastView(r, 'float32', bShape, shape, lb, -3, 3);
      if (op === 'pow' && t % 2 === 0) {
        // integer exponents of negative bases, as Math.pow does them
        const ints = Float32Array.from({ length: numel(shape) }, () => randInt(r, -3, 4));
        bs = place(ints, 'float32', shape);
      }
      checkBinary(op, as, bs, `[${aShape}] ${la} with [${bShape}] ${lb} -> [${shape}]`);
    }
  }
});

test('binary fast paths: bias rows, column scalars, a scalar, large sizes', { skip }, () => {
  const r = rng(5);
  const cases: [number[], number[], number[]][] = [
    [[103, 771], [103, 771], [1, 771]], // bias over rows
    [[103, 771], [103, 771], [103, 1]], // one value per row
    [[103, 771], [1, 1], [103, 771]], // scalar on the left
    [[64, 3, 129], [64, 3, 129], [1, 3, 1]],
    [[], [], []],
    [[5], [5], [1]],
  ];
  for (const op of ['add', 'mul', 'sub', 'div', 'maximum', 'pow'] as BinaryOp[]) {
    for (const [shape, aShape, bShape] of cases) {
      const as = broadcastView(r, 'float32', aShape, shape, 'dense', 0.5, 3);
      const bs = broadcastView(r, 'float32', bShape, shape, 'dense', -2, 2);
      checkBinary(op, as, bs, `[${aShape}] with [${bShape}]`);
    }
  }
});

test('maximum and minimum propagate NaN; arithmetic on special values', { skip }, () => {
  const sp = Float32Array.from(SPECIALS);
  const n = sp.length;
  // every pair of specials
  const a = new Float32Array(n * n);
  const b = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) [a[i * n + j], b[i * n + j]] = [sp[i]!, sp[j]!];
  for (const op of [...ARITH, ...COMPARE]) checkBinary(op, place(a, 'float32'), place(b, 'float32'), 'specials');
});

test('comparisons and logic match the reference', { skip }, () => {
  const r = rng(6);
  for (const op of COMPARE) {
    for (let t = 0; t < 10; t++) {
      const shape = shapeOf(r);
      const bShape = shape.map((d) => (r() < 0.3 ? 1 : d));
      // small integers, so that ties (eq, le, ge) happen often
      const dtype: DType = (['float32', 'int32', 'bool', 'uint8'] as DType[])[t % 4]!;
      const [lo, hi] = dtype === 'float32' ? [-2, 2] : [0, 3];
      const as = broadcastView(r, dtype, shape, shape, LAYOUTS[t % LAYOUTS.length]!, lo, hi);
      const bs = broadcastView(r, dtype, bShape, shape, LAYOUTS[randInt(r, 0, 4)]!, lo, hi);
      if (dtype === 'float32') {
        for (const v of [...as, ...bs]) {
          const d = storageData(v.storage) as Float32Array;
          for (let i = 0; i < d.length; i++) d[i] = Math.round(d[i]!) === 2 ? NaN : Math.round(d[i]!);
        }
      }
      checkBinary(op, as, bs, `${dtype} [${shape}] with [${bShape}]`);
    }
  }
});

test('where matches the reference for bool, uint8 and float32 conditions', { skip }, () => {
  const r = rng(7);
  for (let t = 0; t < 30; t++) {
    const shape = shapeOf(r);
    const cd: DType = (['bool', 'uint8', 'float32'] as DType[])[t % 3]!;
    const cShape = shape.map((d) => (r() < 0.3 ? 1 : d));
    const aShape = shape.map((d) => (r() < 0.3 ? 1 : d));
    const bShape = t % 4 === 0 ? shape.map(() => 1) : shape.map((d) => (r() < 0.3 ? 1 : d));
    const cs = broadcastView(r, cd, cShape, shape, LAYOUTS[t % 5]!, -1, 1);
    if (cd === 'float32') {
      const d = storageData(cs[0]!.storage) as Float32Array;
      for (const v of cs) {
        const dd = storageData(v.storage) as Float32Array;
        for (let i = 0; i < d.length; i++) dd[i] = d[i]! > 0.5 ? NaN : d[i]! > 0 ? 0 : d[i]!;
      }
    }
    const as = broadcastView(r, 'float32', aShape, shape, LAYOUTS[randInt(r, 0, 4)]!);
    const bs = broadcastView(r, 'float32', bShape, shape, LAYOUTS[randInt(r, 0, 4)]!);
    const o = outs('float32', numel(shape));
    native!.where(cs[0]!, as[0]!, bs[0]!, o[0]!);
    reference.where(cs[1]!, as[1]!, bs[1]!, o[1]!);
    assert.deepEqual(values(o[0]), values(o[1]), `where ${cd} [${cShape}] [${aShape}] [${bShape}] -> [${shape}]`);
  }
});

const CAST_TYPES: DType[] = ['float32', 'float64', 'int32', 'uint8', 'bool'];
const CAST_VALUES = [0, -0, 1, -1, 1.5, -1.5, 2.7, -2.7, 255, 256, 257, -129, 1e6 + 0.5, 2147483647, 2147483648, -2147483649,
  4294967297, 3e9, -3e9, 1e20, -1e20, 16777217, Infinity, -Infinity, NaN, 1e-40];

function typed(dtype: DType, vals: number[]): TypedArray {
  const src = Float64Array.from(vals);
  const h = reference.fromHost(src, 'float64');
  const o = reference.alloc(dtype, vals.length);
  reference.copy(denseView(o, [vals.length]), denseView(h, [vals.length]));
  return storageData(o);
}

test('copy casts between dtypes exactly as the reference stores them', { skip }, () => {
  for (const sd of CAST_TYPES) {
    const src = typed(sd, CAST_VALUES);
    for (const dd of CAST_TYPES) {
      const s = place(src, sd);
      const d = outs(dd, src.length).map((o) => denseView(o, [src.length]));
      native!.copy(d[0]!, s[0]!);
      reference.copy(d[1]!, s[1]!);
      assert.deepEqual(values(d[0]!.storage), values(d[1]!.storage), `${sd} -> ${dd}`);
    }
  }
  const big = BigInt64Array.from([1n, -5n, 2n ** 60n]);
  const s = place(big, 'int64');
  const d = outs('int64', 3).map((o) => denseView(o, [3]));
  native!.copy(d[0]!, s[0]!);
  assert.deepEqual(Array.from(storageData(d[0]!.storage) as BigInt64Array), Array.from(big));
});

test('copy between random strided views, including into a strided destination', { skip }, () => {
  const r = rng(8);
  for (let t = 0; t < 60; t++) {
    const shape = shapeOf(r, 5);
    const sd: DType = (['float32', 'float32', 'int32', 'uint8', 'float64'] as DType[])[t % 5]!;
    const dd: DType = t % 3 === 0 ? 'float32' : sd;
    const srcShape = shape.map((x) => (r() < 0.2 ? 1 : x));
    const s = broadcastView(r, sd, srcShape, shape, LAYOUTS[t % 5]!, 0, 50);
    const d = randomView(r, both(), dd, shape, LAYOUTS[randInt(r, 0, 3)]!, 0, 50);
    native!.copy(d[0]!, s[0]!);
    reference.copy(d[1]!, s[1]!);
    assert.deepEqual(values(d[0]!.storage), values(d[1]!.storage), `${sd} [${srcShape}] -> ${dd} [${shape}]`);
  }
  // transposes (the contiguous() of a transposed matrix), which copy in tiles
  const transposes: [number[], DType][] = [[[317, 389], 'float32'], [[64, 1500], 'float32'], [[3, 40, 33], 'float64'],
    [[2, 3, 9, 70], 'uint8'], [[8, 8], 'bool'], [[5, 31, 8], 'int32']];
  for (const [shape, dtype] of transposes) {
    const s = randomView(r, both(), dtype, shape, 'transposed', 0, 100);
    const d = outs(dtype, numel(shape)).map((o) => denseView(o, shape));
    native!.copy(d[0]!, s[0]!);
    reference.copy(d[1]!, s[1]!);
    assert.deepEqual(values(d[0]!.storage), values(d[1]!.storage), `transpose ${dtype} [${shape}]`);
  }
});

test('copy between overlapping views of one storage reads the old values', { skip }, () => {
  const data = Float32Array.from({ length: 40 }, (_, i) => i);
  for (const [dOff, sOff, dStride, sStride] of [[1, 0, 1, 1], [0, 1, 1, 1], [0, 0, 1, -1], [3, 0, 2, 1]] as const) {
    const views = both().map((b) => b.fromHost(data, 'float32'));
    const n = 12;
    const at = (st: HostStorage | unknown, off: number, stride: number): View =>
      ({ storage: st as HostStorage, offset: off + (stride < 0 ? 20 : 0), shape: [n], strides: [stride] });
    native!.copy(at(views[0], dOff, dStride), at(views[0], sOff, sStride));
    reference.copy(at(views[1], dOff, dStride), at(views[1], sOff, sStride));
    assert.deepEqual(values(views[0]), values(views[1]), `overlap ${dOff} ${sOff} ${dStride} ${sStride}`);
  }
});

test('fill writes every element of strided views, converting the value', { skip }, () => {
  const r = rng(9);
  for (const dtype of CAST_TYPES) {
    for (const value of [0, 1.5, -2.7, 300, NaN, Infinity]) {
      const shape = shapeOf(r);
      const d = randomView(r, both(), dtype, shape, LAYOUTS[randInt(r, 0, 3)]!, 0, 10);
      native!.fill(d[0]!, value);
      reference.fill(d[1]!, value);
      assert.deepEqual(values(d[0]!.storage), values(d[1]!.storage), `fill ${dtype} ${value} [${shape}]`);
    }
  }
});

test('misuse throws instead of crashing', { skip }, () => {
  const nb = native!;
  const x = nb.fromHost(new Float32Array(12), 'float32');
  const out = nb.alloc('float32', 12);
  const v = (shape: number[], strides: number[], offset = 0): View => ({ storage: x, offset, shape, strides });
  assert.throws(() => nb.unary('exp', v([3, 4], [4, 1], 1), out), /outside/);
  assert.throws(() => nb.unary('exp', v([3, 4], [-4, 1]), out), /outside/);
  assert.throws(() => nb.unary('exp', v([4, 4], [4, 1]), out));
  assert.throws(() => nb.unary('exp', v([3, 4], [4, 1]), nb.alloc('float32', 11)), /too small/);
  assert.throws(() => nb.binary('add', v([3, 4], [4, 1]), v([4, 3], [3, 1]), out), /shape/);
  assert.throws(() => nb.binary('add', v([3, 4], [4, 1]), v([3, 4], [0, 4]), out), /outside/);
  assert.throws(() => nb.where(v([3, 4], [4, 1]), v([3, 4], [4, 1]), v([3, 4], [4, 1]), nb.alloc('float32', 2)));
  assert.throws(() => nb.copy(v([3, 4], [4, 1]), v([4, 3], [3, 1])), /shape/);
  assert.throws(() => nb.copy(v([3, 4], [4, 1]), v([3, 4], [4, 2])), /outside/);
  assert.throws(() => nb.fill(v([3, 5], [5, 1]), 1), /outside/);
  // A storage whose typed array does not hold its dtype.
  const liar = new HostStorage(nb, 'float32', new Int32Array(12));
  assert.throws(() => nb.unary('exp', { storage: liar, offset: 0, shape: [12], strides: [1] }, out), /dtype/);
  // The addon's functions called directly with bad arguments.
  const addon = loadAddon()!;
  const f = new Float32Array(8);
  assert.throws(() => addon.ewUnary!(99, f, 0, [1], [8], f), /op/);
  assert.throws(() => addon.ewUnary!(0, f, 0, [1, 1], [8], f), /rank/);
  assert.throws(() => addon.ewUnary!(0, f, 0, [2 ** 52], [8], f), /overflow|outside/);
  assert.throws(() => addon.ewUnary!(0, [1, 2], 0, [1], [2], f), /typed array/);
  assert.throws(() => addon.ewBinary!(0, 0, f, 0, [1], 0, f, 0, [1], [8], 4, new Uint8Array(8)), /float32/);
  assert.throws(() => addon.ewCopy!(3, f, 0, [1], 0, f, 0, [1], [8]), /dtype/);
  assert.throws(() => addon.ewFill!(0, f, 0, [1], [-1], 1), /non-negative/);
});

if (!portable) {
  test('the portable kernels (child process with GLIMPSE_NO_AVX2=1)', { skip }, () => {
    rerunTestFile(import.meta.url, { GLIMPSE_NO_AVX2: '1' });
  });
}
