// Native reductions and normalisations (native/reduce.cc) against the reference backend: reduce,
// softmax and log-softmax, their gradient, layer norm and its gradient, over odd sizes, long rows
// (the parallel split of one row), column reductions, special values and misuse. The whole file
// runs a second time in a child process with GLIMPSE_NO_AVX2=1 to cover the portable kernels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ReduceOp, Storage, View } from '../../src/tensor/backend.js';
import { ReferenceBackend } from '../../src/tensor/backends/reference.js';
import { createNativeBackend } from '../../src/tensor/backends/native.js';
import { loadAddon } from '../../src/tensor/backends/native/addon.js';
import * as wrap from '../../src/tensor/backends/native/reduce.js';
import type { Layout } from '../helpers.js';
import { assertClose, denseView, randInt, randomData, randomView, rng, storageData, rerunTestFile } from '../helpers.js';

const native = createNativeBackend();
const reference = new ReferenceBackend();
const skip = native ? false : 'the native addon is not built';
const portable = process.env.GLIMPSE_NO_AVX2 === '1';
const both = () => [native!, reference];

/** The same host data as a dense view on each backend. */
function place(data: Float32Array, shape: number[], offset = 0): View[] {
  const padded = new Float32Array(data.length + offset);
  padded.set(data, offset);
  return both().map((b) => denseView(b.fromHost(padded, 'float32'), shape, offset));
}

function f32(s: Storage): Float32Array {
  return storageData(s) as Float32Array;
}

/** Random floats where a fraction `p` of entries is replaced by picks from `specials`. */
function sprinkle(r: () => number, data: Float32Array, p: number, specials: number[]): Float32Array {
  for (let i = 0; i < data.length; i++) if (r() < p) data[i] = specials[randInt(r, 0, specials.length - 1)]!;
  return data;
}

function sumAbs(data: Float32Array): number {
  let s = 0;
  for (const v of data) s += Math.abs(v);
  return s;
}

const OPS: ReduceOp[] = ['sum', 'max', 'min', 'argmax', 'argmin'];

function checkReduce(op: ReduceOp, xs: View[], outer: number, n: number, inner: number, what: string, sumTol = 1e-6): void {
  const dtype = op === 'argmax' || op === 'argmin' ? 'int32' : 'float32';
  const outs = both().map((b) => b.alloc(dtype, outer * inner));
  native!.reduce(op, xs[0]!, outer, n, inner, outs[0]!);
  reference.reduce(op, xs[1]!, outer, n, inner, outs[1]!);
  const a = storageData(outs[0]!) as Float32Array | Int32Array;
  const e = storageData(outs[1]!) as Float32Array | Int32Array;
  // Extrema and their indices are exact; sums (accumulated in double) are held to sumTol relative
  // and sumTol of the sum of |x| per output.
  if (op !== 'sum') return assert.deepEqual(Array.from(a), Array.from(e), `${op} ${what}`);
  const src = storageData(xs[1]!.storage) as Float32Array;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let mag = 0;
      for (let j = 0; j < n; j++) mag += Math.abs(src[xs[1]!.offset + (o * n + j) * inner + i]!);
      assertClose([a[o * inner + i]!], [e[o * inner + i]!], sumTol, sumTol * mag + 1e-30, `sum ${what} [${o}, ${i}]`);
    }
  }
}

test('the portable path is selected when GLIMPSE_NO_AVX2=1', { skip }, () => {
  if (portable) assert.equal(loadAddon()!.hasAvx2Fma!(), false);
});

test('reduce matches the reference on random [outer, n, inner] shapes', { skip }, () => {
  const r = rng(11);
  for (let t = 0; t < 60; t++) {
    const outer = r() < 0.4 ? 1 : randInt(r, 1, 5);
    const inner = r() < 0.5 ? 1 : [randInt(r, 2, 40), 8, 513, 600][randInt(r, 0, 3)]!;
    const n = [1, 2, 7, 8, 9, 15, 16, 17, 33, 100, 1023, 1025, randInt(r, 1, 5000)][randInt(r, 0, 12)]!;
    // Small integers make ties common, so "first extremum" is tested, not just luck.
    const ties = r() < 0.3;
    const data = randomData(r, 'float32', outer * n * inner) as Float32Array;
    if (ties) for (let i = 0; i < data.length; i++) data[i] = Math.floor(data[i]! * 2);
    const xs = place(data, [outer, n, inner], r() < 0.5 ? 0 : 3);
    for (const op of OPS) checkReduce(op, xs, outer, n, inner, `[${outer}, ${n}, ${inner}] ties=${ties}`);
  }
});

test('reduce of a long axis split into parallel parts keeps float64 accuracy and the first extremum', { skip }, () => {
  const r = rng(12);
  // One row of 1M positive values (no cancellation, so the relative error is meaningful).
  const n = 1_000_003;
  const row = randomData(r, 'float32', n, 0.5, 1.5) as Float32Array;
  checkReduce('sum', place(row, [1, n, 1]), 1, n, 1, 'long row', 1e-7);
  // The extremum repeated in several parts: the first must win.
  row[100_000] = 7;
  row[600_000] = 7;
  row[900_000] = -3;
  row[999_999] = -3;
  for (const op of OPS) checkReduce(op, place(row, [1, n, 1]), 1, n, 1, 'long row with ties', 1e-7);
  // Columns: few outputs, so the axis is cut into parts too.
  const cols = randomData(r, 'float32', 4000 * 70, 0, 3) as Float32Array;
  for (let i = 0; i < cols.length; i++) cols[i] = Math.floor(cols[i]!);
  for (const op of OPS) checkReduce(op, place(cols, [1, 4000, 70]), 1, 4000, 70, 'tall columns', 1e-7);
  const wide = randomData(r, 'float32', 2 * 300 * 700) as Float32Array;
  for (const op of OPS) checkReduce(op, place(wide, [2, 300, 700]), 2, 300, 700, 'wide columns');
  // Rows too wide for the accumulators to sit in L1 are taken four at a time.
  const wider = randomData(r, 'float32', 2 * 13 * 4100) as Float32Array;
  for (let i = 0; i < wider.length; i += 7) wider[i] = Math.round(wider[i]!);
  for (const op of OPS) checkReduce(op, place(wider, [2, 13, 4100]), 2, 13, 4100, 'very wide columns');
});

test('reduce sums in double: exact where float64 is, despite cancellation', { skip }, () => {
  // Ones with +-2^24 far apart: a float accumulator holding 2^24 drops the ones added to it.
  for (const [outer, n, inner] of [[3, 1000, 1], [1, 100_000, 1], [2, 500, 9]] as const) {
    const data = new Float32Array(outer * n * inner).fill(1);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        data[(o * n + o) * inner + i] = 2 ** 24;
        data[(o * n + n - 1 - o) * inner + i] = -(2 ** 24);
      }
    }
    const xs = place(data, [outer, n, inner]);
    const outs = both().map((b) => b.alloc('float32', outer * inner));
    native!.reduce('sum', xs[0]!, outer, n, inner, outs[0]!);
    reference.reduce('sum', xs[1]!, outer, n, inner, outs[1]!);
    assert.deepEqual(f32(outs[0]!), f32(outs[1]!), `[${outer}, ${n}, ${inner}]`);
    assert.equal(f32(outs[0]!)[0], n - 2);
  }
});

test('reduce propagates NaN and handles infinities as the reference does', { skip }, () => {
  const r = rng(13);
  const specials = [NaN, Infinity, -Infinity];
  for (let t = 0; t < 30; t++) {
    const outer = randInt(r, 1, 4);
    const inner = r() < 0.5 ? 1 : randInt(r, 2, 20);
    const n = randInt(r, 1, t < 25 ? 300 : 70_000);
    const data = sprinkle(r, randomData(r, 'float32', outer * n * inner) as Float32Array, [0.01, 0.2, 0.001][t % 3]!, specials);
    const xs = place(data, [outer, n, inner]);
    for (const op of OPS) checkReduce(op, xs, outer, n, inner, `special [${outer}, ${n}, ${inner}]`);
  }
  // A NaN ahead of, and after, the largest finite value; only NaN; and all -inf.
  for (const row of [[1, NaN, 5, NaN, 2], [3, 9, 1, 0, NaN], [NaN, NaN], [-Infinity, -Infinity, -Infinity]]) {
    const padded = [...row, ...Array<number>(20).fill(0)]; // long enough for the vector path
    const xs = place(Float32Array.from(padded), [1, padded.length, 1]);
    for (const op of OPS) checkReduce(op, xs, 1, padded.length, 1, `row ${row}`);
  }
});

test('reduce falls back to the reference for strided input and an empty axis', { skip }, () => {
  const r = rng(14);
  for (const layout of ['transposed', 'sliced', 'broadcast'] as Layout[]) {
    const xs = randomView(r, both(), 'float32', [5, 1, 9], layout);
    for (const op of OPS) checkReduce(op, xs, 5, 1, 9, layout);
  }
  const empty = place(new Float32Array(0), [3, 0, 2]);
  checkReduce('sum', empty, 3, 0, 2, 'empty');
  assert.throws(() => native!.reduce('max', empty[0]!, 3, 0, 2, native!.alloc('float32', 6)), /empty/);
});

function checkSoftmax(data: Float32Array, rows: number, n: number, log: boolean, what: string, offset = 0): void {
  const xs = place(data, [rows, n], offset);
  const outs = both().map((b) => b.alloc('float32', rows * n));
  native!.softmax(xs[0]!, rows, n, log, outs[0]!);
  reference.softmax(xs[1]!, rows, n, log, outs[1]!);
  assertClose(f32(outs[0]!), f32(outs[1]!), 1e-5, log ? 2e-6 : 1e-9, `${log ? 'log-' : ''}softmax ${what}`);
  // Backward, from the reference's forward output and a random gradient.
  const g = randomData(rng(rows * 7 + n), 'float32', rows * n) as Float32Array;
  const y = f32(outs[1]!);
  const ys = place(y, [rows, n]);
  const gs = place(g, [rows, n], 1);
  const grads = both().map((b) => b.alloc('float32', rows * n));
  native!.softmaxGrad(ys[0]!, gs[0]!, rows, n, log, grads[0]!);
  reference.softmaxGrad(ys[1]!, gs[1]!, rows, n, log, grads[1]!);
  // The gradient cancels (sum over the row of g * y is subtracted): tolerance scaled by |g|.
  let gmax = 0;
  for (const v of g) gmax = Math.max(gmax, Math.abs(v));
  assertClose(f32(grads[0]!), f32(grads[1]!), 1e-5, 2e-6 * gmax * (log ? Math.sqrt(n) : 1), `${log ? 'log-' : ''}softmaxGrad ${what}`);
}

test('softmax, log-softmax and their gradient match the reference on random shapes', { skip }, () => {
  const r = rng(21);
  const shapes: [number, number][] = [[1, 1], [3, 7], [2, 8], [5, 9], [800, 13], [64, 1000], [600, 50], [2, 3072], [3, 4999]];
  for (let t = 0; t < 12; t++) shapes.push([randInt(r, 1, 6), randInt(r, 1, 3000)]);
  for (const [rows, n] of shapes) {
    const scale = [1, 10, 60][randInt(r, 0, 2)]!;
    const data = randomData(r, 'float32', rows * n, -scale, scale) as Float32Array;
    for (const log of [false, true]) checkSoftmax(data, rows, n, log, `[${rows}, ${n}] scale ${scale}`, randInt(r, 0, 2));
  }
});

test('softmax is stable for large logits and matches the reference on -inf, inf and NaN', { skip }, () => {
  const r = rng(22);
  const n = 37;
  const rows: number[][] = [
    Array.from({ length: n }, (_, j) => 1e4 + j), // would overflow exp without the max shift
    Array.from({ length: n }, (_, j) => -1e4 - j),
    Array.from({ length: n }, (_, j) => (j % 3 === 0 ? -Infinity : j)), // masked entries
    Array<number>(n).fill(-Infinity), // a fully masked row: NaN, as in PyTorch
    Array.from({ length: n }, (_, j) => (j === 5 ? Infinity : j)),
    Array.from({ length: n }, (_, j) => (j === 30 ? NaN : j)),
    Array.from({ length: n }, (_, j) => (j === 0 ? 0 : -Infinity)), // one live entry
  ];
  const data = Float32Array.from(rows.flat());
  for (const log of [false, true]) checkSoftmax(data, rows.length, n, log, 'special rows');
  // Special values at random positions in longer rows.
  const big = sprinkle(r, randomData(r, 'float32', 6 * 301, -5, 5) as Float32Array, 0.3, [-Infinity]);
  big.fill(-Infinity, 301, 602);
  for (const log of [false, true]) checkSoftmax(big, 6, 301, log, 'masked rows');
});

test('softmax keeps the exponentials that leave the normal range, down to the subnormals', { skip }, () => {
  // x - max from 0 down to -110 in each row: e^(x - max) passes below 1e-38 at -87.3 and underflows
  // to 0 near -104, and every stretch of 8 lanes is checked around those points.
  const n = 45;
  // Multiples of 1/8, so that x - max is exact in float as in the reference's float64.
  const data = Float32Array.from({ length: 3 * n }, (_, i) => -(i % n) * 2.5 + 40 * Math.floor(i / n) + 0.125 * (i % 7));
  const xs = place(data, [3, n]);
  const outs = both().map((b) => b.alloc('float32', 3 * n));
  both().forEach((b, k) => b.softmax(xs[k]!, 3, n, false, outs[k]!));
  assertClose(f32(outs[0]!), f32(outs[1]!), 1e-6, 2 * 1.401298464324817e-45, 'softmax into the subnormals');
});

function checkLayerNorm(rows: number, n: number, affine: 'both' | 'gamma' | 'beta' | 'none', r: () => number,
  what: string, center = 0, spread = 2): void {
  const data = randomData(r, 'float32', rows * n, center - spread, center + spread) as Float32Array;
  const eps = [1e-5, 1e-6, 1e-12][randInt(r, 0, 2)]!;
  const xs = place(data, [rows, n], randInt(r, 0, 2));
  const gammas = affine === 'both' || affine === 'gamma' ? place(randomData(r, 'float32', n, 0.5, 1.5) as Float32Array, [n], 1) : null;
  const betas = affine === 'both' || affine === 'beta' ? place(randomData(r, 'float32', n) as Float32Array, [n], 2) : null;
  const outs = both().map((b) => [b.alloc('float32', rows * n), b.alloc('float32', rows), b.alloc('float32', rows)] as const);
  both().forEach((b, k) => b.layerNorm(xs[k]!, gammas?.[k] ?? null, betas?.[k] ?? null, rows, n, eps, ...outs[k]!));
  const label = `layerNorm [${rows}, ${n}] ${affine} ${what}`;
  assertClose(f32(outs[0]![1]), f32(outs[1]![1]), 1e-7, 1e-7 * spread, `${label} mean`);
  assertClose(f32(outs[0]![2]), f32(outs[1]![2]), 1e-6, 0, `${label} rstd`);
  assertClose(f32(outs[0]![0]), f32(outs[1]![0]), 1e-5, 2e-6, `${label} out`);

  // Backward from the reference's mean and rstd.
  const g = randomData(r, 'float32', rows * n) as Float32Array;
  const gs = place(g, [rows, n], 3);
  const means = place(f32(outs[1]![1]), [rows]);
  const rstds = place(f32(outs[1]![2]), [rows], 1);
  const want = r() < 0.7 ? 'both' : ['dgamma', 'dbeta', 'none'][randInt(r, 0, 2)]!;
  const grads = both().map((b) => ({
    dx: b.alloc('float32', rows * n),
    dg: want === 'both' || want === 'dgamma' ? b.alloc('float32', n) : null,
    db: want === 'both' || want === 'dbeta' ? b.alloc('float32', n) : null,
  }));
  both().forEach((b, k) => b.layerNormGrad(xs[k]!, gs[k]!, gammas?.[k] ?? null, means[k]!, rstds[k]!, rows, n,
    grads[k]!.dx, grads[k]!.dg, grads[k]!.db));
  const rstdMax = Math.max(...f32(outs[1]![2]));
  assertClose(f32(grads[0]!.dx), f32(grads[1]!.dx), 1e-5, 2e-6 * rstdMax, `${label} dx`);
  // Parameter gradients sum over rows: tolerance relative to the sum of the terms' magnitudes.
  if (grads[0]!.dg) assertClose(f32(grads[0]!.dg), f32(grads[1]!.dg!), 1e-5, 1e-6 * sumAbs(g) / n, `${label} dgamma`);
  if (grads[0]!.db) assertClose(f32(grads[0]!.db), f32(grads[1]!.db!), 1e-5, 1e-6 * sumAbs(g) / n, `${label} dbeta`);
}

test('layer norm and its gradient match the reference on random shapes', { skip }, () => {
  const r = rng(31);
  const shapes: [number, number][] = [[1, 1], [1, 2], [3, 7], [4, 8], [5, 9], [200, 33], [40, 768], [7, 3072], [2, 4999]];
  for (let t = 0; t < 10; t++) shapes.push([randInt(r, 1, 8), randInt(r, 2, 2500)]);
  const affines = ['both', 'gamma', 'beta', 'none'] as const;
  shapes.forEach(([rows, n], i) => checkLayerNorm(rows, n, affines[i % 4]!, r, ''));
  // Rows whose spread is far below their mean: neither the variance nor x - mean may cancel.
  checkLayerNorm(6, 500, 'both', r, 'offset rows', 300, 0.5);
  checkLayerNorm(4, 3000, 'none', r, 'narrow rows', 1000, 1e-3);
  checkLayerNorm(1, 1_000_003, 'gamma', r, 'one long row', -1000, 0.25);
  // Constant rows: variance 0, so rstd = 1/sqrt(eps).
  checkLayerNorm(3, 40, 'both', r, 'constant rows', 1.5, 0);
});

test('layer norm of rows holding inf, NaN or values whose squares overflow float matches the reference', { skip }, () => {
  const n = 21;
  const rows = [[Infinity], [-Infinity], [NaN], [Infinity, -Infinity], [3e38, 3e38], [-2e20, 1e20]].map((specials) => {
    const row = Array.from({ length: n }, (_, j) => Math.sin(j));
    specials.forEach((v, k) => (row[5 + 7 * k] = v));
    return row;
  });
  const xs = place(Float32Array.from(rows.flat()), [rows.length, n]);
  const outs = both().map((b) => [b.alloc('float32', rows.length * n), b.alloc('float32', rows.length), b.alloc('float32', rows.length)] as const);
  both().forEach((b, k) => b.layerNorm(xs[k]!, null, null, rows.length, n, 1e-5, ...outs[k]!));
  ['out', 'mean', 'rstd'].forEach((what, t) => assertClose(f32(outs[0]![t]!), f32(outs[1]![t]!), 1e-6, 1e-6, `special rows ${what}`));
});

test('the gradients of rows whose sums overflow float match the reference', { skip }, () => {
  const n = 19;
  const rows = 3;
  const y = Float32Array.from({ length: rows * n }, (_, i) => 0.5 + 0.01 * (i % n));
  const g = Float32Array.from({ length: rows * n }, (_, i) => (i % 5 === 0 ? 3e38 : -1));
  const gs = place(g, [rows, n]);
  for (const log of [false, true]) {
    const ys = place(log ? y.map((v) => -v) : y, [rows, n]);
    const outs = both().map((b) => b.alloc('float32', rows * n));
    both().forEach((b, k) => b.softmaxGrad(ys[k]!, gs[k]!, rows, n, log, outs[k]!));
    assertClose(f32(outs[0]!), f32(outs[1]!), 1e-6, 0, `${log ? 'log-' : ''}softmaxGrad`);
  }
  const xs = place(Float32Array.from({ length: rows * n }, (_, i) => Math.cos(i)), [rows, n]);
  const stats = [place(new Float32Array(rows).fill(0.1), [rows]), place(new Float32Array(rows).fill(1.5), [rows])];
  const grads = both().map((b) => [b.alloc('float32', rows * n), b.alloc('float32', n), b.alloc('float32', n)] as const);
  both().forEach((b, k) => b.layerNormGrad(xs[k]!, gs[k]!, null, stats[0]![k]!, stats[1]![k]!, rows, n, ...grads[k]!));
  ['dx', 'dgamma', 'dbeta'].forEach((what, t) => assertClose(f32(grads[0]![t]!), f32(grads[1]![t]!), 1e-6, 0, what));
});

test('layer norm gradients sum over many rows accurately and reproducibly', { skip }, () => {
  const r = rng(32);
  checkLayerNorm(3000, 24, 'both', r, 'many rows');
  const rows = 700;
  const n = 45;
  const xs = place(randomData(r, 'float32', rows * n) as Float32Array, [rows, n]);
  const gs = place(randomData(r, 'float32', rows * n) as Float32Array, [rows, n]);
  const ms = place(randomData(r, 'float32', rows) as Float32Array, [rows]);
  const rs = place(randomData(r, 'float32', rows, 0.5, 2) as Float32Array, [rows]);
  const b = native!;
  const run = () => {
    const dg = b.alloc('float32', n);
    const db = b.alloc('float32', n);
    b.layerNormGrad(xs[0]!, gs[0]!, null, ms[0]!, rs[0]!, rows, n, b.alloc('float32', rows * n), dg, db);
    return [...f32(dg), ...f32(db)];
  };
  assert.deepEqual(run(), run());
  // Overwritten, not accumulated: a second call into the same storage gives the same values.
  const dg = b.fromHost(new Float32Array(n).fill(123), 'float32');
  b.layerNormGrad(xs[0]!, gs[0]!, null, ms[0]!, rs[0]!, rows, n, b.alloc('float32', rows * n), dg, null);
  assert.deepEqual([...f32(dg)], run().slice(0, n));
});

test('outputs big enough for non-temporal stores match the same rows computed in small calls, bit for bit',
  { skip: skip || (portable && 'the portable kernels have no non-temporal stores') }, () => {
  // 2200 x 1999 floats is 17.6 MB, above the 16 MB from which outputs bypass the cache; rows of
  // odd length start at every alignment.
  const rows = 2200;
  const n = 1999;
  const r = rng(41);
  const b = native!;
  const x = b.fromHost(randomData(r, 'float32', rows * n) as Float32Array, 'float32');
  const g = b.fromHost(randomData(r, 'float32', rows * n) as Float32Array, 'float32');
  const gamma = denseView(b.fromHost(randomData(r, 'float32', n) as Float32Array, 'float32'), [n]);
  const beta = denseView(b.fromHost(randomData(r, 'float32', n) as Float32Array, 'float32'), [n]);
  const at = (s: Storage, r0: number, k: number) => ({ storage: s, offset: r0 * n, shape: [k, n], strides: [n, 1] });
  const stats = (k: number) => [b.alloc('float32', k), b.alloc('float32', k)] as const;
  // Each kernel writes the whole output once, then blocks of 300 rows into a small output.
  const kernels: [string, (xs: View, k: number, out: Storage) => void][] = [
    ['softmax', (xs, k, out) => b.softmax(xs, k, n, false, out)],
    ['log-softmax', (xs, k, out) => b.softmax(xs, k, n, true, out)],
    ['softmaxGrad', (xs, k, out) => b.softmaxGrad(xs, at(g, xs.offset / n, k), k, n, false, out)],
    ['layerNorm', (xs, k, out) => b.layerNorm(xs, gamma, beta, k, n, 1e-5, out, ...stats(k))],
    ['layerNormGrad', (xs, k, out) => {
      const [mean, rstd] = stats(k);
      b.layerNorm(xs, null, null, k, n, 1e-5, b.alloc('float32', k * n), mean, rstd);
      b.layerNormGrad(xs, at(g, xs.offset / n, k), gamma, denseView(mean, [k]), denseView(rstd, [k]), k, n, out, null, null);
    }],
  ];
  for (const [name, run] of kernels) {
    const whole = b.alloc('float32', rows * n);
    run(at(x, 0, rows), rows, whole);
    for (let r0 = 0; r0 < rows; r0 += 300) {
      const k = Math.min(300, rows - r0);
      const part = b.alloc('float32', k * n);
      run(at(x, r0, k), k, part);
      const w = f32(whole).subarray(r0 * n, (r0 + k) * n);
      const p = f32(part);
      for (let i = 0; i < p.length; i++) {
        if (!Object.is(w[i], p[i])) assert.fail(`${name}: row ${r0 + Math.floor(i / n)} element ${i % n}: ${w[i]} vs ${p[i]}`);
      }
    }
  }
});

test('the native kernels take dense float32 views and leave other cases to the reference', { skip }, () => {
  const addon = loadAddon()!;
  const b = native!;
  const x = denseView(b.fromHost(new Float32Array(12).fill(1), 'float32'), [3, 4]);
  const transposed: View = { ...x, shape: [4, 3], strides: [1, 4] };
  const doubles = denseView(b.fromHost(new Float64Array(12), 'float64'), [3, 4]);
  const out = () => b.alloc('float32', 12);
  assert.equal(wrap.reduce(addon, 'sum', x, 3, 4, 1, b.alloc('float32', 3)), true);
  assert.equal(wrap.reduce(addon, 'argmax', x, 1, 3, 4, b.alloc('int32', 4)), true);
  assert.equal(wrap.reduce(addon, 'argmax', x, 1, 3, 4, b.alloc('float32', 4)), false);
  assert.equal(wrap.reduce(addon, 'sum', transposed, 4, 3, 1, b.alloc('float32', 4)), false);
  assert.equal(wrap.reduce(addon, 'sum', x, 2, 4, 1, b.alloc('float32', 2)), false); // 8 != 12 elements
  assert.equal(wrap.softmax(addon, x, 3, 4, false, out()), true);
  assert.equal(wrap.softmax(addon, doubles, 3, 4, false, b.alloc('float64', 12)), false);
  assert.equal(wrap.softmaxGrad(addon, x, x, 3, 4, true, out()), true);
  assert.equal(wrap.softmaxGrad(addon, x, transposed, 3, 4, true, out()), false);
  const stats = () => [b.alloc('float32', 3), b.alloc('float32', 3)] as const;
  const gamma = denseView(b.fromHost(new Float32Array(4), 'float32'), [4]);
  assert.equal(wrap.layerNorm(addon, x, gamma, null, 3, 4, 1e-5, out(), ...stats()), true);
  assert.equal(wrap.layerNorm(addon, x, { ...gamma, strides: [2], storage: b.alloc('float32', 8) }, null, 3, 4, 1e-5,
    out(), ...stats()), false);
  const m = denseView(b.alloc('float32', 3), [3]);
  assert.equal(wrap.layerNormGrad(addon, x, x, null, m, m, 3, 4, out(), null, b.alloc('float32', 4)), true);
  assert.equal(wrap.layerNormGrad(addon, x, x, null, m, m, 3, 4, out(), null, b.alloc('float64', 4)), false);
});

test('the kernels reject typed arrays of the wrong kind, views outside their arrays and short outputs', { skip }, () => {
  const addon = loadAddon()!;
  const f = (k: number) => new Float32Array(k);
  // reduce(op, x, offset, outer, n, inner, out)
  assert.throws(() => addon.reduce!(0, f(12), 0, 2, 3, 2, f(3)), /out: 4 elements/);
  assert.throws(() => addon.reduce!(0, f(12), 1, 2, 3, 2, f(4)), /x: 12 elements at offset 1/);
  assert.throws(() => addon.reduce!(3, f(12), 0, 2, 3, 2, f(4)), /Int32Array/);
  assert.throws(() => addon.reduce!(0, new Int32Array(12), 0, 2, 3, 2, f(4)), /Float32Array/);
  assert.throws(() => addon.reduce!(9, f(12), 0, 2, 3, 2, f(4)), /unknown reduce op/);
  assert.throws(() => addon.reduce!(0, f(12), 0, -2, 3, 2, f(4)), /non-negative/);
  assert.throws(() => addon.reduce!(0, f(12), 0, 2 ** 40, 2 ** 30, 2 ** 10, f(4)), /overflow/);
  assert.throws(() => addon.reduce!(0, [1, 2], 0, 1, 2, 1, f(1)), /typed array/);
  // Empty shapes are not misuse: nothing to read, and an empty sum is 0.
  const zeros = f(6).fill(7);
  addon.reduce!(0, f(0), 0, 2, 0, 3, zeros);
  assert.deepEqual([...zeros], [0, 0, 0, 0, 0, 0]);
  addon.reduce!(0, f(0), 0, 0, 5, 3, f(0));
  addon.reduce!(3, f(0), 0, 4, 5, 0, new Int32Array(0));
  addon.softmax!(f(0), 0, f(0), 3, 0, false);
  // softmax(x, offset, out, rows, n, log), softmaxGrad(y, yOff, g, gOff, out, rows, n, log)
  assert.throws(() => addon.softmax!(f(10), 1, f(10), 2, 5, false), /x: 10 elements at offset 1/);
  assert.throws(() => addon.softmax!(f(10), 0, f(9), 2, 5, false), /out/);
  assert.throws(() => addon.softmaxGrad!(f(10), 0, f(9), 0, f(10), 2, 5, true), /g: 10 elements/);
  // layerNorm(x, xOff, gamma, gOff, beta, bOff, rows, n, eps, out, mean, rstd)
  assert.throws(() => addon.layerNorm!(f(10), 0, f(4), 0, null, 0, 2, 5, 1e-5, f(10), f(2), f(2)), /gamma/);
  assert.throws(() => addon.layerNorm!(f(10), 0, null, 0, f(5), 1, 2, 5, 1e-5, f(10), f(2), f(2)), /beta/);
  assert.throws(() => addon.layerNorm!(f(10), 0, null, 0, null, 0, 2, 5, 1e-5, f(10), f(1), f(2)), /mean/);
  assert.throws(() => addon.layerNorm!(f(0), 0, null, 0, null, 0, 2, 0, 1e-5, f(0), f(2), f(2)), /0 elements/);
  // layerNormGrad(x, xOff, g, gOff, gamma, gammaOff, mean, mOff, rstd, rOff, rows, n, dx, dgamma, dbeta)
  assert.throws(() => addon.layerNormGrad!(f(10), 0, f(10), 0, null, 0, f(2), 0, f(2), 1, 2, 5, f(10), null, null), /rstd/);
  assert.throws(() => addon.layerNormGrad!(f(10), 0, f(10), 0, null, 0, f(2), 0, f(2), 0, 2, 5, f(10), f(4), null), /dgamma/);
  assert.throws(() => addon.layerNormGrad!(f(10), 0, f(10), 0, null, 0, f(2), 0, f(2), 0, 2, 5, f(10), null, new Int32Array(5)),
    /dbeta must be a Float32Array/);
  // Through the backend: an output storage that is too small.
  const b = native!;
  const x = denseView(b.fromHost(f(12), 'float32'), [3, 4]);
  assert.throws(() => b.softmax(x, 3, 4, false, b.alloc('float32', 11)), /out/);
  assert.throws(() => b.reduce('sum', x, 3, 4, 1, b.alloc('float32', 2)), /out/);
});

if (!portable) {
  test('the portable kernels (child process with GLIMPSE_NO_AVX2=1)', { skip }, () => {
    rerunTestFile(import.meta.url, { GLIMPSE_NO_AVX2: '1' });
  });
}
