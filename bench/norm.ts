// Memory bandwidth of the native softmax and layer norm kernels (native/reduce.cc), forward and
// backward, as a fraction of a plain dense copy's bandwidth measured in the same run.
//   npm run bench -- norm [--rounds N] [--threads T]
// Bytes count what a kernel must move at least: every input read once and every output written
// once (softmax fwd 2, bwd 3, layer norm fwd 2, bwd 3 tensors; gamma, beta, mean and rstd are
// small and ignored). The copy is the native backend's dense copy when it has one, otherwise
// TypedArray.prototype.set (memmove, single-threaded, listed too). Row and column sums (reduce)
// are listed for information.
import type { Storage, View } from '../src/tensor/backend.js';
import { contiguousStrides } from '../src/tensor/backend.js';
import { type NativeBackend, createNativeBackend } from '../src/tensor/backends/native.js';
import { hostData } from '../src/tensor/backends/host.js';
import { loadAddon } from '../src/tensor/backends/native/addon.js';
import * as elementwise from '../src/tensor/backends/native/elementwise.js';
import { flag, timeInterleaved, ofCopy } from './lib/timing.js';

const SHAPES: [number, number][] = [[8192, 768], [4096, 3072]];

function view(storage: Storage, shape: number[]): View {
  return { storage, offset: 0, shape, strides: contiguousStrides(shape) };
}

function shapeBench(be: NativeBackend, rows: number, n: number, rounds: number) {
  const size = rows * n;
  const rand = (k: number, lo = -1, hi = 1) => {
    const a = new Float32Array(k);
    for (let i = 0; i < k; i++) a[i] = lo + (hi - lo) * Math.random();
    return be.fromHost(a, 'float32');
  };
  const shape = [rows, n];
  const x = view(rand(size, -4, 4), shape);
  const g = view(rand(size), shape);
  const gamma = view(rand(n, 0.5, 1.5), [n]);
  const beta = view(rand(n), [n]);
  const out = be.alloc('float32', size);
  const dx = be.alloc('float32', size);
  const mean = be.alloc('float32', rows);
  const rstd = be.alloc('float32', rows);
  const dgamma = be.alloc('float32', n);
  const dbeta = be.alloc('float32', n);
  const rowSums = be.alloc('float32', rows);
  const colSums = be.alloc('float32', n);

  const copyDst = view(be.alloc('float32', size), shape);
  let nativeCopy = false;
  try {
    nativeCopy = elementwise.copy(loadAddon()!, copyDst, x);
  } catch {
    // an addon built without the elementwise kernels
  }
  const src = hostData(x.storage) as Float32Array;
  const dst = hostData(copyDst.storage) as Float32Array;
  const setCopy = () => dst.set(src);
  const copy = nativeCopy ? () => be.copy(copyDst, x) : setCopy;

  const bytes = (tensors: number) => tensors * size * 4;
  const kernels: [string, number, () => void][] = [
    ['copy', bytes(2), copy],
    ['TypedArray.set', bytes(2), setCopy],
    ['softmax fwd', bytes(2), () => be.softmax(x, rows, n, false, out)],
    ['softmax bwd', bytes(3), () => be.softmaxGrad(view(out, shape), g, rows, n, false, dx)],
    ['log-softmax fwd', bytes(2), () => be.softmax(x, rows, n, true, out)],
    ['layernorm fwd', bytes(2), () => be.layerNorm(x, gamma, beta, rows, n, 1e-5, out, mean, rstd)],
    ['layernorm bwd', bytes(3), () => be.layerNormGrad(x, g, gamma, view(mean, [rows]), view(rstd, [rows]), rows, n,
      dx, dgamma, dbeta)],
    ['sum rows (reduce)', bytes(1), () => be.reduce('sum', x, rows, n, 1, rowSums)],
    ['sum columns (reduce)', bytes(1), () => be.reduce('sum', x, 1, rows, n, colSums)],
  ];
  // The layer norm backward reads the statistics of this x.
  be.layerNorm(x, gamma, beta, rows, n, 1e-5, out, mean, rstd);
  const times = timeInterleaved(kernels.map(([, , fn]) => fn), rounds);
  const gbps: Record<string, number> = {};
  kernels.forEach(([name, b], k) => (gbps[name] = b / times[k]! / 1e9));
  return { shape: [rows, n], copyKind: nativeCopy ? 'native copy' : 'TypedArray.set', ...ofCopy(gbps) };
}

export async function run(args: string[]): Promise<object> {
  const be = createNativeBackend();
  if (!be) throw new Error('norm bench: the native addon is not built');
  const threads = flag(args, '--threads', 0);
  if (threads > 0) loadAddon()!.setNumThreads!(threads);
  const rounds = flag(args, '--rounds', 7);
  return {
    threads: be.numThreads(),
    avx2: loadAddon()!.hasAvx2Fma!(),
    target: 'softmax and layer norm at >= 0.7 of the copy bandwidth',
    timing: `best of ${rounds} interleaved rounds`,
    shapes: SHAPES.map(([rows, n]) => shapeBench(be, rows, n, rounds)),
  };
}
