// Memory bandwidth of the native elementwise kernels (native/elementwise.cc) as a fraction of a
// plain dense copy's bandwidth measured in the same run.
//   npm run bench -- elementwise [--repeats N] [--threads T]
// Bytes count what a kernel must move at least: every full-size input read once and the output
// written once (a copy or a forward activation moves 2 tensors; a backward activation, which
// reads x and the incoming gradient, 3; the bias and the scalar are small and ignored). The copy
// is the native backend's dense float32 copy (streaming stores past 16 MiB, as the activations
// use); TypedArray.prototype.set (memmove, one thread) is listed beside it. The target is GELU at
// >= 0.7 of the copy bandwidth. Inputs are standard normal unless a line says otherwise.
import type { Storage, View } from '../src/tensor/backend.js';
import { contiguousStrides } from '../src/tensor/backend.js';
import { type NativeBackend, createNativeBackend } from '../src/tensor/backends/native.js';
import { hostData } from '../src/tensor/backends/host.js';
import { loadAddon } from '../src/tensor/backends/native/addon.js';
import { flag, timeIt, ofCopy } from './lib/timing.js';

const SHAPES: [number, number][] = [[800, 3072], [8192, 3072]];

function view(storage: Storage, shape: number[], strides = contiguousStrides(shape)): View {
  return { storage, offset: 0, shape, strides };
}

/** Median seconds per call, with enough calls per timed run to last ~50 ms. */
function time(fn: () => void, repeats: number): number {
  const t0 = process.hrtime.bigint();
  fn();
  const once = Number(process.hrtime.bigint() - t0) / 1e9;
  return timeIt(fn, { inner: Math.max(1, Math.round(0.05 / Math.max(once, 1e-6))), repeats });
}

function shapeBench(be: NativeBackend, rows: number, n: number, repeats: number) {
  const size = rows * n;
  const rand = (k: number, lo = -1, hi = 1) => {
    const a = new Float32Array(k);
    for (let i = 0; i < k; i++) a[i] = lo + (hi - lo) * Math.random();
    return be.fromHost(a, 'float32');
  };
  const shape = [rows, n];
  // Pre-activations of a transformer MLP are roughly standard normal. The GELU kernels spend more
  // on lanes far out in the left tail (x < -2.6 for the tanh form, |x| > 4 for the erf form, where
  // they keep relative accuracy), so a uniform [-6, 6] input, with many such lanes, is timed too.
  const normal = new Float32Array(size);
  for (let i = 0; i < size; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - Math.random()));
    const t = 2 * Math.PI * Math.random();
    normal[i] = r * Math.cos(t);
    if (i + 1 < size) normal[i + 1] = r * Math.sin(t);
  }
  const x = view(be.fromHost(normal, 'float32'), shape);
  const wide = view(rand(size, -6, 6), shape);
  const g = view(rand(size), shape);
  const bias = view(rand(n), shape, [0, 1]);
  const scalar = view(rand(1), shape, [0, 0]);
  const out = be.alloc('float32', size);
  const copyDst = view(be.alloc('float32', size), shape);
  const src = hostData(x.storage) as Float32Array;
  const dst = hostData(copyDst.storage) as Float32Array;

  const bytes = (tensors: number) => tensors * size * 4;
  const kernels: [string, number, () => void][] = [
    ['copy', bytes(2), () => be.copy(copyDst, x)],
    ['TypedArray.set', bytes(2), () => dst.set(src)],
    ['gelu_erf fwd', bytes(2), () => be.unary('gelu_erf', x, out)],
    ['gelu_erf bwd', bytes(3), () => be.unaryGrad('gelu_erf', x, g, out)],
    ['gelu_tanh fwd', bytes(2), () => be.unary('gelu_tanh', x, out)],
    ['gelu_tanh bwd', bytes(3), () => be.unaryGrad('gelu_tanh', x, g, out)],
    ['gelu_erf fwd, x uniform in [-6, 6]', bytes(2), () => be.unary('gelu_erf', wide, out)],
    ['gelu_tanh fwd, x uniform in [-6, 6]', bytes(2), () => be.unary('gelu_tanh', wide, out)],
    ['quick_gelu fwd', bytes(2), () => be.unary('quick_gelu', x, out)],
    ['add bias [N] over [M, N]', bytes(2), () => be.binary('add', x, bias, out)],
    ['add dense', bytes(3), () => be.binary('add', x, g, out)],
    ['mul by scalar', bytes(2), () => be.binary('mul', x, scalar, out)],
    ['transposed copy (contiguous of x^T)', bytes(2), () =>
      be.copy(view(copyDst.storage, [n, rows]), view(x.storage, [n, rows], [1, n]))],
  ];
  const gbps: Record<string, number> = {};
  for (const [name, b, fn] of kernels) gbps[name] = b / time(fn, repeats) / 1e9;
  return { shape, MB: +((size * 4) / 1e6).toFixed(1), ...ofCopy(gbps) };
}

export async function run(args: string[]): Promise<object> {
  const be = createNativeBackend();
  if (!be) throw new Error('elementwise bench: the native addon is not built');
  const threads = flag(args, '--threads', 0);
  if (threads > 0) loadAddon()!.setNumThreads!(threads);
  const repeats = flag(args, '--repeats', 7);
  return {
    threads: be.numThreads(),
    avx2: loadAddon()!.hasAvx2Fma!(),
    target: 'GELU (erf and tanh forms, forward and backward) at >= 0.7 of the copy bandwidth',
    shapes: SHAPES.map(([rows, n]) => shapeBench(be, rows, n, repeats)),
  };
}
