// The native SGEMM (native/gemm.cc) against the reference backend and a float64 product, over
// random shapes and layouts, on 1 to 3 threads. The whole file runs again in child processes with
// GLIMPSE_NO_AVX2=1 (the portable kernels) and, where the CPU has AVX-512, GLIMPSE_NO_AVX512=1
// (the AVX2 few-rows kernel), so every kernel family passes the same checks.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import type { Backend, View } from '../../src/tensor/backend.js';
import { createNativeBackend } from '../../src/tensor/backends/native.js';
import { loadAddon } from '../../src/tensor/backends/native/addon.js';
import { ReferenceBackend } from '../../src/tensor/backends/reference.js';
import { type Layout, randInt, randomData, randomView, rng, storageData, rerunTestFile } from '../helpers.js';

const native = createNativeBackend();
const addon = loadAddon();
const reference = new ReferenceBackend();
const skip = native ? false : 'native addon not built';
const isChild = process.env.GLIMPSE_GEMM_CHILD === '1';
const EPS32 = 2 ** -24;

const SIZES = [1, 2, 3, 5, 6, 7, 8, 13, 16, 17, 23, 31, 32, 33, 47, 64, 65, 70];
const LAYOUTS: Layout[] = ['dense', 'offset', 'transposed', 'sliced', 'broadcast'];

/** Elements of a view as float64, row-major over its shape. */
function elements(v: View): Float64Array {
  const data = storageData(v.storage) as Float32Array;
  const [d0, d1, d2] = v.shape as [number, number, number];
  const [s0, s1, s2] = v.strides as [number, number, number];
  const out = new Float64Array(d0 * d1 * d2);
  let n = 0;
  for (let i = 0; i < d0; i++)
    for (let j = 0; j < d1; j++)
      for (let k = 0; k < d2; k++) out[n++] = data[v.offset + i * s0 + j * s1 + k * s2]!;
  return out;
}

/**
 * Runs matmul on both backends and checks each element of the native result against the float64
 * product within the bound on float32 summation error, (K + 2) * eps * sum_k |a_ik b_kj|, and
 * the reference's result within the same bound.
 */
function check(a: View[], b: View[], what: string): void {
  const [batch, M, K] = a[0]!.shape as [number, number, number];
  const N = b[0]!.shape[2]!;
  const outN = native!.alloc('float32', batch * M * N);
  const outR = reference.alloc('float32', batch * M * N);
  native!.matmul(a[0]!, b[0]!, outN);
  reference.matmul(a[1]!, b[1]!, outR);
  const got = storageData(outN) as Float32Array;
  const ref = storageData(outR) as Float32Array;
  const av = elements(a[0]!);
  const bv = elements(b[0]!);
  for (let p = 0; p < batch; p++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let exact = 0;
        let mag = 0;
        for (let k = 0; k < K; k++) {
          const t = av[(p * M + i) * K + k]! * bv[(p * K + k) * N + j]!;
          exact += t;
          mag += Math.abs(t);
        }
        const idx = (p * M + i) * N + j;
        const tol = (K + 2) * EPS32 * mag;
        if (!(Math.abs(got[idx]! - exact) <= tol) || !(Math.abs(ref[idx]! - exact) <= tol)) {
          assert.fail(`${what}: out[${p}, ${i}, ${j}] native ${got[idx]}, reference ${ref[idx]}, ` +
            `float64 ${exact} (tol ${tol})`);
        }
      }
    }
  }
}

function views(r: () => number, shape: number[], layout: Layout): View[] {
  return randomView(r, [native!, reference] as Backend[], 'float32', shape, layout);
}

/** A view of shape [batch, rows, cols] whose batch axis has stride 0 over one stored matrix. */
function batchBroadcast(r: () => number, batch: number, rows: number, cols: number, transposed: boolean): View[] {
  const data = randomData(r, 'float32', rows * cols + 2);
  const strides = transposed ? [0, 1, rows] : [0, cols, 1];
  return [native!, reference].map((be) => ({
    storage: be.fromHost(data, 'float32'), offset: 2, shape: [batch, rows, cols], strides,
  }));
}

function withThreads(n: number, body: () => void): void {
  const before = addon!.numThreads!() as number;
  addon!.setNumThreads!(n);
  try {
    body();
  } finally {
    addon!.setNumThreads!(before);
  }
}

/** The CPU's own word on a feature (Linux's /proc/cpuinfo flags), or null where it cannot be read. */
function cpuHas(flag: string): boolean | null {
  if (!fs.existsSync('/proc/cpuinfo')) return null;
  const flags = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim().split(/\s+/);
  return flags ? flags.includes(flag) : null;
}

test('the kernels follow the CPU; GLIMPSE_NO_AVX2=1 selects the portable ones, GLIMPSE_NO_AVX512=1 the AVX2 ones', { skip }, () => {
  const noAvx2 = process.env.GLIMPSE_NO_AVX2 === '1';
  const noAvx512 = noAvx2 || process.env.GLIMPSE_NO_AVX512 === '1';
  const [avx2, fma, avx512f] = [cpuHas('avx2'), cpuHas('fma'), cpuHas('avx512f')];
  if (noAvx2) assert.equal(addon!.hasAvx2Fma!(), false);
  else if (avx2 !== null && fma !== null) assert.equal(addon!.hasAvx2Fma!(), avx2 && fma);
  if (noAvx512) assert.equal(addon!.hasAvx512f!(), false);
  else if (avx512f !== null) assert.equal(addon!.hasAvx512f!(), avx512f);
});

test('random shapes and layouts match the reference', { skip }, () => {
  const r = rng(1234);
  for (const threads of [1, 2, 3]) {
    withThreads(threads, () => {
      for (let t = 0; t < 40; t++) {
        const batch = randInt(r, 1, 3);
        const M = SIZES[randInt(r, 0, SIZES.length - 1)]!;
        const N = SIZES[randInt(r, 0, SIZES.length - 1)]!;
        const K = t % 8 === 0 ? randInt(r, 257, 340) : SIZES[randInt(r, 0, SIZES.length - 1)]!;
        const la = LAYOUTS[randInt(r, 0, LAYOUTS.length - 1)]!;
        const lb = LAYOUTS[randInt(r, 0, LAYOUTS.length - 1)]!;
        check(views(r, [batch, M, K], la), views(r, [batch, K, N], lb),
          `threads ${threads}: [${batch},${M},${K}] ${la} @ [${batch},${K},${N}] ${lb}`);
      }
    });
  }
});

test('sizes that cross the cache blocks', { skip }, () => {
  const r = rng(99);
  withThreads(2, () => {
    // Several row blocks, several K slices, two column panels (N > 4096), a few rows split by columns,
    // threads given row counts on either side of a block size (294 = 144 + 150).
    const cases: [number, number, number][] = [ // M, K, N
      [301, 29, 37], [294, 29, 37], [37, 600, 41], [3, 5, 4200], [5, 300, 200], [151, 257, 67],
    ];
    for (const [M, K, N] of cases) {
      const pairs: Layout[][] = [['dense', 'dense'], ['transposed', 'transposed'], ['sliced', 'transposed']];
      for (const [la, lb] of pairs) {
        check(views(r, [1, M, K], la!), views(r, [1, K, N], lb!), `[${M},${K}] ${la} @ [${K},${N}] ${lb}`);
      }
    }
  });
});

test('matrix-vector shapes (M = 1 or N = 1) and single row panels', { skip }, () => {
  const r = rng(31);
  withThreads(2, () => {
    const shapes: [number, number, number][] = [ // M, K, N
      [1, 300, 200], [200, 300, 1], [1, 5, 777], [777, 3, 1], [1, 1, 1], [1, 1000, 1],
      [4, 70, 150], [12, 40, 100], [9, 300, 33], [6, 257, 41], [5, 64, 4100], [1, 33, 4100],
    ];
    for (const [M, K, N] of shapes) {
      const pairs: Layout[][] = [['dense', 'dense'], ['dense', 'transposed'], ['transposed', 'dense'],
        ['sliced', 'sliced'], ['offset', 'transposed'], ['transposed', 'sliced']];
      for (const [la, lb] of pairs) {
        check(views(r, [1, M, K], la!), views(r, [1, K, N], lb!), `[${M},${K}] ${la} @ [${K},${N}] ${lb}`);
      }
    }
  });
});

test('a batch axis of stride 0 on either side', { skip }, () => {
  const r = rng(7);
  withThreads(2, () => {
    // Small problems run whole per thread, large ones (the last) one at a time split across threads.
    const shapes = [[3, 17, 33, 19], [4, 65, 20, 70], [2, 1, 300, 9], [5, 40, 64, 40], [3, 129, 130, 131]] as const;
    for (const [batch, M, K, N] of shapes) {
      for (const t of [false, true]) {
        const what = `${batch}x${M}x${K}x${N}, broadcast operand transposed: ${t}`;
        check(views(r, [batch, M, K], 'dense'), batchBroadcast(r, batch, K, N, t), `a dense, b broadcast, ${what}`);
        check(views(r, [batch, M, K], 'sliced'), batchBroadcast(r, batch, K, N, t), `a sliced, b broadcast, ${what}`);
        check(batchBroadcast(r, batch, M, K, t), views(r, [batch, K, N], 'transposed'), `a bcast, b transposed, ${what}`);
        check(batchBroadcast(r, batch, M, K, t), batchBroadcast(r, batch, K, N, !t), `both broadcast, ${what}`);
      }
    }
  });
});

test('empty products: K = 0 gives zeros, M or N = 0 writes nothing', { skip }, () => {
  const r = rng(5);
  const out = native!.alloc('float32', 6);
  (storageData(out) as Float32Array).fill(Number.NaN);
  native!.matmul(views(r, [2, 3, 0], 'dense')[0]!, views(r, [2, 0, 1], 'dense')[0]!, out);
  assert.deepEqual([...(storageData(out) as Float32Array)], [0, 0, 0, 0, 0, 0]);
  const none = native!.alloc('float32', 0);
  native!.matmul(views(r, [2, 0, 4], 'dense')[0]!, views(r, [2, 4, 3], 'dense')[0]!, none);
  native!.matmul(views(r, [2, 3, 4], 'dense')[0]!, views(r, [2, 4, 0], 'dense')[0]!, none);
});

/**
 * One addon.sgemm call, c = alpha * op(a) op(b) + beta * c, checked element by element against a
 * float64 product; beta = 0 leaves NaN in c's window, which must not be read. Elements of c outside
 * the M x N window must stay untouched.
 */
function sgemmCase(r: () => number, M: number, N: number, K: number, alpha: number, beta: number,
  transA: boolean, transB: boolean, colMajorC: boolean, what: string): void {
  const a = randomData(r, 'float32', M * K) as Float32Array;
  const b = randomData(r, 'float32', K * N) as Float32Array;
  const ldc = (colMajorC ? M : N) + 2;
  const c = randomData(r, 'float32', ldc * (colMajorC ? N : M) + 3) as Float32Array;
  const cIdx = (i: number, j: number) => 3 + (colMajorC ? j * ldc + i : i * ldc + j);
  if (beta === 0) for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) c[cIdx(i, j)] = Number.NaN; // never read
  const c0 = Float64Array.from(c);
  const aIdx = (i: number, k: number) => (transA ? k * M + i : i * K + k);
  const bIdx = (k: number, j: number) => (transB ? j * K + k : k * N + j);
  addon!.sgemm!(a, 0, transA ? [1, M] : [K, 1], b, 0, transB ? [1, K] : [N, 1],
    c, 3, colMajorC ? [1, ldc] : [ldc, 1], M, N, K, alpha, beta);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let exact = 0;
      let mag = 0;
      for (let k = 0; k < K; k++) {
        const p = a[aIdx(i, k)]! * b[bIdx(k, j)]!;
        exact += p;
        mag += Math.abs(p);
      }
      const old = beta === 0 ? 0 : c0[cIdx(i, j)]!;
      const want = alpha * exact + beta * old;
      const tol = (K + 4) * EPS32 * (Math.abs(alpha) * mag + Math.abs(beta * old));
      const gotv = c[cIdx(i, j)]!;
      assert.ok(Math.abs(gotv - want) <= tol, `${what} (${M}x${K}x${N}, tA ${transA}, tB ${transB}, ` +
        `alpha ${alpha}, beta ${beta}, colMajorC ${colMajorC}): c[${i},${j}] = ${gotv}, want ${want}`);
    }
  }
  const inside = new Set<number>();
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) inside.add(cIdx(i, j));
  for (let x = 0; x < c.length; x++) {
    if (!inside.has(x)) assert.equal(c[x], c0[x], `${what}: c[${x}] outside the product changed`);
  }
}

test('sgemm: alpha, beta, and strided or column-major C', { skip }, () => {
  const r = rng(11);
  withThreads(2, () => {
    for (let t = 0; t < 30; t++) {
      const M = randInt(r, 1, 70), N = randInt(r, 1, 70), K = t % 5 === 0 ? randInt(r, 250, 520) : randInt(r, 1, 70);
      const alpha = [1, -0.5, 2.25][t % 3]!;
      const beta = [0, 1, -1.5, 0.75][t % 4]!;
      const transA = r() < 0.5, transB = r() < 0.5, colMajorC = t % 3 === 2;
      sgemmCase(r, M, N, K, alpha, beta, transA, transB, colMajorC, `case ${t}`);
    }
  });
});

// Few rows of A against B read as a transposed row-major weight (k-stride 1): the path that reads
// B in place (M <= 64, K >= 512) with its turned-around kernel on whole panels of A's rows (16
// AVX2, 8 portable) and dot products on the rest, partial groups of B's columns (not a multiple of
// 6 or 4), k tails under 8, K slices (K > 4096) with and without whole panels, and shapes just
// outside it.
test('sgemm: few rows against a transposed B', { skip }, () => {
  const r = rng(21);
  const Ms = [2, 3, 4, 5, 7, 9, 13, 31, 50, 63, 64, 65];
  const Ks = [511, 512, 513, 519, 520, 521, 527, 600, 769, 1031];
  for (const threads of [1, 2]) {
    withThreads(threads, () => {
      for (let t = 0; t < 24; t++) {
        const M = Ms[t % Ms.length]!, K = Ks[randInt(r, 0, Ks.length - 1)]!;
        const N = [1, 2, 3, 4, 5, 11, 47, 49, 97, 151][randInt(r, 0, 9)]!;
        const alpha = [1, -0.5, 2.25][t % 3]!;
        const beta = [0, 1, -1.5, 0.75][t % 4]!;
        sgemmCase(r, M, N, K, alpha, beta, false, true, t % 5 === 4, `threads ${threads}, case ${t}`);
      }
    });
  }
  withThreads(2, () => {
    sgemmCase(r, 3, 5, 4100, 1, 0, false, true, false, 'K slices');
    sgemmCase(r, 6, 7, 8203, -0.5, 0.75, false, true, true, 'K slices, beta');
    sgemmCase(r, 37, 13, 4100, 1, 0, false, true, false, 'K slices, whole panels');
    sgemmCase(r, 64, 50, 8197, 2.25, -1.5, false, true, false, 'K slices, whole panels, beta');
    sgemmCase(r, 17, 20, 4099, -0.5, 0.75, false, true, true, 'K slices, whole panels, column-major C');
    sgemmCase(r, 50, 200, 768, 1, 0, false, true, false, 'a ViT-sized row count');
  });
});

test('few rows against a transposed B through matmul, with batches', { skip }, () => {
  const r = rng(22);
  withThreads(2, () => {
    for (const [batch, M, K, N] of [[1, 50, 520, 67], [2, 17, 777, 20], [3, 5, 513, 3], [1, 64, 600, 100], [4, 2, 77, 9]]) {
      check(views(r, [batch!, M!, K!], 'dense'), views(r, [batch!, K!, N!], 'transposed'),
        `[${batch},${M},${K}] dense @ transposed [${K},${N}]`);
      check(views(r, [batch!, M!, K!], 'offset'), batchBroadcast(r, batch!, K!, N!, true),
        `[${batch},${M},${K}] offset @ broadcast transposed [${K},${N}]`);
      check(views(r, [batch!, M!, K!], 'sliced'), views(r, [batch!, K!, N!], 'transposed'),
        `[${batch},${M},${K}] sliced @ transposed [${K},${N}]`);
    }
  });
});

test('misuse throws instead of reading or writing out of bounds', { skip }, () => {
  const f = new Float32Array(12);
  const m = addon!.matmul!;
  assert.doesNotThrow(() => m(f, 0, [12, 4, 1], f.slice(), 0, [12, 3, 1], new Float32Array(9), 1, 3, 3, 4));
  // a too short for [1, 3, 5]
  assert.throws(() => m(f, 0, [15, 5, 1], f, 0, [15, 3, 1], new Float32Array(9), 1, 3, 3, 5), /outside/);
  // offset pushes the last element past the end
  assert.throws(() => m(f, 1, [12, 4, 1], f, 0, [12, 3, 1], new Float32Array(9), 1, 3, 3, 4), /outside/);
  // negative offset, negative stride reaching below 0
  assert.throws(() => m(f, -1, [12, 4, 1], f, 0, [12, 3, 1], new Float32Array(9), 1, 3, 3, 4), /outside/);
  assert.throws(() => m(f, 0, [12, -4, 1], f, 0, [12, 3, 1], new Float32Array(9), 1, 3, 3, 4), /outside/);
  // batch stride walks past the end
  assert.throws(() => m(f, 0, [12, 4, 1], f, 0, [12, 3, 1], new Float32Array(18), 2, 3, 3, 4), /outside/);
  // huge strides that would overflow when multiplied
  assert.throws(() => m(f, 0, [0, 2 ** 52, 1], f, 0, [0, 3, 1], new Float32Array(9), 1, 3, 3, 4), /outside/);
  // out too short, wrong array types, bad sizes and strides
  assert.throws(() => m(f, 0, [12, 4, 1], f, 0, [12, 3, 1], new Float32Array(8), 1, 3, 3, 4), /shorter/);
  const f64 = new Float64Array(12);
  assert.throws(() => m(f64, 0, [12, 4, 1], f, 0, [12, 3, 1], new Float32Array(9), 1, 3, 3, 4), /Float32Array/);
  assert.throws(() => m(f, 0, [12, 4, 1], f, 0, [12, 3, 1], [0, 0, 0], 1, 3, 3, 4), /typed array/);
  assert.throws(() => m(f, 0, [4, 1], f, 0, [12, 3, 1], new Float32Array(9), 1, 3, 3, 4), /strides/);
  assert.throws(() => m(f, 0, [12, 4, 1], f, 0, [12, 3, 1], new Float32Array(9), 1, -3, 3, 4), /sizes/);
  assert.throws(() => m(f, 0, [12, 4, 1], f, 0, [12, 3, 1], new Float32Array(9), 1, 3, 3), /arguments/);
  const s = addon!.sgemm!;
  assert.throws(() => s(f, 0, [4, 1], f, 0, [3, 1], new Float32Array(9), 0, [1, 1], 3, 3, 4, 1, 0), /apart/);
  assert.throws(() => s(f, 0, [4, 1], f, 0, [3, 1], new Float32Array(9), 0, [3, 1], 3, 4, 4, 1, 0), /outside/);
});

test('the portable kernels pass the same tests (GLIMPSE_NO_AVX2=1)', { skip: skip || isChild }, () => {
  const out = rerunTestFile(import.meta.url, { GLIMPSE_NO_AVX2: '1', GLIMPSE_GEMM_CHILD: '1' }, ['--test-reporter=tap']);
  assert.match(out, /# fail 0/);
  assert.doesNotMatch(out, /# pass 0\b/);
});

test('the AVX2 kernels pass the same tests on an AVX-512 machine (GLIMPSE_NO_AVX512=1)', {
  skip: skip || isChild || (!addon!.hasAvx512f!() && 'the CPU has no AVX-512: the main run covers the AVX2 kernels'),
}, () => {
  const out = rerunTestFile(import.meta.url, { GLIMPSE_NO_AVX512: '1', GLIMPSE_GEMM_CHILD: '1' }, ['--test-reporter=tap']);
  assert.match(out, /# fail 0/);
  assert.doesNotMatch(out, /# pass 0\b/);
});
