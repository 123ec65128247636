// Native indexing kernels (native/indexing.cc) against the reference backend: indexSelect,
// indexAdd, gather, scatterAdd (with repeated indices) and the stable sort (ties, NaN, -0), plus
// the errors for bad indices and short arrays. The whole file runs a second time in a child
// process with GLIMPSE_NO_AVX2=1 to cover the portable kernels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, Storage, View } from '../../src/tensor/backend.js';
import { contiguousStrides } from '../../src/tensor/backend.js';
import type { DType, TypedArray } from '../../src/tensor/dtype.js';
import { ReferenceBackend } from '../../src/tensor/backends/reference.js';
import { createNativeBackend } from '../../src/tensor/backends/native.js';
import { loadAddon } from '../../src/tensor/backends/native/addon.js';
import { assertClose, randInt, randomData, rng, storageData, rerunTestFile } from '../helpers.js';

const native = createNativeBackend();
const reference = new ReferenceBackend();
const skip = native ? false : 'the native addon is not built';
const portable = process.env.GLIMPSE_NO_AVX2 === '1';

/** The same data on both backends as views of `shape`, starting `offset` elements in. */
function both(data: TypedArray, dtype: DType, shape: number[], offset = 0, strides = contiguousStrides(shape)): View[] {
  return [native!, reference].map((b: Backend) => ({ storage: b.fromHost(data, dtype), offset, shape, strides }));
}

/** Random data with `offset` junk elements in front, viewed densely. */
function randomDense(r: () => number, dtype: DType, shape: number[], offset: number, hi = 2): View[] {
  const n = shape.reduce((a, b) => a * b, 1);
  return both(randomData(r, dtype, n + offset, -2, hi), dtype, shape, offset);
}

function indexData(r: () => number, count: number, n: number): Int32Array {
  const idx = new Int32Array(count);
  // Few distinct values, so repeats are common.
  for (let i = 0; i < count; i++) idx[i] = randInt(r, 0, n - 1);
  return idx;
}

function sameValues(a: Storage, b: Storage, what: string): void {
  const x = storageData(a);
  const y = storageData(b);
  assert.equal(x.length, y.length, `${what}: lengths`);
  for (let i = 0; i < x.length; i++) {
    if (!(x[i] === y[i] || (Number.isNaN(x[i]) && Number.isNaN(y[i])))) assert.fail(`${what}: element ${i} is ${x[i]}, the reference has ${y[i]}`);
  }
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 7, 1], [3, 5, 1], [1, 9, 13], [2, 4, 64], [3, 11, 200], [1, 50, 300], [2, 3, 2000],
];

test('the portable path is selected when GLIMPSE_NO_AVX2=1', { skip }, () => {
  if (portable) assert.equal(loadAddon()!.hasAvx2Fma!(), false);
});

test('indexSelect and indexAdd match the reference, repeated and strided indices included', { skip }, () => {
  const r = rng(21);
  for (const [outer, n, inner] of SHAPES) {
    for (const m of [1, 3, 2 * n + 1]) {
      for (const layout of ['dense', 'strided'] as const) {
        const what = `[${outer}, ${n}, ${inner}] m=${m} ${layout}`;
        const idxData = indexData(r, layout === 'dense' ? m + 2 : 3 * m, n);
        const [iN, iR] = layout === 'dense' ? both(idxData, 'int32', [m], 2) : both(idxData, 'int32', [m], 1, [3]);
        for (const dtype of ['float32', 'int32', 'bool'] as const) {
          const [xN, xR] = randomDense(r, dtype, [outer, n, inner], 3, 9);
          const outs = [native!.alloc(dtype, outer * m * inner), reference.alloc(dtype, outer * m * inner)];
          native!.indexSelect(xN!, iN!, outer, n, inner, outs[0]!);
          reference.indexSelect(xR!, iR!, outer, n, inner, outs[1]!);
          sameValues(outs[0]!, outs[1]!, `indexSelect ${dtype} ${what}`);
        }
        const [gN, gR] = randomDense(r, 'float32', [outer, m, inner], 1);
        // Accumulates into what out holds.
        const init = randomData(r, 'float32', outer * n * inner);
        const outs = [native!.fromHost(init, 'float32'), reference.fromHost(init, 'float32')];
        native!.indexAdd(gN!, iN!, outer, n, inner, outs[0]!);
        reference.indexAdd(gR!, iR!, outer, n, inner, outs[1]!);
        // The reference sums in double and rounds once; float32 sums of up to 2n+2 terms differ slightly.
        assertClose(storageData(outs[0]!) as Float32Array, storageData(outs[1]!) as Float32Array, 1e-5, 1e-5, `indexAdd ${what}`);
      }
    }
  }
});

test('indexAdd sums repeated indices in index order, independent of threading', { skip }, () => {
  // Every row lands on index 0, in an order where float32 rounding depends on the order of the sum.
  const m = 1000;
  const inner = 4096;
  const g = new Float32Array(m * inner);
  for (let j = 0; j < m; j++) for (let i = 0; i < inner; i++) g[j * inner + i] = j % 2 === 0 ? 1e8 : (i % 7) + 0.5;
  const idx = new Int32Array(m);
  const out = native!.alloc('float32', 2 * inner);
  native!.indexAdd({ storage: native!.fromHost(g, 'float32'), offset: 0, shape: [m, inner], strides: [inner, 1] },
    { storage: native!.fromHost(idx, 'int32'), offset: 0, shape: [m], strides: [1] }, 1, 2, inner, out);
  const got = storageData(out) as Float32Array;
  for (let i = 0; i < inner; i++) {
    let acc = Math.fround(0);
    for (let j = 0; j < m; j++) acc = Math.fround(acc + g[j * inner + i]!);
    if (got[i] !== acc) assert.fail(`column ${i}: ${got[i]} is not the in-order float32 sum ${acc}`);
    assert.equal(got[inner + i], 0);
  }
});

test('gather and scatterAdd match the reference', { skip }, () => {
  const r = rng(22);
  for (const [outer, n, inner] of SHAPES) {
    for (const m of [1, 2, n + 3]) {
      const what = `[${outer}, ${n}, ${inner}] m=${m}`;
      const [iN, iR] = both(indexData(r, outer * m * inner + 4, n), 'int32', [outer, m, inner], 4);
      for (const dtype of ['float32', 'float64', 'uint8'] as const) {
        const [xN, xR] = randomDense(r, dtype, [outer, n, inner], 2, 9);
        const outs = [native!.alloc(dtype, outer * m * inner), reference.alloc(dtype, outer * m * inner)];
        native!.gather(xN!, iN!, outer, n, inner, outs[0]!);
        reference.gather(xR!, iR!, outer, n, inner, outs[1]!);
        sameValues(outs[0]!, outs[1]!, `gather ${dtype} ${what}`);
      }
      const [gN, gR] = randomDense(r, 'float32', [outer, m, inner], 0);
      const init = randomData(r, 'float32', outer * n * inner);
      const outs = [native!.fromHost(init, 'float32'), reference.fromHost(init, 'float32')];
      native!.scatterAdd(gN!, iN!, outer, n, inner, outs[0]!);
      reference.scatterAdd(gR!, iR!, outer, n, inner, outs[1]!);
      assertClose(storageData(outs[0]!) as Float32Array, storageData(outs[1]!) as Float32Array, 1e-5, 1e-5, `scatterAdd ${what}`);
    }
  }
});

test('sort matches the reference: stable ties, NaN as the largest value, -0 equal to +0', { skip }, () => {
  const r = rng(23);
  const pool = [0, -0, 1, -1, 2.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e-40, -3];
  // Rows of 1024 and more take the radix sort, shorter ones the comparison sort.
  for (const [rows, n] of [[1, 1], [1, 2], [3, 7], [4, 33], [2, 1023], [2, 1024], [3, 2500], [200, 50]] as [number, number][]) {
    for (const kind of ['ties', 'random'] as const) {
      const data = new Float32Array(rows * n + 3);
      for (let i = 0; i < data.length; i++) data[i] = kind === 'ties' ? pool[randInt(r, 0, pool.length - 1)]! : r() * 4 - 2;
      const [xN, xR] = both(data, 'float32', [rows, n], 3);
      for (const descending of [false, true]) {
        for (const idxType of ['int32', 'int64'] as const) {
          const vals = [native!.alloc('float32', rows * n), reference.alloc('float32', rows * n)];
          const ids = [native!.alloc(idxType, rows * n), reference.alloc(idxType, rows * n)];
          native!.sort(xN!, rows, n, descending, vals[0]!, ids[0]!);
          reference.sort(xR!, rows, n, descending, vals[1]!, ids[1]!);
          const what = `sort [${rows}, ${n}] ${kind} ${descending ? 'descending' : 'ascending'} ${idxType}`;
          sameValues(ids[0]!, ids[1]!, `${what} indices`);
          sameValues(vals[0]!, vals[1]!, `${what} values`);
          // -0 keeps its sign: values are the input elements themselves.
          const vN = storageData(vals[0]!) as Float32Array;
          const iN = storageData(ids[0]!);
          for (let t = 0; t < rows * n; t++) {
            assert.ok(Object.is(vN[t], data[3 + Math.floor(t / n) * n + Number(iN[t])]), `${what}: value ${t}`);
          }
        }
      }
    }
  }
});

test('out-of-range indices raise a RangeError naming the index and the valid range', { skip }, () => {
  const b = native!;
  const x: View = { storage: b.alloc('float32', 12), offset: 0, shape: [3, 4], strides: [4, 1] };
  const idx = (values: number[], shape = [values.length]): View =>
    ({ storage: b.fromHost(Int32Array.from(values), 'int32'), offset: 0, shape, strides: contiguousStrides(shape) });
  const out = () => b.alloc('float32', 64);
  assert.throws(() => b.indexSelect(x, idx([0, 3, 1]), 1, 3, 4, out()), { name: 'RangeError', message: /index 3 is out of range for a dimension of size 3 \(valid: 0 to 2\)/ });
  assert.throws(() => b.indexSelect(x, idx([0, -1, 7]), 1, 3, 4, out()), { name: 'RangeError', message: /index -1 is out/ });
  assert.throws(() => b.indexAdd(x, idx([2, 0, 5]), 1, 3, 4, out()), { name: 'RangeError', message: /indexAdd: index 5 is out/ });
  assert.throws(() => b.gather(x, idx([0, 1, 2, 3, 0, 1, 2, 4, 0, 0, 0, 0], [3, 4]), 3, 4, 1, out()), { name: 'RangeError', message: /gather: index 4 is out/ });
  assert.throws(() => b.scatterAdd(x, idx([0, 1, 2, 3, 0, 1, 2, 3, 0, 0, -9, 0], [3, 4]), 3, 4, 1, out()), { name: 'RangeError', message: /scatterAdd: index -9 is out/ });
  // Nothing was added before the error.
  const acc = b.alloc('float32', 12);
  assert.throws(() => b.indexAdd({ storage: b.fromHost(new Float32Array(12).fill(1), 'float32'), offset: 0, shape: [3, 4], strides: [4, 1] },
    idx([0, 1, 3]), 1, 3, 4, acc), RangeError);
  assert.deepEqual([...(storageData(acc) as Float32Array)], new Array(12).fill(0));
});

test('indexing kernels reject arrays too short for their views', { skip }, () => {
  const b = native!;
  const x: View = { storage: b.alloc('float32', 12), offset: 0, shape: [3, 4], strides: [4, 1] };
  const idx: View = { storage: b.fromHost(Int32Array.from([0, 1]), 'int32'), offset: 0, shape: [2], strides: [1] };
  assert.throws(() => b.indexSelect(x, idx, 1, 3, 4, b.alloc('float32', 7)), /out: 8 elements from offset 0 do not fit its array of 7/);
  assert.throws(() => b.indexSelect({ ...x, offset: 1 }, idx, 1, 3, 4, b.alloc('float32', 8)), /x: 12 elements from offset 1/);
  assert.throws(() => b.indexSelect(x, { ...idx, shape: [3] }, 1, 3, 4, b.alloc('float32', 12)), /index view reaches outside/);
  const g: View = { ...x, shape: [2, 4] };
  assert.throws(() => b.indexAdd(g, idx, 1, 3, 4, b.alloc('float32', 11)), /out: 12 elements from offset 0 do not fit its array of 11/);
  assert.throws(() => b.indexAdd(x, idx, 1, 3, 4, b.alloc('float32', 12)), /does not have the 8 elements/);
  const g4: View = { ...x, shape: [2, 2], strides: [2, 1] };
  assert.throws(() => b.scatterAdd(g4, { ...idx, shape: [2, 2], strides: [2, 1] }, 2, 4, 1, b.alloc('float32', 8)), /index view reaches outside/);
  assert.throws(() => b.sort(x, 3, 4, false, b.alloc('float32', 12), b.alloc('int32', 11)), /indices: 12 elements/);
});

if (!portable) {
  test('the portable kernels (child process with GLIMPSE_NO_AVX2=1)', { skip }, () => {
    rerunTestFile(import.meta.url, { GLIMPSE_NO_AVX2: '1' });
  });
}
