// Native fused kernels (native/fused.cc) against the reference backend: biasActivation, linear
// and addLayerNorm over odd sizes, long rows split across threads, every path of the product
// under linear's epilogue, in-place updates, special values, outputs big enough for streaming
// stores, and misuse. The fused results must also equal the unfused native kernels (add, then the
// activation or layerNorm; matmul, then biasActivation) bit for bit, so that turning a fusion on
// never changes a model's outputs. The whole file runs a second time in a child process
// with GLIMPSE_NO_AVX2=1 to cover the portable kernels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ActivationOp, Backend, Storage, View } from '../../src/tensor/backend.js';
import { ReferenceBackend } from '../../src/tensor/backends/reference.js';
import { createNativeBackend } from '../../src/tensor/backends/native.js';
import { loadAddon } from '../../src/tensor/backends/native/addon.js';
import * as wrap from '../../src/tensor/backends/native/fused.js';
import { type Layout, assertClose, denseView, randInt, randomData, randomView, rng, storageData, rerunTestFile } from '../helpers.js';

const native = createNativeBackend();
const reference = new ReferenceBackend();
const skip = native ? false : 'the native addon is not built';
const portable = process.env.GLIMPSE_NO_AVX2 === '1';
const ACTS: (ActivationOp | null)[] = [null, 'relu', 'gelu_erf', 'gelu_tanh', 'quick_gelu', 'sigmoid', 'tanh', 'erf', 'softplus'];

function f32(s: Storage): Float32Array {
  return storageData(s) as Float32Array;
}

/** data placed at `offset` in a larger buffer, as a dense view of `shape` on backend b. */
function place(b: Backend, data: Float32Array, shape: number[], offset = 0): View {
  const padded = new Float32Array(data.length + offset + 3).fill(Number.NaN); // NaN around: reads outside show
  padded.set(data, offset);
  return denseView(b.fromHost(padded, 'float32'), shape, offset);
}

function sameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: lengths differ`);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

/** Random floats where a fraction `p` of entries is replaced by picks from `specials`. */
function sprinkle(r: () => number, data: Float32Array, p: number, specials: number[]): Float32Array {
  for (let i = 0; i < data.length; i++) if (r() < p) data[i] = specials[randInt(r, 0, specials.length - 1)]!;
  return data;
}

interface BiasCase {
  rows: number;
  n: number;
  act: ActivationOp | null;
  x: Float32Array;
  bias: Float32Array;
  xOffset?: number;
  biasOffset?: number;
  withPre?: boolean;
}

function runBias(b: Backend, c: BiasCase) {
  const x = place(b, c.x, [c.rows, c.n], c.xOffset ?? 0);
  const bias = place(b, c.bias, [c.n], c.biasOffset ?? 0);
  const pre = c.withPre === false ? null : b.alloc('float32', c.rows * c.n);
  const out = b.alloc('float32', c.rows * c.n);
  b.biasActivation(x, bias, c.act, c.rows, c.n, pre, out);
  return { pre: pre && f32(pre), out: f32(out) };
}

/** The unfused native path: add the bias broadcast over the rows, then the activation. */
function unfusedBias(c: BiasCase) {
  const b = native!;
  const x = place(b, c.x, [c.rows, c.n]);
  const bias = place(b, c.bias, [c.n]);
  const pre = b.alloc('float32', c.rows * c.n);
  b.binary('add', x, { ...bias, shape: [c.rows, c.n], strides: [0, 1] }, pre);
  if (!c.act) return { pre: f32(pre), out: f32(pre) };
  const out = b.alloc('float32', c.rows * c.n);
  b.unary(c.act, denseView(pre, [c.rows, c.n]), out);
  return { pre: f32(pre), out: f32(out) };
}

function checkBias(c: BiasCase, what: string): void {
  const nat = runBias(native!, c);
  const ref = runBias(reference, c);
  const name = `${what} (${c.act ?? 'no activation'}, [${c.rows}, ${c.n}])`;
  if (ref.pre) sameBits(nat.pre!, ref.pre, `${name} pre`);
  assertClose(nat.out, ref.out, 1e-5, 1e-30, `${name} out`);
  const unf = unfusedBias(c);
  sameBits(nat.out, unf.out, `${name}: fused vs add then activation`);
}

test('biasActivation matches the reference on random shapes, every activation, with and without pre', { skip }, () => {
  const r = rng(7);
  for (const act of ACTS) {
    for (let t = 0; t < 6; t++) {
      const rows = randInt(r, 1, 13);
      const n = t === 0 ? 1 : randInt(r, 2, 200);
      checkBias({
        rows, n, act,
        x: randomData(r, 'float32', rows * n, -6, 6) as Float32Array,
        bias: randomData(r, 'float32', n, -1, 1) as Float32Array,
        xOffset: randInt(r, 0, 5), biasOffset: randInt(r, 0, 5), withPre: t % 2 === 0,
      }, 'random');
    }
  }
});

test('biasActivation: long rows and many short rows split across threads', { skip }, () => {
  const r = rng(8);
  for (const [rows, n] of [[3, 40001], [1500, 77], [1, 100003]] as const) {
    for (const act of ['gelu_erf', null, 'relu'] as const) {
      checkBias({
        rows, n, act,
        x: randomData(r, 'float32', rows * n, -4, 4) as Float32Array,
        bias: randomData(r, 'float32', n) as Float32Array,
        xOffset: 1,
      }, 'threads');
    }
  }
});

test('biasActivation: infinities and NaN as the reference has them', { skip }, () => {
  const r = rng(9);
  const specials = [Infinity, -Infinity, Number.NaN, 0, -0, 1e30, -1e30, 88, -104];
  for (const act of ACTS) {
    const rows = 5;
    const n = 37;
    checkBias({
      rows, n, act,
      x: sprinkle(r, randomData(r, 'float32', rows * n, -3, 3) as Float32Array, 0.3, specials),
      bias: sprinkle(r, randomData(r, 'float32', n) as Float32Array, 0.1, specials),
    }, 'specials');
  }
});

test('biasActivation in place: pre or out written over x', { skip }, () => {
  const r = rng(10);
  const rows = 9;
  const n = 45;
  const xs = randomData(r, 'float32', rows * n, -3, 3) as Float32Array;
  const bs = randomData(r, 'float32', n) as Float32Array;
  for (const b of [native!, reference]) {
    const expected = runBias(b, { rows, n, act: 'gelu_tanh', x: xs, bias: bs });
    // pre over x, out separate
    const x1 = place(b, xs, [rows, n]);
    const out1 = b.alloc('float32', rows * n);
    b.biasActivation(x1, place(b, bs, [n]), 'gelu_tanh', rows, n, x1.storage, out1);
    sameBits(f32(x1.storage).subarray(0, rows * n), expected.pre!, `${b.name}: pre over x`);
    sameBits(f32(out1), expected.out, `${b.name}: out with pre over x`);
    // out over x, no pre
    const x2 = place(b, xs, [rows, n]);
    b.biasActivation(x2, place(b, bs, [n]), 'gelu_tanh', rows, n, null, x2.storage);
    sameBits(f32(x2.storage).subarray(0, rows * n), expected.out, `${b.name}: out over x`);
  }
});

// ---- linear: the product with biasActivation as its epilogue ----

const EPS32 = 2 ** -24;

function withThreads(n: number, body: () => void): void {
  const addon = loadAddon()!;
  const before = addon.numThreads!() as number;
  addon.setNumThreads!(n);
  try {
    body();
  } finally {
    addon.setNumThreads!(before);
  }
}

interface LinearCase {
  rows: number;
  k: number;
  n: number;
  act: ActivationOp | null;
  xLayout: Layout;
  wLayout: Layout;
}

/** Inputs of a case, the same data on both backends: x [rows, k], weight [n, k], bias [n]. */
function linearInputs(r: () => number, c: LinearCase) {
  const [xN, xR] = randomView(r, [native!, reference], 'float32', [c.rows, c.k], c.xLayout);
  const [wN, wR] = randomView(r, [native!, reference], 'float32', [c.n, c.k], c.wLayout);
  const bias = randomData(r, 'float32', c.n) as Float32Array;
  const biasOffset = randInt(r, 0, 3);
  return { native: [xN!, wN!, place(native!, bias, [c.n], biasOffset)], reference: [xR!, wR!, place(reference, bias, [c.n], biasOffset)] };
}

function runLinear(b: Backend, c: LinearCase, withPre: boolean, [x, w, bias]: View[]) {
  // NaN-filled outputs: an element the kernel reads before writing, or never writes, shows.
  const pre = withPre ? b.fromHost(new Float32Array(c.rows * c.n).fill(Number.NaN), 'float32') : null;
  const out = b.fromHost(new Float32Array(c.rows * c.n).fill(Number.NaN), 'float32');
  b.linear(x!, w!, bias!, c.act, pre, out);
  return { pre: pre && f32(pre), out: f32(out) };
}

/** matmul, then biasActivation: what linear computed before it was one kernel. */
function unfusedLinear(c: LinearCase, [x, w, bias]: View[]) {
  const b = native!;
  const product = b.alloc('float32', c.rows * c.n);
  b.matmul({ ...x!, shape: [1, c.rows, c.k], strides: [0, ...x!.strides] },
    { ...w!, shape: [1, c.k, c.n], strides: [0, w!.strides[1]!, w!.strides[0]!] }, product);
  const pre = b.alloc('float32', c.rows * c.n);
  const out = b.alloc('float32', c.rows * c.n);
  b.biasActivation(denseView(product, [c.rows, c.n]), bias!, c.act, c.rows, c.n, pre, out);
  return { pre: f32(pre), out: f32(out) };
}

/**
 * Native, keeping pre or not (then out holds the product first), against the unfused native
 * kernels bit for bit, and against the reference within the float32 summation error bound
 * (k + 3) eps (sum_i |x_i w_i| + |bias|) (the activations' slopes are at most 1.13), plus 1e-5
 * relative for the activation itself.
 */
function checkLinear(r: () => number, c: LinearCase, threads: number[]): void {
  const inputs = linearInputs(r, c);
  const name = `linear [${c.rows}, ${c.k}] x [${c.n}, ${c.k}]^T (${c.act ?? 'no activation'}, x ${c.xLayout}, weight ${c.wLayout})`;
  const ref = runLinear(reference, c, true, inputs.reference);
  const unf = unfusedLinear(c, inputs.native);
  const [x, w] = inputs.native;
  const xs = f32(x!.storage);
  const ws = f32(w!.storage);
  const bias = f32(inputs.native[2]!.storage).subarray(inputs.native[2]!.offset);
  const bound = new Float64Array(c.rows * c.n);
  for (let i = 0; i < c.rows; i++) {
    for (let j = 0; j < c.n; j++) {
      let mag = Math.abs(bias[j]!);
      for (let t = 0; t < c.k; t++) {
        mag += Math.abs(xs[x!.offset + i * x!.strides[0]! + t * x!.strides[1]!]! * ws[w!.offset + j * w!.strides[0]! + t * w!.strides[1]!]!);
      }
      bound[i * c.n + j] = (c.k + 3) * EPS32 * mag;
    }
  }
  for (const [t, withPre] of threads.flatMap((t) => [[t, true], [t, false]] as const)) {
    withThreads(t, () => {
      const nat = runLinear(native!, c, withPre, inputs.native);
      const what = `${name}, ${t} thread${t > 1 ? 's' : ''}, pre ${withPre ? 'kept' : 'not kept'}`;
      sameBits(nat.out, unf.out, `${what}: out vs matmul then biasActivation`);
      if (nat.pre) sameBits(nat.pre, unf.pre, `${what}: pre vs matmul then biasActivation`);
      for (let e = 0; e < nat.out.length; e++) {
        if (nat.pre && !(Math.abs(nat.pre[e]! - ref.pre![e]!) <= bound[e]!)) {
          assert.fail(`${what}: pre element ${e} is ${nat.pre[e]}, reference ${ref.pre![e]} (bound ${bound[e]})`);
        }
        if (!(Math.abs(nat.out[e]! - ref.out[e]!) <= 1.2 * bound[e]! + 1e-5 * Math.abs(ref.out[e]!))) {
          assert.fail(`${what}: out element ${e} is ${nat.out[e]}, reference ${ref.out[e]} (bound ${bound[e]})`);
        }
      }
    });
  }
}

// Shapes for each path of the product, where the epilogue runs at different points: one row
// (matrix-vector, the weight read along k or along n), one column (the transposed matrix-vector
// product, epilogue after it), few rows against a dense weight (the weight read in place, columns
// claimed in runs), and the packed path with several row blocks, K slices and column panels, split
// among threads by rows or by columns; K = 0 (out = act(bias)) and empty outputs.
test('linear: every path of the product, bit for bit matmul then biasActivation, and the reference', { skip }, () => {
  const r = rng(21);
  const cases: [number, number, number, Layout, Layout][] = [ // rows, k, n, x layout, weight layout
    [1, 300, 200, 'dense', 'dense'], [1, 70, 33, 'offset', 'transposed'], [90, 77, 1, 'dense', 'dense'],
    [90, 77, 1, 'sliced', 'transposed'], [50, 768, 97, 'dense', 'dense'], [64, 520, 13, 'offset', 'sliced'],
    [23, 600, 130, 'transposed', 'dense'], [301, 290, 37, 'sliced', 'dense'], [37, 300, 4200, 'dense', 'dense'],
    [150, 700, 300, 'dense', 'transposed'], [7, 5, 9, 'transposed', 'transposed'], [5, 0, 7, 'dense', 'dense'],
    [0, 5, 7, 'dense', 'dense'], [3, 4, 0, 'dense', 'dense'],
  ];
  cases.forEach(([rows, k, n, xLayout, wLayout], i) => {
    checkLinear(r, { rows, k, n, act: ACTS[i % ACTS.length]!, xLayout, wLayout }, [1, 2]);
  });
});

test('linear: every activation, with and without pre, on small odd shapes', { skip }, () => {
  const r = rng(22);
  const layouts: Layout[] = ['dense', 'offset', 'transposed', 'sliced'];
  for (const act of ACTS) {
    for (let t = 0; t < 2; t++) {
      const c = { rows: randInt(r, 1, 20), k: randInt(r, 1, 40), n: randInt(r, 1, 40), act,
        xLayout: layouts[randInt(r, 0, 3)]!, wLayout: layouts[randInt(r, 0, 3)]! };
      checkLinear(r, c, [2]);
    }
  }
});

interface NormCase {
  rows: number;
  n: number;
  x: Float32Array;
  res: Float32Array;
  gamma: Float32Array | null;
  beta: Float32Array | null;
  eps: number;
  offsets?: [number, number, number, number];
}

function runNorm(b: Backend, c: NormCase) {
  const [ox, or, og, ob] = c.offsets ?? [0, 0, 0, 0];
  const k = c.rows * c.n;
  const sum = b.alloc('float32', k);
  const out = b.alloc('float32', k);
  const mean = b.alloc('float32', c.rows);
  const rstd = b.alloc('float32', c.rows);
  b.addLayerNorm(place(b, c.x, [c.rows, c.n], ox), place(b, c.res, [c.rows, c.n], or),
    c.gamma && place(b, c.gamma, [c.n], og), c.beta && place(b, c.beta, [c.n], ob), c.rows, c.n, c.eps, sum, out, mean, rstd);
  return { sum: f32(sum), out: f32(out), mean: f32(mean), rstd: f32(rstd) };
}

/** The unfused native path: add, then layerNorm of the sum. */
function unfusedNorm(c: NormCase) {
  const b = native!;
  const k = c.rows * c.n;
  const sum = b.alloc('float32', k);
  b.binary('add', place(b, c.x, [c.rows, c.n]), place(b, c.res, [c.rows, c.n]), sum);
  const out = b.alloc('float32', k);
  const mean = b.alloc('float32', c.rows);
  const rstd = b.alloc('float32', c.rows);
  b.layerNorm(denseView(sum, [c.rows, c.n]), c.gamma && place(b, c.gamma, [c.n]), c.beta && place(b, c.beta, [c.n]),
    c.rows, c.n, c.eps, out, mean, rstd);
  return { sum: f32(sum), out: f32(out), mean: f32(mean), rstd: f32(rstd) };
}

function checkNorm(c: NormCase, what: string): void {
  const nat = runNorm(native!, c);
  const ref = runNorm(reference, c);
  const name = `${what} ([${c.rows}, ${c.n}], gamma ${c.gamma ? 'yes' : 'no'}, beta ${c.beta ? 'yes' : 'no'})`;
  sameBits(nat.sum, ref.sum, `${name} sum`);
  assertClose(nat.mean, ref.mean, 1e-5, 1e-6, `${name} mean`);
  assertClose(nat.rstd, ref.rstd, 1e-5, 0, `${name} rstd`);
  assertClose(nat.out, ref.out, 1e-5, 1e-5, `${name} out`);
  const unf = unfusedNorm(c);
  for (const k of ['sum', 'out', 'mean', 'rstd'] as const) sameBits(nat[k], unf[k], `${name}: fused vs add then layerNorm, ${k}`);
}

function normCase(r: () => number, rows: number, n: number, affine: [boolean, boolean], lo = -3, hi = 3): NormCase {
  return {
    rows, n, eps: [1e-5, 1e-12, 1e-6][randInt(r, 0, 2)]!,
    x: randomData(r, 'float32', rows * n, lo, hi) as Float32Array,
    res: randomData(r, 'float32', rows * n, -1, 1) as Float32Array,
    gamma: affine[0] ? randomData(r, 'float32', n, 0.5, 1.5) as Float32Array : null,
    beta: affine[1] ? randomData(r, 'float32', n) as Float32Array : null,
    offsets: [randInt(r, 0, 4), randInt(r, 0, 4), randInt(r, 0, 4), randInt(r, 0, 4)],
  };
}

test('addLayerNorm matches the reference and add then layerNorm, on odd sizes and with or without affine', { skip }, () => {
  const r = rng(11);
  const affines: [boolean, boolean][] = [[true, true], [true, false], [false, true], [false, false]];
  for (let t = 0; t < 24; t++) {
    const n = t < 2 ? t + 1 : randInt(r, 2, t % 5 === 0 ? 3000 : 130); // long rows span several sum blocks
    checkNorm(normCase(r, randInt(r, 1, 12), n, affines[t % 4]!), 'random');
  }
  // a spread far below the mean (x - mean must stay accurate), and many rows across threads
  checkNorm(normCase(r, 5, 301, [true, true], 1000, 1000.01), 'offset mean');
  checkNorm(normCase(r, 700, 96, [true, true]), 'threads');
});

test('addLayerNorm: infinities and NaN as the reference has them', { skip }, () => {
  const r = rng(12);
  const c = normCase(r, 12, 33, [true, true]);
  sprinkle(r, c.x, 0.02, [Infinity, -Infinity, Number.NaN, 3e38, -3e38]);
  // 1e20 squared overflows float lanes: those rows take the double path
  c.x.fill(1e20, 5 * 33, 5 * 33 + 7);
  checkNorm(c, 'specials');
});

test('outputs big enough for non-temporal stores match the same rows computed in small calls, bit for bit',
  { skip: skip || (portable && 'the portable kernels have no non-temporal stores') }, () => {
  // 2100 x 1999 floats is 16.8 MB, above the 16 MB from which outputs bypass the cache; rows of
  // odd length start at every alignment.
  const rows = 2100;
  const n = 1999;
  const r = rng(13);
  const b = native!;
  const x = b.fromHost(randomData(r, 'float32', rows * n) as Float32Array, 'float32');
  const res = b.fromHost(randomData(r, 'float32', rows * n) as Float32Array, 'float32');
  const gamma = denseView(b.fromHost(randomData(r, 'float32', n) as Float32Array, 'float32'), [n]);
  const beta = denseView(b.fromHost(randomData(r, 'float32', n) as Float32Array, 'float32'), [n]);
  const at = (s: Storage, r0: number, k: number): View => ({ storage: s, offset: r0 * n, shape: [k, n], strides: [n, 1] });
  // Each kernel writes its outputs for all rows once, then for blocks of 700 rows.
  const kernels: [string, (r0: number, k: number) => Float32Array[]][] = [
    ['biasActivation', (r0, k) => {
      const pre = b.alloc('float32', k * n);
      const out = b.alloc('float32', k * n);
      b.biasActivation(at(x, r0, k), beta, 'gelu_erf', k, n, pre, out);
      return [f32(pre), f32(out)];
    }],
    ['addLayerNorm', (r0, k) => {
      const sum = b.alloc('float32', k * n);
      const out = b.alloc('float32', k * n);
      b.addLayerNorm(at(x, r0, k), at(res, r0, k), gamma, beta, k, n, 1e-5, sum, out, b.alloc('float32', k), b.alloc('float32', k));
      return [f32(sum), f32(out)];
    }],
  ];
  for (const [name, run] of kernels) {
    const whole = run(0, rows);
    for (let r0 = 0; r0 < rows; r0 += 700) {
      const k = Math.min(700, rows - r0);
      run(r0, k).forEach((part, i) => sameBits(whole[i]!.subarray(r0 * n, (r0 + k) * n), part, `${name} output ${i}, rows from ${r0}`));
    }
  }
});

test('the portable path is selected when GLIMPSE_NO_AVX2=1', { skip }, () => {
  if (portable) assert.equal(loadAddon()!.hasAvx2Fma!(), false);
});

test('the native kernels take dense float32 views (linear: any x and weight) and leave other cases to the reference', { skip }, () => {
  const addon = loadAddon()!;
  const b = native!;
  const x = denseView(b.fromHost(new Float32Array(12).fill(1), 'float32'), [3, 4]);
  const transposed: View = { ...x, shape: [4, 3], strides: [1, 4] };
  const bias = denseView(b.alloc('float32', 4), [4]);
  const doubles = denseView(b.fromHost(new Float64Array(12), 'float64'), [3, 4]);
  const out = () => b.alloc('float32', 12);
  assert.equal(wrap.biasActivation(addon, x, bias, 'relu', 3, 4, out(), out()), true);
  assert.equal(wrap.biasActivation(addon, x, bias, null, 3, 4, null, out()), true);
  assert.equal(wrap.biasActivation(addon, transposed, bias, 'relu', 4, 3, null, out()), false);
  assert.equal(wrap.biasActivation(addon, x, { ...bias, strides: [2], storage: b.alloc('float32', 8) }, 'relu', 3, 4, null, out()), false);
  assert.equal(wrap.biasActivation(addon, doubles, bias, 'relu', 3, 4, null, b.alloc('float64', 12)), false);
  assert.equal(wrap.biasActivation(addon, x, bias, 'relu', 2, 4, null, out()), false); // 8 != 12 elements
  const stats = () => [b.alloc('float32', 3), b.alloc('float32', 3)] as const;
  assert.equal(wrap.addLayerNorm(addon, x, x, bias, bias, 3, 4, 1e-5, out(), out(), ...stats()), true);
  assert.equal(wrap.addLayerNorm(addon, x, transposed, null, null, 3, 4, 1e-5, out(), out(), ...stats()), false);
  assert.equal(wrap.addLayerNorm(addon, doubles, doubles, null, null, 3, 4, 1e-5, b.alloc('float64', 12), b.alloc('float64', 12),
    b.alloc('float64', 3), b.alloc('float64', 3)), false);
  const empty = denseView(b.alloc('float32', 0), [3, 0]);
  assert.equal(wrap.addLayerNorm(addon, empty, empty, null, null, 3, 0, 1e-5, b.alloc('float32', 0), b.alloc('float32', 0),
    ...stats()), false);
  // linear: x [3, 4] (or its transpose, read in place) times a weight [2, 4]
  const w = denseView(b.fromHost(new Float32Array([1, 2, 3, 4, -1, -2, -3, -4]), 'float32'), [2, 4]);
  const b2 = denseView(b.fromHost(new Float32Array([0.5, 0.5]), 'float32'), [2]);
  const out6 = () => b.alloc('float32', 6);
  assert.equal(wrap.linear(addon, x, w, b2, 'relu', out6(), out6()), true);
  assert.equal(wrap.linear(addon, { ...transposed, shape: [3, 4], strides: [1, 3] }, w, b2, null, null, out6()), true);
  assert.equal(wrap.linear(addon, x, w, { ...b2, shape: [2], strides: [2], storage: b.alloc('float32', 4) }, null, null, out6()),
    false);
  assert.equal(wrap.linear(addon, doubles, w, b2, null, null, b.alloc('float64', 6)), false);
  // and falls back to matmul then biasActivation, which give the reference's results
  const y6 = b.alloc('float32', 6);
  b.linear(x, w, { ...b2, shape: [2], strides: [0] }, 'relu', null, y6);
  assert.deepEqual([...f32(y6)], [10.5, 0, 10.5, 0, 10.5, 0]);
  const d6 = b.alloc('float64', 6);
  b.linear(doubles, { ...w, storage: b.fromHost(new Float64Array([1, 2, 3, 4, -1, -2, -3, -4]), 'float64') },
    { ...b2, storage: b.fromHost(new Float64Array([0.5, -0.5]), 'float64') }, null, null, d6);
  assert.deepEqual([...(storageData(d6) as Float64Array)], [0.5, -0.5, 0.5, -0.5, 0.5, -0.5]);
  // The fallback gives the reference's results.
  const y = b.alloc('float64', 12);
  b.biasActivation(doubles, denseView(b.fromHost(new Float64Array([1, 2, 3, 4]), 'float64'), [4]), 'relu', 3, 4, null, y);
  assert.deepEqual([...(storageData(y) as Float64Array)], [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
});

test('the kernels reject typed arrays of the wrong kind, views outside their arrays and overlapping outputs', { skip }, () => {
  const addon = loadAddon()!;
  const f = (k: number) => new Float32Array(k);
  // biasActivation(x, xOff, bias, biasOff, act, rows, n, pre, out)
  assert.throws(() => addon.biasActivation!(f(10), 1, f(5), 0, 1, 2, 5, null, f(10)), /x: 10 elements at offset 1/);
  assert.throws(() => addon.biasActivation!(f(10), 0, f(5), 1, 1, 2, 5, null, f(10)), /bias: 5 elements at offset 1/);
  assert.throws(() => addon.biasActivation!(f(10), 0, f(5), 0, 1, 2, 5, f(9), f(10)), /pre/);
  assert.throws(() => addon.biasActivation!(f(10), 0, f(5), 0, 1, 2, 5, null, f(9)), /out/);
  assert.throws(() => addon.biasActivation!(f(10), 0, f(5), 0, 8, 2, 5, null, f(10)), /unknown activation/);
  assert.throws(() => addon.biasActivation!(f(10), 0, f(5), 0, -2, 2, 5, null, f(10)), /unknown activation/);
  assert.throws(() => addon.biasActivation!(new Int32Array(10), 0, f(5), 0, 1, 2, 5, null, f(10)), /Float32Array/);
  assert.throws(() => addon.biasActivation!(f(10), 0, f(5), 0, 1, -2, 5, null, f(10)), /non-negative/);
  assert.throws(() => addon.biasActivation!([1, 2], 0, f(1), 0, 1, 1, 2, null, f(2)), /typed array/);
  // overlaps: out shifted against x, pre on out, out on bias
  const buf = f(16);
  assert.throws(() => addon.biasActivation!(buf, 0, f(5), 0, 1, 2, 5, null, buf.subarray(1, 11)), /out and x must not overlap/);
  const o = f(10);
  assert.throws(() => addon.biasActivation!(f(10), 0, f(5), 0, 1, 2, 5, o, o), /pre and out/);
  assert.throws(() => addon.biasActivation!(f(10), 0, buf, 0, 1, 2, 5, null, buf.subarray(0, 10)), /bias/);
  addon.biasActivation!(f(0), 0, f(0), 0, 1, 3, 0, null, f(0)); // empty: nothing to do
  // linear(x, xOff, xStrides, w, wOff, wStrides, bias, biasOff, act, rows, n, k, pre, out) for [2, 5] x [3, 5]^T
  const lin = (x: Float32Array | Int32Array, xOff: number, xStr: number[], w: Float32Array, wStr: number[], bias: Float32Array,
    act: number, k: number, pre: Float32Array | null, out: Float32Array) =>
    addon.linear!(x, xOff, xStr, w, 0, wStr, bias, 0, act, 2, 3, k, pre, out);
  assert.doesNotThrow(() => lin(f(10), 0, [5, 1], f(15), [5, 1], f(3), 1, 5, f(6), f(6)));
  assert.throws(() => lin(f(10), 1, [5, 1], f(15), [5, 1], f(3), 1, 5, null, f(6)), /x: the view \(offset 1\) reaches outside/);
  assert.throws(() => lin(f(10), 0, [1, 3], f(15), [5, 1], f(3), 1, 5, null, f(6)), /x: the view/);
  assert.throws(() => lin(f(10), 0, [5, 1], f(14), [5, 1], f(3), 1, 5, null, f(6)), /weight: the view/);
  assert.throws(() => lin(f(10), 0, [5, 1], f(15), [2 ** 60, 1], f(3), 1, 5, null, f(6)), /weight: the view/);
  assert.throws(() => lin(f(10), 0, [5, -1], f(15), [5, 1], f(3), 1, 5, null, f(6)), /x: strides must be non-negative/);
  assert.throws(() => lin(f(10), 0, [5], f(15), [5, 1], f(3), 1, 5, null, f(6)), /x: expected 2 strides/);
  assert.throws(() => lin(new Int32Array(10), 0, [5, 1], f(15), [5, 1], f(3), 1, 5, null, f(6)), /x must be a Float32Array/);
  assert.throws(() => lin(f(10), 0, [5, 1], f(15), [5, 1], f(2), 1, 5, null, f(6)), /bias: 3 elements/);
  assert.throws(() => lin(f(10), 0, [5, 1], f(15), [5, 1], f(3), 8, 5, null, f(6)), /unknown activation/);
  assert.throws(() => lin(f(10), 0, [5, 1], f(15), [5, 1], f(3), 1, -1, null, f(6)), /non-negative/);
  assert.throws(() => lin(f(10), 0, [5, 1], f(15), [5, 1], f(3), 1, 5, f(5), f(6)), /pre: 6 elements/);
  assert.throws(() => lin(f(10), 0, [5, 1], f(15), [5, 1], f(3), 1, 5, null, f(5)), /out: 6 elements/);
  const big = f(40);
  assert.throws(() => lin(big, 0, [5, 1], f(15), [5, 1], f(3), 1, 5, big.subarray(9, 15), f(6)), /pre and x must not overlap/);
  assert.throws(() => lin(f(10), 0, [5, 1], big, [5, 1], f(3), 1, 5, null, big.subarray(14, 20)), /out and weight must not overlap/);
  assert.throws(() => lin(f(10), 0, [5, 1], f(15), [5, 1], big, 1, 5, null, big.subarray(2, 8)), /out and bias must not overlap/);
  const o6 = f(6);
  assert.throws(() => lin(f(10), 0, [5, 1], f(15), [5, 1], f(3), 1, 5, o6, o6), /pre and out must not overlap/);
  assert.doesNotThrow(() => lin(f(10), 0, [5, 1], big, [5, 1], f(3), 1, 5, null, big.subarray(15, 21))); // just past the weight
  addon.linear!(f(0), 0, [5, 1], f(15), 0, [5, 1], f(3), 0, 1, 0, 3, 5, null, f(0)); // no rows: nothing to do
  // addLayerNorm(x, xOff, res, resOff, gamma, gOff, beta, bOff, rows, n, eps, sum, out, mean, rstd)
  assert.throws(() => addon.addLayerNorm!(f(10), 0, f(10), 1, null, 0, null, 0, 2, 5, 1e-5, f(10), f(10), f(2), f(2)), /residual/);
  assert.throws(() => addon.addLayerNorm!(f(10), 0, f(10), 0, f(4), 0, null, 0, 2, 5, 1e-5, f(10), f(10), f(2), f(2)), /gamma/);
  assert.throws(() => addon.addLayerNorm!(f(10), 0, f(10), 0, null, 0, f(5), 1, 2, 5, 1e-5, f(10), f(10), f(2), f(2)), /beta/);
  assert.throws(() => addon.addLayerNorm!(f(10), 0, f(10), 0, null, 0, null, 0, 2, 5, 1e-5, f(10), f(10), f(1), f(2)), /mean/);
  assert.throws(() => addon.addLayerNorm!(f(0), 0, f(0), 0, null, 0, null, 0, 2, 0, 1e-5, f(0), f(0), f(2), f(2)), /0 elements/);
  const x = f(10);
  assert.throws(() => addon.addLayerNorm!(x, 0, f(10), 0, null, 0, null, 0, 2, 5, 1e-5, x, f(10), f(2), f(2)), /overlap/);
  const s = f(10);
  assert.throws(() => addon.addLayerNorm!(f(10), 0, f(10), 0, null, 0, null, 0, 2, 5, 1e-5, s, s, f(2), f(2)), /overlap/);
});

if (!portable) {
  test('the portable kernels (child process with GLIMPSE_NO_AVX2=1)', { skip }, () => {
    rerunTestFile(import.meta.url, { GLIMPSE_NO_AVX2: '1' });
  });
}
